"""The final rotation of a `pfdeploy tune` (docs/tune.md): the shipped deployment of every model
and runtime measured together in ONE rotation, and the statistics that name each model's fastest
deployment from it (`decide_overall`: paired intervals against every other runtime's, family-wise).

The rotation is an ordinary engine run with `FinalRotationPolicy` (bench's stopping rule, then
every result stored with its race record completed by the overall decision)."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..result import Result, TuneRecord
from .race import ALPHA, PRECISION_RANK, per_item

PROCESS_WALL_S = 3.5  # wall time of one worker process of the final rotation (load, warm-up, rounds)


def final_rule(processes: int):
    """The final rotation's stopping rule: `processes` worker processes per deployment."""
    from ..bench.config import StopRule

    p = processes
    return StopRule(min_iters=1, min_time_s=0.75 * p, max_time_s=3600.0, target_ci=0.5, warmup_iters=10,
                    warmup_time_s=1.0, min_samples=1, min_rounds=2 * p, processes=p, max_processes=p)


@dataclass(frozen=True)
class Overall:
    """A model's fastest deployment in the final rotation: its case key, `winner` (its paired
    interval excludes every other runtime's) or `tied` (shipped at the safest setting of the tied
    set), the speedup over it of every other deployment (`vs`: case key -> speedup summary), and
    the runner-up."""

    key: str
    status: str  # winner | tied
    vs: dict = field(default_factory=dict)
    runner_up: str | None = None
    vs_runner_up: dict | None = None
    tied_with: list[str] = field(default_factory=list)


@dataclass
class FinalRunnerSettings:
    records: dict[str, TuneRecord]  # case key -> the race's tune record of the shipped candidate
    alpha: float = ALPHA
    overall: dict[str, Overall] = field(default_factory=dict)  # model -> its overall decision (filled)


class FinalRotationPolicy:
    """Measures the shipped deployments of every model and runtime in one rotation by the stopping
    rule (bench's policy); the results are stored once all are measured, each with its race
    record and whether it is its model's fastest deployment (overall_winner: its paired interval
    excludes every other runtime's)."""

    name = "final-rotation"

    def __init__(self, settings: FinalRunnerSettings):
        self.settings = settings

    def run(self, rot) -> None:
        from ..bench.rotation import StopRulePolicy

        pending: list = []
        StopRulePolicy().run(rot, on_stop=lambda case, decision: pending.append((case, decision)))
        by_model: dict[str, list] = {}
        for case, decision in pending:
            by_model.setdefault(case.spec.model, []).append(case)
        for model, cases in by_model.items():
            self.settings.overall[model] = decide_overall(cases, self.settings.alpha)
        for case, decision in pending:
            rot.store(case, decision, tune=self.record(case.spec.key, case.spec.model))

    def record(self, key: str, model: str) -> TuneRecord:
        """The race's record of a deployment, completed by its model's overall decision."""
        ov = self.settings.overall.get(model)
        won = ov is not None and ov.key == key
        rec = self.settings.records.get(key) or TuneRecord()
        return rec.model_copy(update={"overall_winner": won, "overall_status": ov.status if won else None,
                                      "vs_overall": ov.vs.get(key) if ov is not None else None})


def decide_overall(cases: list, alpha: float) -> Overall | None:
    """The model's fastest deployment: the lowest median per item, declared the winner when its
    paired interval (family-wise 1 - alpha / (k - 1)) excludes every other runtime's; otherwise
    the tied set, shipped at the safest setting (highest precision, then lowest median)."""
    import numpy as np

    from ..bench.stats.ratios import speedup

    ok = [c for c in cases if c.samples]
    if not ok:
        return None
    med = {c.spec.key: float(np.median(per_item(c))) for c in ok}
    leader = min(ok, key=lambda c: med[c.spec.key])
    if len(ok) == 1:
        return Overall(leader.spec.key, "winner")
    conf = 1 - alpha / (len(ok) - 1)
    vs, tied = {}, []
    for c in ok:
        if c is leader:
            continue
        sp = speedup(per_item(c), c.rounds, per_item(leader), leader.rounds, confidence=conf,
                     base_procs=c.procs, model_procs=leader.procs)  # a speedup summary (a dict), not a result
        vs[c.spec.key] = sp and {k: sp.get(k) for k in ("ratio", "ci_low", "ci_high", "paired", "processes", "how")}
        if not (sp and sp.get("ci_low") is not None and sp["ci_low"] > 1.0):
            tied.append(c)
    runner_up = min((c for c in ok if c is not leader), key=lambda c: med[c.spec.key])
    label = lambda c: f"{c.spec.backend}/{c.spec.variant or c.spec.precision}"  # noqa: E731
    if not tied:
        return Overall(leader.spec.key, "winner", vs, label(runner_up), vs.get(runner_up.spec.key))
    pool = [leader, *tied]
    pick = min(pool, key=lambda c: (PRECISION_RANK.get(c.spec.precision, 9), med[c.spec.key]))
    return Overall(pick.spec.key, "tied", vs, label(runner_up), vs.get(runner_up.spec.key),
                   [label(c) for c in pool if c is not pick])


def final_row(frows: list[Result], overall: Overall | None) -> Result | None:
    """The final rotation's result of a model's overall pick."""
    if overall is None:
        return None
    return next((r for r in frows if r.case_key == overall.key), None)


def overall_doc(frows: list[Result], overall: Overall | None) -> dict | None:
    """A model's overall decision as the CLI and --json show it."""
    row = final_row(frows, overall)
    if row is None:
        return None
    return {"backend": row.backend, "variant": row.variant, "precision": row.precision,
            "status": overall.status, "p50_ms": row.p50_ms, "p50_ci_low_ms": row.p50_ci_low_ms,
            "p50_ci_high_ms": row.p50_ci_high_ms, "items_per_s": row.items_per_s,
            "vs_runner_up": overall.vs_runner_up, "runner_up": overall.runner_up,
            "tied_with": overall.tied_with, "vs_default": row.tune.vs_default if row.tune else None,
            "dir": None}
