"""Atomic file writes: a reader (a peer, a resumed run) never sees a half-written file."""
import os
from pathlib import Path


def atomic_write_bytes(path, write):
    """write(handle) into a temporary file beside `path`, flush and fsync, then rename: a crash
    leaves the old file or the new one, never a torn one."""
    path = Path(path)
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
