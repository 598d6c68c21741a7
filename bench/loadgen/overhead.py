"""LoadGen's own overhead: a SUT that completes every query at once.

On a 2-core machine the load generator and the SUT's Python callbacks take CPU from the model, so
every LoadGen row carries what they cost without a model, measured in a fresh process:

- `offline_qps`: the samples per second LoadGen reaches in its Offline scenario when the SUT
  answers each issue at once (the highest rate the generator itself can drive);
- a server test at the run's target QPS (and at 1000 QPS) through pfdeploy's own SUT (queue,
  dispatcher thread, completion callback) around a runner that answers at once: the achieved QPS,
  LoadGen's p50/p99 (the latency the machinery alone adds) and the CPU seconds per query.

A capacity the generator could limit (one that comes within half of `offline_qps`, or whose
generator CPU exceeds 10% of a core) is flagged in the row (`pfdeploy.bench.loadgen.capacity`).
"""
from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time

GENERATOR_LIMIT_SHARE = 0.5  # a capacity above this share of LoadGen's own Offline rate is suspect


class _InstantRunner:
    """A runner that completes every request at once (on the SUT's dispatcher thread)."""

    items_per_step = 1

    def in_flight(self) -> int:
        return 2

    def submit(self, inputs, done) -> None:
        done(None, None)


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _offline(lg, outdir: str, seconds: float) -> float | None:
    from .logs import record

    def issue(samples):
        lg.QuerySamplesComplete([lg.QuerySampleResponse(s.id, 0, 0) for s in samples])

    sut = lg.ConstructSUT(issue, lambda: None)
    qsl = lg.ConstructQSL(16, 16, lambda i: None, lambda i: None)
    ts = lg.TestSettings()
    ts.scenario, ts.mode = lg.TestScenario.Offline, lg.TestMode.PerformanceOnly
    ts.min_duration_ms, ts.min_query_count, ts.offline_expected_qps = int(seconds * 1000), 1, 200000.0
    ls = _log_settings(lg, outdir)
    lg.StartTestWithLogSettings(sut, qsl, ts, ls)
    lg.DestroySUT(sut), lg.DestroyQSL(qsl)
    return record(*_logs(outdir)).get("completed_qps")


def _server(lg, outdir: str, qps: float, seconds: float) -> dict:
    from .logs import record
    from .sut import MemoryQSL, RunnerSUT

    sut = RunnerSUT(lg, _InstantRunner(), [None] * 16)
    qsl = MemoryQSL(lg, 16)
    ts = lg.TestSettings()
    ts.scenario, ts.mode = lg.TestScenario.Server, lg.TestMode.PerformanceOnly
    ts.server_target_qps, ts.server_target_latency_ns = float(qps), 15_000_000
    ts.min_duration_ms, ts.min_query_count = int(seconds * 1000), 1
    cpu0, t0 = _cpu_s(), time.perf_counter()
    lg.StartTestWithLogSettings(sut.handle, qsl.handle, ts, _log_settings(lg, outdir))
    wall, cpu = time.perf_counter() - t0, _cpu_s() - cpu0
    sut.close(), qsl.close()
    rec = record(*_logs(outdir))
    n = rec.get("queries") or 0
    return {"target_qps": qps, "achieved_qps": rec.get("completed_qps"),
            "p50_ms": rec["percentiles_ms"].get("p50"), "p99_ms": rec["percentiles_ms"].get("p99"),
            "cpu_s_per_query": cpu / n if n else None, "cpu_share_of_a_core": cpu / wall if wall else None,
            "validity": rec.get("validity")}


def _log_settings(lg, outdir: str):
    ls = lg.LogSettings()
    ls.log_output.outdir = outdir
    ls.log_output.copy_summary_to_stdout = False
    ls.enable_trace = False
    return ls


def _logs(outdir: str) -> tuple[str, str]:
    from pathlib import Path

    d = Path(outdir)
    return ((d / "mlperf_log_summary.txt").read_text(errors="replace"),
            (d / "mlperf_log_detail.txt").read_text(errors="replace"))


def measure_in_process(target_qps: float | None, seconds: float = 1.0) -> dict:
    import mlperf_loadgen as lg

    out = {"offline_qps": _offline(lg, tempfile.mkdtemp(prefix="pfdeploy-lg-"), seconds), "server": []}
    for q in sorted({1000.0, *([float(target_qps)] if target_qps else [])}):
        out["server"].append(_server(lg, tempfile.mkdtemp(prefix="pfdeploy-lg-"), q, seconds))
    out["method"] = ("a fresh process; Offline: LoadGen with a SUT answering inside its issue callback; "
                     "server: pfdeploy's SUT around a runner that completes at once")
    return out


def measure_overhead(target_qps: float | None = None, seconds: float = 1.0, timeout_s: float = 120.0) -> dict:
    """LoadGen's own overhead measured in a fresh process (a dict; {"error": ...} if it failed)."""
    cmd = [sys.executable, "-m", "pfdeploy.bench.loadgen.overhead", json.dumps(target_qps), str(seconds)]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        return json.loads(p.stdout.strip().splitlines()[-1]) if p.returncode == 0 else {
            "error": (p.stderr.strip().splitlines() or ["failed"])[-1][:300]}
    except (subprocess.TimeoutExpired, OSError, ValueError, IndexError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"[:300]}


if __name__ == "__main__":
    print(json.dumps(measure_in_process(json.loads(sys.argv[1]), float(sys.argv[2]))))
