"""`python <script> <arguments>` run in a fork of the test process instead of a fresh interpreter.

A fresh interpreter pays about 10 s of CPU to import hydra, torch and the workloads before src/run.py
does anything; a fork of the test process has them imported already. The script itself runs as
the interpreter runs it (runpy as __main__, sys.argv as given), and the child undoes what pytest
changed in the process so that its output, exit status and files are the command's:
- stdout and stderr are its own (files, read back as subprocess.run(capture_output=True, text=True)
  reads them), file descriptors 1 and 2 included, so that its forked ranks write there too;
- warnings print to stderr as they would (pytest records them and shows every deprecation);
- pytest's log handlers and faulthandler are removed;
- SystemExit, an uncaught exception and Ctrl-C end it with the interpreter's exit status and message.
The test process must not have initialised CUDA or a process group: a forked child cannot use
CUDA once its parent has, and would share the parent's collectives' sockets. It then runs the
command in a fresh interpreter instead."""
import faulthandler
import locale
import logging
import os
import runpy
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import warnings

from hydra.core.global_hydra import GlobalHydra

# pytest's warnings plugin puts these first while a test runs (unless -W is given)
PYTEST_FILTERS = [("always", None, DeprecationWarning, None, 0), ("always", None, PendingDeprecationWarning, None, 0)]


def forkable():
    """Whether a fork of this process can run a command as a fresh interpreter would."""
    torch = sys.modules.get("torch")
    if torch is None:
        return True
    return not torch.cuda.is_initialized() and not (torch.distributed.is_available() and
                                                        torch.distributed.is_initialized())


def run_script(argv, timeout=None, cwd=None, env=None):
    """subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=timeout,
    cwd=cwd, env=env), the script argv[0] run in a fork of this process; a
    subprocess.CompletedProcess."""
    argv = [str(argument) for argument in argv]
    if not forkable():
        return subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=timeout, cwd=cwd,
                              env=env)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(argv, out.fileno(), err.fileno(), cwd, env)   # never returns
        try:
            code = _wait(pid, timeout)
        except BaseException:
            _kill(pid)
            raise
        if code is None:
            _kill(pid)
            raise subprocess.TimeoutExpired([sys.executable, *argv], timeout, _read(out), _read(err))
        return subprocess.CompletedProcess([sys.executable, *argv], code, _read(out), _read(err))


def _wait(pid, timeout):
    """The child's exit status as subprocess reports it (-N: killed by signal N), or None after
    `timeout` seconds."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if deadline is not None and time.monotonic() > deadline:
            return None
        time.sleep(0.02)


def _kill(pid):
    """The child and whatever it started (it leads its own session)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _read(handle):
    handle.seek(0)
    return handle.read().decode(locale.getpreferredencoding(False))


def _as_a_fresh_interpreter(out, err):
    os.setsid()
    for fd, target in ((out, 1), (err, 2)):
        os.dup2(fd, target)
    encoding = locale.getpreferredencoding(False)
    sys.stdout = open(1, "w", encoding=encoding, closefd=False)
    sys.stderr = open(2, "w", encoding=encoding, errors="backslashreplace", closefd=False, buffering=1)
    sys.stdin = open(os.devnull)
    faulthandler.disable()
    warnings.filters[:] = [entry for entry in warnings.filters if entry not in PYTEST_FILTERS]
    warnings.showwarning = warnings._showwarning_orig
    warnings._showwarnmsg_impl = _print_warning
    warnings._filters_mutated()
    root = logging.getLogger()
    for handler in [h for h in root.handlers if type(h).__module__.startswith("_pytest")]:
        root.removeHandler(handler)
    signal.signal(signal.SIGALRM, signal.SIG_DFL)   # pytest-timeout's, for the test process alone
    GlobalHydra.instance().clear()


def _print_warning(message):
    """What the warnings module prints when nothing has replaced it."""
    try:
        (message.file or sys.stderr).write(warnings._formatwarnmsg(message))
    except OSError:
        pass


def _print_traceback(error, script):
    """The traceback from the script's own frame on, as the interpreter prints it."""
    frames = error.__traceback__
    while frames is not None and frames.tb_frame.f_code.co_filename != script:
        frames = frames.tb_next
    traceback.print_exception(type(error), error, frames or error.__traceback__)


def _child(argv, out, err, cwd, env):
    code = 1
    try:
        _as_a_fresh_interpreter(out, err)
        if cwd is not None:
            os.chdir(cwd)
        if env is not None:
            os.environ.clear()
            os.environ.update(env)
        sys.argv = argv
        try:
            runpy.run_path(argv[0], run_name="__main__")
            code = 0
        except SystemExit as exit:   # as the interpreter ends on it
            if exit.code is None:
                code = 0
            elif isinstance(exit.code, int):
                code = exit.code
            else:
                print(exit.code, file=sys.stderr)
                code = 1
        except KeyboardInterrupt as interrupted:
            _print_traceback(interrupted, argv[0])
            code = -signal.SIGINT    # the interpreter ends itself by SIGINT
        except BaseException as error:
            _print_traceback(error, argv[0])
            code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:
                pass
        if code == -signal.SIGINT:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
        os._exit(code & 0xFF)
