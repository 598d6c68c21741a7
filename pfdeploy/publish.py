"""Directories that appear whole: written in a private temporary directory beside their final
place, then renamed into place (the same filesystem, so the rename is atomic). A reader sees the
old directory or the new one, never a half-written mix. The one implementation behind the
export cache and `export --out` (exporters), `pfdeploy tune`'s tuned directories and
`pfdeploy report --out`.

    tmp = make_temp_dir(parent, name)       # '.tmp-<name>-pid<PID>@<host>-XXXX', mode 0700
    ...write into tmp...
    publish_dir(tmp, parent / name, replace=True, what="--out")
    sweep_stale_temp(root)                  # what killed writers left: '.tmp-*' / '.old-*' of dead owners
    with target_lock(parent / name, what): # writers of one target serialised ('.<name>.lock' beside it)
        ...check what is there, publish_dir(...)...

A temporary or set-aside directory names its owner (pid and host), so a later run tells a dead
writer's leftovers (removed by `sweep_stale_temp`) from a live one's (kept).
"""
from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import socket
import tempfile
import time
from pathlib import Path

from .errors import UserError
from .outputs import os_reason

STALE_UNOWNED_S = 6 * 3600  # a temp dir whose owner cannot be checked is removed after this long
STALE_FOREIGN_S = 24 * 3600  # ... and one made on another host (a shared cache) after this long
_OWNER_RE = re.compile(r"-pid(\d+)@([A-Za-z0-9]+)-")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32] or "host"


def _owner_tag() -> str:
    """'pid<PID>@<host>': who made a temporary directory."""
    return f"pid{os.getpid()}@{_host()}"


def make_temp_dir(parent, name: str, what: str | None = None) -> Path:
    """A private temporary directory beside the final location `parent / name` (created with its
    parents). Its name starts with '.tmp-' so nothing treats it as finished, and names its owner.
    An OS error is one UserError line (naming `what` and the final path when given)."""
    parent = Path(parent)
    try:
        parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".tmp-{name}-{_owner_tag()}-", dir=parent))
    except OSError as exc:
        where = f"{what} {parent / name}" if what else f"to {parent}"
        raise UserError(f"cannot write {where}: {os_reason(exc)}") from None


def publish_dir(tmp, final, replace: bool = False, what: str = "directory") -> Path:
    """Rename the finished directory `tmp` to `final` and return `final`.

    Nothing at `final`: renamed into place. `final` exists: with `replace`, the old one is moved
    aside ('.old-<name>-<owner>-<ms>'), `tmp` renamed in and the old one deleted (put back if the
    rename fails); without, `tmp` is discarded and the existing directory wins (another process
    finished the same content first: a content-addressed cache). A directory that appears at
    `final` meanwhile: the same, without `replace`; a UserError with it (what is there is not
    ours to replace). Any other OS error is one UserError line naming `what` and `final`; `tmp`
    is left to the caller. Callers check what is at `final` (theirs to replace?) just before."""
    tmp, final = Path(tmp), Path(final)
    try:
        if os.path.lexists(final):
            if not replace:
                shutil.rmtree(tmp, ignore_errors=True)
                return final
            old = final.with_name(f".old-{final.name}-{_owner_tag()}-{int(time.time() * 1000)}")
            os.rename(final, old)
            try:
                os.rename(tmp, final)
            except OSError:
                os.rename(old, final)
                raise
            shutil.rmtree(old, ignore_errors=True)
            return final
        try:
            os.rename(tmp, final)  # a directory appearing here meanwhile: ENOTEMPTY / EEXIST
        except OSError:
            if final.exists() and not replace:  # lost a race with a writer of the same content
                shutil.rmtree(tmp, ignore_errors=True)
                return final
            raise
    except OSError as exc:
        raise UserError(f"cannot write {what} {final}: {os_reason(exc)}") from None
    return final


LOCK_WAIT_S = 300.0  # a writer waits this long for another writer of the same target, then fails


@contextlib.contextmanager
def target_lock(final, what: str = "directory", wait_s: float | None = None):
    """Serialise the writers of one target `final` (processes of this host; any file system with
    flock): an exclusive flock on '<parent>/.<name>.lock', taken before the caller checks what is
    at `final` and held until it has published; the lock file is removed after. A writer that
    waits more than `wait_s` (LOCK_WAIT_S) for another fails in one UserError line. The lock
    file re-checked after locking (same inode as the path) so that a writer never holds the
    lock on a file another has just removed."""
    import fcntl

    final = Path(final)
    lock = final.parent / f".{final.name}.lock"
    deadline = time.monotonic() + (LOCK_WAIT_S if wait_s is None else wait_s)
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        except OSError as exc:
            raise UserError(f"cannot write {what} {final}: cannot create its lock file {lock}: "
                            f"{os_reason(exc)}") from None
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                        raise UserError(f"cannot write {what} {final}: cannot lock {lock}: "
                                        f"{os_reason(exc)}") from None
                    if time.monotonic() > deadline:
                        raise UserError(f"cannot write {what} {final}: another pfdeploy process is writing it "
                                        f"(it holds {lock}); try again when it is done") from None
                    time.sleep(0.05)
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(lock))
            except FileNotFoundError:
                same = False
            if same:
                break
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # locked a file the previous holder had removed: lock the new one
    try:
        yield lock
    finally:
        try:
            os.unlink(lock)  # while still holding it: a waiter re-checks and locks a fresh file
        except OSError:
            pass
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale_temp(root, now: float | None = None) -> list[Path]:
    """Remove what killed writers left: '.tmp-*' and '.old-*' directories (one level below
    `root`, and in `root`) whose owner process on this host is gone, or that are older than a day
    (another host's) or 6 hours (no owner recorded). Best effort: an unreadable or read-only
    directory is left alone. Returns the removed paths."""
    now = time.time() if now is None else now
    root = Path(root)
    removed = []
    try:
        parents = [root] + [d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")]
    except OSError:
        return removed
    host = _host()
    for parent in parents:
        try:
            entries = [e for e in parent.iterdir() if e.name.startswith((".tmp-", ".old-")) and e.is_dir()]
        except OSError:
            continue
        for e in entries:
            try:
                age = now - e.stat().st_mtime
            except OSError:
                continue
            m = _OWNER_RE.search(e.name)
            if m and m.group(2) == host:
                stale = not _pid_alive(int(m.group(1)))
            elif m:
                stale = age > STALE_FOREIGN_S
            else:
                stale = age > STALE_UNOWNED_S
            if stale:
                shutil.rmtree(e, ignore_errors=True)
                if not e.exists():
                    removed.append(e)
    return removed
