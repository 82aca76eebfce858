"""`python <script> <arguments>` run in a fork of the test process instead of a fresh interpreter.

A fresh interpreter pays about 5 s of CPU to import hydra, torch and the workloads before src/run.py
does anything; a fork of the test process has them imported already. The script itself runs as
the interpreter runs it (runpy as __main__, sys.argv as given), and the child undoes what pytest
changed in the process so that its output, exit status and files are the command's:
- stdout and stderr are its own (files, read back as subprocess reads pipes with text=True), file
  descriptors 1 and 2 included, so that its forked ranks write there too;
- warnings print to stderr as they would (pytest records them and shows every deprecation);
- pytest's log handlers and faulthandler are removed;
- signal handlers are as exec leaves them (Python's handlers back to the default, SIGINT raising
  KeyboardInterrupt unless it is ignored);
- SystemExit, an uncaught exception and Ctrl-C end it with the interpreter's exit status and message.
The child leads its own session (start_new_session=True), so that a timeout stops it and what it
started. The test process must not have initialised CUDA or a process group: a forked child cannot
use CUDA once its parent has, and would share the parent's collectives' sockets. It then runs the
command in a fresh interpreter instead."""
import faulthandler
import importlib
import locale
import logging
import multiprocessing.process
import multiprocessing.util
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
    process = start_script(argv, cwd=cwd, env=env)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        raise subprocess.TimeoutExpired(process.args, timeout, stdout, stderr) from None
    except BaseException:
        process.kill()
        raise
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def start_script(argv, cwd=None, env=None, preexec_fn=None):
    """subprocess.Popen([sys.executable, *argv], stdout=PIPE, stderr=PIPE, text=True, cwd=cwd,
    env=env, start_new_session=True, preexec_fn=preexec_fn), the script argv[0] run in a fork of
    this process: a ForkedScript, whose pid, poll, wait, communicate, kill and returncode are
    Popen's."""
    argv = [str(argument) for argument in argv]
    if not forkable():
        return subprocess.Popen([sys.executable, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                cwd=cwd, env=env, start_new_session=True, preexec_fn=preexec_fn)
    warm_imports()
    return ForkedScript(argv, cwd, env, preexec_fn)


def warm_imports():
    """Imports, once in this process, what a run's launcher imports before it forks its ranks
    (launch.warm_imports: torch._dynamo, about 1.5 s of CPU, and the workloads' modules), so that
    each forked run does not import them again."""
    from codistill_experiments.workloads import IMPORTS

    for module in ["torch._dynamo", *sorted({name for names in IMPORTS.values() for name in names})]:
        importlib.import_module(module)


class ForkedScript:
    def __init__(self, argv, cwd, env, preexec_fn):
        self.args = [sys.executable, *argv]
        self.returncode = None
        self._out, self._err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
        sys.stdout.flush()
        sys.stderr.flush()
        self.pid = os.fork()
        if self.pid == 0:
            _child(argv, self._out.fileno(), self._err.fileno(), cwd, env, preexec_fn)   # never returns

    def poll(self):
        if self.returncode is None:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.args, timeout)
            time.sleep(0.02)
        return self.returncode

    def communicate(self, timeout=None):
        """(stdout, stderr) once the script has ended (each read once, as from a pipe)."""
        self.wait(timeout)
        said = tuple(_read(handle) for handle in (self._out, self._err))
        for handle in (self._out, self._err):
            handle.close()
        return said

    def kill(self):
        """SIGKILL to the script and whatever it started (its session), then waits for it."""
        if self.poll() is None:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.wait()


def _read(handle):
    """The text as subprocess reads a pipe with text=True: universal newlines."""
    if handle.closed:
        return ""
    handle.seek(0)
    return handle.read().decode(locale.getpreferredencoding(False)).replace("\r\n", "\n").replace("\r", "\n")


def _as_a_fresh_interpreter(out, err):
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
    for number in signal.valid_signals():   # exec resets a handled signal to the default
        if callable(signal.getsignal(number)):
            signal.signal(number, signal.SIG_DFL)
    if signal.getsignal(signal.SIGINT) == signal.SIG_DFL:   # as the interpreter starts
        signal.signal(signal.SIGINT, signal.default_int_handler)
    multiprocessing.process._children.clear()   # as multiprocessing leaves a process it forks
    multiprocessing.util._run_after_forkers()
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


def _child(argv, out, err, cwd, env, preexec_fn):
    code = 1
    try:
        os.setsid()
        if cwd is not None:
            os.chdir(cwd)
        if env is not None:
            os.environ.clear()
            os.environ.update(env)
        if preexec_fn is not None:
            preexec_fn()
        _as_a_fresh_interpreter(out, err)
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
