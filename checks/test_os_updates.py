"""OS updates keep off the runner's jobs: no apt/dpkg lock held for long, no reboot left pending.

A held dpkg lock makes every job's ``apt-get install`` fail ("Could not get lock"); it is
reported, never broken (killing apt mid-install can leave dpkg half-configured). A pending
reboot (a new kernel or libc waiting) is healed only by the opt-in idle reboot.
"""

import pytest

from runner_health import os_updates

pytestmark = pytest.mark.needs("vm")


def test_dpkg_lock_not_held_long(target, settings):
    limit = settings.thresholds.dpkg_lock_max_minutes
    stuck = os_updates.held_too_long(os_updates.read_state(target), limit)
    assert not stuck, (
        "an apt/dpkg lock is held longer than "
        f"{limit:g} min (jobs' apt-get fails meanwhile): "
        + "; ".join(os_updates.describe(h) for h in stuck)
        + ". runner-health never kills apt: see what it does (ps -fp PID, "
        "journalctl -u apt-daily-upgrade) and let it finish, or stop it yourself"
    )


@pytest.mark.remediation("reboot_when_required")
def test_no_reboot_pending(target):
    state = os_updates.read_state(target)
    packages = ", ".join(state.reboot_packages) or "not listed"
    assert not state.reboot_required, (
        f"the VM waits for a reboot ({os_updates.REBOOT_REQUIRED}; packages: {packages}): "
        "until then it runs the old kernel or libraries"
    )
