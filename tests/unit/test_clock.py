"""The time daemon as systemd and chrony report it; no answer is "could not observe"."""

from __future__ import annotations

import pytest

from runner_health import clock
from runner_health.observe import CannotObserve
from runner_health.targets import target
from tests.scripts.conftest import write_fake


@pytest.fixture
def fake_bin(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    return tmp_path


def test_the_active_daemon_is_found(fake_bin):
    write_fake(
        fake_bin,
        "systemctl",
        '[ "$2" = chronyd ] && { echo active; exit 0; }; echo inactive; exit 3',
    )
    assert clock.time_daemon(target("local://")) == "chronyd"


def test_no_daemon_is_none(fake_bin):
    write_fake(fake_bin, "systemctl", "echo inactive; exit 3")
    assert clock.time_daemon(target("local://")) is None


def test_systemd_that_does_not_answer_is_cannot_observe(fake_bin):
    write_fake(fake_bin, "systemctl", "echo 'Failed to connect to bus' >&2; exit 1")
    with pytest.raises(CannotObserve, match="Failed to connect to bus"):
        clock.time_daemon(target("local://"))


def test_chronyc_that_cannot_talk_to_chronyd_is_cannot_observe(fake_bin):
    write_fake(fake_bin, "chronyc", "echo '506 Cannot talk to daemon' >&2; exit 1")
    with pytest.raises(CannotObserve, match="506 Cannot talk to daemon"):
        clock.synchronised(target("local://"), "chrony")
