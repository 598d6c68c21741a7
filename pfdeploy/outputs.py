"""The one place that writes files a user named (`bench --json`, `results --out`, `compare
--markdown`, run files) and checks output locations before any work starts.

Rules (docs/reliability.md):
- `check_output_file(path)` runs before the expensive part of a verb: missing directories are
  created then, the directory must be writable, and the path must not be a directory. A bad
  path fails in a second, not after a 20-minute benchmark.
- `atomic_write_bytes` / `atomic_write_text` write a temporary file in the same directory,
  fsync it and rename it over the target: a crash, a full disk or a signal leaves the old file
  or the new one, never half of one, and no temporary file.
- A new file gets the mode the user's umask gives an ordinary file (0666 & ~umask), not
  mkstemp's 0600; a file that is replaced keeps its mode.
- Every OS failure (read-only directory, full disk, permission) becomes one UserError line.
"""
from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path

from .errors import UserError

TEMP_PREFIX = ".pfdeploy-tmp-"


def _reason(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "no space left on the device"
    if exc.errno == errno.EDQUOT:
        return "disk quota exceeded"
    if exc.errno == errno.EROFS:
        return "read-only file system"
    return exc.strerror or str(exc)


def current_umask() -> int:
    """The process umask. Linux: read from /proc (no change of state); elsewhere set and restore
    at once (os.umask has no read-only form)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def new_file_mode() -> int:
    """The mode `open(path, 'w')` would give a new file: 0666 minus the umask."""
    return 0o666 & ~current_umask()


def check_output_file(path: str | os.PathLike, what: str = "output file") -> Path:
    """Fail now, with one line, if `path` could not be written later: missing directories are
    created (as `mkdir -p` would), the directory must be writable, and `path` itself must not
    be a directory. Returns the expanded path. Call it before the work that makes the content."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise UserError(f"{what} {p} is a directory; give a file name")
    parent = p.parent
    check_output_dir(parent, what)
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{what} {p}: cannot create directory {parent}: {_reason(exc)}") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"{what} {p}: directory {parent} is not writable")
    return p


def check_output_dir(path: str | os.PathLike, what: str = "output directory") -> Path:
    """Fail now if directory `path` could not be created (or written) later: the nearest
    existing ancestor must be a writable directory."""
    p = Path(path).expanduser()
    probe = p
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise UserError(f"{what} {p}: {probe} is a file, not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"{what} {p} is not writable ({probe} denies write access)")
    return p


def atomic_write_bytes(path: str | os.PathLike, data: bytes, what: str = "output file") -> Path:
    """Write `data` to `path` atomically: a temporary file in the same directory, fsync, rename.
    The file gets the user's umask mode (or keeps the mode of the file it replaces). Any OS
    error is a UserError naming the file; the temporary file is removed in every case."""
    path = Path(path).expanduser()
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        mode = new_file_mode()
    try:
        fd, tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise UserError(f"cannot write {what} {path}: {_reason(exc)}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise UserError(f"cannot write {what} {path}: {_reason(exc)}") from None
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str, what: str = "output file") -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"), what)


def publish_tree_mode(directory: str | os.PathLike) -> None:
    """Give a directory made by mkdtemp (0700) the mode a new directory gets under the umask."""
    os.chmod(directory, 0o777 & ~current_umask())
