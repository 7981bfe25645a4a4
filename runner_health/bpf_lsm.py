"""BPF LSM is switched on at boot: the fix is a kernel command line, a GRUB update and a reboot.

>>> active(target)
['lockdown', 'capability', 'landlock', 'yama', 'apparmor', 'bpf']
>>> print(set_lsm_command("lockdown,bpf", GRUB))
sed -i -E 's/ ?lsm=[^" ]*//; s/^GRUB_CMDLINE_LINUX="(.*)"/GRUB_CMDLINE_LINUX="\\1 lsm=lockdown,bpf"/' /etc/default/grub
"""

from __future__ import annotations

import re
import shlex

from testinfra.host import Host

from runner_health.config import LSM_LIST
from runner_health.observe import read
from runner_health.targets import run

GRUB = "/etc/default/grub"
# GRUB copies the kernel command line into grub.cfg, a script it parses at boot: only LSM
# names (and the commas between them) may go there.
LSM_NAMES = re.compile(LSM_LIST)
KERNEL_LABEL = re.compile(r"kernel-(\d+\.\d+)")
LSM = "cat /sys/kernel/security/lsm"
BTF = "test -e /sys/kernel/btf/vmlinux"
UNAME = "uname -r"
COMMANDS = (LSM, BTF, UNAME)  # what the checks read, for a prefetch


def kernel_version(label: str) -> str | None:
    """X.Y of a ``kernel-X.Y`` runner label (kernel-matrix jobs pick a runner by it), else None."""
    match = KERNEL_LABEL.fullmatch(label)
    return match.group(1) if match else None


def runs_kernel(release: str, version: str) -> bool:
    """Whether ``uname -r``'s ``release`` is kernel ``version`` (X.Y)."""
    return release == version or release.startswith(f"{version}.")


def active(host: Host) -> list[str]:
    """The LSMs the running kernel enabled; CannotObserve when securityfs can't be read."""
    return read(host, LSM).strip().split(",")


def btf_present(host: Host) -> bool:
    """Whether the kernel exposes its BTF (CONFIG_DEBUG_INFO_BTF), which BPF programs need."""
    return run(host, BTF, timeout=30).rc == 0


def kernel_release(host: Host) -> str:
    """``uname -r``; CannotObserve when it fails."""
    return read(host, UNAME).strip()


def set_lsm_command(lsm: str, grub: str) -> str:
    """The sed that puts ``lsm=LSM`` on grub's GRUB_CMDLINE_LINUX, replacing any older ``lsm=``.

    ``lsm`` is escaped for each reader it passes: the shell, sed's replacement (``\\ / &``
    and newlines) and update-grub, which sources the file (``\\ " $ `` ` inside the quotes).
    Whatever it holds lands in the file as text and is never run.
    """
    in_quotes = re.sub(r'([\\"$`])', r"\\\1", lsm)
    replacement = re.sub(r"([\\/&\n])", r"\\\1", in_quotes)
    script = f's/ ?lsm=[^" ]*//; s/^GRUB_CMDLINE_LINUX="(.*)"/GRUB_CMDLINE_LINUX="\\1 lsm={replacement}"/'
    return f"sed -i -E {shlex.quote(script)} {shlex.quote(grub)}"


def fix_instructions(lsm: str) -> str:
    """The exact manual fix, for the report (an automatic one is opt-in: it reboots the VM)."""
    if not LSM_NAMES.fullmatch(lsm):
        return f"Fix: set remediation.lsm to comma-separated LSM names (it is {lsm!r})."
    return (
        "Fix (needs a reboot; runner-health applies it only with remediation.apply_bpf_lsm_fix = true):\n"
        f"  sudo {set_lsm_command(lsm, GRUB)}\n"
        "  sudo update-grub && sudo reboot\n"
        "Then check: cat /sys/kernel/security/lsm  # ends in ,bpf"
    )
