"""What OS updates leave on the VM: an apt/dpkg lock held for long, a reboot they asked for.

>>> state = read_state(target)
>>> state.lock_holders
[LockHolder(path='/var/lib/dpkg/lock-frontend', pid=812, seconds=2710, name='unattended-upgr')]
>>> state.reboot_required, state.reboot_packages
(True, ['linux-image-6.8.0-51-generic'])

One fixed, read-only command (a prefetch has it) reads everything: the lock files' device and
inode, /proc/locks (who holds a lock on which inode: apt and dpkg take fcntl locks, ``flock``
flock ones; both are listed), the age of each process holding one (``ps etimes``: the lock is
held at most that long), and /var/run/reboot-required with its .pkgs. No ``fuser`` (psmisc is
not everywhere) and nothing that writes. All of it is parsed as untrusted text: sizes are
bounded, and what is not in the expected shape is left out, never guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from testinfra.host import Host

from runner_health.observe import CannotObserve, read

# apt's frontend lock (apt >= 1.9) and dpkg's own lock; whoever holds either blocks apt-get.
LOCK_FILES = ("/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/lock")
REBOOT_REQUIRED = "/var/run/reboot-required"
SECTION = "@@runner-health@@"
# /proc/locks lines: "1: POSIX  ADVISORY  WRITE 812 fd:01:1311 0 EOF" (pid, then major:minor
# in hex and the inode), and a waiter's "1: -> POSIX ..." with the same fields one later.
# Only numeric pids go to ps: OFD locks show -1.
COMMAND = (
    f"stat -c '%d %i %n' {' '.join(LOCK_FILES)} 2>/dev/null; echo {SECTION}; "
    f"head -n 2000 /proc/locks; echo {SECTION}; "
    'ps -o pid=,etimes=,comm= -p "1$(awk \'NR <= 500 { p = ($2 == "->") ? $6 : $5; '
    'if (p ~ /^[0-9]+$/) printf ",%s", p }\' /proc/locks)"; '
    f"echo {SECTION}; "
    f"if [ -e {REBOOT_REQUIRED} ]; then echo required; "
    f"head -c 4096 {REBOOT_REQUIRED}.pkgs 2>/dev/null; fi; true"
)
COMMANDS = (COMMAND,)  # what the check reads, for a prefetch

PACKAGES_SHOWN = 20
_LOCK_LINE = re.compile(
    r"\d+: (?!->)\S+\s+\S+\s+\S+\s+(\d+) ([0-9a-f]+):([0-9a-f]+):(\d+) ", re.ASCII
)
_STAT_LINE = re.compile(r"(\d+) (\d+) (/\S+)", re.ASCII)
_PS_LINE = re.compile(r"\s*(\d+)\s+(\d+) (.*)", re.ASCII)
_PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.:~-]{0,127}", re.ASCII)


@dataclass(frozen=True)
class LockHolder:
    path: str  # which of LOCK_FILES
    pid: int
    seconds: int | None  # how long its holder has run (an upper bound on the hold); None: gone
    name: str  # its process name, printable, at most 15 characters (the kernel's comm)


@dataclass(frozen=True)
class OsUpdates:
    lock_holders: list[LockHolder] = field(default_factory=list)
    reboot_required: bool = False
    reboot_packages: list[str] = field(default_factory=list)  # at most PACKAGES_SHOWN


def device(number: int) -> tuple[int, int]:
    """(major, minor) of a Linux ``st_dev`` (glibc's encoding: the VM's, whatever the host)."""
    major = ((number >> 8) & 0xFFF) | ((number >> 32) & ~0xFFF)
    minor = (number & 0xFF) | ((number >> 12) & ~0xFF)
    return major, minor


def parse(output: str) -> OsUpdates:
    """COMMAND's output, read as untrusted text; CannotObserve when its sections are missing."""
    sections = output.split(f"{SECTION}\n", 3)
    if len(sections) != 4:
        raise CannotObserve(f"the OS update reading printed {len(sections)} sections, not 4")
    stats, locks, processes, reboot = sections
    files: dict[tuple[int, int, int], str] = {}
    for line in stats.splitlines():
        if (m := _STAT_LINE.fullmatch(line)) and m.group(3) in LOCK_FILES:
            files[(*device(int(m.group(1))), int(m.group(2)))] = m.group(3)
    ages: dict[int, tuple[int, str]] = {}
    for line in processes.splitlines():
        if m := _PS_LINE.fullmatch(line):
            name = "".join(c for c in m.group(3) if c.isprintable())[:15]
            ages[int(m.group(1))] = (int(m.group(2)), name)
    holders: dict[tuple[str, int], LockHolder] = {}
    for line in locks.splitlines():
        if not (m := _LOCK_LINE.match(line)):  # nor a waiter's "-> ...": it holds nothing
            continue
        key = (int(m.group(2), 16), int(m.group(3), 16), int(m.group(4)))
        if key in files:
            pid = int(m.group(1))
            seconds, name = ages.get(pid, (None, ""))
            holders[(files[key], pid)] = LockHolder(files[key], pid, seconds, name)
    required, _, packages = reboot.partition("\n")
    names = [p for p in packages.split() if _PACKAGE.fullmatch(p)]
    return OsUpdates(
        lock_holders=list(holders.values()),
        reboot_required=required == "required",
        reboot_packages=list(dict.fromkeys(names))[:PACKAGES_SHOWN],
    )


def read_state(host: Host) -> OsUpdates:
    """The VM's dpkg lock holders and pending reboot; CannotObserve when they can't be read."""
    return parse(read(host, COMMAND))


def held_too_long(state: OsUpdates, max_minutes: float) -> list[LockHolder]:
    """Holders of a dpkg lock running for longer than ``max_minutes`` (an unknown age is not)."""
    return [h for h in state.lock_holders if h.seconds is not None and h.seconds > max_minutes * 60]


def describe(holder: LockHolder) -> str:
    """One holder in words, for a report."""
    age = (
        "(its start time is unknown)"
        if holder.seconds is None
        else f"for {holder.seconds // 60} min"
    )
    return f"{holder.path} held by PID {holder.pid} ({holder.name or '?'}) {age}"
