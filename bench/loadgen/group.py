"""`bench --scenario server|multistream|single-stream|offline`: LoadGen tests of every case of a
group, each in several fresh worker processes (docs/method.md section 2).

A generation gives every case of the group one fresh worker in turn: load (the first generation
also verifies the timed runner against PyTorch), one LoadGen test, close. Only one worker lives at a
time, so a LoadGen test never shares the CPU with another case's runtime. After `rule.processes`
generations each case's row is built from its processes: the SUT's per-query latencies (one
interleaving round per process, so the row's interval is over processes) and the `loadgen`
record (LoadGen's verdict, figures and logs of every process).
"""
from __future__ import annotations

import statistics
from pathlib import Path

from ...devices.cpuload import add_usage
from ...result import warn
from ..model import CaseRun
from .settings import LoadGenSettings

LOADGEN_TIMEOUT_MIN_S = 300.0


def call_timeout(settings: LoadGenSettings) -> float:
    """How long the worker's LoadGen test may take before it counts as hung: the warm-up, model
    and log overheads (LOADGEN_TIMEOUT_MIN_S) plus 20 x the minimum duration plus twice what the
    test needs at its rate (a server test at 2 QPS needs 230 s for its 460 queries; it once hit a
    fixed 340 s limit)."""
    return LOADGEN_TIMEOUT_MIN_S + 20 * settings.min_duration_s + 2 * settings.expected_s()


class LoadGenPolicy:
    """The LoadGen scenarios' policy: every case of the rotation gets `rule.processes` fresh worker
    processes, one LoadGen test each, through the Rotation's public steps only."""

    name = "loadgen"

    def __init__(self):
        self.overhead: dict | None = None  # LoadGen's own cost, measured once per run

    def settings(self, rot, spec) -> LoadGenSettings:
        return LoadGenSettings(**{**rot.config.loadgen, "scenario": spec.scenario, "seed": rot.config.seed})

    def measure_overhead(self, rot, target_qps) -> None:
        if self.overhead is None:  # once per run, before any case
            from .overhead import measure_overhead

            rot.engine.update("measuring LoadGen's own overhead")
            self.overhead = measure_overhead(target_qps)

    def run(self, rot) -> None:
        self.measure_overhead(rot, rot.config.loadgen.get("target_qps"))
        cases = rot.pending()
        records: dict[str, list] = {case.spec.key: [] for case in cases}
        for gen in range(rot.rule.processes):
            rnd = rot.engine.next_round()  # the cases of a generation ran back to back: one round id
            for case in cases:
                if case.spec.key in rot.failed or not self.start_worker(rot, case, gen):
                    continue
                done = self.test(rot, case, self.settings(rot, case.spec))
                if done is not None:
                    case.add_round(rnd, {"samples_ns": done[1]})
                    records[case.spec.key].append(done[0])
                    rot.close_worker(case)
        for case in cases:
            if case.spec.key not in rot.failed:
                self.finish(rot, case, aggregate(records[case.spec.key], self.settings(rot, case.spec)))

    # ------------------------------------------------------------------ one worker
    def start_worker(self, rot, case: CaseRun, gen: int) -> bool:
        """A fresh worker for `case`, loaded (and verified in its first process), not warmed up
        (LoadGen's test warms up itself); False: the case failed."""
        return bool(rot.start_generation([case], gen, warm=False))

    def test(self, rot, case: CaseRun, settings: LoadGenSettings, what: str = "") -> tuple[dict, list] | None:
        """One LoadGen test in the case's live worker: (its record, the SUT's latencies in ns); None:
        the case failed."""
        eng = rot.engine
        eng.update(f"{eng.label(case.spec)}: LoadGen {what or settings.scenario} "
                   f"(process {case.process + 1})")
        case.lg_tests = getattr(case, "lg_tests", 0) + 1
        outdir = Path(case.prep.inputs).parent / f"loadgen_{case.worker.pid}_{case.lg_tests}"
        extra = {"samples_file": case.prep.qsl_inputs} if case.prep.qsl_inputs else {}
        reply = rot.call(case, "loadgen", call_timeout(settings),
                         what=f"LoadGen {settings.scenario} test", settings=settings.to_dict(), outdir=str(outdir),
                         **extra)
        if reply is None:
            return None
        case.cpu = add_usage(case.cpu, reply.get("cpu"))
        rec = reply["record"]
        rec["settings"] = settings.to_dict()
        rec["qsl"] = case.prep.qsl or {"source": "synthetic", "count": settings.samples,
                                       "note": "the seeded input and copies of it shifted along the width"}
        eng.advance(settings.expected_s() + 1.0)
        return rec, reply["samples_ns"]

    def finish(self, rot, case: CaseRun, record: dict):
        """Commit the case's result with its `loadgen` record (issue 31: the one field a LoadGen
        result adds)."""
        rec = dict(record)
        extra_warnings = rec.pop("warnings_row", [])
        if self.overhead:
            rec["generator_overhead"] = self.overhead
        result = rot.result(case, loadgen=rec)
        changes = {}
        if rec.get("achieved_qps") is not None:
            changes["items_per_s"] = rec["achieved_qps"]  # LoadGen's completed samples per second
        # queueing makes a served latency spread by nature: the coefficient-of-variation warning is
        # about timing noise and does not apply
        changes["warnings"] = ([w for w in result.warnings if w.kind != "noisy"]
                               + [warn("loadgen", text) for text in extra_warnings])
        return rot.commit(case, result.but(**changes))


def _median(values):
    vals = [v for v in values if isinstance(v, (int, float))]
    return statistics.median(vals) if vals else None


def _span(values):
    vals = [v for v in values if isinstance(v, (int, float))]
    return [min(vals), max(vals)] if vals else None


def aggregate(records: list[dict], settings: LoadGenSettings) -> dict:
    """The `loadgen` record of a case from its processes' tests: the verdict (VALID only when every
    process's LoadGen said VALID), the median and range over processes of the achieved QPS and
    LoadGen's percentiles, every process's reasons, and each process's record with its logs."""
    valid = [r.get("validity") == "VALID" for r in records]
    pcts = sorted({p for r in records for p in (r.get("percentiles_ms") or {})}, key=lambda p: float(p[1:]))
    qps = [r.get("completed_qps") if r.get("completed_qps") is not None else r.get("sut_samples_per_s")
           for r in records]
    achieved = _median(qps)
    out = {
        "scenario": settings.scenario,
        "loadgen_scenario": {"server": "Server", "multistream": "MultiStream", "single-stream": "SingleStream",
                             "offline": "Offline", "capacity": "Server"}[settings.scenario],
        "target_qps": settings.target_qps, "latency_bound_ms": settings.latency_bound_ms,
        "validity": "VALID" if records and all(valid) else "INVALID",
        "valid_processes": f"{sum(valid)} of {len(records)}",
        "reasons": sorted({f"process {i + 1}: {why}" for i, r in enumerate(records) for why in r.get("reasons") or []}),
        "achieved_qps": achieved, "achieved_qps_range": _span(qps),
        "percentiles_ms": {p: _median((r.get("percentiles_ms") or {}).get(p) for r in records) for p in pcts},
        "percentile_ranges_ms": {p: _span((r.get("percentiles_ms") or {}).get(p) for r in records) for p in pcts},
        "early_stopping_ms": _median(r.get("early_stopping_ms") for r in records),
        "settings": settings.to_dict(),
        "row_latency": "the row's p50_ms ... p99_ms are the SUT's own issue-to-completion times of every query "
                       "(all processes); LoadGen's figures (from its scheduled issue time) are percentiles_ms",
        "note": (f"PerformanceOnly tests of at least {settings.min_duration_s:g} s and {settings.queries} queries "
                 "in each worker process (an MLPerf submission runs 600 s)"),
        "processes": records,
    }
    if settings.target_qps and achieved:
        out["achieved_vs_target"] = achieved / settings.target_qps - 1
        # LoadGen's Poisson schedule of n queries realises the target only within about 1/sqrt(n)
        # (4.7% for 460): its scheduled rate says what was offered
        scheduled = _median(r.get("scheduled_qps") for r in records)
        if scheduled:
            out["scheduled_qps"] = scheduled
            out["achieved_vs_scheduled"] = achieved / scheduled - 1
    out["warnings_row"] = ([f"LoadGen: INVALID in {len(records) - sum(valid)} of {len(records)} processes"]
                           if not all(valid) else [])
    return out
