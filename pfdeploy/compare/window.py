"""A history baseline: the last N runs of a tag on one machine pooled into one BASE document
(docs/compare.md, "A window of runs as the base").

Each pooled run keeps its worker processes: a run measured in P processes contributes P processes,
a run of one process (stored before issue 21, or an imported summary) one. Round ids are offset per
run so that they stay unique, so the hierarchical interval of `bench.stats` resamples the window's
processes, then rounds: a single unlucky baseline run is one process among many, not the base.
"""
from __future__ import annotations

import numpy as np

from ..bench.stats import process_sd, row_procs
from ..errors import UsageError, UserError
from .model import case_key, run_label

ROUND_OFFSET = 10_000_000  # round ids of the i-th pooled run are shifted by i x this
MAX_WINDOW = 100


def pool_runs(docs: list[dict], label: str) -> dict:
    """One run document from several (newest first): per case, the samples of every run where
    the case is ok, with rounds offset per run and each run's processes kept; the newest run's
    metadata, with `window` listing the pooled run ids."""
    if not docs:
        raise UserError(f"no runs to pool for {label}")
    newest = docs[0]
    pooled: dict[str, dict] = {}
    order: list[str] = []
    for i, doc in enumerate(docs):
        for row in doc.get("results") or []:
            key = case_key(row)
            if key not in pooled:
                order.append(key)
            samples = list(row.get("samples_ns") or [])
            if row.get("status") != "ok" or not samples:
                pooled.setdefault(key, {**row, "window_runs": 0})
                continue
            rounds = row.get("sample_rounds")
            if rounds is None or len(rounds) != len(samples):  # no rounds: consecutive blocks
                size = max(1, int(round(len(samples) ** (1 / 3))))
                rounds = list(np.arange(len(samples)) // size)
            off = i * ROUND_OFFSET
            rounds = [int(r) + off for r in rounds]
            if row.get("process_rounds"):
                procs = [[int(r) + off for r in pr] for pr in row["process_rounds"]]
            else:
                procs = [sorted(set(rounds))]
            cur = pooled.get(key)
            if cur is None or cur.get("status") != "ok" or not cur.get("samples_ns"):
                pooled[key] = {**row, "samples_ns": samples, "sample_rounds": rounds, "process_rounds": procs,
                               "device_samples_ns": None, "window_runs": 1}
            else:
                cur["samples_ns"] = cur["samples_ns"] + samples
                cur["sample_rounds"] = cur["sample_rounds"] + rounds
                cur["process_rounds"] = cur["process_rounds"] + procs
                cur["window_runs"] += 1
    for row in pooled.values():
        if row.get("process_rounds"):
            row["processes"] = len(row["process_rounds"])
            row["process_sd"] = process_sd(row["samples_ns"], row_procs(row))
            x = np.asarray(row["samples_ns"], dtype=float)
            row["p50_ms"] = float(np.median(x)) / 1e6
            row["n"] = int(x.size)
    run = {**(newest.get("run") or {}), "window": [str((d.get("run") or {}).get("id")) for d in docs],
           "tag": f"{label} (window of {len(docs)} runs)"}
    return {"format": newest.get("format", "pfdeploy-run"), "version": newest.get("version", 2), "run": run,
            "results": [pooled[k] for k in order]}


def load_window(ref: str, n: int, store, exclude_ids: set[str] | None = None, machine_id: str | None = None) -> dict:
    """BASE as the last `n` finished runs of a tag on one machine: `ref` is a tag (or any run
    reference, whose tag is then used); runs in `exclude_ids` (HEAD) are left out; `machine_id`
    (HEAD's) picks the machine, else the referenced run's."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_WINDOW:
        raise UsageError(f"--base-window must be a whole number from 1 to {MAX_WINDOW}, got {n!r}")
    anchor = store.resolve_run(ref)
    tag = anchor.get("tag")
    if not tag:
        raise UsageError(f"--base-window needs a tag: run {run_label(anchor)} has none (bench with --tag NAME)")
    machine = machine_id or anchor.get("machine_id")
    exclude = set(exclude_ids or ())
    runs = [r for r in store.runs(tag=tag, machine_id=machine, status="finished") if str(r["id"]) not in exclude]
    if not runs:
        raise UserError(f"no finished run tagged {tag!r} on machine {machine} besides HEAD: nothing to pool")
    docs = [store.export_run(r["id"]) for r in runs[:n]]
    doc = pool_runs(docs, tag)
    if len(docs) < n:
        doc["run"]["window_note"] = f"only {len(docs)} of the {n} requested runs exist"
    return doc
