"""A history baseline: the last N runs of a tag on one machine pooled into one BASE document
(docs/compare.md, "A window of runs as the base").

Each pooled run keeps its worker processes: a run measured in P processes contributes P processes,
a run of one process (stored before issue 21, or an imported summary) one. Round ids are offset per
run so that they stay unique, so the hierarchical interval of `bench.stats` resamples the window's
processes, then rounds: a single unlucky baseline run is one process among many, not the base.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..bench.stats import process_sd, row_procs
from ..errors import UsageError, UserError
from ..result import Result
from .model import case_key, run_label
from .runs import typed_rows

ROUND_OFFSET = 10_000_000  # round ids of the i-th pooled run are shifted by i x this
MAX_WINDOW = 100


@dataclass
class _Pooled:
    """One case of the window while it is pooled: the newest ok result (or the newest result at
    all, while no run has it ok) and the samples, rounds and processes of every ok run so far."""

    row: Result
    samples: list[int] = field(default_factory=list)
    rounds: list[int] = field(default_factory=list)
    procs: list[list[int]] = field(default_factory=list)
    runs: int = 0
    capacities: list[tuple] = field(default_factory=list)  # (capacity, low, high) of each capacity run

    def result(self) -> Result:
        if not self.runs:
            return self.row.but(window_runs=0)
        x = np.asarray(self.samples, dtype=float)
        r = self.row.but(samples_ns=self.samples, sample_rounds=self.rounds, process_rounds=self.procs,
                         device_samples_ns=None, window_runs=self.runs, processes=len(self.procs),
                         p50_ms=float(np.median(x)) / 1e6, n=int(x.size))
        r = r.but(process_sd=process_sd(self.samples, row_procs(r)))
        if self.capacities:  # the window's capacity: their median, bracketed by all their brackets
            highs = [c[2] for c in self.capacities]
            r = r.but(loadgen={**(r.loadgen or {}),
                               "capacity_qps": float(np.median([c[0] for c in self.capacities])),
                               "bracket_qps": [min(c[1] for c in self.capacities),
                                               None if None in highs else max(highs)],
                               "window_capacities": [list(c) for c in self.capacities]})
        return r


def pool_runs(docs: list[dict], label: str) -> dict:
    """One run document from several (newest first): per case, the samples of every run where
    the case is ok, with rounds offset per run and each run's processes kept; the newest run's
    metadata, with `window` listing the pooled run ids. Its results are typed (`Result`, built
    with `Result.but`: the pooled samples, rounds, processes, median and `window_runs`)."""
    if not docs:
        raise UserError(f"no runs to pool for {label}")
    newest = docs[0]
    pooled: dict[str, _Pooled] = {}
    for i, doc in enumerate(docs):
        for row in typed_rows(doc):
            key = case_key(row)
            samples = list(row.samples_ns or [])
            if not row.ok or not samples:
                pooled.setdefault(key, _Pooled(row))
                continue
            rounds = row.sample_rounds
            if rounds is None or len(rounds) != len(samples):  # no rounds: consecutive blocks
                size = max(1, int(round(len(samples) ** (1 / 3))))
                rounds = list(np.arange(len(samples)) // size)
            off = i * ROUND_OFFSET
            rounds = [int(r) + off for r in rounds]
            if row.process_rounds:
                procs = [[int(r) + off for r in pr] for pr in row.process_rounds]
            else:
                procs = [sorted(set(rounds))]
            cur = pooled.get(key)
            if cur is None or not cur.runs:
                cur = pooled[key] = _Pooled(row)
            cur.samples += samples
            cur.rounds += rounds
            cur.procs += procs
            cur.runs += 1
            if row.capacity is not None:
                cur.capacities.append(row.capacity)
    run = {**(newest.get("run") or {}), "window": [str((d.get("run") or {}).get("id")) for d in docs],
           "tag": f"{label} (window of {len(docs)} runs)"}  # the run records: plain dicts, not results
    return {"format": newest.get("format", "pfdeploy-run"), "version": newest.get("version", 2), "run": run,
            "results": [p.result() for p in pooled.values()]}


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
