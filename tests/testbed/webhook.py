"""A stand-in for a Slack-style incoming webhook, on 127.0.0.1.

What it imitates (Slack's incoming webhooks, api.slack.com/messaging/webhooks and the
2016-05-17 changelog "Improving error conditions for Incoming Webhooks"): a secret URL that
takes a JSON POST and answers HTTP 200 with the plain-text body ``ok``; a failure is a 4xx or
5xx status with a short text body naming it (``invalid_payload``, ``channel_not_found``,
``rollup_error``, ...). Slack's advice, which the product follows: 200 is success, anything
else a failure.

>>> with RecordingWebhook() as hook:
...     settings = replace(settings, alerts=replace(settings.alerts, webhook_url=hook.url))
...     hook.mode = "hang"      # or "500", or back to "ok"
...     hook.calls              # every POST's decoded JSON body, in order

``mode``: ``"ok"`` answers 200 ``ok``; ``"hang"`` reads the request and never answers (until
the webhook is closed); ``"500"`` answers 500 ``rollup_error``; ``"429"`` answers 429
``rate_limited`` with ``Retry-After: 30`` (Slack's rate limit). Every POST is recorded,
whatever the mode (a retried send shows up once per try). A body that is not JSON is
recorded as ``{"_invalid": <text>}`` and answered 400 ``invalid_payload``, as Slack does.

``url`` is host-side (``http://127.0.0.1:PORT/services/...``); ``guest_url`` is what the test
bed's QEMU guest uses (``10.0.2.2`` is the host's 127.0.0.1 from inside it). The path carries a
random secret, like Slack's ``/services/T.../B.../<secret>``, so tests can check it never
shows in any output.
"""

from __future__ import annotations

import json
import secrets
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODES = ("ok", "hang", "500", "429")
MAX_BODY = 1024 * 1024


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up (a sender that stops waiting, or closes without reading
        "ok") is what tests do on purpose: not worth a traceback."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class RecordingWebhook:
    """A Slack-style incoming webhook that records what it was sent (see the module doc)."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.secret = secrets.token_hex(12)
        self.path = f"/services/T0RUNNERH/B0HEALTH/{self.secret}"
        self._calls: list[Any] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                hook._answer(self)

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    @property
    def guest_url(self) -> str:
        return f"http://10.0.2.2:{self.port}{self.path}"

    @property
    def calls(self) -> list[Any]:
        """A copy of the decoded bodies received so far."""
        with self._lock:
            return list(self._calls)

    def __enter__(self) -> RecordingWebhook:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._closing.set()  # lets hanging handlers go
        self._server.shutdown()
        self._server.server_close()

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode: expected one of {MODES}, got {self.mode!r}")
        if handler.path != self.path:
            return self._reply(handler, 404, "no_service")
        length = min(int(handler.headers.get("Content-Length") or 0), MAX_BODY)
        raw = handler.rfile.read(length)
        try:
            body, valid = json.loads(raw), True
        except ValueError:
            body, valid = {"_invalid": raw.decode("utf-8", "replace")}, False
        with self._lock:
            self._calls.append(body)
        if not valid:
            return self._reply(handler, 400, "invalid_payload")
        if self.mode == "hang":
            self._closing.wait()
            handler.close_connection = True
            return None
        if self.mode == "500":
            return self._reply(handler, 500, "rollup_error")
        if self.mode == "429":
            return self._reply(handler, 429, "rate_limited", (("Retry-After", "30"),))
        return self._reply(handler, 200, "ok")

    @staticmethod
    def _reply(
        handler: BaseHTTPRequestHandler,
        status: int,
        text: str,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        body = text.encode()
        handler.send_response(status)
        for name, value in headers:
            handler.send_header(name, value)
        handler.send_header("Content-Type", "text/plain; charset=utf-8")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
