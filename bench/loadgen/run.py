"""One LoadGen test inside a bench worker process (the worker's `loadgen` command).

The worker has loaded the case's runner (and, in its first process, verified it against
PyTorch). Here it warms the runner up with its own steps (caches, thread pools; the warm-up also
estimates the saturated throughput and the single-request latency that LoadGen's single-stream,
multistream and offline settings and the server's query bound need), builds the QSL and SUT,
runs LoadGen's test with its logs written to `outdir`, and returns the record of the logs plus the
SUT's own per-query latencies and the CPU the process used during the test.
"""
from __future__ import annotations

import os
import resource
from dataclasses import replace
import time
from pathlib import Path

from ...devices.cpuload import cpu_snapshot, cpu_usage
from ...errors import UserError
from . import require_loadgen
from .logs import record
from .settings import LoadGenSettings
from .sut import MemoryQSL, RunnerSUT, file_samples, qsl_samples


def warm_up(runner, seconds: float, clock=time.perf_counter) -> tuple[float, float, int]:
    """The runner's own steps for `seconds` (at least 3): (median step seconds, saturated items per
    second, steps)."""
    times = []
    start = clock()
    while len(times) < 3 or clock() - start < seconds:
        t0 = clock()
        runner._step()
        times.append(clock() - t0)
    times.sort()
    step = times[len(times) // 2]
    return step, runner.items_per_step / step, len(times)


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run_test(runner, settings: dict, outdir: str, warmup_s: float = 1.0, samples_file: str | None = None) -> dict:
    """Run one LoadGen test on the loaded `runner`; the reply of the worker's `loadgen` command.
    `samples_file`: the QSL's samples (`--images`, preprocessed by the parent) instead of
    synthetic ones."""
    lg = require_loadgen()
    s = LoadGenSettings(**settings)
    if runner.in_flight() < 1 and s.scenario != "single-stream":
        runner.submit(runner.inputs, None)  # the runner's own one-line refusal
    step_s, saturated, steps = warm_up(runner, warmup_s)
    single_s = step_s if runner.items_per_step == runner.case.batch else runner.case.batch / saturated
    samples = file_samples(samples_file, runner.inputs) if samples_file else qsl_samples(runner.inputs, s.samples)
    if len(samples) != s.samples:  # fewer images than samples asked for: LoadGen's sample count follows
        s = replace(s, samples=len(samples))
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    ls = lg.LogSettings()
    ls.log_output.outdir = str(out)
    ls.log_output.copy_summary_to_stdout = False
    ls.log_output.copy_detail_to_stdout = False
    ls.enable_trace = False  # the per-event trace (~300 KB) is not kept
    ts = s.test_settings(lg, expected_latency_s=single_s, saturated_qps=saturated)
    qsl = MemoryQSL(lg, len(samples))
    sut = _sut(lg, runner, samples, s)
    cpu0, snap0, t0 = _cpu_s(), cpu_snapshot(), time.perf_counter()
    try:
        lg.StartTestWithLogSettings(sut.handle, qsl.handle, ts, ls)
    finally:
        wall = time.perf_counter() - t0
        cpu1, snap1 = _cpu_s(), cpu_snapshot()
        sut.close()
        qsl.close()
    if sut.error_count:
        raise UserError(f"the runner failed {sut.error_count} of {sut.completed} LoadGen requests: {sut.errors[0]}")
    summary = (out / "mlperf_log_summary.txt").read_text(errors="replace")
    detail = (out / "mlperf_log_detail.txt").read_text(errors="replace")
    rec = record(summary, detail)
    rec.update({"warmup": {"steps": steps, "step_ms": step_s * 1e3, "saturated_qps": saturated,
                           "items_per_step": runner.items_per_step},
                "in_flight": runner.in_flight() or 1, "wall_s": wall, "process_cpu_s": cpu1 - cpu0,
                "sut_queries": len(sut.latencies_ns), "issued": sut.issued, "pid": os.getpid(),
                # samples the SUT completed per second of the test (LoadGen reports no rate for multistream)
                "sut_samples_per_s": sut.completed / wall if wall > 0 else None,
                "query_bound": s.query_bound(saturated)})
    return {"record": rec, "samples_ns": list(sut.latencies_ns), "cpu": cpu_usage(snap0, snap1)}


class _SerialRunner:
    """Single-stream through a latency runner (one request at a time, as pfdeploy's `latency`):
    `submit` runs the step on the dispatcher thread and answers at once. LoadGen issues the next
    single-stream query only after the previous one completed, so nothing waits on it."""

    def __init__(self, runner):
        self.runner = runner

    def in_flight(self) -> int:
        return 1

    def submit(self, inputs, done) -> None:
        try:
            out = self.runner.infer(inputs)
        except Exception as exc:  # noqa: BLE001 - handed to the SUT
            done(None, exc)
            return
        done(out, None)


def _sut(lg, runner, samples, s: LoadGenSettings) -> RunnerSUT:
    if s.scenario == "single-stream" and runner.in_flight() < 1:
        runner = _SerialRunner(runner)
    return RunnerSUT(lg, runner, samples, per_sample=s.scenario == "offline")
