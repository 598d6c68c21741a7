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


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None,
          justify_right: Iterable[str] = ()) -> Table:
    right = set(justify_right)
    t = Table(title=title, header_style="bold")
    for c in columns:
        t.add_column(c, justify="right" if c in right else "left")
    for r in rows:
        t.add_row(*["" if v is None else str(v) for v in r])
    return t


def fmt(value: Any, digits: int = 2, missing: str = "-") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return missing
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)
