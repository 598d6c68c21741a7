"""`pfdeploy bench`'s progress: one rich bar on stderr that fits the terminal (the case label is
shortened, never the numbers), and one line per event where stderr is not a terminal."""
from __future__ import annotations

import re

from rich.text import Text


def _middle(text: str, n: int) -> str:
    """`text` in `n` characters, its middle replaced by '…' (both ends tell cases apart)."""
    if len(text) <= n:
        return text
    if n <= 1:
        return "…"[:n]
    front = (n - 1) // 2
    back = n - 1 - front  # the end gets the odd character: pf_resnet50_max vs _hybrid
    return text[:front] + "…" + (text[-back:] if back else "")


def fit_progress_text(text: str, budget: int) -> str:
    """`text` in at most `budget` cells for the progress line: the case label is shortened (the
    middle of its longest parts replaced by '…'), a trailing '(round 3, n=120)' is kept whole."""
    if len(text) <= budget:
        return text
    head, tail = text, ""
    m = re.search(r" \((round|n=)[^()]*\)$", text)
    if m:
        head, tail = text[:m.start()], text[m.start():]
    head = head.replace(" / ", "/")
    room = budget - len(tail)
    if room < 5:  # no room for a useful part of the label: the numbers alone
        return tail.strip()
    if len(head) <= room:
        return head + tail
    words = head.split(" ")
    label = next((i for i in range(len(words) - 1, -1, -1) if "/" in words[i]), None)
    if label is not None:
        parts = words[label].split("/")
        room_label = room - (len(head) - len(words[label]))
        if room_label >= 4 * len(parts):  # model/backend[/precision/bN]: cut the longest parts
            cut = [len(p) for p in parts]
            while sum(cut) + len(parts) - 1 > room_label:
                i = max(range(len(parts)), key=lambda j: cut[j])
                cut[i] -= 1
            words[label] = "/".join(_middle(p, n) for p, n in zip(parts, cut))
            return " ".join(words) + tail
    return _middle(head, room) + tail


class RichProgress:
    """The engine's progress drawn as one rich bar on stderr: current case, elapsed, ETA. The line
    fits the terminal (80 columns and up): the label is shortened, never the numbers."""

    # spinner, bar, "100%", elapsed "0:00:00", "ETA", remaining "0:00:00" and the six gaps between
    # the seven columns: everything but the label
    FIXED = 1 + 4 + 7 + 3 + 7 + 6

    def __init__(self, console):
        from rich.progress import (BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)
        from rich.table import Column

        self.console = console
        width = console.width
        self.bar_width = 6 if width < 100 else min(40, width - 100 + 10)
        self.bar = Progress(SpinnerColumn(),
                            TextColumn("{task.description}", style="bold", markup=False,  # user text: literal
                                       table_column=Column(no_wrap=True, overflow="crop")),
                            BarColumn(bar_width=self.bar_width),
                            TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(), TextColumn("ETA"),
                            TimeRemainingColumn(), console=console, transient=False, refresh_per_second=4)
        self.task = None
        self.tty = console.is_terminal

    def label_budget(self) -> int:
        return max(8, self.console.width - self.FIXED - self.bar_width - 1)

    def _fit(self, text: str) -> str:
        return fit_progress_text(text, self.label_budget())

    def __enter__(self):
        self.bar.start()
        self.task = self.bar.add_task("preparing", total=None)
        return self

    def __exit__(self, *exc):
        self.bar.stop()

    def phase(self, text):
        self.bar.update(self.task, description=self._fit(text))
        if not self.tty:
            self.console.print(Text(text))

    def plan(self, total_units):
        self.bar.update(self.task, total=max(total_units, 1e-9), completed=0)

    def update(self, current, completed_units, total_units):
        self.bar.update(self.task, description=self._fit(current), completed=completed_units,
                        total=max(total_units, 1e-9))

    def case_done(self, result):
        row = result.result
        if row["status"] != "ok" or not self.tty:
            detail = f"{row['p50_ms']:.3f} ms" if row.get("p50_ms") is not None else (row.get("error") or "")
            self.console.print(Text(f"{row['status']:>7}  {result.spec.label}: {detail}"))
