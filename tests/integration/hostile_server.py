"""A GitHub impostor on 127.0.0.1 that answers exactly what a test tells it to.

The stateful fake (tests/testbed/fake_github) behaves like GitHub; this one does not: it sends
HTML with a 200, truncated or wrong-shaped JSON, drips its answer one byte at a time, or links
to pages without end and to other hosts.

>>> with HostileServer() as server:
...     server.on("/repos/acme/kernel-ci/actions/runners", Answer(body="<html>login</html>"))
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Answer:
    """One HTTP answer. ``body``: bytes/str as they are, anything else as JSON.

    ``drip``: seconds between bytes; with ``drip_headers`` the status line and headers drip
    too (a read timeout never fires either way: every read gets a byte in time).
    """

    status: int = 200
    body: Any = b""
    headers: dict[str, str] = field(default_factory=dict)
    drip: float = 0.0
    drip_headers: bool = False

    def raw(self) -> tuple[bytes, bytes]:
        """The head (status line and headers) and the body, as sent."""
        if isinstance(self.body, bytes):
            body = self.body
        elif isinstance(self.body, str):
            body = self.body.encode()
        else:
            body = json.dumps(self.body).encode()
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Date": time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime()),
            **self.headers,
            "Content-Length": str(len(body)),
        }
        lines = [f"HTTP/1.1 {self.status} {HTTPStatus(self.status).phrase}"]
        lines += [f"{key}: {value}" for key, value in headers.items() if value is not None]
        return ("\r\n".join(lines) + "\r\n\r\n").encode(), body


Route = Answer | Callable[[dict[str, str]], Answer]


class HostileServer:
    """Serves ``on(path, answer)`` routes (a path without its query; a callable gets the query)."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # (method, path?query, headers)
        self.aborted = 0  # answers the client hung up on
        self._stopping = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                server._answer(self)

            do_POST = do_PATCH = do_GET

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def on(self, path: str, route: Route) -> None:
        self.routes[path] = route

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        split = urlsplit(handler.path)
        self.requests.append((handler.command, handler.path, dict(handler.headers)))
        length = int(handler.headers.get("Content-Length") or 0)
        handler.rfile.read(length)
        route = self.routes.get(split.path, Answer(404, {"message": "Not Found"}))
        query = {key: values[-1] for key, values in parse_qs(split.query).items()}
        answer = route(query) if callable(route) else route
        head, body = answer.raw()
        try:
            if not answer.drip:
                handler.wfile.write(head + body)
                return
            if not answer.drip_headers:
                handler.wfile.write(head)
                head = b""
            for byte in head + body:
                handler.wfile.write(bytes([byte]))
                handler.wfile.flush()
                if self._stopping.wait(answer.drip):
                    return
        except OSError:  # the client hung up: that is the point
            self.aborted += 1
            handler.close_connection = True

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
