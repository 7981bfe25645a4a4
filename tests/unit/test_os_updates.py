"""The OS update reading: who holds a dpkg lock and for how long, and a pending reboot, parsed
from kernel and ps output that is never trusted to have the expected shape."""

from __future__ import annotations

import os
import subprocess

import pytest

from runner_health import os_updates
from runner_health.observe import CannotObserve
from runner_health.os_updates import LockHolder, describe, device, held_too_long, parse

S = os_updates.SECTION
# st_dev of fe:00 (253:0) as stat -c %d prints it, and a lock on each dpkg lock file.
FE00 = os.makedev(0xFE, 0x00)
REAL = (
    f"{FE00} 402117 /var/lib/dpkg/lock-frontend\n{FE00} 402116 /var/lib/dpkg/lock\n{S}\n"
    "1: POSIX  ADVISORY  WRITE 812 fe:00:402117 0 EOF\n"
    "2: POSIX  ADVISORY  WRITE 812 fe:00:402116 0 EOF\n"
    "2: -> POSIX  ADVISORY  WRITE 977 fe:00:402116 0 EOF\n"  # a waiter holds nothing
    "3: FLOCK  ADVISORY  WRITE 1200 08:01:402117 0 EOF\n"  # same inode, other device
    "4: OFDLCK ADVISORY  READ -1 fe:00:402117 0 EOF\n"
    f"{S}\n"
    "    1  9000 systemd\n  812  2710 unattended-upgr\n  977     3 apt-get\n"
    f"{S}\nrequired\nlinux-image-6.8.0-51-generic\nlibc6\n"
)


def test_parses_the_holders_their_age_and_the_pending_reboot():
    state = parse(REAL)
    assert state.lock_holders == [
        LockHolder("/var/lib/dpkg/lock-frontend", 812, 2710, "unattended-upgr"),
        LockHolder("/var/lib/dpkg/lock", 812, 2710, "unattended-upgr"),
    ]
    assert state.reboot_required
    assert state.reboot_packages == ["linux-image-6.8.0-51-generic", "libc6"]


def test_only_a_hold_longer_than_the_limit_is_too_long():
    state = parse(REAL)
    assert held_too_long(state, 45) == state.lock_holders  # 2710 s > 45 min
    assert held_too_long(state, 46) == []
    gone = parse(REAL.replace("  812  2710 unattended-upgr\n", ""))
    assert held_too_long(gone, 1) == []  # a holder that exited has no age: not reported
    assert "start time is unknown" in describe(gone.lock_holders[0])
    assert describe(state.lock_holders[0]) == (
        "/var/lib/dpkg/lock-frontend held by PID 812 (unattended-upgr) for 45 min"
    )


def test_nothing_held_and_no_reboot():
    state = parse(f"{FE00} 1 /var/lib/dpkg/lock-frontend\n{S}\n{S}\n    1 5 systemd\n{S}\n")
    assert state.lock_holders == [] and not state.reboot_required


@pytest.mark.parametrize("text", ["", "garbage", f"{S}\n{S}\n"])
def test_missing_sections_are_not_observed(text):
    with pytest.raises(CannotObserve):
        parse(text)


def test_hostile_text_is_bounded_and_never_guessed():
    evil_name = "x\x1b[31m\u202eevil-name-much-longer-than-comm"
    text = REAL.replace("unattended-upgr", evil_name).replace(
        "libc6\n", "libc6\n$(rm -rf /)\n" + "pkg\n" * 100 + f"{S}\nmore\n"
    )
    text = text.replace("1: POSIX", "1: POSIX WRITE 99999999999999999999999 zz:yy:1 0\n1: POSIX", 1)
    state = parse(text)
    name = state.lock_holders[0].name
    assert len(name) <= 15 and name.isprintable()
    assert "$(rm" not in " ".join(state.reboot_packages)
    assert len(state.reboot_packages) <= os_updates.PACKAGES_SHOWN
    assert [h.pid for h in state.lock_holders] == [812, 812]


def test_device_numbers_decode_like_the_kernel():
    for major, minor in [(8, 1), (253, 0), (259, 3), (4095, 1048575)]:
        assert device(os.makedev(major, minor)) == (major, minor)


def test_the_command_runs_here_and_prints_its_four_sections():
    """COMMAND's shell, awk and ps run for real (Debian's, like the VM's)."""
    out = subprocess.run(["sh", "-c", os_updates.COMMAND], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    parse(out.stdout)  # four sections, whatever this machine holds
