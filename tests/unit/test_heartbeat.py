"""Issue 9 item 4, the dead man's switch: ``stale()`` judges the heartbeat the workflow reads
(untrusted: anyone with write access can set a repository variable), and ``beat()`` pings a
healthchecks.io-style URL in bounded time without ever showing it."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from runner_health import config as config_module
from runner_health import heartbeat
from runner_health.heartbeat import beat, stale

NOW = datetime(2026, 11, 29, 2, 0, tzinfo=timezone.utc)
SECRET = "d2e1c3b4-5a6f-4e7d-8c9b-0a1b2c3d4e5f"
SUMMARY = {
    "status": "healthy",
    "exit_code": 0,
    "checks": [{"name": "test_runner_online", "outcome": "passed"}],
}


def written(at: datetime, interval: float = 5, **fields: object) -> str:
    """A heartbeat as runner-health writes it (``fields`` override or add)."""
    value = {
        "at": at.isoformat(timespec="seconds"),
        "status": "healthy",
        "runner": "assay-bpf-runner",
        "interval_minutes": interval,
        "version": "0.2.0",
    }
    return json.dumps({**value, **fields})


# -- stale() -------------------------------------------------------------------------------


def test_a_fresh_heartbeat_is_not_stale():
    assert stale(written(NOW - timedelta(minutes=14, seconds=59)), NOW) is None
    assert stale(written(NOW + timedelta(minutes=4)), NOW) is None  # clocks differ a little


def test_three_intervals_and_a_second_is_stale_naming_the_runner_and_the_last_beat():
    reason = stale(written(NOW - timedelta(minutes=15, seconds=1)), NOW)
    assert reason == (
        "no heartbeat from runner-health on assay-bpf-runner for 15 min (last at 2026-11-29 "
        "01:44 UTC, healthy; expected every 5 min): the VM, its timer or runner-health itself "
        "is down"
    )
    assert stale(written(NOW - timedelta(minutes=15)), NOW) is None


def test_the_interval_comes_from_the_value_clamped_to_a_minute_and_a_day():
    assert stale(written(NOW - timedelta(minutes=59), interval=20), NOW) is None
    assert stale(written(NOW - timedelta(minutes=61), interval=20), NOW) is not None
    # 0 (or a negative number) would make every heartbeat stale, 1e9 none: clamped to 1..1440.
    assert stale(written(NOW - timedelta(minutes=2), interval=0), NOW) is None
    assert stale(written(NOW - timedelta(minutes=4), interval=-5), NOW) is not None
    assert stale(written(NOW - timedelta(days=3, minutes=1), interval=1e9), NOW) is not None


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("{", "not JSON"),
        ("[1, 2]", "expected the fields"),
        ("null", "expected the fields"),
        (written(NOW, interval="5"), "interval_minutes: not a number"),  # type: ignore[arg-type]
        (written(NOW, interval=True), "interval_minutes: not a number"),
        ('{"at": "x"}', "expected the fields"),
        (
            written(NOW, extra=1),
            "expected the fields at, status, runner, interval_minutes, version; got 6 other fields",
        ),
        (json.dumps({"<img src=x>": 1}), "got 1 other fields"),
        (written(NOW, runner="vm1\n<img src=x>"), "runner: not the expected shape"),
        (written(NOW, status="**all good**"), "status: not the expected shape"),
        (
            written(NOW).replace("2026-11-29T02:00:00+00:00", "yesterday"),
            "at: not the expected shape",
        ),
        (written(NOW).replace("+00:00", ""), "a time without a zone"),
        (written(NOW).replace("5,", "1e999,"), "interval_minutes: not a finite number"),
        (written(NOW).replace("5,", "9" * 400 + ","), "out of range"),
        (
            written(NOW).replace("2026-11-29T02:00:00+00:00", "0001-01-01T00:00:00+14:00"),
            "out of range",
        ),
        ("[" * 100_000, "100000 characters"),
        ('{"a": "' + "x" * 5000 + '"}', "characters, expected at most 1024"),
    ],
)
def test_a_garbled_or_huge_value_is_a_reason_in_one_short_line(value, why):
    reason = stale(value, NOW)
    assert reason is not None and why in reason, reason
    assert reason.startswith("heartbeat unreadable (")
    assert "\n" not in reason and len(reason) < 300 and "<img" not in reason


def test_a_heartbeat_from_the_future_is_a_reason():
    reason = stale(written(NOW + timedelta(minutes=6)), NOW)
    assert reason is not None and reason.startswith("heartbeat from the future (")
    assert "6 min ahead" in reason


@pytest.mark.parametrize("value", ["", "   ", "\n"])
def test_an_empty_value_means_not_configured(value):
    assert stale(value, NOW) is None


def test_what_beat_writes_reads_back_as_fresh(tmp_path):
    settings = load(tmp_path, 'heartbeat_variable = "RUNNER_HEALTH_HEARTBEAT"\n')
    value = heartbeat.value(SUMMARY, settings, NOW)
    assert json.loads(value) == {
        "at": "2026-11-29T02:00:00+00:00",
        "status": "healthy",
        "runner": "assay-bpf-runner",
        "interval_minutes": 5,
        "version": heartbeat.__version__,
    }
    assert stale(value, NOW + timedelta(minutes=15)) is None
    assert stale(value, NOW + timedelta(minutes=16)) is not None


# -- beat(): the ping ----------------------------------------------------------------------


class Recorder(http.server.BaseHTTPRequestHandler):
    """Records each request (method, path, body); answers ``status``."""

    requests: list[tuple[str, str, str]]
    status = 200

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        self.requests.append(("POST", self.path, body))
        self.send_response(self.status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def ping() -> Iterator[type[Recorder]]:
    handler = type("Handler", (Recorder,), {"requests": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    handler.url = f"http://127.0.0.1:{server.server_address[1]}/ping/{SECRET}"  # type: ignore[attr-defined]
    yield handler
    server.shutdown()
    server.server_close()


@pytest.fixture
def silent() -> Iterator[str]:
    """A URL whose server accepts the connection and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/ping/{SECRET}"
    listener.close()


def load(tmp_path: Path, alerts: str) -> config_module.Settings:
    path = tmp_path / "runner-health.toml"
    path.write_text(
        '[github]\nrepository = "acme/kernel-ci"\n[runner]\nname = "assay-bpf-runner"\n'
        f"[alerts]\n{alerts}"
    )
    return config_module.load(path)


def test_a_healthy_run_pings_the_url_with_a_status_line(tmp_path, ping):
    settings = load(tmp_path, f'ping_url = "{ping.url}"\n')
    assert beat(SUMMARY, settings, None) == ["heartbeat: ping sent"]
    assert ping.requests == [
        (
            "POST",
            f"/ping/{SECRET}",
            f"runner-health {heartbeat.__version__} on assay-bpf-runner: healthy (exit 0), 1 checks",
        )
    ]


def test_a_run_left_unhealthy_pings_fail_naming_what_fails(tmp_path, ping):
    settings = load(tmp_path, f'ping_url = "{ping.url}"\n')
    summary = {
        "status": "unhealthy",
        "exit_code": 1,
        "checks": [
            {"name": "test_runner_online", "outcome": "failed"},
            {"name": "test_disk_free", "outcome": "held"},
            {"name": "test_clock", "outcome": "passed"},
        ],
    }
    assert beat(summary, settings, None) == ["heartbeat: failure ping sent"]
    [(_, path, body)] = ping.requests
    assert path == f"/ping/{SECRET}/fail"
    assert body.endswith(
        "unhealthy (exit 1), 3 checks; failing: test_runner_online, test_disk_free"
    )


def test_a_5xx_is_tried_twice_a_4xx_once_and_the_url_is_never_shown(tmp_path, ping):
    settings = load(tmp_path, f'ping_url = "{ping.url}"\n')
    ping.status = 503
    lines = beat(SUMMARY, settings, None)
    assert lines == ["heartbeat: ping failed: HTTP 503 OK after 2 tries"]  # the body's words
    assert len(ping.requests) == 2
    ping.status = 404
    assert beat(SUMMARY, settings, None) == ["heartbeat: ping failed: HTTP 404 OK"]
    assert len(ping.requests) == 3


def test_a_server_that_never_answers_costs_two_timeouts_and_a_pause_not_more(tmp_path, silent):
    settings = load(tmp_path, f'ping_url = "{silent}"\nwebhook_timeout_seconds = 1\n')
    started = time.monotonic()
    lines = beat(SUMMARY, settings, None)
    took = time.monotonic() - started
    # Two tries of 1 s and the 0.5 s pause between them (runner_health.delivery.budget).
    assert lines == ["heartbeat: ping failed: no whole answer within 2.5 s, given up"]
    assert took < 3, took
    assert SECRET not in "".join(lines)


def test_nothing_listening_is_one_line_without_the_url(tmp_path):
    port = socket.create_server(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{port.getsockname()[1]}/ping/{SECRET}"
    port.close()
    lines = beat(SUMMARY, load(tmp_path, f'ping_url = "{url}"\n'), None)
    assert lines == [
        "heartbeat: ping failed: connection refused (nothing listens there) after 2 tries"
    ]


def test_nothing_configured_means_no_heartbeat(tmp_path):
    assert beat(SUMMARY, load(tmp_path, ""), None) == []


def test_a_variable_without_a_github_client_is_one_line(tmp_path):
    settings = load(tmp_path, 'heartbeat_variable = "RUNNER_HEALTH_HEARTBEAT"\n')
    assert beat(SUMMARY, settings, None) == [
        "heartbeat: variable RUNNER_HEALTH_HEARTBEAT not updated: no GitHub client on this machine"
    ]


def test_a_bug_in_a_heartbeat_is_a_line_not_a_crash(tmp_path, monkeypatch, ping):
    def broken(*args: object) -> None:
        raise RuntimeError(f"boom at {ping.url}")

    monkeypatch.setattr(heartbeat.delivery, "_deliver", broken)
    settings = load(tmp_path, f'ping_url = "{ping.url}"\n')
    assert beat(SUMMARY, settings, None) == ["heartbeat: ping failed: RuntimeError: boom at ***"]
