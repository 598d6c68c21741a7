"""From run documents (the run-file format of Store.export_run, their rows read as typed results:
pfdeploy.claims.docs) to what the report pages show. Pure functions of their inputs: no store
access, no rendering. Where the rows of one table differ by their runtime setting (variant) or
their fate in `pfdeploy tune`, the table shows those columns (`varying`): no two rows look the same."""
from __future__ import annotations

import json
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from ..claims import PF_FAMILY, RunInfo, best_claims, check_claims, comparisons, results_of
from ..compare import compare_runs
from ..errors import UserError
from ..labels import machine_label, weights_label
from ..labels import num as fmt_num
from ..result import Result


# --------------------------------------------------------------------------------------------
# small formatting helpers (used by templates)
# --------------------------------------------------------------------------------------------

def num(v: Any, digits: int = 2) -> str:
    """The `num` filter of the templates: `pfdeploy.labels.num` with thousands separators."""
    return fmt_num(v, digits, grouped=True)


def millions(v: Any, scale: float = 1e6, digits: int = 2) -> str:
    return num(v / scale, digits) if isinstance(v, (int, float)) and not isinstance(v, bool) else "-"


def pretty_json(v: Any) -> str:
    return json.dumps(v, indent=2, sort_keys=True, default=str)


def when(iso: Any) -> str:
    """'2026-11-27T05:51:48.214739+00:00' -> '2026-11-27 05:51 UTC' (the store keeps UTC)."""
    if not iso:
        return "-"
    text = str(iso)
    if len(text) >= 16 and text[10] == "T":
        return text[:10] + " " + text[11:16] + (" UTC" if text.endswith(("+00:00", "Z")) else "")
    return text


def load(v: Any) -> str:
    """A load average ([1, 5, 15] minutes, or one number) with two decimals."""
    if isinstance(v, (list, tuple)):
        return " / ".join(num(x, 2) if isinstance(x, (int, float)) else str(x) for x in v)
    return num(v, 2) if isinstance(v, (int, float)) else ("-" if v is None else str(v))


def slug(text: str) -> str:
    """File-name-safe form of a run id (ids come from the store; keep them from escaping the
    runs/ folder or clashing)."""
    s = re.sub(r"[^A-Za-z0-9_.-]", "_", str(text))[:80].lstrip(".") or "run"
    if s != str(text):
        import hashlib

        s += "-" + hashlib.sha256(str(text).encode()).hexdigest()[:8]
    return s


def parity_status(parity: Any) -> tuple[str, str, str]:
    """(label, css class, detail) for a result's parity dict (the artifact manifest's, or
    the engine's "reference" record for PyTorch itself). The verdict comes from the exporters'
    own reading (`parity_verdict`); the detail is the worst figure over the parity batches."""
    from ..exporters.artifact import parity_verdict

    if not parity:
        return "-", "na", ""
    if not isinstance(parity, dict):
        return str(parity), "na", ""
    verdict = parity_verdict(parity)
    if verdict == "reference":
        return "reference", "na", str(parity.get("note") or "")
    figures = []
    per_batch = parity.get("per_batch")
    if isinstance(per_batch, dict) and per_batch:
        worst = {"max_abs": max, "max_rel": max, "cosine_min": min, "top1": min}
        for k, pick in worst.items():
            vals = [b.get(k) for b in per_batch.values() if isinstance(b, dict) and isinstance(b.get(k), (int, float))]
            if vals:
                figures.append(f"{k}={pick(vals):.3g}")
    detail = ", ".join(figures[:6])
    label, cls = {"passed": ("pass", "ok"), "failed": ("FAIL", "bad"),
                  "inconclusive": ("inconclusive", "na"), "unverified": ("unverified", "na")}[verdict]
    return label, cls, detail


# --------------------------------------------------------------------------------------------
# rows that differ only by a runtime setting (issue 30 item 5: no table shows two rows that look the same)
# --------------------------------------------------------------------------------------------

def tune_status(r: Result) -> str:
    """A result's fate in `pfdeploy tune` ('-' outside a tune run)."""
    return (r.tune.status if r.tune is not None else None) or "-"


@dataclass(frozen=True)
class Shows:
    """The columns a table shows only where they tell its rows apart: the variant (the named
    runtime setting) and the tune's status."""

    variant: bool = False
    tune: bool = False


def varying(rows: Sequence[Result]) -> Shows:
    """Which of those columns vary among `rows`."""
    return Shows(variant=len({r.variant or "" for r in rows}) > 1, tune=len({tune_status(r) for r in rows}) > 1)


# --------------------------------------------------------------------------------------------
# overview
# --------------------------------------------------------------------------------------------

def config_label(r: Result) -> str:
    return f"{r.precision} · batch {r.batch} · {r.threads} threads · {r.scenario}"


def _config_key(r: Result) -> tuple:
    return tuple(str(x) for x in (r.precision, r.batch, r.threads, r.scenario))


def overview_sections(docs: Sequence[dict]) -> list[dict]:
    """One section per (machine id, device): the latest run with results on that device.
    `docs` newest first."""
    from .svg import bar_chart

    latest: "OrderedDict[tuple, dict]" = OrderedDict()
    for doc in docs:
        mid = RunInfo.of(doc).machine_id
        for r in results_of(doc):
            latest.setdefault((mid, str(r.device or "?")), doc)
    sections = []
    for (mid, device), doc in sorted(latest.items()):
        run = doc.get("run") or {}
        rows = [r for r in results_of(doc) if str(r.device or "?") == device]
        configs: "OrderedDict[tuple, list]" = OrderedDict()
        for r in rows:
            configs.setdefault(_config_key(r), []).append(r)
        blocks = [_overview_block(crows, bar_chart) for crows in configs.values()]
        sections.append({"machine_id": mid, "machine": machine_label(run), "device": device,
                         "run": run, "blocks": blocks, "counts": _status_counts(rows)})
    return sections


def _status_counts(rows: Iterable[Result]) -> dict:
    out: dict[str, int] = {}
    for r in rows:
        out[str(r.status)] = out.get(str(r.status), 0) + 1
    return out


def _model_order(rows: Sequence[Result]) -> list[str]:
    pf = sorted({str(r.model) for r in rows if r.family == PF_FAMILY})
    other = sorted({str(r.model) for r in rows if r.family != PF_FAMILY})
    return pf + [m for m in other if m not in pf]


def _overview_block(rows: list[Result], bar_chart) -> dict:
    models = _model_order(rows)
    shows = varying(rows)

    def series(r: Result) -> str:  # a bar: the backend, and its runtime setting where settings differ
        return str(r.backend) + (f" · {r.variant or 'default'}" if shows.variant else "")

    backends = sorted({series(r) for r in rows})
    pf_models = sorted({str(r.model) for r in rows if r.family == PF_FAMILY})
    by = {(str(r.model), series(r)): r for r in rows}
    values = {}
    for (m, b), r in by.items():
        if r.ok and r.p50_ms is not None:
            p50, lo, hi = r.ci
            tip = f"{m} · {b}: p50 {num(p50, 3)} ms, 95% CI [{num(lo, 3)}, {num(hi, 3)}], n={r.n}"
            values[(m, b)] = (float(p50), lo, hi, tip)
    chart = bar_chart(models, backends, values, title=f"p50 latency, {config_label(rows[0])}",
                      bold_groups=pf_models)
    # each parameter-free model against the baselines its spec names (pfdeploy.claims)
    comps: dict[tuple, Any] = {}
    baseline_models: dict[str, None] = {}
    for c in comparisons(rows):
        if c.ratio is not None:
            comps[(str(c.model), series(c.model_result), str(c.baseline))] = c
            baseline_models.setdefault(str(c.baseline), None)
    table = []
    for m in models:
        for b in backends:
            r = by.get((m, b))
            if r is None:
                continue
            label, cls, detail = parity_status(r.parity)
            table.append({"row": r, "model": m, "backend": str(r.backend), "is_pf": m in pf_models,
                          "variant": r.variant or "default", "tune": tune_status(r),
                          "speedups": {base: comps[(m, b, base)] for base in baseline_models
                                       if (m, b, base) in comps},
                          "parity": label, "parity_class": cls, "parity_detail": detail,
                          "weights_label": weights_label(r.weights)})
    return {"label": config_label(rows[0]), "chart": chart, "table": table, "baselines": list(baseline_models),
            "has_bars": bool(values), "shows": shows,
            # top-1/top-5 beside the latency when some row carries accuracy measured for its artifact
            "has_accuracy": any(r.accuracy is not None for r in rows)}


# --------------------------------------------------------------------------------------------
# the paper's claims (the overview leads with them)
# --------------------------------------------------------------------------------------------

def claims_sections(docs: Sequence[dict]) -> dict:
    """`check_claims` of every run, grouped per (machine id, device) for the overview: each
    section lists the measured verdicts (`ClaimVerdict`s) and the claims it never measured."""
    data = check_claims(docs)
    grouped: "OrderedDict[tuple, list]" = OrderedDict()
    for v in data.verdicts:
        grouped.setdefault((v.machine_id, str(v.device)), []).append(v)
    sections = []
    for (mid, device), vs in grouped.items():
        measured = [v for v in vs if v.verdict != "not measured"]
        seen = {v.claim for v in measured}
        sections.append({"machine_id": mid, "machine": data.machines.get(mid, mid), "device": device,
                         "verdicts": measured, "not_measured": [c for c in data.claims if c.id not in seen]})
    return {"sections": sections, "claims": data.claims, "rule": data.rule, "json": data.to_dict()}


# --------------------------------------------------------------------------------------------
# each model at its best deployment (the newest `pfdeploy tune` final run of each machine)
# --------------------------------------------------------------------------------------------

def best_sections(docs: Sequence[dict]) -> dict | None:
    """`best_claims` of the runs (the same comparisons as `pfdeploy claims --at best`), grouped
    per (machine id, device, scenario, parameter-free model) for the overview; None when no run
    is a `pfdeploy tune` final run (the report then has no such section)."""
    data = best_claims(docs)
    if not data.runs:
        return None
    runs = {r.id: r for r in data.runs}
    grouped: "OrderedDict[tuple, list]" = OrderedDict()
    for c in data.comparisons:
        grouped.setdefault((c.machine_id, c.run_id, str(c.device), str(c.scenario), str(c.model)), []).append(c)
    sections = []
    for (mid, rid, device, scenario, model), cs in grouped.items():
        missing = sorted({c.baseline for c in cs if c.overall and c.verdict == "not measured"})
        sections.append({"machine_id": mid, "machine": data.machines.get(mid, mid), "device": device,
                         "scenario": scenario, "model": model, "run": runs.get(rid) or RunInfo(id=rid),
                         "rows": [c for c in cs if c.verdict != "not measured"], "not_tuned": missing})
    return {"sections": sections, "rule": data.rule, "orientation": data.orientation, "json": data.to_dict()}


# --------------------------------------------------------------------------------------------
# history
# --------------------------------------------------------------------------------------------

FILTERS = ("machine", "device", "backend", "model", "precision")


def history_cases(docs_oldest_first: Sequence[dict], threshold: float = 0.05) -> list[dict]:
    """One entry per (machine id, case key) with its points over runs, oldest first. `docs`: run
    documents as run files give them (pfdeploy.compare judges each run against the previous)."""
    from .svg import history_chart

    verdicts = run_verdicts(docs_oldest_first, threshold)
    series: "OrderedDict[tuple, list]" = OrderedDict()
    for doc in docs_oldest_first:
        run = doc.get("run") or {}
        mid = RunInfo.of(doc).machine_id
        for r in results_of(doc):
            if r.status == "skipped":
                continue
            series.setdefault((mid, r.case_key), []).append((run, r))
    cases = []
    ordered = sorted(series.items(), key=lambda kv: (kv[0][0], _sort_key(kv[1][-1][1])))
    for i, ((mid, key), items) in enumerate(ordered):
        points = []
        for run, r in items:
            info = RunInfo.of({"run": run})
            mark = verdicts.get((str(info.id), key))
            mark = mark if mark in ("regression", "improvement") else None
            capacity = r.capacity if r.ok else None
            ok = r.ok and (r.p50_ms is not None if r.scenario != "capacity" else capacity is not None)
            # a capacity run's point is its capacity (higher is better) with the search's bracket
            p50, lo, hi = capacity if capacity is not None else r.ci
            what, unit = ("capacity", "QPS") if r.scenario == "capacity" else ("p50", "ms")
            commit = (info.git_commit or "")[:8]
            when_ = when(info.started)
            label = commit or when_[5:16] or str(info.id)[:8]
            if ok:
                tip = (f"{when_} · commit {commit or '-'} · tag {info.tag or '-'}: {what} "
                       f"{num(p50, 3)} {unit} [{num(lo, 3)}, {num(hi, 3)}]" + (f" · {mark}" if mark else ""))
            else:
                tip = f"{when_} · commit {commit or '-'}: failed: {r.error or ''}"[:400]
            points.append({"label": label, "value": float(p50) if ok else None, "low": lo if ok else None,
                           "high": hi if ok else None, "marker": mark if ok else "failed", "tip": tip,
                           "run": run, "row": r})
        last = items[-1][1]
        meta = {"machine": mid, "device": str(last.device), "backend": str(last.backend),
                "model": str(last.model), "precision": str(last.precision)}
        title = (f"{last.model} · {last.backend} · {last.device} · {last.precision} · batch {last.batch} · "
                 f"{last.threads} threads · {last.scenario}" + (f" · {last.variant}" if last.variant else ""))
        cases.append({"id": f"case-{i}", "key": key, "title": title, "meta": meta,
                      "machine_label": machine_label(items[-1][0]), "points": points,
                      "chart": (history_chart(points, title=title + " · higher is better", unit="QPS", measure="capacity")
                                if last.scenario == "capacity" else history_chart(points, title=title)),
                      "regressions": sum(1 for p in points if p["marker"] == "regression"),
                      "improvements": sum(1 for p in points if p["marker"] == "improvement")})
    return cases


HISTORY_WINDOW = 5  # a history point is judged against the pooled previous runs, at most this many


def run_verdicts(docs_oldest_first: Sequence[dict], threshold: float = 0.05,
                 window: int = HISTORY_WINDOW) -> dict[tuple[str, str], str]:
    """{(run id, case key): verdict} of `pfdeploy compare --base-window` for every run: the base is
    the pooled previous `window` runs on the same machine (pfdeploy.compare.window, each run's
    worker processes counted as processes of the base), so a marker needs a change against the
    recent history, not against one unlucky neighbour; same statistics and family-wise levels as
    the CI gate. `window=1`: the run before it alone."""
    from ..compare.window import pool_runs

    out: dict[tuple[str, str], str] = {}
    previous: dict[str, list[dict]] = {}
    for doc in docs_oldest_first:
        if not any(r.ok for r in results_of(doc)):
            continue  # a run still running, or stopped before its first case: listed, never judged
        info = RunInfo.of(doc)
        mid = info.machine_id if info.machine_id != "unknown" else ""
        prevs = previous.get(mid)
        if mid and prevs:
            recent = list(reversed(prevs[-max(1, window):]))  # newest first
            try:
                base = recent[0] if len(recent) == 1 else pool_runs(recent, "history")
                cases = compare_runs(base, doc, threshold=threshold).cases
            except UserError:  # a run compare refuses (damaged, nothing comparable): no markers for it
                cases = []
            for c in cases:
                out[(str(info.id), c.case_key)] = c.verdict
        if mid:
            previous.setdefault(mid, []).append(doc)
    return out


def _sort_key(r: Result) -> tuple:
    return tuple(str(x) for x in (r.device, r.model, r.backend, r.precision, r.batch, r.threads, r.scenario,
                                  r.variant or ""))


def filter_index(cases: Sequence[dict]) -> dict:
    """The JSON the history page's filters read (embedded in a <script> element)."""
    return {"filters": list(FILTERS), "cases": [{"id": c["id"], **c["meta"]} for c in cases]}


def run_summary(doc: dict) -> dict:
    rows = results_of(doc)
    manifests = [{"row": r, "json": pretty_json(r.artifact or {})} for r in rows if r.artifact or r.artifact_sha256]
    from ..digest import summarize_warnings

    comps = comparisons(rows)
    return {"counts": _status_counts(rows), "failures": [r for r in rows if r.status == "failed"],
            "skipped": [r for r in rows if r.status == "skipped"], "manifests": manifests,
            "rows": sorted(rows, key=_sort_key), "comparisons": comps, "shows": varying(rows),
            "comparison_variants": len({c.variant or "" for c in comps}) > 1,
            # one line per kind of warning (the same lines `pfdeploy results` prints), details below
            "warning_kinds": summarize_warnings(rows),
            "ab": ab_rows(rows)}


def ab_rows(rows: Sequence[Result]) -> list[dict]:
    """The A/B verdicts of a run's results (`pfdeploy ab`): per case, its side, the verdict with
    head / base and its interval, the detectable change and every block's ratio."""
    out = []
    for r in sorted((r for r in rows if r.ab is not None), key=_sort_key):
        a = r.ab
        out.append({"label": f"{r.model} · {r.backend} · {r.precision} · b{r.batch}", "side": a.side,
                    "verdict": a.verdict or "-", "ratio": a.ratio, "ci_low": a.ci_low, "ci_high": a.ci_high,
                    "detectable": a.detectable, "blocks": len(a.block_ratios), "blocks_needed": a.blocks_needed,
                    "block_ratios": [None if v is None else round(v, 4) for v in a.block_ratios],
                    "other_run_id": a.other_run_id, "threshold": a.threshold, "alpha": a.alpha})
    return out


def ab_mark(rows: Sequence[Result]) -> dict | None:
    """How the runs list marks a run of `pfdeploy ab`: its side and the other side's run."""
    for r in rows:
        if r.ab is not None:
            return {"side": r.ab.side, "other_run_id": r.ab.other_run_id}
    return None
