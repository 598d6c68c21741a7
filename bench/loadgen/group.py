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
from ..model import CaseResult, CaseRun
from ..rotation import GroupRunner, merge_finals
from ..rows import build_row
from ..worker import WorkerDied, WorkerError, WorkerProcess
from .settings import LoadGenSettings

LOADGEN_TIMEOUT_MIN_S = 300.0


class LoadGenGroupRunner(GroupRunner):
    """Runs one group of LoadGen cases for an Engine."""

    def settings(self, spec) -> LoadGenSettings:
        return LoadGenSettings(**{**self.cfg.loadgen, "scenario": spec.scenario, "seed": self.cfg.seed})

    def run(self, group: list) -> None:
        if getattr(self.engine, "loadgen_overhead", None) is None:  # once per run, before any case
            from .overhead import measure_overhead

            self.engine.update("measuring LoadGen's own overhead")
            self.engine.loadgen_overhead = measure_overhead(self.cfg.loadgen.get("target_qps"))
        cases = [CaseRun(spec, prep, budget_units=self.engine.case_units()) for spec, prep in group]
        for case in cases:
            case.lg_records = []
        for gen in range(self.rule.processes):
            rnd = self.engine.next_round()  # the cases of a generation ran back to back: one round id
            for case in cases:
                if case.spec.key in self.engine.failed:
                    continue
                if not self.start_worker(case, gen):
                    continue
                done = self.test(case, self.settings(case.spec))
                if done is not None:
                    case.add_round(rnd, {"samples_ns": done[1]})
                    case.lg_records.append(done[0])
                    self._close_worker(case)
        for case in cases:
            if case.spec.key not in self.engine.failed:
                self.finish(case)

    # ------------------------------------------------------------------ one worker
    def start_worker(self, case: CaseRun, gen: int) -> bool:
        """A fresh worker for `case`, loaded (and verified in the first generation); False: failed."""
        eng, spec, prep = self.engine, case.spec, case.prep
        eng.update(f"loading {eng.label(spec)}" + (f" (process {gen + 1})" if gen else ""))
        case.worker = WorkerProcess(spec.label)
        case.process_rounds.append([])
        case.proc_measured_ns = 0
        eng.live[spec.key] = case
        try:
            load = case.worker.call("load", timeout_s=eng.load_timeout(spec.backend), case=spec.to_dict(),
                                    inputs=prep.inputs, model_file=prep.model_file, weights_file=prep.weights_file)
        except (WorkerDied, WorkerError) as exc:
            self._fail(case, exc, "load")
            return False
        case.load = case.load or load
        case.loads.append({"pid": load.get("pid"), "load_ms": load.get("load_ms"), "first_ms": load.get("first_ms")})
        if gen == 0 and prep.parity_inputs:
            try:
                self._runtime_parity(case, tmp_dir=Path(prep.parity_inputs).parent)
            except (WorkerDied, WorkerError) as exc:
                self._fail(case, exc, "parity check")
                return False
        return True

    def test(self, case: CaseRun, settings: LoadGenSettings, what: str = "") -> tuple[dict, list] | None:
        """One LoadGen test in the case's live worker: (its record, the SUT's latencies in ns); None:
        the case failed."""
        eng = self.engine
        eng.update(f"{eng.label(case.spec)}: LoadGen {what or settings.scenario} "
                   f"(process {case.process + 1})")
        case.lg_tests = getattr(case, "lg_tests", 0) + 1
        outdir = Path(case.prep.inputs).parent / f"loadgen_{case.worker.pid}_{case.lg_tests}"
        timeout = LOADGEN_TIMEOUT_MIN_S + 20 * settings.min_duration_s
        try:
            reply = case.worker.call("loadgen", timeout_s=timeout, settings=settings.to_dict(), outdir=str(outdir))
        except (WorkerDied, WorkerError) as exc:
            self._fail(case, exc, f"LoadGen {settings.scenario} test")
            return None
        case.cpu = add_usage(case.cpu, reply.get("cpu"))
        rec = reply["record"]
        rec["settings"] = settings.to_dict()
        eng.advance(settings.min_duration_s + 1.0)
        return rec, reply["samples_ns"]

    def finish(self, case: CaseRun, record: dict | None = None) -> None:
        """The case's row, with its `loadgen` record (default: `aggregate` of its processes' tests)."""
        row = build_row(self.cfg, case.spec, case.prep, "ok", None, live=case, final=merge_finals(case.finals),
                        oversubscribed=self.engine.oversubscribed)
        rec = record or aggregate(case.lg_records, self.settings(case.spec))
        overhead = getattr(self.engine, "loadgen_overhead", None)
        if overhead:
            rec["generator_overhead"] = overhead
        row["loadgen"] = rec  # issue 31: the one key a LoadGen row adds
        if rec.get("achieved_qps") is not None:
            row["items_per_s"] = rec["achieved_qps"]  # LoadGen's completed samples per second
        # queueing makes a served latency spread by nature: the coefficient-of-variation warning is
        # about timing noise and does not apply
        row["warnings"] = [w for w in row["warnings"] if not w.startswith("noisy:")] + rec.pop("warnings_row", [])
        self.engine.commit(CaseResult(case.spec, row, case.samples, case.rounds))


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
