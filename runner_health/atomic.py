"""Replace a file whole, so that a reader (node_exporter, a browser) never sees half of it.

>>> write(Path("reports/index.html"), b"<!doctype html>...", mode=0o644)

The new content goes to a fresh temporary file in the same folder (a random name, created
exclusively: a link planted under a predictable name cannot redirect root's write), is
flushed to disk, gets its mode, then takes the file's place with one rename. A run killed at
any point leaves the old file or the new one, never a mix; a failed write removes its
temporary file. The temporary name starts with a dot and ends in ``.tmp``: neither
node_exporter (``*.prom``) nor a reader of the folder mistakes it for the file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write(path: Path, data: bytes, *, mode: int) -> None:
    """Put ``data`` at ``path`` (whose folder must exist) in one step, with ``mode``."""
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
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
