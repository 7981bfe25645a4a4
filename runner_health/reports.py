"""Run folders under the reports directory: made and marked here, and only those pruned.

>>> path = create_run_dir(Path("reports"), datetime.now(UTC))
>>> path.name
'20250101T120000Z'
>>> prune(Path("reports"), keep=50)
[]

Each run folder holds a marker file, ``.runner-health-run``, naming runner-health as its
maker and a sequence number one above every other marked folder's. Pruning deletes only
marked folders, oldest sequence first (never by name: a clock skew can date a folder in the
future), never follows or removes a symbolic link, and leaves alone (with a warning) a folder
that vanished or holds something other than plain files.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import os
import stat
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

MARKER = ".runner-health-run"
MADE_BY = "runner-health"


def create_run_dir(base: Path, now: datetime) -> Path:
    """A new, marked run folder under ``base`` (created if missing), named by ``now``."""
    base.mkdir(parents=True, exist_ok=True)
    with _open_dir(base) as base_fd:
        sequence = max((seq for seq, _ in _marked(base_fd)), default=0) + 1
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    for attempt in itertools.count():
        path = base / (stamp if attempt == 0 else f"{stamp}-{attempt}")
        with contextlib.suppress(FileExistsError):
            path.mkdir()
            break
    marker = {"made_by": MADE_BY, "sequence": sequence, "created": now.isoformat()}
    (path / MARKER).write_text(json.dumps(marker) + "\n")
    return path


def prune(base: Path, keep: int) -> list[str]:
    """Delete all but the newest ``keep`` marked run folders; why any was left alone."""
    warnings: list[str] = []
    try:
        with _open_dir(base) as base_fd:
            runs = sorted(_marked(base_fd), reverse=True)
            for _, name in runs[keep:]:
                try:
                    _remove(base_fd, name)
                except OSError as exc:
                    warnings.append(f"reports: {base / name} left alone: {exc.strerror or exc}")
    except OSError as exc:
        warnings.append(f"reports: {base} not pruned: {exc.strerror or exc}")
    return warnings


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


def _marked(base_fd: int) -> Iterator[tuple[int, str]]:
    """(sequence, name) of each real folder in ``base_fd`` with a valid marker."""
    with os.scandir(base_fd) as entries:
        names = [e.name for e in entries if e.is_dir(follow_symlinks=False)]
    for name in names:
        with contextlib.suppress(OSError, ValueError):
            with _open_dir(name, base_fd) as fd:
                sequence = _sequence(fd)
            if sequence is not None:
                yield sequence, name


def _sequence(dir_fd: int) -> int | None:
    """The sequence number in the folder's marker; None when it has no valid marker."""
    fd = os.open(MARKER, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    with os.fdopen(fd, "rb") as marker:
        if not stat.S_ISREG(os.fstat(marker.fileno()).st_mode):
            return None
        data = json.loads(marker.read(4096))
    if not isinstance(data, dict) or data.get("made_by") != MADE_BY:
        return None
    sequence = data.get("sequence")
    return sequence if type(sequence) is int else None


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
