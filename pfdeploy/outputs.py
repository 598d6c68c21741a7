"""The one place that writes files a user named (`bench --json`, `results --out`, `compare
--markdown`, `store schema --out`, run files) and checks output locations before any work starts.

Rules (docs/reliability.md, "Outputs you name"):
- `check_output_file(path)` runs before the expensive part of a verb: missing directories are
  created then, the directory must be writable, and the path must not be a directory. A bad
  path fails in a second, not after a 20-minute benchmark.
- What is at the path decides how it is written (`output_target`):
  - a regular file, or nothing yet: a temporary file in the same directory, fsync, renamed over
    the target. A crash, a full disk or a signal leaves the old file or the new one, never half
    of one, and no temporary file. A new file gets the mode the user's umask gives an ordinary
    file (0666 & ~umask), not mkstemp's 0600; a file that is replaced keeps its mode.
  - a symbolic link: followed (to the end of the chain); the file it points to is replaced
    atomically as above, the link itself stays a link. A link into a missing directory is refused.
  - `/dev/stdout`, `/dev/stderr`, `/dev/fd/N`, `/proc/self/fd/N`: written to that open file
    descriptor of this process (a pipe, a terminal, a file the shell opened with `>` or `>>`).
  - a character device (`/dev/null`, `/dev/full`, a terminal) or a FIFO: opened and written to
    directly, never replaced (a FIFO waits for its reader, as the shell's `>` does); a UNIX
    socket: connected to and written to.
  - a block device or a directory: refused; pfdeploy never writes over a disk or a folder.
- Every OS failure (read-only directory, full disk, permission, `/dev/full`) becomes one
  UserError line naming the path; the device or file that was there is left as it was.
"""
from __future__ import annotations

import errno
import os
import re
import socket
import stat
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError

TEMP_PREFIX = ".pfdeploy-tmp-"
# paths that name one of this process's open file descriptors (never resolved through /proc: the
# link of a pipe or socket there names no file)
_FD_PATH = re.compile(r"^/(?:dev/fd|proc/self/fd|proc/thread-self/fd|proc/(\d+)/fd)/(\d+)$")
_STD_PATHS = {"/dev/stdout": 1, "/dev/stderr": 2, "/dev/stdin": 0}


def os_reason(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "No space left on device"
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


# ----------------------------------------------------------------------------- what is there


@dataclass(frozen=True)
class Target:
    """Where the bytes for a user-named path go. kind: 'file' (replace `path` atomically; `path`
    is the end of a symlink chain when the name was a link), 'fd' (write to descriptor `fd`),
    'stream' (a character device or FIFO at `path`, written directly), 'socket' (a UNIX socket)."""

    kind: str
    path: Path
    fd: int | None = None
    via_link: bool = False


def _fd_of(path: Path) -> int | None:
    s = os.path.normpath(str(path.absolute()))
    if s in _STD_PATHS:
        return _STD_PATHS[s]
    m = _FD_PATH.match(s)
    if m and (m.group(1) is None or int(m.group(1)) == os.getpid()):
        return int(m.group(2))
    return None


def _fd_in_chain(p: Path, hops: int = 40) -> int | None:
    """The descriptor a chain of symbolic links leads to (a link to /dev/stdout), else None."""
    cur = str(p.absolute())
    for _ in range(hops):
        fd = _fd_of(Path(cur))
        if fd is not None:
            return fd
        try:
            nxt = os.readlink(cur)
        except OSError:
            return None
        cur = os.path.normpath(os.path.join(os.path.dirname(cur), nxt))
    return None


def output_target(path: str | os.PathLike, what: str = "output file") -> Target:
    """Classify what is at `path` (see the module docstring). Raises UserError for a directory,
    a block device, a symlink loop or a link into a directory that does not exist."""
    p = Path(path).expanduser()
    fd = _fd_of(p)
    if fd is not None:
        return Target("fd", p, fd=fd)
    try:
        lst = os.lstat(p)
    except (FileNotFoundError, NotADirectoryError):  # new; or under a file (check_output_dir says so)
        return Target("file", p)
    except OSError as exc:
        raise UserError(f"{what} {p}: {os_reason(exc)}") from None
    via_link = stat.S_ISLNK(lst.st_mode)
    real = Path(os.path.realpath(p)) if via_link else p
    if via_link:
        fd = _fd_in_chain(p)
        if fd is not None:  # e.g. a link to /dev/stdout
            return Target("fd", p, fd=fd)
        try:
            st = os.stat(p)
        except FileNotFoundError:  # a dangling link: its target is created
            if not real.parent.is_dir():
                raise UserError(f"{what} {p} is a symbolic link to {real}, whose directory does not "
                                "exist") from None
            return Target("file", real, via_link=True)
        except OSError as exc:  # ELOOP
            raise UserError(f"{what} {p}: {os_reason(exc)}") from None
    else:
        st = lst
    mode = st.st_mode
    if stat.S_ISREG(mode):
        return Target("file", real, via_link=via_link)
    if stat.S_ISDIR(mode):
        raise UserError(f"{what} {p} is a directory; give a file name")
    if stat.S_ISCHR(mode) or stat.S_ISFIFO(mode):
        return Target("stream", real, via_link=via_link)
    if stat.S_ISSOCK(mode):
        return Target("socket", real, via_link=via_link)
    kind = "a block device" if stat.S_ISBLK(mode) else "not a regular file"
    raise UserError(f"{what} {p} is {kind}; pfdeploy writes only to files, FIFOs, sockets and character "
                    "devices, and never replaces what is there")


def check_output_file(path: str | os.PathLike, what: str = "output file") -> Path:
    """Fail now, with one line, if `path` could not be written later: missing directories are
    created (as `mkdir -p` would), the directory must be writable, and `path` itself must not
    be a directory or a block device; a device, FIFO or socket must be writable itself; a file
    descriptor path (/dev/stdout) must be open. Returns the expanded path. Call it before the
    work that makes the content. Opens nothing (a FIFO's reader would see an empty write)."""
    p = Path(path).expanduser()
    t = output_target(p, what)
    if t.kind == "fd":
        try:
            os.fstat(t.fd)
        except OSError:
            raise UserError(f"{what} {p}: file descriptor {t.fd} is not open") from None
        return p
    if t.kind in ("stream", "socket"):
        if not os.access(t.path, os.W_OK):
            raise UserError(f"{what} {p} is not writable")
        return p
    parent = t.path.parent
    check_output_dir(parent, what)
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{what} {p}: cannot create directory {parent}: {os_reason(exc)}") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"{what} {p}: directory {parent} is not writable")
    why = _cannot_create_in(parent)
    if why:
        raise UserError(f"{what} {p}: cannot create files in {parent}: {why}")
    return p


def _cannot_create_in(directory: Path) -> str | None:
    """Why no file can be created in `directory` (None: one can). `os.access` answers from the
    permission bits, and for root they say yes where creating still fails (sysfs, an NFS export
    with root_squash, an immutable directory): an empty temporary file, removed at once, is the
    only honest probe."""
    import tempfile

    try:
        fd, name = tempfile.mkstemp(prefix=".pfdeploy-probe-", dir=directory)
    except OSError as exc:
        return os_reason(exc)
    os.close(fd)
    try:
        os.unlink(name)
    except OSError:
        pass
    return None


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
    why = _cannot_create_in(probe) if probe.is_dir() else None
    if why:
        raise UserError(f"{what} {p} cannot be written (creating in {probe}: {why})")
    return p


# ----------------------------------------------------------------------------- writing


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _fail(exc: OSError, what: str, p: Path) -> UserError:
    return UserError(f"cannot write {what} {p}: {os_reason(exc)}")


def _write_fd(t: Target, data: bytes, what: str) -> None:
    for stream in (sys.stdout, sys.stderr):  # what was printed before comes first
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    try:
        _write_all(t.fd, data)
    except BrokenPipeError:
        raise  # a reader that went away: the CLI treats it as for stdout (exit 0, quietly)
    except OSError as exc:
        raise _fail(exc, what, t.path) from None


def _write_stream(t: Target, data: bytes, what: str, shown: Path) -> bool:
    """Write to a character device or FIFO without creating, truncating or replacing it. False
    when the path turned into a regular file between the check and the open (then the caller
    replaces it atomically, as for any file)."""
    flags = os.O_WRONLY | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(t.path, flags)  # no O_CREAT, no O_TRUNC; a FIFO waits here for its reader
    except OSError as exc:
        raise _fail(exc, what, shown) from None
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        _write_all(fd, data)
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise _fail(exc, what, shown) from None
    finally:
        os.close(fd)
    return True


def _write_socket(t: Target, data: bytes, what: str, shown: Path) -> None:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(str(t.path))
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
    except OSError as exc:
        raise _fail(exc, what, shown) from None


def _replace_file(path: Path, data: bytes, what: str, shown: Path) -> None:
    """Temporary file in the same directory, fsync, rename over `path` (the atomic case)."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        mode = new_file_mode()
    try:
        fd, tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _fail(exc, what, shown) from None
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
            raise _fail(exc, what, shown) from None
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes, what: str = "output file") -> Path:
    """Write `data` to the user-named `path`: a regular file (or a symlink's target) is replaced
    atomically with the user's umask mode (or the mode of the file it replaces); a device, FIFO,
    socket or /dev/stdout is written to directly and never replaced. Any OS error is a UserError
    naming the file; no temporary file is left in any case. Returns the path as given."""
    shown = Path(path).expanduser()
    t = output_target(shown, what)
    if t.kind == "fd":
        _write_fd(t, data, what)
    elif t.kind == "socket":
        _write_socket(t, data, what, shown)
    elif t.kind == "stream" and _write_stream(t, data, what, shown):
        pass
    else:
        _replace_file(t.path, data, what, shown)
    return shown


def atomic_write_text(path: str | os.PathLike, text: str, what: str = "output file") -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"), what)


def publish_tree_mode(directory: str | os.PathLike) -> None:
    """Give a directory made by mkdtemp (0700) the mode a new directory gets under the umask."""
    os.chmod(directory, 0o777 & ~current_umask())
