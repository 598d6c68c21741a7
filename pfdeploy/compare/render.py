"""A comparison for people: the Markdown of a pull-request comment / job summary and the
terminal table; writing them where the user asked."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..labels import num
from .model import MARK, STYLE, CaseComparison, Comparison, run_label


def _pct(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{(x - 1) * 100:+.{digits}f}%"


def _num(x: float | None, digits: int = 3) -> str:
    return num(x, digits)


def _change(c: CaseComparison) -> str:
    """The ratio as a change; a capacity's says so (higher is better there: compare.capacity)."""
    return f"{_pct(c.ratio)} QPS" if c.higher_is_better and c.ratio is not None else _pct(c.ratio)


def _values(c: CaseComparison) -> tuple[str, str]:
    """(base, head) as the table shows them: p50 ms, or a capacity's QPS."""
    if c.higher_is_better:
        return tuple("-" if v is None else f"{_num(v)} QPS" for v in (c.base_capacity_qps, c.head_capacity_qps))
    return _num(c.base_p50_ms), _num(c.head_p50_ms)


def _ci(c: CaseComparison) -> str:
    if c.ci_low is None:
        return "-"
    return f"[{_num(c.ci_low)}, {_num(c.ci_high)}]"


def _rel(c: CaseComparison) -> str:
    if c.rel_ratio is None:
        return "-"
    return f"{_pct(c.rel_ratio)} [{_num(c.rel_ci_low)}, {_num(c.rel_ci_high)}]"


def _p(c: CaseComparison) -> str:
    return "-" if c.p_value is None else f"{c.p_value:.2g}"


def _note(c: CaseComparison) -> str:
    text = c.note or ""
    if c.error:
        err = " ".join(str(c.error).split())
        text = f"{text}: {err[:200]}" if text else err[:200]
    return text


def md_escape(text: Any) -> str:
    """Escape a value for a Markdown table cell: HTML entities (GitHub renders inline HTML),
    Markdown punctuation, pipes, and line breaks."""
    s = "" if text is None else str(text)
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    out = []
    for ch in s:
        if ch in "\\`*_[]|~#!$":
            out.append("\\" + ch)
        elif ch in "\r\n\t":
            out.append(" ")
        else:
            out.append(ch)
    return "".join(out)


def to_markdown(cmp: Comparison, fail_on: str = "regression") -> str:
    """Markdown for a pull-request comment or $GITHUB_STEP_SUMMARY."""
    failing = cmp.failing(fail_on)
    status = "❌ fails" if failing else "✅ passes"
    lines = [
        f"### pfdeploy compare: {md_escape(cmp.headline())}",
        "",
        f"{status} the gate (`--fail-on {fail_on}`, threshold {cmp.threshold * 100:g}%; bootstrap CI of the "
        f"ratio of medians and Mann-Whitney: {cmp.levels()}).",
        "",
        f"- base: {md_escape(run_label(cmp.base))}, commit {md_escape((cmp.base.get('git_commit') or '-')[:12])}, "
        f"{md_escape(cmp.base.get('started_at') or '-')}",
        f"- head: {md_escape(run_label(cmp.head))}, commit {md_escape((cmp.head.get('git_commit') or '-')[:12])}, "
        f"{md_escape(cmp.head.get('started_at') or '-')}",
        f"- machine: {md_escape(cmp.head.get('machine_id') or '-')}"
        + ("" if cmp.same_machine else f" (base: {md_escape(cmp.base.get('machine_id') or '-')})"),
    ]
    for w in cmp.warnings:
        lines.append(f"- ⚠️ {md_escape(w)}")
    lines += ["", "| verdict | model | backend | device | precision | batch | threads | scenario | "
                  "base p50 ms | head p50 ms | change | CI of ratio | vs shift [CI] | p (MWU) | note |",
              "|---|---|---|---|---|---|---|---|---:|---:|---:|---|---|---:|---|"]
    for c in cmp.cases:
        cells = [f"{MARK.get(c.verdict, '')} {c.verdict}", c.model or c.case_key, c.backend, c.device,
                 c.precision, c.batch, c.threads, c.scenario]
        lines.append("| " + " | ".join(
            [md_escape(cells[0])] + [md_escape("-" if v is None else v) for v in cells[1:]]
            + [*_values(c), _change(c), _ci(c), _rel(c), _p(c),
               md_escape(_note(c))]) + " |")
    return "\n".join(lines) + "\n"


def _columns():
    """The terminal table's columns in priority order (0: always shown; pfdeploy.render fits them
    to the terminal): a case is named by its own columns, those every case shares go into the title."""
    from ..render import Col

    return [Col("verdict"), Col("model"), Col("weights", fold="weights {}"), Col("backend"),
            Col("device", fold="{}"), Col("precision", fold="{}"), Col("batch", right=True, fold="batch {}"),
            Col("threads", right=True, fold="{} threads"), Col("scenario", fold="{}"),
            Col("change", right=True), Col("p50 ms base -> head", 2, right=True), Col("CI of ratio", 3, right=True),
            Col("vs shift [CI]", 4, right=True), Col("p (MWU)", 5, right=True), Col("note", 1, wrap=True, min=32)]


def table_rows(cmp: Comparison) -> list[list]:
    """One row per case: the verdict a (word, style) pair, everything else plain text."""
    rows = []
    for c in cmp.cases:
        rows.append([(c.verdict, STYLE.get(c.verdict, "")), c.model or c.case_key, c.weights or "synthetic:0",
                     c.backend, c.device, c.precision, c.batch, c.threads, c.scenario, _change(c),
                     " -> ".join(_values(c)), _ci(c), _rel(c), _p(c), _note(c) or "-"])
    return rows


def print_table(cmp: Comparison, console, fail_on: str = "regression", wide: bool = False) -> None:
    """The table for people (pfdeploy.render: fitted to a terminal unless `wide`, in full
    elsewhere; values from the store shown literally), its warnings and the gate's line."""
    from ..render import print_line, print_note
    from ..render import print_table as fitted_table

    fitted_table(console, _columns(), table_rows(cmp), title=f"compare {run_label(cmp.base)} -> {run_label(cmp.head)}",
                 wide=wide)
    for w in cmp.warnings:
        print_note(console, f"warning: {w}", style="yellow", indent=0)
    failing = cmp.failing(fail_on)
    print_line(console, f"{cmp.headline()}; threshold {cmp.threshold * 100:g}%, {cmp.levels()}; "
                        f"gate (--fail-on {fail_on}): " + (f"FAIL ({len(failing)} case(s))" if failing else "pass"),
               style="bold red" if failing else "bold green")


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` atomically (pfdeploy.outputs: temp file + rename, umask mode,
    one-line errors)."""
    from ..outputs import atomic_write_text

    atomic_write_text(path, text, "--markdown")


def append_step_summary(markdown: str, env: dict | None = None) -> Path | None:
    """Append to $GITHUB_STEP_SUMMARY when set (GitHub Actions' job summary). Returns the path."""
    target = (env if env is not None else os.environ).get("GITHUB_STEP_SUMMARY")
    if not target:
        return None
    try:
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(markdown + "\n")
    except OSError as exc:
        raise UserError(f"cannot append to GITHUB_STEP_SUMMARY={target}: {exc.strerror}") from None
    return Path(target)


def publish_markdown(markdown: str, markdown_file: str | None) -> None:
    """Where a verdict's Markdown goes: stdout for '-', FILE (atomically) for a path, and always
    $GITHUB_STEP_SUMMARY when it is set (compare and ab)."""
    if markdown_file == "-":
        sys.stdout.write(markdown)
        sys.stdout.flush()
    elif markdown_file:
        write_text_atomic(markdown_file, markdown)
    append_step_summary(markdown)
