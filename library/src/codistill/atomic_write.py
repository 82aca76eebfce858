"""Atomic file writes: a reader (a peer, a resumed run) never sees a half-written file."""
import os
import secrets
from pathlib import Path


def atomic_write_bytes(path, write):
    """write(handle) into a temporary file beside `path`, flush and fsync, then rename: a crash
    leaves the old file or the new one, never a torn one.

    The temporary file's name is this writer's own (pid and random bits): several processes may
    write the same file at once (every rank of a model repairing or marking it), and with one
    shared name one writer would truncate another's file or rename it away under it. The last
    rename wins, and it always brings a complete file. The temporary name starts with the file's
    name and ".tmp", so no listing of finished files (step*.pt, *.json) takes it for one."""
    path = Path(path)
    temporary = path.with_name(f"{path.name}.tmp.{os.getpid()}.{secrets.token_hex(6)}")
    # O_EXCL: never share a file with another writer; mode 0o666 as open() gives, less the umask.
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with open(descriptor, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
