"""The run lock: one runner-health run at a time, and nothing a killed run started left running.

>>> lock = take(default_path(), stale_after=1560)  # else LockBusy, LockStale or LockUnusable
>>> lock.notes  # what was done about the commands a killed run left running
['the last run (pid 812) died leaving process group 901 running (apt-get): waited 40s ...']
>>> lock.add_group(4242, timeout=300)  # a command runs in its own process group 4242 ...
>>> lock.discard_group(4242)  # ... and has ended
>>> lock.close()

Root runs this every 5 minutes while CI jobs run as another user, so no other user may plant,
swap, hold or write the lock file: it lives in a folder only its owner (or root) can write, is
opened without following a link, must be a plain file of ours with no other name, and is
written only through our own descriptor once ``flock`` succeeded. What we write there, one
JSON line (holder pid, since when, the process groups of its running commands), lets a later
run tell a busy holder from a hung one, and find what a killed holder left running.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import json
import os
import signal
import stat
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


class LockUnusable(Exception):
    """The lock file or its folder could be planted, held or written by someone else."""


class LockBusy(Exception):
    """Another run holds the lock (for no longer than a run can last)."""


class LockStale(Exception):
    """The lock has been held for longer than a run can last: its holder is hung, or not a run."""


def default_path() -> Path:
    """``/run/runner-health/lock`` for root, else ``$XDG_RUNTIME_DIR/runner-health/lock``.

    Without $XDG_RUNTIME_DIR (cron, su, macOS) the user's own ~/.cache serves: only they can
    write there, where any user could take a name in /tmp first.
    """
    if os.geteuid() == 0:
        return Path("/run/runner-health/lock")
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    base = Path(runtime) if os.path.isabs(runtime) else Path.home() / ".cache"
    return base / "runner-health" / "lock"


def take(path: Path, *, stale_after: float) -> RunLock:
    """Take the lock at ``path`` without waiting, then end what a killed holder left running.

    Its folder is created (0700) when missing. A holder that took the lock more than
    ``stale_after`` seconds ago raises LockStale rather than LockBusy.
    """
    fd = _open(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read(fd)
        os.close(fd)
        raise _held(path, holder, stale_after) from None
    previous = _read(fd)
    lock = RunLock(path, fd)
    lock._end_leftovers(previous)
    return lock


class RunLock:
    """The held lock and its record: who holds it, and the process groups it has running."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.notes: list[str] = []
        self._fd = fd
        self._since = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self._taken = time.monotonic()  # the clock fix may step the wall clock mid-run
        self._groups: dict[int, tuple[int, float]] = {}  # pgid: (leader start ticks, deadline)
        self._write()

    def add_group(self, pgid: int, timeout: float) -> None:
        """Record the process group a command leads while it runs (it may run ``timeout`` s)."""
        ticks = _start_ticks(pgid)
        if ticks is not None:  # no /proc (macOS): nothing a later run could verify
            self._groups[pgid] = (ticks, time.monotonic() + timeout)
            self._write()

    def discard_group(self, pgid: int) -> None:
        """The command that led ``pgid`` has ended."""
        if self._groups.pop(pgid, None) is not None:
            self._write()

    def close(self) -> None:
        """Release the lock (the record stays, for the next run to read)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _write(self) -> None:
        if self._fd < 0:  # closed: the number may be another file's by now
            return
        record = {
            "pid": os.getpid(),
            "since": self._since,
            "monotonic": self._taken,
            "boot": _boot_id(),
            "groups": {str(pgid): list(value) for pgid, value in self._groups.items()},
        }
        data = (json.dumps(record) + "\n").encode()
        os.pwrite(self._fd, data, 0)  # then cut: a crash in between leaves a whole record
        os.ftruncate(self._fd, len(data))

    def _end_leftovers(self, previous: dict[str, Any]) -> None:
        """Wait for each command the last holder left running until its own timeout, then kill
        its process group. Recorded as ours first, so a run killed while waiting passes them on."""
        if previous.get("boot") != _boot_id():  # a reboot ended them all
            return
        try:
            recorded = {
                int(pgid): (int(ticks), float(deadline))
                for pgid, (ticks, deadline) in previous.get("groups", {}).items()
            }
        except (AttributeError, TypeError, ValueError):
            return
        left = {pgid: value for pgid, value in recorded.items() if _members(pgid, value[0])}
        if not left:
            return
        self._groups.update(left)
        self._write()
        for pgid, (ticks, deadline) in sorted(left.items()):
            names = ", ".join(sorted(set(_members(pgid, ticks)))) or "?"
            started = time.monotonic()
            while _members(pgid, ticks) and time.monotonic() < deadline:
                time.sleep(0.2)
            outcome = "it ended"
            if _members(pgid, ticks):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pgid, signal.SIGKILL)
                outcome = "then killed it"
                gone = time.monotonic() + 5  # SIGKILL takes effect when each is next scheduled
                while _members(pgid, ticks) and time.monotonic() < gone:
                    time.sleep(0.05)
            self.notes.append(
                f"the last run (pid {previous.get('pid')}) died leaving process group {pgid} "
                f"running ({names}): waited {time.monotonic() - started:.0f}s for it (at most "
                f"until its command's timeout), {outcome}"
            )
            self.discard_group(pgid)


def _open(path: Path) -> int:
    """Our own lock file at ``path``, refusing anything another user could have put there."""
    if not path.is_absolute():
        raise LockUnusable(f"{path}: expected an absolute path")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise LockUnusable(f"{path.parent}: {_reason(exc, path.parent)}") from None
    try:
        problem = _unsafe(os.fstat(folder), owners={0, os.geteuid()})
        if problem:
            raise LockUnusable(f"{path.parent}: the lock's folder {problem}")
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(path.name, flags, 0o600, dir_fd=folder)
    except OSError as exc:
        raise LockUnusable(f"{path}: {_reason(exc, path)}") from None
    finally:
        os.close(folder)
    info = os.fstat(fd)
    problem = _unsafe(info, owners={os.geteuid()})
    if not problem and not stat.S_ISREG(info.st_mode):
        problem = "is not a plain file"
    if not problem and info.st_nlink != 1:
        problem = f"has {info.st_nlink} names (hard links)"
    if problem:
        os.close(fd)
        raise LockUnusable(f"{path}: {problem}")
    os.fchmod(fd, 0o600)  # readable is enough to hold a flock: no one else may open it
    return fd


def _unsafe(info: os.stat_result, owners: set[int]) -> str | None:
    """Why a file or folder with this stat could be another user's to change, or None."""
    if info.st_uid not in owners:
        return f"belongs to uid {info.st_uid}, not to uid {os.geteuid()}"
    if info.st_mode & 0o022:
        return f"is writable by other users (mode {stat.filemode(info.st_mode)})"
    return None


def _reason(exc: OSError, where: Path) -> str:
    if exc.errno in (errno.ELOOP, errno.ENOTDIR) and where.is_symlink():  # O_NOFOLLOW said no
        return "is a symbolic link (not followed)"
    return exc.strerror or str(exc)


def _read(fd: int) -> dict[str, Any]:
    """The record in the lock file; empty when there is none or it is not ours."""
    try:
        record = json.loads(os.pread(fd, 65536, 0) or b"{}")
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _held(path: Path, holder: dict[str, Any], stale_after: float) -> Exception:
    """LockBusy, or LockStale when the holder's record says it took the lock too long ago."""
    pid = holder.get("pid", "unknown")
    since = holder.get("since", "an unknown time")
    taken = holder.get("monotonic")
    # No record, or one from another boot (the last run's: the holder has not written its own
    # yet): the lock was just taken.
    undated = holder.get("boot") != _boot_id() or not isinstance(taken, int | float)
    age = 0 if undated else time.monotonic() - taken
    if age <= stale_after:
        return LockBusy(
            f"another runner-health run is in progress (lock {path} held by pid {pid} since {since})"
        )
    running = isinstance(pid, int) and pid > 0 and _exists(pid)
    return LockStale(
        f"stale runner-health lock {path}: held since {since} ({age / 60:.0f} min), longer than "
        f"a run can last ({stale_after / 60:.0f} min), by pid {pid}, which "
        + ("still runs (hung?)" if running else "has ended (another process holds the file open)")
        + ": no run can heal anything until it is released"
    )


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's
        return True
    return True


@functools.cache
def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def _stat(pid: int | str) -> tuple[str, str, int, int, int] | None:
    """(name, state, process group, session, start in clock ticks since boot) from /proc."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name, _, rest = text.partition(" (")[2].rpartition(") ")
    fields = rest.split()
    return name, fields[0], int(fields[2]), int(fields[3]), int(fields[19])


def _start_ticks(pid: int) -> int | None:
    info = _stat(pid)
    return None if info is None else info[4]


def _members(pgid: int, ticks: int) -> list[str]:
    """Names of the live processes left in the group a command of ours led (session ``pgid``,
    leader started at ``ticks``); none when that number now names somebody else's group."""
    if pgid <= 1 or pgid == os.getpgrp():
        return []
    names = []
    for entry in Path("/proc").glob("[0-9]*"):
        info = _stat(entry.name)
        if info is None or info[2] != pgid or info[1] == "Z":
            continue
        name, _, _, session, start = info
        if session != pgid or start < ticks or (int(entry.name) == pgid and start != ticks):
            return []
        names.append(name)
    return names
