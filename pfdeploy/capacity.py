"""Capacity runs read back: each parameter-free model against its named baselines at the same p99
bound (`pfdeploy claims --at capacity`), and the p99-against-QPS curves the report draws.

Pure functions of run documents (Store.export_run's format). A capacity row (scenario `capacity`,
written by `pfdeploy capacity`) carries its `loadgen` record: the capacity (the lowest last-VALID
target QPS over worker processes), its bracket [capacity, first INVALID] and every probe. The ratio
of two capacities is PF / baseline (above 1: the parameter-free model serves more), its interval
the ratio of the brackets' far ends: [PF low / baseline high, PF high / baseline low].
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .claims import named_baselines, verdict
from .result import Result

CAPACITY_RULE = ("capacity ratio = PF capacity / baseline capacity at the same p99 bound, runtime, precision and "
                 "threads (above 1: the parameter-free model serves more queries per second); its interval "
                 "[PF low / baseline high, PF high / baseline low] from each capacity's bracket [last VALID, "
                 "first INVALID] over worker processes; yes: the whole interval above 1, no: at or below 1, "
                 "inconclusive: it contains 1")
GROUP = ("device", "backend", "precision", "threads")


def as_result(r) -> Result:
    """A result of a run document: typed already (claims.typed_doc), or a plain row (the edge)."""
    return r if isinstance(r, Result) else Result.from_row(r)


@dataclass(frozen=True)
class CapacityRow:
    """An ok capacity result with its run's machine id, id and start."""

    result: Result
    machine_id: str | None
    run_id: object
    started_at: str | None

    @property
    def loadgen(self) -> dict:
        return self.result.loadgen or {}

    def bracket(self) -> tuple[float | None, float | None, float | None]:
        return self.result.capacity or (None, None, None)


def capacity_rows(docs: Sequence[dict]) -> list[CapacityRow]:
    """Every ok capacity result of `docs`, newest run first, each with its run's machine id and start."""
    out = []
    for doc in sorted(docs, key=lambda d: str((d.get("run") or {}).get("started_at") or ""), reverse=True):
        run = doc.get("run") or {}  # the run record: a plain dict of the run file, not a result
        for r in map(as_result, doc.get("results") or []):
            if r.scenario == "capacity" and r.status == "ok" and isinstance(r.loadgen, dict):
                out.append(CapacityRow(r, run.get("machine_id"), run.get("id"), run.get("started_at")))
    return out


def capacity_claims(docs: Sequence[dict]) -> dict:
    """{"comparisons", "rule"}: for each machine, bound and deployment (device, runtime, precision,
    threads), the newest capacity of each model; every parameter-free model against each baseline
    its spec names."""
    newest: dict[tuple, CapacityRow] = {}
    for c in capacity_rows(docs):
        r = c.result
        key = (c.machine_id, c.loadgen.get("latency_bound_ms"), *(getattr(r, k) for k in GROUP), r.model)
        newest.setdefault(key, c)
    out = []
    for key, row in newest.items():
        if row.result.family != "parameter-free":
            continue
        for base in named_baselines(row.result):
            b = newest.get((*key[:-1], base))
            if b is None:
                continue
            cap, lo, hi = row.bracket()
            bcap, blo, bhi = b.bracket()
            ratio = cap / bcap if cap is not None and bcap else None
            low = lo / bhi if lo is not None and bhi else None
            high = hi / blo if hi is not None and blo else None
            if low is None or high is None:
                low = high = None
            word, slower = verdict(low, high)
            out.append({"model": row.result.model, "baseline": base, "machine_id": key[0], "latency_bound_ms": key[1],
                        **{k: getattr(row.result, k) for k in GROUP}, "capacity_qps": cap, "bracket_qps": [lo, hi],
                        "baseline_capacity_qps": bcap, "baseline_bracket_qps": [blo, bhi], "ratio": ratio,
                        "ci_low": low, "ci_high": high, "verdict": word, "slower": slower,
                        "runs": sorted({str(row.run_id), str(b.run_id)})})
    out.sort(key=lambda c: (str(c["machine_id"]), c["backend"], c["model"], c["baseline"]))
    return {"comparisons": out, "rule": CAPACITY_RULE}


def curves(rows: Sequence) -> list[dict]:
    """The p99-against-QPS curve of every capacity result (each probe of each process) and every
    server result (one point per process), per model and deployment, for the report's chart."""
    out: dict[tuple, dict] = {}
    for r in map(as_result, rows):
        lg = r.loadgen  # the `loadgen` record: LoadGen's own JSON, read by its keys
        if r.status != "ok" or not isinstance(lg, dict) or r.scenario not in ("capacity", "server"):
            continue
        key = (r.model, r.backend, r.precision, lg.get("latency_bound_ms"))
        c = out.setdefault(key, {"model": key[0], "backend": key[1], "precision": key[2],
                                 "latency_bound_ms": key[3], "points": [], "capacity_qps": None,
                                 "saturated_qps": None})
        if r.scenario == "capacity":
            c["points"] += [{"qps": p.get("target_qps"), "p99": p.get("p99_ms"), "valid": p.get("valid")}
                            for p in lg.get("curve") or []]
            c["capacity_qps"], c["saturated_qps"] = lg.get("capacity_qps"), lg.get("saturated_qps")
        else:
            c["points"] += [{"qps": lg.get("target_qps"), "p99": (p.get("percentiles_ms") or {}).get("p99"),
                             "valid": p.get("validity") == "VALID"} for p in lg.get("processes") or []]
    for c in out.values():
        c["points"] = sorted((p for p in c["points"] if p["qps"] and p["p99"]), key=lambda p: p["qps"])
    return [c for c in out.values() if c["points"]]
