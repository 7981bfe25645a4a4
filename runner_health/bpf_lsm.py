"""BPF LSM is switched on at boot: the fix is a kernel command line, a GRUB update and a reboot."""

from __future__ import annotations


def fix_instructions(lsm: str) -> str:
    """The exact manual fix, for the report (an automatic one is opt-in: it reboots the VM)."""
    return (
        "Fix (needs a reboot; runner-health applies it only with remediation.apply_bpf_lsm_fix = true):\n"
        f'  sudo sed -i \'s/^GRUB_CMDLINE_LINUX="\\(.*\\)"/GRUB_CMDLINE_LINUX="\\1 lsm={lsm}"/\' /etc/default/grub\n'
        "  sudo update-grub && sudo reboot\n"
        "Then check: cat /sys/kernel/security/lsm  # ends in ,bpf"
    )
