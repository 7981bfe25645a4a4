# ruff: noqa: RUF001  (the multiplication sign in "tried 3 times" is the product's)
"""The webhook channel: Slack's shape, bounded time whatever the endpoint does, the URL a
secret in every line. Against RecordingWebhook (a Slack-style endpoint on 127.0.0.1)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner_health import config as config_module
from runner_health import delivery, notify, redact
from runner_health.state import Event
from tests.integration.hostile_server import Answer, HostileServer
from tests.testbed.webhook import RecordingWebhook

RUNNER = "assay-bpf-runner"
AT = "2026-11-29T01:00:00+00:00"
HELD_TEXT = "test_disk_has_space[/] (disk): held: tried 3× in 60 min, last result failed"
HELD = Event("held", "test_disk_has_space[/]", "disk", HELD_TEXT, AT)
RECOVERED_TEXT = "test_clock_in_sync (clock): recovered (healed)"
RECOVERED = Event("recovered", "test_clock_in_sync", "clock", RECOVERED_TEXT, AT)
SUMMARY = {
    "runner": RUNNER,
    "status": "unhealthy",
    "finished_at": "2026-11-29T01:00:05+00:00",
    "checks": [],
}


@pytest.fixture
def hook() -> Iterator[RecordingWebhook]:
    with RecordingWebhook() as server:
        yield server


def load(tmp_path: Path, alerts: str) -> config_module.Settings:
    path = tmp_path / "runner-health.toml"
    path.write_text(
        f'[github]\nrepository = "acme/kernel-ci"\n[runner]\nname = "{RUNNER}"\n[alerts]\n{alerts}'
    )
    return config_module.load(path)


def settings_for(tmp_path: Path, url: str, timeout: float = 1, retries: int = 2):
    return load(
        tmp_path,
        f'webhook_url = "{url}"\nwebhook_timeout_seconds = {timeout}\nwebhook_retries = {retries}\n',
    )


def timed(*args) -> tuple[list[str], float]:
    start = time.monotonic()
    lines = notify.send(*args)
    return lines, time.monotonic() - start


def assert_secret(lines: list[str], url: str) -> None:
    """Neither the URL nor its path (the secret part) shows, in the lines or once scrubbed."""
    path = url.split("/", 3)[3]
    for line in lines:
        assert url not in line and path not in line, line
    assert redact.scrub(f"POST {url}") == f"POST {redact.MASK}"


def test_the_payload_is_slacks_text_plus_fields_for_machines(tmp_path, hook):
    summary = {**SUMMARY, "report": "/var/lib/runner-health/reports/x/report.html"}
    lines = notify.send([HELD, RECOVERED], summary, settings_for(tmp_path, hook.url), None)
    assert lines == ["alert: webhook: sent 2 events"]
    (body,) = hook.calls
    assert body["text"].splitlines() == [
        f"runner-health on {RUNNER}: unhealthy",
        f"• {HELD_TEXT}",
        f"• {RECOVERED_TEXT}",
    ]
    assert (body["runner"], body["status"], body["report"]) == (
        RUNNER,
        "unhealthy",
        "/var/lib/runner-health/reports/x/report.html",
    )
    assert body["events"][0] == {
        "kind": "held",
        "check": "test_disk_has_space[/]",
        "condition": "disk",
        "text": HELD_TEXT,
        "at": AT,
    }


def test_no_event_sends_nothing(tmp_path, hook):
    assert notify.send([], SUMMARY, settings_for(tmp_path, hook.url), None) == []
    assert hook.calls == []


def test_a_hanging_endpoint_is_given_up_within_the_stated_bound(tmp_path, hook):
    hook.mode = "hang"
    settings = settings_for(tmp_path, hook.url, timeout=1, retries=1)
    bound = delivery.budget(
        settings.alerts.webhook_timeout_seconds, settings.alerts.webhook_retries
    )
    assert bound == 1 * 2 + 0.5  # timeout x (retries + 1) + the pause
    lines, took = timed([HELD], SUMMARY, settings, None)
    assert took < bound + 0.5, took
    (line,) = lines
    assert line.startswith("alert: webhook failed:"), line
    assert len(hook.calls) == 2  # tried again after the first timeout
    assert_secret(lines, hook.url)


def test_a_dripping_endpoint_is_given_up_at_the_bound_too(tmp_path):
    """A server that sends its headers a byte every 0.3 s never trips a read timeout: the
    delivery as a whole is given up."""
    with HostileServer() as server:
        path = "/services/T0/B0/drip-secret-0123456789"
        server.on(path, Answer(body="ok", drip=0.3, drip_headers=True))
        url = server.url + path
        settings = settings_for(tmp_path, url, timeout=1, retries=0)
        lines, took = timed([HELD], SUMMARY, settings, None)
    assert (
        took
        < delivery.budget(settings.alerts.webhook_timeout_seconds, settings.alerts.webhook_retries)
        + 0.5
    ), took
    assert lines == ["alert: webhook failed: no whole answer within 1 s, given up"]
    assert_secret(lines, url)


def test_a_500_is_tried_again_then_reported(tmp_path, hook):
    hook.mode = "500"
    lines, took = timed([HELD], SUMMARY, settings_for(tmp_path, hook.url, retries=2), None)
    assert lines == ["alert: webhook failed: HTTP 500 rollup_error after 3 tries"]
    assert len(hook.calls) == 3
    assert 1.5 <= took < delivery.budget(1, 2)  # 0.5 + 1 s
    assert_secret(lines, hook.url)


def test_a_429_is_tried_again_and_a_later_success_says_so(tmp_path, hook):
    hook.mode = "429"
    settings = settings_for(tmp_path, hook.url, retries=2)
    lines = notify.send([HELD], SUMMARY, settings, None)
    assert lines == ["alert: webhook failed: HTTP 429 rate_limited after 3 tries"]
    hook.mode = "ok"
    assert notify.send([HELD], SUMMARY, settings, None) == ["alert: webhook: sent 1 event"]


def test_another_4xx_is_not_tried_again(tmp_path, hook):
    wrong = hook.url + "-revoked"  # Slack: 404 for a webhook that was removed
    lines, took = timed([HELD], SUMMARY, settings_for(tmp_path, wrong), None)
    assert lines == [
        "alert: webhook failed: HTTP 404 no_service (not retried: check alerts.webhook_url)"
    ]
    assert took < 0.5
    assert_secret(lines, wrong)


def test_nothing_listening_is_named_without_the_url(tmp_path, hook):
    url = hook.url
    hook.close()
    lines = notify.send([HELD], SUMMARY, settings_for(tmp_path, url, retries=0), None)
    assert lines == ["alert: webhook failed: connection refused (nothing listens there)"]
    assert_secret(lines, url)


def test_a_broken_event_is_a_line_not_a_crash(tmp_path, hook):
    lines = notify.send([object()], SUMMARY, settings_for(tmp_path, hook.url), None)  # type: ignore[list-item]
    (line,) = lines
    assert line.startswith("alert: webhook failed: AttributeError"), line
    assert_secret(lines, hook.url)


def test_a_webhook_answer_is_cut_to_a_short_plain_line(tmp_path):
    with HostileServer() as server:
        path = "/services/T0/B0/noisy-secret-0123456789"
        server.on(path, Answer(status=400, body="<html>\n" + "x" * 5000 + "\x1b[31m"))
        url = server.url + path
        (line,) = notify.send([HELD], SUMMARY, settings_for(tmp_path, url), None)
    assert line.startswith("alert: webhook failed: HTTP 400 html") and len(line) < 200, line
    assert "\x1b" not in line and "<" not in line
