"""Turn BPF LSM on: kernel command line, update-grub, reboot. Opt-in only (it reboots the VM).

On a ``local://`` target runner-health runs on the VM it reboots: the reboot then waits until
this run's reports are written (``steps.after_run``), and the next run sees the result.
"""

import pytest

from runner_health import bpf_lsm
from runner_health.steps import RemediationRefused
from runner_health.targets import run


@pytest.fixture
def enable_bpf_lsm(target, runner_install, settings, steps):
    lsm = settings.remediation.lsm

    def fix() -> None:
        if not settings.remediation.apply_bpf_lsm_fix:
            raise RemediationRefused(
                "not applied automatically (it reboots the VM).\n" + bpf_lsm.fix_instructions(lsm)
            )
        if not bpf_lsm.LSM_NAMES.fullmatch(lsm):
            raise RemediationRefused(bpf_lsm.fix_instructions(lsm))
        if runner_install.job_running():
            raise RemediationRefused("a job is running: not rebooting under it")
        if not target.file(bpf_lsm.GRUB).exists:
            raise RemediationRefused(
                f"{bpf_lsm.GRUB} is missing: this VM does not boot through GRUB"
            )
        steps.run(
            bpf_lsm.set_lsm_command(lsm, bpf_lsm.GRUB),
            why="set the LSM list on the kernel command line",
        )
        steps.run("update-grub", why="write the new command line to grub.cfg")
        if target.backend.get_connection_type() == "local":
            steps.after_run("systemctl reboot", why="LSMs are chosen at boot")
            return
        steps.run("systemctl reboot", why="LSMs are chosen at boot", check=False)
        steps.wait_until(
            # While it reboots the VM can't be read: poll, don't give up.
            lambda: "bpf" in run(target, "cat /sys/kernel/security/lsm", timeout=30).stdout,
            "the VM is back with bpf in its active LSMs",
            timeout=300,
            every=10,
        )

    return fix
