"""User text checked at the edge: every command-line argument, tag, name, path or store URL must be
valid UTF-8 (docs/reliability.md). On Linux Python hands over an argument that is not valid
UTF-8 (`--tag $'\\xff'`) as a str with "surrogate escapes" (U+DC80..U+DCFF), which fails later,
deep inside the store or a renderer, with a UnicodeEncodeError. Checked here once, before any
work, it is one line and exit 2. Imports only pfdeploy.errors."""
from __future__ import annotations

from typing import Sequence

from .errors import UsageError


def is_text(value: str) -> bool:
    """True when `value` encodes as UTF-8 (no lone surrogates, e.g. from undecodable bytes)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def shown(value: str, limit: int = 60) -> str:
    """`value` as printable text: undecodable bytes as \\xNN, other lone surrogates as \\udcNN."""
    text = value.encode("utf-8", "surrogateescape" if _escapable(value) else "backslashreplace")
    out = text.decode("utf-8", "backslashreplace")
    return out if len(out) <= limit else out[:limit] + "..."


def _escapable(value: str) -> bool:
    try:
        value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return False
    return True


def check_text(value: str | None, what: str) -> str | None:
    """`value` unchanged when it is valid UTF-8 (or None); else a UsageError naming `what`."""
    if value is None or is_text(value):
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        where = exc.start
    raise UsageError(f"{what} '{shown(value)}' is not valid UTF-8 (at position {where}); pfdeploy takes "
                     "tags, names and paths in UTF-8")


def check_args(args: Sequence[str]) -> None:
    """Check every command-line argument before click parses them; the error names the option
    the value belongs to (`--tag`, `--tag=...`) or says 'argument'."""
    prev = None
    for arg in args:
        if not is_text(arg):
            if arg.startswith("--") and "=" in arg and is_text(arg.split("=", 1)[0]):
                name, value = arg.split("=", 1)
                check_text(value, name)
            what = prev if prev and prev.startswith("-") and is_text(prev) and "=" not in prev else "argument"
            check_text(arg, what)
        prev = arg
