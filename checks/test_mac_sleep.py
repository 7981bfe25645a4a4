"""The Mac that runs the runner VM does not sleep on AC power (``pmset``).

A Mac that sleeps stops the VM, its runner and runner-health's own runs with it, and the VM
comes back "Running" but unreachable or Unknown (see the vm check). Read where runner-health
runs (the workstation) when it is a Mac (``pmset`` on PATH) and the runner is on it (a
Multipass VM, or the Mac itself): a Mac that only reaches a runner elsewhere over SSH skips.
No fix: changing the policy needs the user's sudo, so the failure says the command.
"""

import shutil

import pytest

from runner_health import mac


def test_mac_does_not_sleep_on_ac_power(settings, workstation):
    if shutil.which("pmset") is None:
        pytest.skip("no pmset here: runner-health does not run on a Mac")
    if settings.target.startswith("ssh://"):
        pytest.skip(f"the runner ({settings.target}) is not on this Mac")
    policy = mac.sleep_policy(workstation)
    now = f" (for now {policy.prevented_by}, only while it runs)" if policy.prevented_by else ""
    lid = "; a MacBook also sleeps when its lid closes" if policy.has_battery else ""
    assert not policy.sleeps, (
        f"this Mac sleeps after {policy.ac_sleep_minutes} min idle on AC power{now}: the runner "
        f"VM and these checks stop with it; run `{mac.FIX}`{lid}"
    )
