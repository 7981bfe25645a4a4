"""Reboot the VM for /var/run/reboot-required: opt-in, and only while no job runs.

On a ``local://`` target runner-health runs on the VM it reboots: the reboot then waits until
this run's reports are written (``steps.after_run``), as remediations/bpf_lsm.py does.
"""

import pytest

from runner_health import os_updates
from runner_health.observe import UNOBSERVABLE
from runner_health.steps import RemediationRefused
from runner_health.targets import run

# Checked again in the command itself: a job that started since job_running() looked (or, on
# local://, before the reports were written) keeps the VM up.
STARTED = 3
REBOOT = (
    "if pgrep -x Runner.Worker >/dev/null; then echo 'a job started: not rebooting'; "
    f"exit {STARTED}; fi; systemctl reboot"
)
GONE = f"test -e {os_updates.REBOOT_REQUIRED} || echo gone"


@pytest.fixture
def reboot_when_required(target, runner_install, settings, steps):
    def fix() -> None:
        if not settings.remediation.reboot_when_required:
            raise RemediationRefused(
                "not rebooted automatically: set remediation.reboot_when_required = true, "
                "or reboot when idle: sudo systemctl reboot"
            )
        if runner_install.job_running():
            raise RemediationRefused("a job is running: not rebooting under it")
        why = "the updates installed wait for a reboot"
        if target.backend.get_connection_type() == "local":
            steps.after_run(REBOOT, why=why)
            return
        # check=False: the connection may drop with the VM going down.
        result = steps.run(REBOOT, why=why, check=False)
        if result is not None and result.rc == STARTED:
            raise RemediationRefused("a job started meanwhile: not rebooting under it")

        def back() -> bool:
            # /var/run is a tmpfs: a VM that booted again has no reboot-required. While it
            # reboots it can't be read (or the read hangs): poll, don't give up.
            try:
                return "gone" in run(target, GONE, timeout=30).stdout
            except UNOBSERVABLE:
                return False

        steps.wait_until(
            back,
            "the VM is back without a pending reboot",
            timeout=300,
            every=10,
        )

    return fix
