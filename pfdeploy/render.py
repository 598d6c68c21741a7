"""One renderer for every verb: a rich table for people, JSON for machines (same facts).

Styling and user text are kept apart. A cell, a title or a line is built from plain strings
(always shown literally: a tag `[/x]` or `pfdeploy[gpu]` prints as written) and styled parts,
`(text, style)` pairs or rich Text objects; only the renderer turns them into styled output:

    print_table(console, [Col("claim", wrap=True), Col("verdict")], [(statement, ("yes", "green"))])
    print_line(console, ("machine", "bold"), f" {machine_id}: {cpu_model}")

No verb writes rich markup; `esc` remains for code that still prints strings through rich.
"""
from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence, Union

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .labels import num

# Piped output (CI logs, files) gets wide tables instead of rich's 80-column default.
console = Console(width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True)

# What a cell, title or line part may be: plain text (literal), a (text, style) pair, a rich
# Text, None (shown as "-"), or a number (shown with str()).
Part = Union[str, "tuple[str, str]", Text, None, int, float]


def text(value: Any, style: str = "") -> Text:
    """The one conversion of a cell or line part into rich Text: a Text passes (copied), a
    (text, style) pair is styled, None is "-", anything else is its str() shown literally."""
    if isinstance(value, Text):
        out = value.copy()
        if style:
            out.stylize(style)
        return out
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], str):
        return Text("-" if value[0] is None else str(value[0]), style=value[1] or style)
    return Text("-" if value is None else str(value), style=style)


def styled(*parts: Part) -> Text:
    """One line from parts: strings literal, (text, style) pairs and Text objects styled."""
    out = Text()
    for p in parts:
        out.append_text(text(p))
    return out


def print_line(out: Console, *parts: Part, style: str = "") -> None:
    """Print one line made of `parts` (see `styled`); long lines wrap between words."""
    line = styled(*parts)
    if style:
        line.stylize(style)
    out.print(line)


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
    """A table cell: rich renderables other than text pass through; text, (text, style) pairs
    and anything else become Text (`text`), so user text is never parsed as markup."""
    from rich.console import ConsoleRenderable, RichCast

    if isinstance(value, (ConsoleRenderable, RichCast)) and not isinstance(value, Text):
        return value
    return text(value)


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], title: Any = None,
          justify_right: Iterable[str] = ()) -> Table:
    """A plain rich table (every column, rich's own wrapping) whose cells and title are shown
    literally; a (text, style) pair or a rich Text gives a styled cell. Tables that must fit a
    terminal use `print_table`."""
    right = set(justify_right)
    t = Table(title=text(title) if title is not None else None, header_style="bold")
    for c in columns:  # a value too long for the terminal folds onto the next line: never an ellipsis
        t.add_column(text(c), justify="right" if c in right else "left", overflow="fold")
    for r in rows:
        t.add_row(*[cell(v) for v in r])
    return t


def fmt(value: Any, digits: int = 2, missing: str = "-") -> str:
    """A number for a cell (`pfdeploy.labels.num`: floats to `digits` decimals, '-' when missing)."""
    return num(value, digits, missing)


# ---------------------------------------------------------------------------------------------
# Tables that fit the terminal (issue 15). A terminal gets the columns that matter, as many as fit
# its width in priority order, with the values shared by every row moved into the title; names
# and numbers are never cut (no ellipsis, no wrapping inside a number). `--wide` and every
# non-terminal output (CI logs, files, pipes) get the full table at its natural width.

@dataclass(frozen=True)
class Col:
    """One column of a fitted table.

    priority: 0 = always shown; 1, 2, ... = shown in that order while the table still fits.
    fold: a format such as "batch {}" or "{} threads": when every row holds the same value the
        column leaves the table and the value goes into the title this way.
    wrap: the column may wrap between words (lists of names, prose); other columns never wrap.
    min: for a wrapping column, the width it keeps when the table is fitted (at most its natural
        width), so prose wraps over a few lines rather than one word per line.
    """

    header: str
    priority: int = 0
    right: bool = False
    fold: str | None = None
    wrap: bool = False
    min: int = 0


def _natural(col: Col, cells: Sequence[Text], squeeze: bool) -> int:
    """Width the column needs: its longest line, or (`squeeze`) for a wrapping column its longest
    word."""
    texts = [Text(col.header)] + list(cells)
    full = max((cell_len(line) for t in texts for line in t.plain.splitlines() or [""]), default=1)
    if col.wrap and squeeze:
        word = max((cell_len(w) for t in texts for w in t.plain.split()), default=1)
        return max(word, min(col.min, full))
    return full


def table_width(widths: Sequence[int]) -> int:
    """Width of a rich table with the default box and padding: | w1 | w2 | ... |."""
    return sum(widths) + 3 * len(widths) + 1


@dataclass
class Fitted:
    table: Table
    width: int  # the width the table needs (at least); the caller prints it at least this wide
    shown: list[str]
    hidden: list[str]
    folded: list[str]  # title parts of the columns folded into the title


def fit_table(columns: Sequence[Col], rows: Sequence[Sequence[Any]], width: int | None,
              title: str | Text | None = None) -> Fitted:
    """Choose the columns for `width` (None: every column, nothing folded) and build the table."""
    cells = [[text(v) for v in r] for r in rows]
    for r in cells:
        if len(r) != len(columns):
            raise ValueError(f"row has {len(r)} cells for {len(columns)} columns")
    by_col = [[r[i] for r in cells] for i in range(len(columns))]
    folded: list[int] = []
    if width is not None and cells:
        for i, c in enumerate(columns):
            if c.fold and len({t.plain for t in by_col[i]}) == 1:
                folded.append(i)
    candidates = [i for i in range(len(columns)) if i not in folded]
    natural = {i: _natural(columns[i], by_col[i], width is not None) for i in candidates}
    if width is None:
        chosen = candidates
    else:
        chosen = [i for i in candidates if columns[i].priority == 0]
        for i in sorted((i for i in candidates if columns[i].priority > 0), key=lambda i: columns[i].priority):
            if columns[i].wrap:  # a wrapping column takes its minimum, or what is left if that is less
                room = width - table_width([natural[j] for j in chosen]) - 3
                natural[i] = max(_natural(Col(columns[i].header, wrap=True), by_col[i], True), min(natural[i], room))
            if table_width([natural[j] for j in chosen + [i]]) <= width:
                chosen.append(i)
        chosen.sort()
    hidden = [columns[i].header for i in candidates if i not in chosen]
    fold_text = [columns[i].fold.format(by_col[i][0].plain) for i in folded]
    full_title = text(title) if title is not None else Text()
    if fold_text:
        if full_title.plain:
            full_title.append("\n")
        full_title.append(", ".join(fold_text))
    need = table_width([natural[i] for i in chosen])
    # Too narrow even for the columns always shown: let every cell wrap (fold) rather than crop.
    squeezed = width is not None and need > width
    fixed: dict[int, int] = {}  # wrapping columns of a fitted table: the width each one gets
    if width is not None and not squeezed:
        spare = width - need
        short = {i: _natural(columns[i], by_col[i], False) - natural[i] for i in chosen if columns[i].wrap}
        for i in sorted(short, key=lambda i: (short[i], i)):  # the room left: the nearest to one line first
            fixed[i] = natural[i] + min(spare, short[i])
            spare -= fixed[i] - natural[i]
    t = Table(title=full_title if full_title.plain else None, header_style="bold")
    for i in chosen:
        c = columns[i]
        t.add_column(Text(c.header), justify="right" if c.right else "left", no_wrap=not (c.wrap or squeezed),
                     overflow="fold", width=fixed.get(i))
    for r in cells:
        t.add_row(*[r[i] for i in chosen])
    return Fitted(t, need, [columns[i].header for i in chosen], hidden, fold_text)


def print_table(out: Console, columns: Sequence[Col], rows: Sequence[Sequence[Any]],
                title: str | Text | None = None, *, wide: bool = False, fit: bool | None = None,
                wide_hint: str = "--wide") -> Fitted:
    """Print a fitted table on `out`: fitted to its width on a terminal (unless `wide`), in full
    elsewhere. Names the hidden columns on one line after the table."""
    if fit is None:
        fit = out.is_terminal
    rows = [list(r) for r in rows]
    full = wide or not fit
    f = fit_table(columns, rows, None if full else out.width, title)
    saved = out.width
    try:  # the full table at its natural width: wider than the terminal rather than squeezed
        if full and f.width > saved:
            out.width = f.width
        out.print(f.table)
    finally:
        out.width = saved
    if f.hidden:
        out.print(Text(f"more columns with {wide_hint}: " + ", ".join(f.hidden), style="dim"))
    return f


def print_note(out: Console, text: str, style: str = "", indent: int = 2) -> None:
    """Plain text (never markup), indented, its wrapped lines indented the same."""
    pad = " " * indent
    for line in Text(text, style=style).wrap(out, max(20, out.width - indent), overflow="fold"):
        line.rstrip()
        out.print(Text(pad) + line, soft_wrap=True)
