"""Planning and running `pfdeploy ab` (pfdeploy/ab/policy.py says what a side, a block and a verdict are):
classify and probe both sides, plan the cases each can run, prepare each side's artifacts, run
the engine under the ABPolicy and collect the verdicts."""
from __future__ import annotations

import dataclasses
import math
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError
from .policy import DEFAULT_BUDGET_S, DEFAULT_THRESHOLD, ABPolicy, Pair, Side, classify, probe, side_spec
from ..bench.stats.ab import ALPHA


@dataclass
class ABSettings:
    budget_s: float = DEFAULT_BUDGET_S
    threshold: float = DEFAULT_THRESHOLD
    alpha: float = ALPHA
    tag_base: str | None = "ab-base"
    tag_head: str | None = "ab-head"
    max_blocks: int | None = None
    explicit_backends: bool = False  # --backends given: a backend one side cannot run is exit 2

    def __post_init__(self):
        if not (self.budget_s > 0) or not math.isfinite(self.budget_s):
            raise UsageError(f"--budget must be a positive, finite number of seconds, got {self.budget_s}")
        if not (0 < self.threshold < 1):
            raise UsageError(f"--threshold must be a fraction between 0 and 1 (0.05 = 5%), got {self.threshold}")
        if not (0 < self.alpha < 0.5):
            raise UsageError(f"--alpha must be between 0 and 0.5, got {self.alpha}")


@dataclass
class ABCase:
    """One compared case as the CLI, the JSON and the report show it."""

    case_key: str
    label: str
    verdict: str
    ratio: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    confidence: float | None = None
    detectable: float | None = None
    blocks: int = 0
    blocks_needed: int | None = None
    block_ratios: list = field(default_factory=list)
    base_p50_ms: float | None = None
    head_p50_ms: float | None = None
    error: str | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class ABOutcome:
    sides: list[Side]
    cases: list[ABCase]
    not_compared: list[dict]
    statement: str
    base_run_id: str | None
    head_run_id: str | None
    ab_id: str | None
    status: str
    wall_s: float
    budget_s: float
    threshold: float
    alpha: float
    blocks: int = 0
    signum: int | None = None
    block_s: list = field(default_factory=list)  # wall time of every block

    @property
    def counts(self) -> dict:
        out = {v: 0 for v in ("regression", "improvement", "equivalent", "inconclusive", "failed")}
        for c in self.cases:
            out[c.verdict] = out.get(c.verdict, 0) + 1
        out["not_compared"] = len(self.not_compared)
        return out

    def to_dict(self) -> dict:
        return {"ab_id": self.ab_id, "status": self.status, "sides": [s.describe() for s in self.sides],
                "base_run_id": self.base_run_id, "head_run_id": self.head_run_id, "threshold": self.threshold,
                "alpha": self.alpha, "budget_s": self.budget_s, "wall_s": round(self.wall_s, 1),
                "blocks": self.blocks, "block_s": [round(x, 2) for x in self.block_s],
                "statement": self.statement, "counts": self.counts,
                "cases": [c.to_dict() for c in self.cases], "not_compared": self.not_compared}


def plan(base_path: str, head_path: str, cfg, settings: ABSettings):
    """(sides, [(base spec, head spec, label)], not compared) before anything is timed."""
    from ..devices import parse_device, physical_cores
    from ..bench.plan import plan_cases

    sides = [classify(base_path, "base"), classify(head_path, "head")]
    kinds = {s.kind for s in sides}
    if "tuned" in kinds and kinds != {"tuned"}:
        raise UsageError("a tuned directory is compared with another tuned directory (its deployment against the "
                         "other's); BASE and HEAD here are " + " and ".join(s.kind for s in sides))
    device = parse_device(cfg.device)
    threads = cfg.threads or physical_cores()
    not_compared: list[dict] = []
    if kinds == {"tuned"}:
        from ..tune.artifact import bench_case

        specs = [bench_case(s.path, s.tuned) for s in sides]
        if specs[0].model != specs[1].model:
            raise UsageError(f"BASE is a tuned {specs[0].model} and HEAD a tuned {specs[1].model}: "
                             "not the same model")
        return sides, [(specs[0], specs[1], f"{specs[0].model} (tuned)")], not_compared
    runnable, skipped = plan_cases(cfg, device, threads)
    for spec, why in skipped:
        not_compared.append({"case": spec.label, "case_key": spec.key, "reason": why})
    backends = sorted({s.backend for s in runnable})
    for side in sides:
        if side.kind != "interpreter":
            continue
        info = probe(side, str(device), backends)
        for b, why in (info.get("backends") or {}).items():
            if why is None:
                continue
            if settings.explicit_backends:
                raise UsageError(f"{side.name.upper()} {side.path!r} cannot run {b}: {why}")
            for spec in [s for s in runnable if s.backend == b]:
                not_compared.append({"case": spec.label, "case_key": spec.key,
                                     "reason": f"{side.name} cannot run {b}: {why}"})
            runnable = [s for s in runnable if s.backend != b]
    return sides, [(s, s, s.label) for s in runnable], not_compared


def run_ab(base_path: str, head_path: str, cfg, settings: ABSettings, store, progress=None,
           on_block=None, planned=None) -> ABOutcome:
    """Plan (unless `planned`, plan()'s answer), prepare and measure; both sides stored (runs
    tagged settings.tag_base/tag_head)."""
    from ..bench.engine import Engine
    from ..bench.prepare import Preparer
    from ..bench.worker import WorkerProcess

    t0 = time.monotonic()
    sides, cases, not_compared = planned or plan(base_path, head_path, cfg, settings)
    if not cases:
        raise UsageError("nothing to compare: " + ("; ".join(f"{n['case']}: {n['reason']}" for n in not_compared[:3])
                                                   or "no case was planned"))
    # the blocks decide when to stop: the rule only sizes warm-up and rounds, never ends a case
    cfg.rule = dataclasses.replace(cfg.rule, max_time_s=max(cfg.rule.max_time_s, settings.budget_s * 4))
    tmp = Path(tempfile.mkdtemp(prefix="pfdeploy-ab-"))
    try:
        prepared = {}
        for i, side in enumerate(sides):
            side_cfg = dataclasses.replace(cfg, cache_dir=side.cache_dir or cfg.cache_dir)
            specs = [c[i] for c in cases]
            same = i == 1 and side.cache_dir == sides[0].cache_dir and sides[0].kind == side.kind != "tuned"
            (tmp / side.name).mkdir(parents=True, exist_ok=True)
            prepared[side.name] = prepared["base"] if same else Preparer(side_cfg, progress).prepare(specs, tmp / side.name)
        pairs, prepared_cases, python_of = [], [], {}
        for bspec, hspec, label in cases:
            b, h = side_spec(bspec, "base"), side_spec(hspec, "head")
            pb, ph = prepared["base"][bspec.key], prepared["head"][hspec.key]
            if pb.error or ph.error:
                not_compared.append({"case": label, "case_key": bspec.key,
                                     "reason": f"could not be prepared: {pb.error or ph.error}"})
                continue
            pairs.append(Pair(case_key=bspec.key, label=label, base_key=b.key, head_key=h.key,
                              variant=bspec.variant or None,
                              head_case_key=hspec.key if hspec.key != bspec.key else None,
                              head_variant=hspec.variant or None))
            prepared_cases += [(b, pb), (h, ph)]
            python_of[b.key], python_of[h.key] = sides[0].python, sides[1].python
        if not pairs:
            raise UsageError("nothing to compare: every case failed its preparation (see above)")
        policy = ABPolicy(pairs, budget_s=settings.budget_s, threshold=settings.threshold, alpha=settings.alpha,
                          tag_head=settings.tag_head, max_blocks=settings.max_blocks, on_block=on_block)
        cfg.tag = settings.tag_base
        engine = Engine(cfg, store, store_url=store.url, policy=policy, grouping=lambda todo, il: [todo],
                        launcher=lambda case: WorkerProcess(case.spec.label, python=python_of[case.spec.key]))
        outcome = engine.run(progress, prepared_cases=prepared_cases)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    results = {(d.result.run_id, d.result.case_key): d.result for d in outcome.results}
    out_cases = []
    seq = policy.seq
    for p in pairs:
        rb = results.get((policy.base_run_id, p.case_key))
        rh = results.get((policy.head_run_id, p.head_case_key or p.case_key))
        failed = [r for r in (rb, rh) if r is not None and r.status == "failed"]
        est = seq.estimates.get(p.case_key) if seq else None
        verdict = "failed" if failed else (seq.verdicts.get(p.case_key) if seq else None) or "inconclusive"
        out_cases.append(ABCase(
            case_key=p.case_key, label=p.label, verdict=verdict,
            ratio=est.ratio if est else None, ci_low=est.ci_low if est else None,
            ci_high=est.ci_high if est else None, confidence=est.confidence if est else None,
            detectable=est.detectable if est else None, blocks=len([v for v in p.values if v is not None]),
            blocks_needed=est.blocks_needed if est else None,
            block_ratios=[None if v is None else round(float(math.exp(v)), 5) for v in p.values],
            base_p50_ms=rb.p50_ms if rb else None, head_p50_ms=rh.p50_ms if rh else None,
            error=failed[0].error if failed else None))
    return ABOutcome(sides=sides, cases=out_cases, not_compared=not_compared,
                     statement=seq.statement() if seq else "", base_run_id=policy.base_run_id,
                     head_run_id=policy.head_run_id, ab_id=policy.ab_id, status=outcome.status,
                     wall_s=time.monotonic() - t0, budget_s=settings.budget_s, threshold=settings.threshold,
                     alpha=settings.alpha, blocks=len(policy.block_s), signum=outcome.signum,
                     block_s=list(policy.block_s))
