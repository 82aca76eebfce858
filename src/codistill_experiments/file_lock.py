"""An exclusive lock on a file of a run directory, on whatever file system holds it (a local disk,
NFS, Lustre). The run lock (run_state.run_lock) and the merge lock of model jobs
(model_jobs._merge_lock) both take theirs here. The lock file names its holder (host, pid, Slurm
job): what to stop to free it.

The first of three ways that the file system supports is used:

1. flock on the lock file. The kernel drops it when its holder dies, however it dies. Lustre
   mounted without `-o flock` and some NFS set-ups refuse it (ENOSYS, ENOLCK, EOPNOTSUPP).
2. fcntl.lockf (POSIX record locks) on the same file: NFS supports them through its lock manager
   (NLM, or NFSv4 itself), and the lock is dropped when its holder dies (on NFS once the server
   notices). It cannot exclude a second holder in the same process: a record lock belongs to the
   process, and closing any descriptor of the file in that process drops it.
3. A file `<lock>.held` beside it, created with O_CREAT | O_EXCL (atomic on local file systems,
   NFSv3 and later, and Lustre): held while it exists, removed on release. A holder killed with
   SIGKILL (or a lost node) cannot remove it, so its holder's thread touches it every
   stale_s / HEARTBEATS_PER_STALE seconds, and a file left untouched for stale_s (STALE_S, 60 s:
   less than the 120 s a requeued Slurm job waits, launcher.lock_wait_s) is taken over. It cannot
   guarantee: that two waiters finding the same stale file at once never both take it over (the
   later of them can remove the file that the earlier has just created in its place); that a
   live holder stalled longer than stale_s (a stopped process, a hung file system) keeps its
   lock; that the age is right when the clocks of the hosts and the file server disagree by a
   sizable part of stale_s (the age is the local clock minus the file's modification time).

The way is chosen by what the file system offers, so the processes sharing a lock all take it the
same way as long as every client mounts it alike; one mounted otherwise (say, Lustre's
`-o localflock`, whose flock excludes only processes of the same node) does not exclude the others.
"""
import contextlib
import errno
import fcntl
import os
import socket
import threading
import time

# What flock and lockf raise where the file system has no such locks.
UNSUPPORTED = {errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP}
# What lockf raises (either, by POSIX) when another process holds the lock.
HELD_ELSEWHERE = {errno.EAGAIN, errno.EACCES}
STALE_S = 60.0
HEARTBEATS_PER_STALE = 6
POLL_S = 1.0
HELD_SUFFIX = ".held"


class LockBusy(RuntimeError):
    """The lock was still held when the wait for it ended; holder: what its holder wrote."""

    def __init__(self, path, holder):
        super().__init__(f"{path} is held by {holder}")
        self.holder = holder


def holder_text():
    """Who takes a lock: host, pid and Slurm job."""
    return (f"host {socket.gethostname()} pid {os.getpid()}"
            f"{' slurm job ' + os.environ['SLURM_JOB_ID'] if 'SLURM_JOB_ID' in os.environ else ''}")


class _KernelLock:
    """flock or lockf on the open lock file (`lock`: fcntl.flock or fcntl.lockf)."""

    def __init__(self, lock, handle):
        self.lock, self.handle = lock, handle

    def attempt(self):
        try:
            self.lock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError as error:
            if error.errno in HELD_ELSEWHERE:
                return False
            raise

    def wait(self):
        self.lock(self.handle, fcntl.LOCK_EX)

    def release(self):
        self.lock(self.handle, fcntl.LOCK_UN)


class _LockFile:
    """The file `<lock path>.held`, created with O_EXCL, kept fresh while held, taken over once stale."""

    def __init__(self, lock_path, stale_s, poll_s):
        self.path = f"{lock_path}{HELD_SUFFIX}"
        self.stale_s, self.poll_s = stale_s, poll_s
        self.descriptor = None
        self.released = threading.Event()
        self.heartbeat = None

    def attempt(self):
        for _ in range(2):  # once more right after removing a stale file
            try:
                self.descriptor = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                if self._remove_if_stale():
                    continue
                return False
            os.write(self.descriptor, f"{holder_text()}\n".encode())
            self.heartbeat = threading.Thread(target=self._keep_fresh, name=f"heartbeat of {self.path}", daemon=True)
            self.heartbeat.start()
            return True
        return False

    def wait(self):
        while not self.attempt():
            time.sleep(self.poll_s)

    def _keep_fresh(self):
        """Touches the file through its own descriptor (after a takeover, not the successor's file)."""
        while not self.released.wait(self.stale_s / HEARTBEATS_PER_STALE):
            with contextlib.suppress(OSError):
                os.utime(self.descriptor)

    def _remove_if_stale(self):
        """Removes the file when its holder has not touched it for stale_s; whether it is gone."""
        try:
            if time.time() - os.stat(self.path).st_mtime < self.stale_s:
                return False
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        return True

    def release(self):
        self.released.set()
        self.heartbeat.join()
        with contextlib.suppress(FileNotFoundError):
            found, held = os.stat(self.path), os.fstat(self.descriptor)
            # Not a successor's file after a takeover: the open descriptor keeps this file's inode,
            # so no other file has its number.
            if (found.st_dev, found.st_ino) == (held.st_dev, held.st_ino):
                os.unlink(self.path)
        os.close(self.descriptor)


def _take(way, deadline, poll_s):
    """Takes the lock `way`, waiting until `deadline` (time.monotonic(); None: without limit);
    whether it was taken."""
    if deadline is None:
        way.wait()
        return True
    while not way.attempt():
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_s)
    return True


def _take_first_supported(ways, deadline, poll_s):
    """(the way used, whether the lock was taken): the first way the file system supports."""
    *fallbacks, last = ways
    for way in fallbacks:
        try:
            return way, _take(way, deadline, poll_s)
        except OSError as error:
            if error.errno not in UNSUPPORTED:
                raise
    return last, _take(last, deadline, poll_s)


@contextlib.contextmanager
def exclusive_lock(path, wait_s=None, stale_s=STALE_S, poll_s=POLL_S):
    """Holds an exclusive lock on the file `path` (created if missing), which then names its
    holder. wait_s: how long to wait while another process holds it (0: one attempt; None:
    without limit), trying every poll_s; LockBusy naming the holder when it still holds it then.
    stale_s: on a file system with neither flock nor lockf, the age at which a lock whose holder
    stopped touching it is taken over."""
    deadline = None if wait_s is None else time.monotonic() + wait_s
    with open(path, "a+") as handle:
        ways = (_KernelLock(fcntl.flock, handle), _KernelLock(fcntl.lockf, handle), _LockFile(path, stale_s, poll_s))
        way, taken = _take_first_supported(ways, deadline, poll_s)
        if not taken:
            handle.seek(0)
            raise LockBusy(path, handle.read().strip() or "another process")
        handle.seek(0)
        handle.truncate()
        handle.write(f"{holder_text()}\n")
        handle.flush()
        try:
            yield
        finally:
            way.release()
