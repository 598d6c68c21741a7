"""Warnings and unmeasured cases of a run, summarised for people: one line per kind of warning
(`Warn.kind`), naming the cases by short labels (only the fields that vary in the run), with the
advice that applies; each case's figures (`Warn.values`) in the wide line and in the data
(`--json`, the run file, the report).

Works on typed results (pfdeploy.result.Result); a plain row (a run file's entry) is read
through `Result.from_row` first.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from .result import Result, Warn

# fields that can tell the cases of one run apart, in the order a label names them
_LABEL_FIELDS = ("model", "backend", "precision", "batch", "device", "threads", "scenario", "weights", "variant")


def _results(rows: Iterable) -> list[Result]:
    return [Result.from_row(r, warn=lambda *_: None) for r in rows]


def _part(name: str, value) -> str:
    if name == "batch":
        return f"b{value}"
    if name == "threads":
        return f"{value} threads"
    return str(value)


def varying_fields(rows: Sequence[Result]) -> list[str]:
    """The label fields whose value differs between `rows` (model and backend always)."""
    rows = _results(rows)
    return [f for f in _LABEL_FIELDS
            if f in ("model", "backend") or len({str(getattr(r, f)) for r in rows}) > 1]


def short_label(row: Result, fields: Sequence[str]) -> str:
    """'pf_resnet50_hybrid/openvino' (+ '/fp16/b8' where precision and batch vary in the run)."""
    return "/".join(_part(f, getattr(row, f)) for f in fields)


def group_labels(rows: Iterable[Result], fields: Sequence[str]) -> str:
    """Cases named compactly, model by model: 'pf_resnet50_max (torch, openvino), resnet50 (torch)'."""
    by_model: dict[str, list[str]] = {}
    rest = [f for f in fields if f != "model"]
    for r in rows:
        by_model.setdefault(str(r.model), []).append(" ".join(_part(f, getattr(r, f)) for f in rest))
    return ", ".join(f"{m} ({', '.join(parts)})" if any(parts) else m for m, parts in by_model.items())


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _count(n: int, of: int) -> str:
    """'3 of 15 cases', or 'all 15 cases' / 'the one case'."""
    if n == of:
        return "the one case" if n == 1 else f"all {n} cases"
    return f"{n} of {_plural(of, 'case')}"


def _names(n: int, of: int, labels: str) -> str:
    return "" if n == of else f": {labels}"


# ------------------------------------------------------------------------------ figures of a warning
def _num(v) -> float | None:
    try:
        return None if v is None else float(v)
    except (TypeError, ValueError):
        return None


def _pct(v, digits: int = 1) -> str:
    """0.128 -> '12.8%' (as the engine writes a warning's figures)."""
    x = _num(v)
    return "?" if x is None else f"{x:.{digits}%}"


_TEXT_FIGURES = (  # rows written before warnings were typed carry their figures in the text only
    re.compile(r"reached \+-(?P<target>[\d.]+)%"),
    re.compile(r"\(it is \+-(?P<ci>[\d.]+)%(; its processes differ by (?P<process_sd>[\d.]+)%)?\)"),
    re.compile(r"^stopped at max-time \((?P<limit>[\d.eE+-]+) s measured\)"),
    re.compile(r"^stopped at (?P<limit>\d+) worker processes"),
    re.compile(r"^noisy: coefficient of variation (?P<cv>[\d.]+)% > (?P<limit>[\d.]+)%"),
    re.compile(r"^(other processes used|the hypervisor gave) (?P<share>\d+)%"),
)
_PERCENT_FIGURES = ("target", "ci", "process_sd", "cv", "share")


@dataclass(frozen=True)
class Figures:
    """The figures of one warning (fractions as fractions); `values` all of them, as the JSON
    carries them."""

    limit: float | int | None = None  # max-time s, worker processes, or the CV limit
    target: float | None = None  # the CI half-width the stopping rule aimed at
    ci: float | None = None  # the CI half-width reached
    process_sd: float | None = None
    cv: float | None = None
    share: float | None = None  # of the machine's CPU (others, steal)
    precision: str | None = None
    values: dict = field(default_factory=dict)


def figures(w: Warn) -> Figures:
    """The figures of a warning: its typed values, and for a warning written before warnings
    were typed (values classified from its text, as strings) the figures its text carries."""
    out: dict = {}
    for rx in _TEXT_FIGURES:
        m = rx.search(w.text)
        for k, v in (m.groupdict() if m else {}).items():
            if v is not None and k not in out:
                pct = k in _PERCENT_FIGURES or (k == "limit" and w.kind == "noisy")
                out[k] = round(float(v) / 100, 6) if pct else (int(v) if v.isdigit() else float(v))
    for k, v in w.values.items():
        if not isinstance(v, str) or k not in out:
            out[k] = v
    known = {k: out[k] for k in ("limit", "target", "ci", "process_sd", "cv", "share", "precision") if k in out}
    return Figures(values=out, **known)


def _range(values: list) -> str:
    """'8' or '8, 20' for the distinct limits of a group."""
    seen = []
    for v in values:
        if v is not None and v not in seen:
            seen.append(v)
    return ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in seen) or "?"


def _most(values: list) -> float | None:
    xs = [x for x in (_num(v) for v in values) if x is not None]
    return max(xs) if xs else None


def _case_figure(kind: str, f: Figures) -> str:
    """One case's figures, for the wide line: 'CV 13.6%', '+-12.8%, processes differ by 4.1%'."""
    if kind == "noisy":
        return f"CV {_pct(f.cv)}" if f.cv is not None else ""
    if kind in ("max_time", "max_processes"):
        parts = [f"+-{_pct(f.ci)}"] if f.ci is not None else []
        if f.process_sd:
            parts.append(f"processes differ by {_pct(f.process_sd)}")
        return ", ".join(parts)
    if kind in ("cpu_contention", "steal"):
        return _pct(f.share, 0) if f.share is not None else ""
    if kind == "parity_failed":
        return str(f.precision or "")
    return ""


# kinds that differ between cases only by their figures: one line each; any other kind's text
# is its content (threads, flush_denormal, oversubscribed, other, a plugin's): one line per text
TEMPLATED = ("noisy", "max_time", "max_processes", "cpu_contention", "steal", "parity_failed")


def _headline(kind: str, figs: list[Figures]) -> tuple[str, str | None]:
    """The line of a templated kind (the part after the count) and its advice."""
    if kind == "noisy":
        return (f" noisy (CV > {_pct(_most([f.limit for f in figs]), 0)})",
                "rerun on a quieter machine or raise --min-time")
    target = _pct(_most([f.target for f in figs]))
    if kind == "max_time":
        return (f" stopped at --max-time ({_range([f.limit for f in figs])} s) before the median's CI "
                f"reached +-{target}", "raise --max-time (or --target-ci), or rerun on a quieter machine")
    if kind == "max_processes":
        return (f" stopped at --max-processes ({_range([f.limit for f in figs])} worker processes) before "
                f"the median's CI reached +-{target}",
                "raise --max-processes (or --target-ci), or rerun on a quieter machine")
    if kind == "cpu_contention":
        return (f": other processes used up to {_pct(_most([f.share for f in figs]), 0)} of the machine's CPU "
                "while measured: the figures include their interference", "rerun on an idle machine")
    if kind == "steal":
        return (f": the hypervisor gave up to {_pct(_most([f.share for f in figs]), 0)} of this VM's CPU time "
                "to other guests while measured (steal)", "rerun on a dedicated host")
    return ": timed although their parity check FAILED: their outputs are not what PyTorch computes", None


@dataclass(frozen=True)
class CaseWarning:
    """One case's warning in a group: its case key, short label, text and figures."""

    case: str
    label: str
    message: str
    values: dict = field(default_factory=dict)
    figure: str = ""  # the figures as the wide line shows them

    def to_dict(self) -> dict:
        return {"case": self.case, "label": self.label, "message": self.message, "values": self.values}


@dataclass(frozen=True)
class WarningGroup:
    """One kind of warning over the cases that carry it: `text` the line a person reads (cases
    named), `wide_text` the same with each case's figures, `details` every case's own warning."""

    kind: str
    count: int
    of: int
    text: str
    wide_text: str
    advice: str | None
    cases: list[str]
    details: list[CaseWarning]

    def to_dict(self) -> dict:
        return {"kind": self.kind, "count": self.count, "of": self.of, "text": self.text, "advice": self.advice,
                "cases": list(self.cases), "details": [d.to_dict() for d in self.details]}


def summarize_warnings(rows: Sequence[Result]) -> list[WarningGroup]:
    """One group per kind of warning (`Warn.kind`), in the order the kinds first appear. Kinds
    that only differ by their figures (noisy, max_time, max_processes, cpu_contention, steal,
    parity_failed) are one line each; a kind whose text is its content (threads, flush_denormal,
    oversubscribed, other, a plugin's) is one line per distinct text."""
    rows = _results(rows)
    fields = varying_fields(rows)
    measured = sum(1 for r in rows if r.ok) or len(rows)
    groups: dict[tuple, list[tuple[Result, Warn]]] = {}
    for r in rows:
        for w in r.warnings:
            key = (w.kind,) if w.kind in TEMPLATED else (w.kind, w.text)
            groups.setdefault(key, []).append((r, w))
    out = []
    for key, items in groups.items():
        kind = key[0]
        cases: list[Result] = []
        for r, _ in items:
            if not cases or cases[-1] is not r:
                cases.append(r)
        figs = [figures(w) for _, w in items]
        details = [CaseWarning(r.case_key, short_label(r, fields), w.text, f.values, _case_figure(kind, f))
                   for (r, w), f in zip(items, figs)]
        n = len(cases)
        if kind in TEMPLATED:
            of = measured
            line, advice = _headline(kind, figs)
            lead = f"{_count(n, of)}{line}"
        else:
            of, advice = len(rows), None
            lead = f"{_count(n, of)}: {key[1]}"
        tail = f"; {advice}" if advice else ""
        named = ", ".join(f"{d.label} ({d.figure})" if d.figure else d.label for d in details)
        out.append(WarningGroup(
            kind=kind, count=n, of=of, text=lead + _names(n, of, group_labels(cases, fields)) + tail,
            wide_text=lead + (f": {named}" if any(d.figure for d in details) or n != of else "") + tail,
            advice=advice, cases=[short_label(r, fields) for r in cases], details=details))
    return out


@dataclass(frozen=True)
class NotMeasured:
    """Failed or skipped cases of one status and reason."""

    status: str
    reason: str
    count: int
    of: int
    text: str
    cases: list[str]
    details: list[dict]  # {case, label}

    def to_dict(self) -> dict:
        return {"status": self.status, "reason": self.reason, "count": self.count, "of": self.of, "text": self.text,
                "cases": list(self.cases), "details": [dict(d) for d in self.details]}


def summarize_not_measured(rows: Sequence[Result]) -> list[NotMeasured]:
    """Failed and skipped cases grouped by status and reason."""
    rows = _results(rows)
    fields = varying_fields(rows)
    groups: dict[tuple, list[Result]] = {}
    for r in rows:
        if not r.ok:
            groups.setdefault((r.status, r.error or "no reason recorded"), []).append(r)
    out = []
    for (status, reason), rs in groups.items():
        text = f"{status}: {_count(len(rs), len(rows))}{_names(len(rs), len(rows), group_labels(rs, fields))}: {reason}"
        out.append(NotMeasured(status, reason, len(rs), len(rows), text, [short_label(r, fields) for r in rs],
                               [{"case": r.case_key, "label": short_label(r, fields)} for r in rs]))
    return out
