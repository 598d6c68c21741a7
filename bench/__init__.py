"""The benchmark engine (docs/method.md): timing loop, statistics, stopping rule, runners, the case
engine (several fresh worker processes per case, interleaved rounds) and suites.

    from pfdeploy.bench import BenchConfig, Engine, StopRule, get_suite
    outcome = Engine(BenchConfig(models=("resnet50",)), store).run()

Importing this package imports only the standard library; numpy and the runtimes are imported by
the modules that need them (`stats`, `engine`, `runners.<backend>`).
"""
from __future__ import annotations

from .config import PERCENTILE_MIN_SAMPLES, CaseSpec, StopRule
from .suites import SUITES, Suite, get_suite

__all__ = ["BenchConfig", "CaseSpec", "Engine", "PERCENTILE_MIN_SAMPLES", "StopRule", "SUITES", "Suite",
           "get_suite"]


def __getattr__(name):
    if name in ("BenchConfig", "Engine", "Outcome", "Progress"):
        from . import engine

        return getattr(engine, name)
    raise AttributeError(name)
