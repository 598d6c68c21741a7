"""One renderer for every verb: a rich table for people, JSON for machines (same facts)."""
from __future__ import annotations

import json
import math
import sys
from typing import Any, Callable, Iterable, Sequence

from rich.console import Console
from rich.table import Table

# Piped output (CI logs, files) gets wide tables instead of rich's 80-column default.
console = Console(width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True)


def _default(obj: Any):
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    return str(obj)


def to_json(data: Any) -> str:
    """JSON with NaN/inf turned into null (strict JSON readers reject NaN)."""

    def clean(x):
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        return x

    return json.dumps(clean(json.loads(json.dumps(data, default=_default))), indent=2)


def emit(data: Any, as_json: bool, human: Callable[[Console], None]) -> None:
    """Print `data` as JSON on stdout when `as_json`, else call `human(console)`."""
    if as_json:
        sys.stdout.write(to_json(data) + "\n")
    else:
        human(console)


def esc(value: Any) -> str:
    """User text (tags, model names, paths, error messages, install hints) made safe to print
    through rich: markup brackets are escaped, so `[/x]` or `pfdeploy[gpu]` print as written and
    can never break or restyle the output. The one helper for text shown through rich."""
    from rich.markup import escape

    return escape("" if value is None else str(value))


def cell(value: Any):
    """A table cell: rich renderables (Text, markup made on purpose with Text.from_markup) pass
    through; anything else is shown literally."""
    from rich.console import ConsoleRenderable, RichCast

    if isinstance(value, (ConsoleRenderable, RichCast)):
        return value
    return esc(value)


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], title: Any = None,
          justify_right: Iterable[str] = ()) -> Table:
    """A rich table whose cells and title are shown literally (user text is escaped); pass a
    rich Text for a styled cell or title."""
    right = set(justify_right)
    t = Table(title=cell(title) if title is not None else None, header_style="bold")
    for c in columns:
        t.add_column(esc(c), justify="right" if c in right else "left")
    for r in rows:
        t.add_row(*[cell(v) for v in r])
    return t


def fmt(value: Any, digits: int = 2, missing: str = "-") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return missing
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)
