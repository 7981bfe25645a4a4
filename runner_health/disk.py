"""Free space where the runner needs it.

>>> usage(target, "/opt/actions-runner/_work")
Usage(path='/opt/actions-runner/_work', free=209715200, total=268435456)
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from testinfra.host import Host

from runner_health.observe import CannotObserve, read
from runner_health.targets import run

GIB = 1024**3


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


def parse_df(output: str, path: str) -> Usage:
    """Parse ``df -P -B1`` (POSIX format: one line per filesystem, no wrapping).

    Anything else is CannotObserve: a figure read from garbage would trigger a cleanup.
    """
    try:
        fields = output.strip().splitlines()[-1].split()
        found = Usage(path=path, total=int(fields[1]), free=int(fields[3]))
    except (IndexError, ValueError):
        raise CannotObserve(f"df {path}: unexpected output {output[-200:]!r}") from None
    if found.total <= 0:
        raise CannotObserve(f"df {path}: reports a filesystem of size 0 ({output[-200:]!r})")
    return found


def commands(path: str) -> list[str]:
    """What the disk check reads about ``path``, for a prefetch."""
    quoted = shlex.quote(path)
    return [f"df -P -B1 {quoted}", f"df -P -i {quoted}", f"test -d {quoted}"]


def is_directory(host: Host, path: str) -> bool:
    return run(host, f"test -d {shlex.quote(path)}", timeout=30).rc == 0


def free_inodes(host: Host, path: str) -> int:
    """Free inodes where ``path`` lives (a disk can be "full" with bytes to spare)."""
    output = read(host, f"df -P -i {shlex.quote(path)}")
    try:
        return int(output.strip().splitlines()[-1].split()[3])
    except (IndexError, ValueError):
        raise CannotObserve(f"df -i {path}: unexpected output {output[-200:]!r}") from None


def usage(host: Host, path: str) -> Usage:
    """Free space where ``path`` lives; CannotObserve when df fails (a mistyped path, say)."""
    return parse_df(read(host, f"df -P -B1 {shlex.quote(path)}"), path)
