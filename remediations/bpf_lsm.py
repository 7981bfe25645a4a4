"""Turn BPF LSM on: kernel command line, update-grub, reboot. Opt-in only (it reboots the VM)."""

import pytest

from runner_health.bpf_lsm import fix_instructions
from runner_health.steps import RemediationRefused
from runner_health.targets import run


@pytest.fixture
def enable_bpf_lsm(target, runner_install, settings, steps):
    lsm = settings.remediation.lsm

    def fix() -> None:
        if not settings.remediation.apply_bpf_lsm_fix:
            raise RemediationRefused(
                "not applied automatically (it reboots the VM).\n" + fix_instructions(lsm)
            )
        if runner_install.job_running():
            raise RemediationRefused("a job is running: not rebooting under it")
        if not target.file("/etc/default/grub").exists:
            raise RemediationRefused(
                "/etc/default/grub is missing: this VM does not boot through GRUB"
            )
        steps.run(
            'sed -i -E \'s/ ?lsm=[^" ]*//; s/^GRUB_CMDLINE_LINUX="(.*)"/GRUB_CMDLINE_LINUX="\\1 lsm='
            + lsm
            + "\"/' /etc/default/grub",
            why="set the LSM list on the kernel command line",
        )
        steps.run("update-grub", why="write the new command line to grub.cfg")
        steps.run("systemctl reboot", why="LSMs are chosen at boot", check=False)
        steps.wait_until(
            lambda: "bpf" in run(target, "cat /sys/kernel/security/lsm", timeout=30).stdout,
            "the VM is back with bpf in its active LSMs",
            timeout=300,
            every=10,
        )

    return fix
