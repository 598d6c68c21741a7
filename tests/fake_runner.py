"""A fake runner for the engine's own tests (crash isolation, interleaving, interruption). It lives
in the test suite, not in the product: it registers like any plugin backend (named `fake`, through
$PFDEPLOY_PLUGINS set by conftest.py, which worker processes inherit), and goes through the base
Backend's thread setup as every runtime does. No model; configurable behaviour through `case.options`:

    work_us: busy-wait per step (default 200)
    crash: "load" | "step" (kill this process with `signal`, default SIGSEGV)
    crash_after: steps before a "step" crash (default 0)
    exit_code: with crash, exit with this code instead of a signal
    fail: "load" -> raise a UserError during load
    trace: a file to which every step appends "pid start_ns end_ns" (CLOCK_MONOTONIC, shared by
           all processes), so a test can check that two workers never ran at the same time; every
           measured round (a `timed` call) also appends "M pid start_ns"
    hang_after: steps after which a step hangs (sleeps for an hour): a hung runtime
    process_spread: each process's work is work_us x e^u, u uniform in [-spread, spread] drawn at
           load: processes that differ in level, so the case's interval needs many of them
"""
from __future__ import annotations

import math
import os
import random
import signal
import time

from pfdeploy.backends.base import Backend, Runner
from pfdeploy.errors import UserError


class FakeRunner(Runner):
    backend = "fake"

    def _die(self):
        opts = self.case.options
        if "exit_code" in opts:
            os._exit(int(opts["exit_code"]))
        os.kill(os.getpid(), getattr(signal, opts.get("signal", "SIGSEGV")))
        time.sleep(10)  # the signal is delivered before this returns

    def _load(self) -> None:
        opts = self.case.options
        if opts.get("fail") == "load":
            raise UserError("fake runner refused to load")
        if opts.get("crash") == "load":
            self._die()
        self.work_ns = int(opts.get("work_us", 200)) * 1000
        spread = float(opts.get("process_spread", 0))
        if spread:
            self.work_ns = int(self.work_ns * math.exp(random.SystemRandom().uniform(-spread, spread)))
        self.steps = 0

    def _step(self):
        self.steps += 1
        if "hang_after" in self.case.options and self.steps > int(self.case.options["hang_after"]):
            time.sleep(3600)
        if self.case.options.get("crash") == "step" and self.steps > int(self.case.options.get("crash_after", 0)):
            self._die()
        start = time.monotonic_ns()
        end = time.perf_counter_ns() + self.work_ns
        while time.perf_counter_ns() < end:
            pass
        trace = self.case.options.get("trace")
        if trace:
            with open(trace, "a") as f:
                f.write(f"{os.getpid()} {start} {time.monotonic_ns()}\n")
        return None

    def timed(self, iters, *args, **kwargs):
        trace = self.case.options.get("trace")
        if trace:
            with open(trace, "a") as f:
                f.write(f"M {os.getpid()} {time.monotonic_ns()}\n")
        return super().timed(iters, *args, **kwargs)


class FakeBackend(Backend):
    """The fake runtime: no model, no artifact, every precision its own reference (no parity)."""

    name = "fake"
    target = None
    devices = ("cpu",)
    scenarios = ("latency", "throughput")
    runner = FakeRunner
    reference_precisions = ("fp32", "tf32", "bf16", "fp16", "int8")

    def precisions(self, device):
        return {p: None for p in self.reference_precisions}


BACKEND = FakeBackend()
