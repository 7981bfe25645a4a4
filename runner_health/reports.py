"""Run folders under the reports directory: made and marked here, and only those pruned.

>>> path = create_run_dir(Path("reports"), datetime.now(timezone.utc))
>>> path.name
'20250101T120000Z'
>>> record_outcome(path, "healthy")
>>> prune(Path("reports"), keep=50, keep_days=14, keep_max=1000)
[]

Each run folder holds a marker file, ``.runner-health-run``, naming runner-health as its
maker, a sequence number one above every other marked folder's and, once the run ends, its
outcome and finish time. Pruning deletes only marked folders, never the newest one (the
current run), never follows or removes a symbolic link, and leaves alone (with a warning) a
folder that vanished or holds something other than plain files.

What is kept depends on the outcome: the newest ``keep`` healthy runs; every other run (failed,
healed, unknown, or killed before it recorded an outcome) for ``keep_days`` days after it
finished; never more than ``keep_max`` folders in all (healthy ones go first, oldest first).
Age comes from the marker, never from a folder's name or mtime, and a run is never taken
to be older than an earlier one (by sequence): a clock that ran behind for one run cannot
age its evidence out. A clock that ran ahead errs the safe way (kept longer, up to
``keep_max``).
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import os
import stat
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, NamedTuple

MARKER = ".runner-health-run"
MADE_BY = "runner-health"
HEALTHY = "healthy"


class RunFolder(NamedTuple):
    """A marked run folder as pruning sees it (ordered by sequence)."""

    sequence: int
    name: str
    outcome: str | None  # None: the run never recorded one (killed, or still running)
    finished: datetime | None  # from the marker; None when it holds no usable time


def create_run_dir(base: Path, now: datetime) -> Path:
    """A new, marked run folder under ``base`` (created if missing), named by ``now``."""
    base.mkdir(parents=True, exist_ok=True)
    with _open_dir(base) as base_fd:
        sequence = max((run.sequence for run in _marked(base_fd)), default=0) + 1
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    for attempt in itertools.count():
        path = base / (stamp if attempt == 0 else f"{stamp}-{attempt}")
        with contextlib.suppress(FileExistsError):
            path.mkdir()
            break
    _write_marker(path, {"made_by": MADE_BY, "sequence": sequence, "created": now.isoformat()})
    return path


def record_outcome(run_dir: Path, status_label: str, *, now: datetime | None = None) -> None:
    """Write the run's outcome and finish time into its marker, which pruning reads.

    A folder without our marker (a ``--reports-dir`` of the user's) is left untouched: marking
    it would make it prunable.
    """
    try:
        with _open_dir(run_dir) as fd:
            marker = _read_marker(fd)
    except (OSError, ValueError):
        return
    if marker is None:
        return
    finished = (now or datetime.now(timezone.utc)).isoformat(timespec="seconds")
    _write_marker(run_dir, {**marker, "outcome": status_label, "finished": finished})


def prune(
    base: Path, *, keep: int, keep_days: float, keep_max: int, now: datetime | None = None
) -> list[str]:
    """Delete the run folders past their keeping (see the module doc); why any was left alone."""
    warnings: list[str] = []
    try:
        with _open_dir(base) as base_fd:
            expired = _expired(
                list(_marked(base_fd)),
                keep=keep,
                keep_for=timedelta(days=keep_days),
                keep_max=keep_max,
                now=now or datetime.now(timezone.utc),
            )
            for name in expired:
                try:
                    _remove(base_fd, name)
                except OSError as exc:
                    warnings.append(f"reports: {base / name} left alone: {exc.strerror or exc}")
    except OSError as exc:
        warnings.append(f"reports: {base} not pruned: {exc.strerror or exc}")
    return warnings


def _expired(
    runs: list[RunFolder], *, keep: int, keep_for: timedelta, keep_max: int, now: datetime
) -> list[str]:
    """Names of the runs to delete; the newest run (the current one) never."""
    if not runs:
        return []
    runs = sorted(runs)
    # A run is never older than an earlier one (by sequence): a clock that ran behind when a run
    # ended (a VM booted before its clock synced) must not age its evidence out at once.
    finished: list[datetime | None] = []
    for run in runs:
        earlier = finished[-1] if finished else None
        finished.append(max((t for t in (run.finished, earlier) if t is not None), default=None))
    *older, current = zip(runs, finished, strict=True)
    kept, expired = [current[0]], []
    healthy_seen = int(current[0].outcome == HEALTHY)
    for run, ended in reversed(older):
        if run.outcome == HEALTHY:
            healthy_seen += 1
            keeping = healthy_seen <= keep
        else:
            keeping = ended is None or now - ended < keep_for
        (kept if keeping else expired).append(run)
    over = len(kept) - keep_max
    if over > 0:
        expired += sorted(kept[1:], key=lambda r: (r.outcome != HEALTHY, r.sequence))[:over]
    return [run.name for run in sorted(expired)]


@contextlib.contextmanager
def _open_dir(path: Path | str, dir_fd: int | None = None) -> Iterator[int]:
    """A directory's descriptor. An entry of another folder (``dir_fd``) is opened with
    O_NOFOLLOW: a symbolic link in its place is an error, never followed."""
    nofollow = os.O_NOFOLLOW if dir_fd is not None else 0
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | nofollow, dir_fd=dir_fd)
    try:
        yield fd
    finally:
        os.close(fd)


def _marked(base_fd: int) -> Iterator[RunFolder]:
    """Each real folder in ``base_fd`` with a valid marker."""
    with os.scandir(base_fd) as entries:
        names = [e.name for e in entries if e.is_dir(follow_symlinks=False)]
    for name in names:
        with contextlib.suppress(OSError, ValueError):
            with _open_dir(name, base_fd) as fd:
                marker = _read_marker(fd)
            if marker is not None:
                outcome = marker.get("outcome")
                yield RunFolder(
                    marker["sequence"],
                    name,
                    outcome if isinstance(outcome, str) else None,
                    _when(marker.get("finished")) or _when(marker.get("created")),
                )


def _read_marker(dir_fd: int) -> dict[str, Any] | None:
    """The folder's marker; None unless it is a plain file runner-health wrote."""
    fd = os.open(MARKER, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    with os.fdopen(fd, "rb") as marker:
        if not stat.S_ISREG(os.fstat(marker.fileno()).st_mode):
            return None
        data = json.loads(marker.read(4096))
    if not isinstance(data, dict) or data.get("made_by") != MADE_BY:
        return None
    return data if type(data.get("sequence")) is int else None


def _write_marker(run_dir: Path, marker: dict[str, Any]) -> None:
    """Replace the marker whole: a run killed mid-write leaves the old one, never half a one."""
    partial = run_dir / f"{MARKER}.new"
    partial.write_text(json.dumps(marker) + "\n")
    os.replace(partial, run_dir / MARKER)


def _when(value: object) -> datetime | None:
    """A marker's ISO time, if it is one with a time zone."""
    with contextlib.suppress(TypeError, ValueError):
        moment = datetime.fromisoformat(value)  # type: ignore[arg-type]
        if moment.tzinfo is not None:
            return moment
    return None


def _remove(base_fd: int, name: str) -> None:
    """Delete one run folder of plain files, its marker last; OSError leaves it alone."""
    with _open_dir(name, base_fd) as fd:
        entries = os.listdir(fd)
        for entry in entries:
            if not stat.S_ISREG(os.stat(entry, dir_fd=fd, follow_symlinks=False).st_mode):
                raise OSError(errno.ENOTEMPTY, f"holds {entry!r}, which is not a plain file")
        for entry in sorted(entries, key=lambda e: e == MARKER):
            os.unlink(entry, dir_fd=fd)
    os.rmdir(name, dir_fd=base_fd)
