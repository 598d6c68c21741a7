"""One signal policy for every verb (docs/reliability.md).

SIGINT (Ctrl-C), SIGTERM (what `timeout`, CI runners and Kubernetes send) and SIGHUP (the
terminal went away) all stop the command the same way: the first one raises `Interrupted` (a
KeyboardInterrupt) in the main thread, so every `finally` and `except BaseException` runs: worker
processes are killed, finished benchmark cases stay in the store, the run is marked
"interrupted", temporary files and directories are removed. The process then exits with
128 + the signal number (130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP).

Further signals while that cleanup runs do not interrupt it (several quick Ctrl-Cs used to
abort the cleanup with a traceback); the third one gives up on cleaning and exits at once.
`deferred()` marks a section (the store's final update, temp-dir removal) that even the first
signal must not cut in half: the signal is held and raised when the section ends.

Worker processes die with their parent even when the parent is killed with SIGKILL (Linux:
prctl(PR_SET_PDEATHSIG), see `die_with_parent`).
"""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading

HANDLED = tuple(s for s in (getattr(signal, "SIGINT", None), getattr(signal, "SIGTERM", None),
                            getattr(signal, "SIGHUP", None)) if s is not None)
HARD_EXIT_AFTER = 3  # the third signal exits at once, skipping cleanup


class Interrupted(KeyboardInterrupt):
    """Raised in the main thread by the first SIGINT/SIGTERM/SIGHUP."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(signal_name(signum))
        self.signum = int(signum)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class _State:
    def __init__(self):
        self.reset()

    def reset(self):
        self.signum: int | None = None  # the first signal received
        self.count = 0
        self.raised = False
        self.defer_depth = 0


_state = _State()


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def exit_code(exc: BaseException | None = None) -> int:
    """128 + the signal that stopped the command (130 for a plain KeyboardInterrupt)."""
    signum = getattr(exc, "signum", None) or _state.signum or signal.SIGINT
    return 128 + int(signum)


def received() -> int | None:
    """The first signal received since `install()`, or None."""
    return _state.signum


def _handler(signum, frame):
    _state.count += 1
    if _state.signum is None:
        _state.signum = signum
    if _state.count >= HARD_EXIT_AFTER:
        os.write(2, f"\npfdeploy: {signal_name(signum)} again: exiting without cleaning up\n".encode())
        os._exit(128 + _state.signum)
    if _state.raised or _state.defer_depth:
        if _state.count == 2:
            os.write(2, b"\npfdeploy: stopping (cleaning up); signal once more to exit at once\n")
        return
    _state.raised = True
    raise Interrupted(signum)


def install() -> dict:
    """Install the policy's handlers (main thread only; elsewhere a no-op). Returns the previous
    handlers for `restore`."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    _state.reset()
    previous = {}
    for sig in HANDLED:
        try:
            previous[sig] = signal.signal(sig, _handler)
        except (ValueError, OSError):  # not allowed here (embedded interpreter)
            pass
    return previous


def exiting(code=None):
    """Call just before the process exits, with the exit status it is about to exit with; returns
    the status to exit with: 128 + the first signal received since `install()` (one that arrived
    after the command returned included), else `code`. From here on no handled signal raises,
    and all are ignored: Python puts the default handlers back when the interpreter shuts down
    (and a verb's `sys.exit` skips the code after it), so one more Ctrl-C or SIGTERM in that
    window used to kill the process by the signal (no exit 130) or print a traceback."""
    _state.raised = True  # the handler, while still installed, only counts
    for sig in HANDLED:
        try:
            signal.signal(sig, signal.SIG_IGN)
        except (ValueError, OSError):
            pass
    return 128 + int(_state.signum) if _state.signum is not None else code


def restore(previous: dict) -> None:
    for sig, handler in previous.items():
        try:
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        except (ValueError, OSError):
            pass


@contextlib.contextmanager
def deferred():
    """A section that a signal must not cut in half: a signal arriving inside is held and raised
    as Interrupted when the section ends (unless one was already raised)."""
    _state.defer_depth += 1
    try:
        yield
    finally:
        _state.defer_depth -= 1
        if not _state.defer_depth and _state.signum is not None and not _state.raised \
                and sys.exc_info()[0] is None:
            _state.raised = True
            raise Interrupted(_state.signum)


# --------------------------------------------------------------------------- worker side
PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int | None = None, sig: int = signal.SIGKILL) -> bool:
    """Ask the kernel to send `sig` to this process when its parent dies (Linux
    prctl(PR_SET_PDEATHSIG)); exit at once if the parent is already gone. Returns whether the
    request was made (False off Linux, where the parent's cleanup is the only guard).

    The kernel's "parent" is the thread that forked us: pfdeploy starts workers from its main
    thread, which lives as long as the process."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if parent_pid is not None and os.getppid() != parent_pid:  # the parent died before prctl
        os._exit(1)
    return True
