"""One bounded POST to a secret URL: an alert's webhook, a heartbeat's ping.

>>> post(url, b'{"text": "hi"}', "application/json", timeout=5, retries=2)
Delivered(ok=True, tries=1, problem='', retried=False)

A network error, a timeout, a 5xx or a 429 is tried again (``retries`` times, 0.5 s, 1 s,
2 s ... apart); another 4xx is not (a wrong URL stays wrong). requests' timeout bounds each
connect and each read, not a server dripping bytes, so the whole delivery runs in a daemon
thread given up at ``budget()``: timeout x (retries + 1) + the pauses, whatever the server
does. The URL is a secret: a problem is told in words (``github.why``), never with the
exception's text, which holds the URL; redirects are not followed (the body goes to the
configured host only); an answer's body is read for at most 256 bytes, of which 80 plain
characters are kept (Slack names its error there: ``channel_not_found``).
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass

import requests

from runner_health.github import why

FIRST_PAUSE = 0.5  # seconds before the first retry; doubled before each next one


@dataclass(frozen=True)
class Delivered:
    ok: bool
    tries: int  # how many were made
    problem: str = ""  # why not, in words without the URL ("HTTP 500 rollup_error after 3 tries")
    retried: bool = True  # False: a 4xx that another try would not change


def budget(timeout: float, retries: int) -> float:
    """Seconds a delivery may take at most: every try, and the pauses between them."""
    return timeout * (retries + 1) + sum(_pause(n) for n in range(2, retries + 2))


def _pause(attempt: int) -> float:
    return FIRST_PAUSE * 2 ** (attempt - 2)


def post(url: str, data: bytes, content_type: str, *, timeout: float, retries: int) -> Delivered:
    """POST ``data`` to ``url`` within ``budget(timeout, retries)``; never raises for the
    network (a bug still does: the callers' guards turn it into a line)."""
    done: list[Delivered | BaseException] = []

    def deliver() -> None:
        try:
            done.append(_deliver(url, data, content_type, timeout, retries))
        except BaseException as exc:  # handed to the caller's thread
            done.append(exc)

    worker = threading.Thread(target=deliver, daemon=True)
    worker.start()
    limit = budget(timeout, retries)
    worker.join(limit)
    if not done:
        return Delivered(False, retries + 1, f"no whole answer within {limit:g} s, given up")
    if isinstance(done[0], BaseException):
        raise done[0]
    return done[0]


def _deliver(url: str, data: bytes, content_type: str, timeout: float, retries: int) -> Delivered:
    tries = retries + 1
    problem = ""
    for attempt in range(1, tries + 1):
        if attempt > 1:
            time.sleep(_pause(attempt))
        try:
            with requests.post(
                url,
                data=data,
                headers={"Content-Type": content_type, "User-Agent": "runner-health"},
                timeout=timeout,
                stream=True,
                allow_redirects=False,
            ) as response:
                status, said = response.status_code, _said(response)
        except requests.RequestException as exc:
            problem = why(exc)
            continue
        if 200 <= status < 300:
            return Delivered(True, attempt)
        problem = f"HTTP {status}{said}"
        if status < 500 and status != 429:
            return Delivered(False, attempt, problem, retried=False)
    return Delivered(False, tries, problem + (f" after {tries} tries" if tries > 1 else ""))


def _said(response: requests.Response) -> str:
    """The start of an error's body, as plain words."""
    if 200 <= response.status_code < 300:
        return ""
    head = next(response.iter_content(256), b"").decode("utf-8", "replace")
    text = re.sub(r"[^\w .:/-]", "", " ".join(head.split()))[:80]
    return f" {text}" if text else ""
