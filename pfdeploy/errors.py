"""The two kinds of failure: a UserError (bad input, missing runtime, no GPU) prints one line and
exits non-zero without a traceback; anything else is a bug and keeps its traceback."""
from __future__ import annotations

import importlib
from types import ModuleType


class UserError(Exception):
    """Bad input or an unusable environment. `exit_code` is what the CLI exits with."""

    exit_code = 1

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(UserError):
    """Unknown names and invalid arguments: exit code 2, like a command-line usage error."""

    exit_code = 2


class MissingDependency(UserError):
    """An optional runtime is not installed."""


# Install hints of optional dependencies that are not runtimes. A runtime's hint is declared by its
# backend module (`Backend.install_hint`) and passed as `optional_import(..., hint=...)`.
INSTALL_HINTS = {
    "nncf": "pip install 'pfdeploy[cpu]'",
    "pynvml": "pip install 'pfdeploy[gpu]'",
    "psycopg": "pip install 'pfdeploy[postgres]'",
    "ray": "pip install 'pfdeploy[fleet]'",
    "playwright": "pip install 'pfdeploy[test]'",
}


def optional_import(module: str, purpose: str | None = None, hint: str | None = None) -> ModuleType:
    """Import an optional heavy dependency, turning ImportError into a MissingDependency that
    names what to install (`hint`, else INSTALL_HINTS, else `pip install <module>`). Never
    installs anything."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # also catches broken installs (missing shared libraries)
        top = module.split(".")[0]
        hint = hint or INSTALL_HINTS.get(top, f"pip install {top}")
        what = f" (needed for {purpose})" if purpose else ""
        raise MissingDependency(f"{top} is not installed{what}: {hint}. [{exc}]") from None


def is_installed(module: str) -> bool:
    """True when `module` can be found, without importing it."""
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def path_problem(path) -> str | None:
    """Why `path` leads nowhere, as the end of a sentence ("is a loop of symbolic links ...",
    "is a symbolic link to X, which does not exist", "not found"), or None when it leads somewhere."""
    import errno
    import os

    try:
        os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            return f"is a symbolic link to {os.readlink(path)}, which does not exist"
        return "not found"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "is a loop of symbolic links (it never reaches a file)"
        return f"cannot be read: {exc.strerror or exc}"
    return None


def require_path(path, what: str) -> None:
    """A UserError unless `path` leads somewhere: "not found" only when nothing is there; a link
    to nothing, a loop of symbolic links or an unreadable path each say so (a loop used to read
    "not found")."""
    why = path_problem(path)
    if why == "not found":
        raise UserError(f"{what} not found: {path}")
    if why is not None:
        raise UserError(f"{what} {path} {why}")
