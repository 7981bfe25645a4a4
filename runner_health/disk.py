"""Free space and free inodes where the runner needs it, and what fills a filesystem.

>>> usage(target, "/opt/actions-runner/_work")
Usage(path='/opt/actions-runner/_work', free=209715200, total=268435456)
>>> inodes(target, "/opt/actions-runner/_work")
Inodes(path='/opt/actions-runner/_work', free=1234, total=65536)
>>> largest(target, "/", by_inodes=False)
'/srv 1.70 GiB, /usr 412.00 MiB, ...'
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from testinfra.host import Host

from runner_health.observe import CannotObserve, read
from runner_health.targets import CommandTimeout, as_root, run

GIB = 1024**3
DU_SECONDS = 20  # du's bound: a large disk is listed in part rather than late
LARGEST_SHOWN = 5


@dataclass(frozen=True)
class Usage:
    path: str
    free: int
    total: int

    @property
    def free_percent(self) -> float:
        return 100 * self.free / self.total if self.total else 0.0

    def describe(self) -> str:
        return f"{self.path}: {self.free / GIB:.2f} GiB free of {self.total / GIB:.2f} GiB ({self.free_percent:.0f}%)"


@dataclass(frozen=True)
class Inodes:
    """Free and total inodes (``df -i``); a total of 0 is a filesystem without an inode
    table (btrfs): it never runs out."""

    path: str
    free: int
    total: int

    @property
    def free_percent(self) -> float:
        return 100 * self.free / self.total if self.total else 100.0

    def describe(self) -> str:
        return (
            f"{self.path}: {self.free_percent:.0f}% of inodes free "
            f"({self.free:,} of {self.total:,})"
        )


def parse_df(output: str, path: str) -> Usage:
    """Parse ``df -P -B1`` (POSIX format: one line per filesystem, no wrapping).

    Anything else is CannotObserve: a figure read from garbage would trigger a cleanup.
    """
    total, free = _total_and_free(output, f"df {path}")
    found = Usage(path=path, total=total, free=free)
    if found.total <= 0:
        raise CannotObserve(f"df {path}: reports a filesystem of size 0 ({output[-200:]!r})")
    return found


def commands(path: str) -> list[str]:
    """What the disk check reads about ``path``, for a prefetch."""
    quoted = shlex.quote(path)
    return [f"df -P -B1 {quoted}", f"df -P -i {quoted}", f"test -d {quoted}"]


def is_directory(host: Host, path: str) -> bool:
    return run(host, f"test -d {shlex.quote(path)}", timeout=30).rc == 0


def parse_df_inodes(output: str, path: str) -> Inodes:
    """Parse ``df -P -i`` (inodes, used, free); garbage is CannotObserve, as for bytes."""
    total, free = _total_and_free(output, f"df -i {path}")
    return Inodes(path=path, total=total, free=free)


def _total_and_free(output: str, what: str) -> tuple[int, int]:
    """The size and free columns of POSIX df's last line (``-B1`` or ``-i``)."""
    try:
        fields = output.strip().splitlines()[-1].split()
        return int(fields[1]), int(fields[3])
    except (IndexError, ValueError):
        raise CannotObserve(f"{what}: unexpected output {output[-200:]!r}") from None


def inodes(host: Host, path: str) -> Inodes:
    """Free inodes where ``path`` lives (a disk can be "full" with bytes to spare)."""
    return parse_df_inodes(read(host, f"df -P -i {shlex.quote(path)}"), path)


def largest_command(path: str, by_inodes: bool) -> str:
    """The directories holding the most (bytes, or inodes) on the filesystem of ``path``, at
    most 3 levels below its mount point, the largest first: du -x, niced, stopped after
    DU_SECONDS (then what it measured by then). NUL-separated "SIZE<TAB>PATH"; the mount's own
    total comes first when du finished."""
    unit = "--inodes" if by_inodes else "-B1"
    return (
        f"m=$(df --output=target -- {shlex.quote(path)} | tail -n 1) && "
        f"{{ timeout {DU_SECONDS} nice -n 19 $(command -v ionice >/dev/null && echo ionice -c 3) "
        f'du -x -0 -d 3 {unit} -- "$m" 2>/dev/null; true; }} | sort -zrn | head -zn {LARGEST_SHOWN + 1}'
        '; printf "%s" "$m"'
    )


def parse_largest(output: bytes, by_inodes: bool) -> str:
    """ "/srv 1.70 GiB, /usr 412.00 MiB" from largest_command's output: names are the VM
    users' (control characters shown as ?, each cut at 200 characters)."""
    *entries, mount = output.decode(errors="replace").split("\0")
    listed, complete = [], False
    for entry in entries:
        size, _, path = entry.partition("\t")
        if not size.isdigit():
            continue
        if path == mount:
            complete = True
        elif len(listed) < LARGEST_SHOWN:
            name = re.sub(r"[\x00-\x1f\x7f]", "?", path)[:200]
            listed.append(
                f"{name} {int(size):,} inodes" if by_inodes else f"{name} {human(int(size))}"
            )
    if not listed:
        return "nothing listed"
    return ", ".join(listed) + ("" if complete else f" (partial: du stopped after {DU_SECONDS} s)")


def largest(host: Host, path: str, *, by_inodes: bool) -> str:
    """What fills the filesystem of ``path``, for a person to choose what to delete (as root:
    every folder counts). Never CannotObserve: a failing check must keep its fix."""
    try:
        result = run(host, as_root(host, largest_command(path, by_inodes)), timeout=DU_SECONDS + 15)
    except CommandTimeout:
        return f"not listed (du took over {DU_SECONDS + 15} s)"
    if result.rc != 0:
        return f"not listed (exit {result.rc})"
    return parse_largest(result.stdout_bytes, by_inodes)


def human(size: int) -> str:
    for unit, factor in (("GiB", GIB), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= factor:
            return f"{size / factor:.2f} {unit}"
    return f"{size} B"


def usage(host: Host, path: str) -> Usage:
    """Free space where ``path`` lives; CannotObserve when df fails (a mistyped path, say)."""
    return parse_df(read(host, f"df -P -B1 {shlex.quote(path)}"), path)
