"""Capacity runs read back: each parameter-free model against its named baselines at the same p99
bound (`pfdeploy claims --at capacity`), and the p99-against-QPS curves the report draws.

Pure functions of run documents (Store.export_run's format). A capacity row (scenario `capacity`,
written by `pfdeploy capacity`) carries its `loadgen` record: the capacity (the lowest last-VALID
target QPS over worker processes), its bracket [capacity, first INVALID] and every probe. The ratio
of two capacities is PF / baseline (above 1: the parameter-free model serves more), its interval
the ratio of the brackets' far ends: [PF low / baseline high, PF high / baseline low].
"""
from __future__ import annotations

from typing import Sequence

from .claims import named_baselines, verdict

CAPACITY_RULE = ("capacity ratio = PF capacity / baseline capacity at the same p99 bound, runtime, precision and "
                 "threads (above 1: the parameter-free model serves more queries per second); its interval "
                 "[PF low / baseline high, PF high / baseline low] from each capacity's bracket [last VALID, "
                 "first INVALID] over worker processes; yes: the whole interval above 1, no: at or below 1, "
                 "inconclusive: it contains 1")
GROUP = ("device", "backend", "precision", "threads")


def capacity_rows(docs: Sequence[dict]) -> list[dict]:
    """Every ok capacity row of `docs`, newest run first, each with its run's machine id and start."""
    out = []
    for doc in sorted(docs, key=lambda d: str((d.get("run") or {}).get("started_at") or ""), reverse=True):
        run = doc.get("run") or {}
        for r in doc.get("results") or []:
            if r.get("scenario") == "capacity" and r.get("status") == "ok" and isinstance(r.get("loadgen"), dict):
                out.append({**r, "machine_id": run.get("machine_id"), "run_id": run.get("id"),
                            "started_at": run.get("started_at")})
    return out


def _bracket(row: dict) -> tuple[float | None, float | None, float | None]:
    lg = row["loadgen"]
    lo, hi = (lg.get("bracket_qps") or [None, None])[:2]
    return lg.get("capacity_qps"), lo, hi


def capacity_claims(docs: Sequence[dict]) -> dict:
    """{"comparisons", "rule"}: for each machine, bound and deployment (device, runtime, precision,
    threads), the newest capacity of each model; every parameter-free model against each baseline
    its spec names."""
    newest: dict[tuple, dict] = {}
    for r in capacity_rows(docs):
        key = (r.get("machine_id"), r["loadgen"].get("latency_bound_ms"), *(r.get(k) for k in GROUP), r.get("model"))
        newest.setdefault(key, r)
    out = []
    for key, row in newest.items():
        if row.get("family") != "parameter-free":
            continue
        for base in named_baselines(row):
            b = newest.get((*key[:-1], base))
            if b is None:
                continue
            cap, lo, hi = _bracket(row)
            bcap, blo, bhi = _bracket(b)
            ratio = cap / bcap if cap is not None and bcap else None
            low = lo / bhi if lo is not None and bhi else None
            high = hi / blo if hi is not None and blo else None
            if low is None or high is None:
                low = high = None
            word, slower = verdict(low, high)
            out.append({"model": row["model"], "baseline": base, "machine_id": key[0], "latency_bound_ms": key[1],
                        **{k: row.get(k) for k in GROUP}, "capacity_qps": cap, "bracket_qps": [lo, hi],
                        "baseline_capacity_qps": bcap, "baseline_bracket_qps": [blo, bhi], "ratio": ratio,
                        "ci_low": low, "ci_high": high, "verdict": word, "slower": slower,
                        "runs": sorted({str(row.get("run_id")), str(b.get("run_id"))})})
    out.sort(key=lambda c: (str(c["machine_id"]), c["backend"], c["model"], c["baseline"]))
    return {"comparisons": out, "rule": CAPACITY_RULE}


def curves(rows: Sequence[dict]) -> list[dict]:
    """The p99-against-QPS curve of every capacity row (each probe of each process) and every
    server row (one point per process), per model and deployment, for the report's chart."""
    out: dict[tuple, dict] = {}
    for r in rows:
        lg = r.get("loadgen")
        if r.get("status") != "ok" or not isinstance(lg, dict) or r.get("scenario") not in ("capacity", "server"):
            continue
        key = (r.get("model"), r.get("backend"), r.get("precision"), lg.get("latency_bound_ms"))
        c = out.setdefault(key, {"model": key[0], "backend": key[1], "precision": key[2],
                                 "latency_bound_ms": key[3], "points": [], "capacity_qps": None,
                                 "saturated_qps": None})
        if r.get("scenario") == "capacity":
            c["points"] += [{"qps": p.get("target_qps"), "p99_ms": p.get("p99_ms"), "valid": p.get("valid")}
                            for p in lg.get("curve") or []]
            c["capacity_qps"], c["saturated_qps"] = lg.get("capacity_qps"), lg.get("saturated_qps")
        else:
            c["points"] += [{"qps": lg.get("target_qps"), "p99_ms": (p.get("percentiles_ms") or {}).get("p99"),
                             "valid": p.get("validity") == "VALID"} for p in lg.get("processes") or []]
    for c in out.values():
        c["points"] = sorted((p for p in c["points"] if p["qps"] and p["p99_ms"]), key=lambda p: p["qps"])
    return [c for c in out.values() if c["points"]]
