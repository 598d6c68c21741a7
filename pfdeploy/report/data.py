"""From run documents (the run-file format of Store.export_run) to what the report pages show.
Pure functions of their inputs: no store access, no rendering."""
from __future__ import annotations

import json
import re
from collections import OrderedDict
from typing import Any, Iterable, Sequence

from ..claims import best_claims, check_claims, comparisons, deployment_text
from ..labels import machine_label, ratio_text, weights_label
from ..labels import num as fmt_num
from ..compare import case_key, compare_runs
from ..zoo.spec import PF_FAMILY


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
# overview
# --------------------------------------------------------------------------------------------

def _family_of(row: dict) -> str:
    return str(row.get("family") or "")


def _speedup(comp: dict) -> dict:
    """A comparison of pfdeploy.claims (baseline p50 / PF p50, > 1: the parameter-free model is
    faster; `bench.stats.speedup`) as the overview's cell."""
    how = (f"paired rounds ({comp['rounds']})" if comp.get("paired")
           else "ratio of medians (unpaired: no shared rounds)")
    return {"value": comp.get("ratio"), "low": comp.get("ci_low"), "high": comp.get("ci_high"), "how": how,
            "paired": bool(comp.get("paired")), "verdict": comp.get("verdict"), "slower": comp.get("slower")}


def config_label(row: dict) -> str:
    return (f"{row.get('precision')} · batch {row.get('batch')} · {row.get('threads')} threads · "
            f"{row.get('scenario')}")


def _config_key(row: dict) -> tuple:
    return tuple(str(row.get(k)) for k in ("precision", "batch", "threads", "scenario"))


def overview_sections(docs: Sequence[dict]) -> list[dict]:
    """One section per (machine id, device): the latest run with results on that device.
    `docs` newest first."""
    from .svg import bar_chart

    latest: "OrderedDict[tuple, dict]" = OrderedDict()
    for doc in docs:
        run = doc.get("run") or {}
        for row in doc.get("results") or []:
            key = (str(run.get("machine_id") or "unknown"), str(row.get("device") or "?"))
            if key not in latest:
                latest[key] = doc
    sections = []
    for (mid, device), doc in sorted(latest.items()):
        run = doc.get("run") or {}
        rows = [r for r in doc.get("results") or [] if str(r.get("device") or "?") == device]
        configs: "OrderedDict[tuple, list]" = OrderedDict()
        for r in rows:
            configs.setdefault(_config_key(r), []).append(r)
        blocks = []
        for cfg, crows in configs.items():
            blocks.append(_overview_block(crows, bar_chart))
        sections.append({"machine_id": mid, "machine": machine_label(run), "device": device,
                         "run": run, "blocks": blocks,
                         "counts": _status_counts(rows)})
    return sections


def _status_counts(rows: Iterable[dict]) -> dict:
    out: dict[str, int] = {}
    for r in rows:
        out[str(r.get("status"))] = out.get(str(r.get("status")), 0) + 1
    return out


def _model_order(rows: Sequence[dict]) -> list[str]:
    pf = sorted({str(r.get("model")) for r in rows if _family_of(r) == PF_FAMILY})
    other = sorted({str(r.get("model")) for r in rows if _family_of(r) != PF_FAMILY})
    return pf + [m for m in other if m not in pf]


def _overview_block(rows: list[dict], bar_chart) -> dict:
    models = _model_order(rows)
    backends = sorted({str(r.get("backend")) for r in rows})
    pf_models = [m for m in models if any(_family_of(r) == PF_FAMILY and str(r.get("model")) == m for r in rows)]
    by = {(str(r.get("model")), str(r.get("backend"))): r for r in rows}
    values = {}
    for (m, b), r in by.items():
        if r.get("status") == "ok" and isinstance(r.get("p50_ms"), (int, float)):
            lo, hi = r.get("p50_ci_low_ms"), r.get("p50_ci_high_ms")
            tip = (f"{m} · {b}: p50 {num(r.get('p50_ms'), 3)} ms, 95% CI [{num(lo, 3)}, {num(hi, 3)}], "
                   f"n={r.get('n')}")
            values[(m, b)] = (float(r["p50_ms"]), lo, hi, tip)
    chart = bar_chart(models, backends, values, title=f"p50 latency, {config_label(rows[0])}",
                      bold_groups=pf_models)
    # each parameter-free model against the baselines its spec names (pfdeploy.claims)
    comps: dict[tuple, dict] = {}
    baseline_models: dict[str, None] = {}
    for c in comparisons(rows):
        if c["ratio"] is not None:
            comps[(str(c["model"]), str(c["backend"]), str(c["baseline"]))] = _speedup(c)
            baseline_models.setdefault(str(c["baseline"]), None)
    table = []
    for m in models:
        for b in backends:
            r = by.get((m, b))
            if r is None:
                continue
            is_pf = m in pf_models
            speedups = {base: comps[(m, b, base)] for base in baseline_models if (m, b, base) in comps}
            label, cls, detail = parity_status(r.get("parity"))
            table.append({"row": r, "model": m, "backend": b, "is_pf": is_pf, "speedups": speedups,
                          "parity": label, "parity_class": cls, "parity_detail": detail,
                          "weights_label": weights_label(r.get("weights"))})
    return {"label": config_label(rows[0]), "chart": chart, "table": table, "baselines": list(baseline_models),
            "has_bars": bool(values),
            # top-1/top-5 beside the latency when some row carries accuracy measured for its artifact
            "has_accuracy": any(isinstance(r.get("accuracy"), dict) for r in rows)}


# --------------------------------------------------------------------------------------------
# the paper's claims (the overview leads with them)
# --------------------------------------------------------------------------------------------

def claims_sections(docs: Sequence[dict]) -> dict:
    """`check_claims` of every run, grouped per (machine id, device) for the overview: each
    section lists the measured verdicts and the claims it never measured."""
    data = check_claims(docs)
    claims = {c["id"]: c for c in data["claims"]}
    grouped: "OrderedDict[tuple, list]" = OrderedDict()
    for v in data["verdicts"]:
        grouped.setdefault((v["machine_id"], str(v["device"])), []).append(v)
    sections = []
    for (mid, device), vs in grouped.items():
        measured = [dict(v, text=ratio_text(v), claim_info=claims[v["claim"]]) for v in vs
                    if v["verdict"] != "not measured"]
        seen = {v["claim"] for v in measured}
        missing = [c for cid, c in claims.items() if cid not in seen]
        sections.append({"machine_id": mid, "machine": data["machines"].get(mid, mid), "device": device,
                         "verdicts": measured, "not_measured": missing})
    return {"sections": sections, "claims": data["claims"], "rule": data["rule"], "json": data}


# --------------------------------------------------------------------------------------------
# each model at its best deployment (the newest `pfdeploy tune` final run of each machine)
# --------------------------------------------------------------------------------------------

def best_sections(docs: Sequence[dict]) -> dict | None:
    """`best_claims` of the runs (the same comparisons as `pfdeploy claims --at best`), grouped
    per (machine id, device, scenario, parameter-free model) for the overview; None when no run
    is a `pfdeploy tune` final run (the report then has no such section)."""
    data = best_claims(docs)
    if not data["runs"]:
        return None
    runs = {r["id"]: r for r in data["runs"]}
    grouped: "OrderedDict[tuple, list]" = OrderedDict()
    for c in data["comparisons"]:
        grouped.setdefault((c["machine_id"], c["run_id"], str(c["device"]), str(c["scenario"]), str(c["model"])),
                           []).append(c)
    sections = []
    for (mid, rid, device, scenario, model), cs in grouped.items():
        rows = []
        for c in cs:
            if c["verdict"] == "not measured":
                continue
            overall = c["kind"] == "overall"
            rows.append(dict(c, text=ratio_text(c), overall=overall,
                             model_at=deployment_text(c["model_deployment"], with_backend=overall),
                             baseline_at=deployment_text(c["baseline_deployment"], with_backend=overall)))
        missing = sorted({c["baseline"] for c in cs if c["kind"] == "overall" and c["verdict"] == "not measured"})
        sections.append({"machine_id": mid, "machine": data["machines"].get(mid, mid), "device": device,
                         "scenario": scenario, "model": model, "run": runs.get(rid) or {"id": rid},
                         "rows": rows, "not_tuned": missing})
    return {"sections": sections, "rule": data["rule"], "orientation": data["orientation"], "json": data}


# --------------------------------------------------------------------------------------------
# history
# --------------------------------------------------------------------------------------------

FILTERS = ("machine", "device", "backend", "model", "precision")


def history_cases(docs_oldest_first: Sequence[dict], threshold: float = 0.05) -> list[dict]:
    """One entry per (machine id, case key) with its points over runs, oldest first."""
    from .svg import history_chart

    verdicts = run_verdicts(docs_oldest_first, threshold)
    series: "OrderedDict[tuple, list]" = OrderedDict()
    for doc in docs_oldest_first:
        run = doc.get("run") or {}
        for row in doc.get("results") or []:
            if row.get("status") == "skipped":
                continue
            series.setdefault((str(run.get("machine_id") or "unknown"), case_key(row)), []).append((run, row))
    cases = []
    for i, ((mid, key), items) in enumerate(sorted(series.items(), key=lambda kv: (kv[0][0], _sort_key(kv[1][-1][1])))):
        rows = [r for _, r in items]
        points = []
        for run, row in items:
            mark = verdicts.get((str(run.get("id")), key))
            mark = mark if mark in ("regression", "improvement") else None
            ok = row.get("status") == "ok" and isinstance(row.get("p50_ms"), (int, float))
            commit = (run.get("git_commit") or "")[:8]
            when_ = when(run.get("started_at"))
            label = commit or when_[5:16] or str(run.get("id"))[:8]
            if ok:
                tip = (f"{when_} · commit {commit or '-'} · tag {run.get('tag') or '-'}: p50 "
                       f"{num(row.get('p50_ms'), 3)} ms [{num(row.get('p50_ci_low_ms'), 3)}, "
                       f"{num(row.get('p50_ci_high_ms'), 3)}]" + (f" · {mark}" if mark else ""))
            else:
                tip = f"{when_} · commit {commit or '-'}: failed: {row.get('error') or ''}"[:400]
            points.append({"label": label, "value": float(row["p50_ms"]) if ok else None,
                           "low": row.get("p50_ci_low_ms") if ok else None,
                           "high": row.get("p50_ci_high_ms") if ok else None,
                           "marker": mark if ok else "failed", "tip": tip, "run": run, "row": row})
        last = rows[-1]
        meta = {"machine": mid, "device": str(last.get("device")), "backend": str(last.get("backend")),
                "model": str(last.get("model")), "precision": str(last.get("precision"))}
        title = (f"{last.get('model')} · {last.get('backend')} · {last.get('device')} · {last.get('precision')} · "
                 f"batch {last.get('batch')} · {last.get('threads')} threads · {last.get('scenario')}")
        cases.append({"id": f"case-{i}", "key": key, "title": title, "meta": meta,
                      "machine_label": machine_label(items[-1][0]), "points": points,
                      "chart": history_chart(points, title=title),
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
        run = doc.get("run") or {}
        mid = str(run.get("machine_id") or "")
        prevs = previous.get(mid)
        if mid and prevs:
            recent = list(reversed(prevs[-max(1, window):]))  # newest first
            base = recent[0] if len(recent) == 1 else pool_runs(recent, "history")
            for c in compare_runs(base, doc, threshold=threshold).cases:
                out[(str(run.get("id")), c.case_key)] = c.verdict
        if mid:
            previous.setdefault(mid, []).append(doc)
    return out


def _sort_key(row: dict) -> tuple:
    return tuple(str(row.get(k)) for k in ("device", "model", "backend", "precision", "batch", "threads", "scenario"))


def filter_index(cases: Sequence[dict]) -> dict:
    """The JSON the history page's filters read (embedded in a <script> element)."""
    return {"filters": list(FILTERS), "cases": [{"id": c["id"], **c["meta"]} for c in cases]}


def run_summary(doc: dict) -> dict:
    rows = doc.get("results") or []
    failures = [r for r in rows if r.get("status") == "failed"]
    skipped = [r for r in rows if r.get("status") == "skipped"]
    manifests = []
    for r in rows:
        if r.get("artifact") or r.get("artifact_sha256"):
            manifests.append({"row": r, "json": pretty_json(r.get("artifact") or {})})
    from ..digest import summarize_warnings

    comps = [dict(c, text=ratio_text(c)) for c in comparisons(rows)]
    return {"counts": _status_counts(rows), "failures": failures, "skipped": skipped,
            "manifests": manifests, "rows": sorted(rows, key=_sort_key), "comparisons": comps,
            # one line per kind of warning (the same lines `pfdeploy results` prints), details below
            "warning_kinds": summarize_warnings(rows)}
