"""Replace a file whole, so that a reader (node_exporter, a browser) never sees half of it.

>>> write(Path("reports/index.html"), b"<!doctype html>...", mode=0o644)

The new content goes to a fresh temporary file in the same folder (a random name, created
exclusively: a link planted under a predictable name cannot redirect root's write), is
flushed to disk, gets its mode, then takes the file's place with one rename. A run killed at
any point leaves the old file or the new one, never a mix; a failed write removes its
temporary file, and the next write removes what a killed one left. The temporary name starts
with a dot and ends in ``.tmp``: neither node_exporter (``*.prom``) nor a reader of the folder
mistakes it for the file. Writers of one file take turns (runner-health's run lock).
"""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
from pathlib import Path


def write(path: Path, data: bytes, *, mode: int) -> None:
    """Put ``data`` at ``path`` (whose folder must exist) in one step, with ``mode``."""
    prefix, suffix = f".{path.name}.", ".tmp"
    for leftover in path.parent.glob(f"{glob.escape(prefix)}*{suffix}"):
        with contextlib.suppress(OSError):
            leftover.unlink()
    fd, temporary = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
            os.fchmod(file.fileno(), mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
