"""The VM's clock agrees with GitHub's: GitHub rejects the runner's token past five minutes."""

import pytest

from runner_health import clock
from runner_health.github import GitHubUnavailable

pytestmark = pytest.mark.needs("vm")


@pytest.mark.remediation("sync_clock")
def test_clock_matches_github(target, github, settings, record_property):
    try:
        offset = clock.offset_seconds(target, github)
    except GitHubUnavailable as exc:
        pytest.skip(f"cannot compare with GitHub's clock: {exc}")
    record_property("clock_offset_seconds", round(offset, 1))
    limit = settings.thresholds.max_clock_offset_seconds
    assert abs(offset) <= limit, (
        f"the VM clock is {offset:+.0f}s off GitHub's (limit ±{limit:.0f}s)"
    )


@pytest.mark.remediation("sync_clock")
def test_time_daemon_synchronised(target):
    daemon = clock.time_daemon(target)
    assert daemon, "no time daemon is active (chrony or systemd-timesyncd)"
    assert clock.synchronised(target, daemon), f"{daemon} is not synchronised to a time source"
