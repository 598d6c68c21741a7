"""Warnings and unmeasured cases of a run, summarised for people: one line per kind, naming the
cases by short labels (only the fields that vary in the run), with the advice that applies; the
per-case details stay in the data (`--json`, the run file, the report).

Works on result rows as the engine and the store produce them (model, backend, precision,
batch, device, threads, scenario, case_key, status, error, warnings). Standard library only.
"""
from __future__ import annotations

import re
from typing import Iterable, Sequence

# fields that can tell the cases of one run apart, in the order a label names them
_LABEL_FIELDS = ("model", "backend", "precision", "batch", "device", "threads", "scenario", "weights")
_NOISY = re.compile(r"^noisy: coefficient of variation (?P<cv>[\d.]+)% > (?P<limit>[\d.]+)%")
_MAX_TIME = re.compile(r"^stopped at max-time \((?P<max>[\d.eE+-]+) s measured\) before the median's CI "
                       r"reached \+-(?P<target>[\d.]+)%")


def _part(field: str, value) -> str:
    if field == "batch":
        return f"b{value}"
    if field == "threads":
        return f"{value} threads"
    return str(value)


def varying_fields(rows: Sequence[dict]) -> list[str]:
    """The label fields whose value differs between `rows` (model and backend always)."""
    out = []
    for f in _LABEL_FIELDS:
        if f in ("model", "backend") or len({str(r.get(f)) for r in rows}) > 1:
            out.append(f)
    return out


def short_label(row: dict, fields: Sequence[str]) -> str:
    """'pf_resnet50_hybrid/openvino' (+ '/fp16/b8' where precision and batch vary in the run)."""
    return "/".join(_part(f, row.get(f)) for f in fields)


def group_labels(rows: Iterable[dict], fields: Sequence[str]) -> str:
    """Cases named compactly, model by model: 'pf_resnet50_max (torch, openvino), resnet50 (torch)'."""
    by_model: dict[str, list[str]] = {}
    rest = [f for f in fields if f != "model"]
    for r in rows:
        by_model.setdefault(str(r.get("model")), []).append(" ".join(_part(f, r.get(f)) for f in rest))
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


def summarize_warnings(rows: Sequence[dict]) -> list[dict]:
    """One entry per kind of warning: {kind, count, of, text, advice, cases, details}.

    `text` is the line a person reads; `details` keeps every (case key, label, message). Kinds:
    `noisy` (CV above the limit), `max_time` (stopped unconverged), and one kind per distinct
    message for everything else (thread settings, flush-to-zero, ...).
    """
    fields = varying_fields(rows)
    measured = [r for r in rows if r.get("status") == "ok"]
    groups: dict[str, dict] = {}
    order: list[str] = []
    for r in rows:
        for msg in r.get("warnings") or []:
            msg = str(msg)
            m_noisy, m_max = _NOISY.match(msg), _MAX_TIME.match(msg)
            if m_noisy:
                kind, extra = "noisy", {"limit": m_noisy["limit"]}
            elif m_max:
                kind, extra = "max_time", {"max": m_max["max"], "target": m_max["target"]}
            else:
                kind, extra = f"other:{msg}", {"message": msg}
            if kind not in groups:
                groups[kind] = {"kind": kind.split(":", 1)[0], "rows": [], "details": [], "extra": {}}
                order.append(kind)
            g = groups[kind]
            if not g["rows"] or g["rows"][-1] is not r:
                g["rows"].append(r)
            g["details"].append({"case": r.get("case_key"), "label": short_label(r, fields), "message": msg})
            for k, v in extra.items():
                g["extra"].setdefault(k, set()).add(v)
    out = []
    for key in order:
        g = groups[key]
        n = len(g["rows"])
        labels = group_labels(g["rows"], fields)
        extra = {k: ", ".join(sorted(v)) for k, v in g["extra"].items()}
        if g["kind"] == "noisy":
            of = len(measured) or len(rows)
            text = f"{_count(n, of)} noisy (CV > {extra['limit']}%){_names(n, of, labels)}"
            advice = "rerun on a quieter machine or raise --min-time"
        elif g["kind"] == "max_time":
            of = len(measured) or len(rows)
            text = (f"{_count(n, of)} stopped at --max-time ({extra['max']} s) before the "
                    f"median's CI reached +-{extra['target']}%{_names(n, of, labels)}")
            advice = "raise --max-time (or --target-ci), or rerun on a quieter machine"
        else:
            of = len(rows)
            text = f"{_count(n, of)}: {extra['message']}{_names(n, of, labels)}"
            advice = None
        out.append({"kind": g["kind"], "count": n, "of": of, "text": text + (f"; {advice}" if advice else ""),
                    "advice": advice, "cases": [short_label(r, fields) for r in g["rows"]],
                    "details": g["details"]})
    return out


def summarize_not_measured(rows: Sequence[dict]) -> list[dict]:
    """Failed and skipped cases grouped by status and reason: {status, reason, count, of, text,
    cases, details}."""
    fields = varying_fields(rows)
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r.get("status") not in (None, "ok"):
            groups.setdefault((r["status"], r.get("error") or "no reason recorded"), []).append(r)
    out = []
    for (status, reason), rs in groups.items():
        text = f"{status}: {_count(len(rs), len(rows))}{_names(len(rs), len(rows), group_labels(rs, fields))}: {reason}"
        out.append({"status": status, "reason": reason, "count": len(rs), "of": len(rows), "text": text,
                    "cases": [short_label(r, fields) for r in rs],
                    "details": [{"case": r.get("case_key"), "label": short_label(r, fields)} for r in rs]})
    return out
