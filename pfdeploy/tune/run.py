"""A whole `pfdeploy tune` (docs/tune.md): every runtime's candidate settings for each model
(declared by the backend modules, `Backend.tune_space`), one race per model and runtime
(pfdeploy.tune.race), then ONE final rotation in which the shipped deployment of every model and
runtime runs together, so that "the fastest deployment of this model" and "PF model vs its
baselines, each at its best" are paired comparisons with the hierarchical interval.

Stored as ordinary runs: one per model (suite "tune"), and the final one (suite "tune-final").
The overall winner of each model is written as a deployable directory (pfdeploy.tune.artifact).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..errors import UsageError
from .race import ALPHA, MAX_GENERATIONS, PRECISION_RANK, Budget, RacePolicy, RaceSettings, per_item

TUNE_VERSION = "1"
# compiles at the first inference of every worker (minutes per candidate on a 2-core machine):
# raced only when named with --backends
NOT_BY_DEFAULT = ("torch-compile",)
PER_MODEL_BUDGET_S = 240.0  # default --budget: this much per model
FINAL_PROCESSES = 4
PROCESS_WALL_S = 3.5  # wall time of one worker process of the final rotation (load, warm-up, rounds)


@dataclass
class TuneConfig:
    models: tuple[str, ...]
    device: str = "cpu"
    backends: tuple[str, ...] | None = None  # None: every backend that runs on the device (not NOT_BY_DEFAULT)
    scenario: str = "latency"
    batch: int = 1
    threads: int | None = None
    budget_s: float | None = None  # None: PER_MODEL_BUDGET_S per model
    seed: int = 0
    weights: str | None = None
    tag: str | None = None
    cache_dir: str | None = None
    alpha: float = ALPHA
    max_generations: int = MAX_GENERATIONS
    final_processes: int = FINAL_PROCESSES
    process_s: float = 0.5
    images: str | None = None  # labelled images: each artifact's top-1 measured before the race
    labels: str | None = None
    max_drop: float | None = None  # with images: drop candidates losing more top-1 than this (0.01 = 1 point)

    def budget(self) -> float:
        return self.budget_s if self.budget_s is not None else PER_MODEL_BUDGET_S * len(self.models)


def race_rule(cfg: TuneConfig):
    from ..bench.config import StopRule

    # the race decides when to stop (RacePolicy); the rule only sizes warm-up and rounds
    return StopRule(min_iters=1, min_time_s=cfg.process_s, max_time_s=3600.0, target_ci=0.5, warmup_iters=5,
                    warmup_time_s=0.5, min_samples=1, min_rounds=2, processes=1, max_processes=1)


def final_rule(cfg: TuneConfig):
    from ..bench.config import StopRule

    p = cfg.final_processes
    return StopRule(min_iters=1, min_time_s=0.75 * p, max_time_s=3600.0, target_ci=0.5, warmup_iters=10,
                    warmup_time_s=1.0, min_samples=1, min_rounds=2 * p, processes=p, max_processes=p)


@dataclass
class ModelPlan:
    model: str
    weights: str
    races: list[tuple[str, list]] = field(default_factory=list)  # (backend, [(CaseSpec, Candidate)])
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (backend, why)


def plan(cfg: TuneConfig, device, threads: int) -> list[ModelPlan]:
    """Every model's candidates per runtime, from the backends' own `tune_space`."""
    from ..backends import BACKEND_NAMES, get_backend
    from ..bench.config import CaseSpec
    from ..bench.model import BenchConfig
    from ..zoo import canonical_name

    names = list(cfg.backends) if cfg.backends else [n for n in BACKEND_NAMES if n not in NOT_BY_DEFAULT]
    backends = [get_backend(n) for n in names]
    if not cfg.backends:
        backends = [b for b in backends if device.kind in b.devices]
    probe = BenchConfig(models=tuple(cfg.models), weights=cfg.weights, seed=cfg.seed)
    plans = []
    for model in dict.fromkeys(canonical_name(m) for m in cfg.models):
        mp = ModelPlan(model, probe.weights_for(model).source)
        for b in backends:
            why = b.unavailable(device) or b.supports_scenario(cfg.scenario)
            if why:
                mp.skipped.append((b.name, why))
                continue
            cands = b.tune_space(device, cfg.scenario, cfg.batch, threads)
            specs = [(CaseSpec(model=model, backend=b.name, device=str(device), precision=c.precision,
                               batch=cfg.batch, threads=threads, scenario=cfg.scenario, weights=mp.weights,
                               options=dict(c.options), variant=c.name), c) for c in cands]
            if specs:
                mp.races.append((b.name, specs))
            else:
                mp.skipped.append((b.name, "no candidate runs here"))
        plans.append(mp)
    return plans


@dataclass
class TuneResult:
    models: list[dict] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    final_run: str | None = None
    store_url: str = ""
    wall_s: float = 0.0
    status: str = "finished"
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"models": self.models, "runs": self.runs, "final_run": self.final_run, "store": self.store_url,
                "wall_s": self.wall_s, "status": self.status, "notes": self.notes}


class TuneProgress:
    """What a tune reports while it runs (the CLI draws it); no-op by default."""

    def phase(self, text: str) -> None: ...

    def update(self, current: str, completed_units: float, total_units: float) -> None: ...

    def plan(self, total_units: float) -> None: ...

    def case_done(self, result) -> None: ...

    def race(self, model: str, backend: str, runner: RacePolicy) -> None: ...

    def race_done(self, model: str, backend: str, runtime: dict) -> None: ...


def by_backend(todo, interleave=True):
    """One rotation per runtime: its candidates race each other."""
    out: dict[str, list] = {}
    for spec, prep in todo:
        out.setdefault(spec.backend, []).append((spec, prep))
    return list(out.values())


def tune(cfg: TuneConfig, store, store_url: str = "", progress: TuneProgress | None = None,
         out_dir=None) -> TuneResult:
    """Run the whole tune; `out_dir`: where each model's winner is written (None: nowhere)."""
    from ..bench.engine import Engine
    from ..bench.model import BenchConfig
    from ..devices import parse_device, physical_cores

    progress = progress or TuneProgress()
    t0 = time.monotonic()
    if cfg.scenario not in ("latency", "throughput"):
        raise UsageError(f"--scenario must be latency or throughput, not {cfg.scenario!r}")
    device = parse_device(cfg.device)
    threads = cfg.threads or physical_cores()
    progress.phase("collecting every runtime's candidate settings")
    plans = plan(cfg, device, threads)
    n_races = sum(len(p.races) for p in plans)
    if not n_races:
        why = "; ".join(f"{b}: {w}" for p in plans for b, w in p.skipped) or "no backend"
        raise UsageError(f"nothing to tune on {device}: {why}")
    n_final = n_races
    reserve = n_final * cfg.final_processes * PROCESS_WALL_S
    budget = Budget(max(cfg.budget() - reserve, 0.0), n_races)
    result = TuneResult(store_url=store_url)
    shipped: dict[str, tuple] = {}  # case key -> (CaseSpec, Entrant)
    for mp in plans:
        if not mp.races:
            result.models.append({"model": mp.model, "runtimes": [], "skipped": mp.skipped, "overall": None})
            continue
        candidates = {spec.key: c for _, specs in mp.races for spec, c in specs}
        settings = RaceSettings(alpha=cfg.alpha, max_generations=cfg.max_generations, process_s=cfg.process_s,
                                max_process_s=4 * cfg.process_s, budget=budget, candidates=candidates,
                                max_drop=cfg.max_drop if cfg.images else None,
                                on_look=lambda runner, m=mp.model: progress.race(m, runner.backend, runner))
        bcfg = BenchConfig(models=(mp.model,), cases=tuple(s for _, specs in mp.races for s, _ in specs),
                           device=str(device), threads=threads, scenario=cfg.scenario, rule=race_rule(cfg),
                           tag=cfg.tag, suite="tune", suite_version=TUNE_VERSION, seed=cfg.seed,
                           weights=cfg.weights, cache_dir=cfg.cache_dir, batches=(cfg.batch,),
                           images=cfg.images, labels=cfg.labels,
                           options={"tune": {"alpha": cfg.alpha, "max_drop": cfg.max_drop, "max_generations": cfg.max_generations,
                                             "budget_s": cfg.budget(), "version": TUNE_VERSION}})
        engine = Engine(bcfg, store, store_url, policy=RacePolicy(settings),
                        grouping=by_backend)
        outcome = engine.run(progress)
        result.runs.append(outcome.run_id)
        model_doc = {"model": mp.model, "weights": mp.weights, "run": outcome.run_id, "runtimes": [],
                     "skipped": mp.skipped, "overall": None}
        rows = {r["case_key"]: r for r in store.results(outcome.run_id)}
        for backend, specs in mp.races:
            race = settings.results.get(specs[0][0].key)
            runtime = runtime_doc(backend, specs, race, rows)
            model_doc["runtimes"].append(runtime)
            progress.race_done(mp.model, backend, runtime)
            if race is not None:
                for spec, _ in specs:
                    e = race.entrants.get(spec.key)
                    if e is not None and e.shipped:
                        shipped[spec.key] = (spec, e)
        result.models.append(model_doc)
        if outcome.status != "finished":
            result.status = outcome.status
            result.notes.append(f"interrupted while racing {mp.model}; nothing after it was measured")
            break
    if shipped and result.status == "finished":
        final_cases = [spec for spec, _ in shipped.values()]
        records = {key: e.record() for key, (_, e) in shipped.items()}
        final = FinalRunnerSettings(records=records, alpha=cfg.alpha)
        fcfg = BenchConfig(models=tuple(p.model for p in plans), cases=tuple(final_cases), device=str(device),
                           threads=threads, scenario=cfg.scenario, rule=final_rule(cfg), tag=cfg.tag,
                           suite="tune-final", suite_version=TUNE_VERSION, seed=cfg.seed, weights=cfg.weights,
                           cache_dir=cfg.cache_dir, batches=(cfg.batch,),
                           options={"tune": {"races": result.runs, "version": TUNE_VERSION}})
        progress.phase("the final rotation: every model's deployments together")
        from ..bench.plan import MAX_GROUP, groups

        engine = Engine(fcfg, store, store_url, policy=FinalRotationPolicy(final),
                        grouping=lambda todo, il: [todo] if len(todo) <= MAX_GROUP else groups(todo, il))
        outcome = engine.run(progress)
        result.final_run = outcome.run_id
        if outcome.status != "finished":
            result.status = outcome.status
        frows = [r for r in store.results(outcome.run_id)]
        for doc in result.models:
            doc["overall"] = overall_doc(doc["model"], frows, final.overall.get(doc["model"]))
            for rt in doc["runtimes"]:
                fr = next((r for r in frows if r["model"] == doc["model"] and r["backend"] == rt["backend"]
                           and r.get("status") == "ok"), None)
                if fr is not None:
                    rt["final"] = {"p50_ms": fr.get("p50_ms"), "p50_ci_low_ms": fr.get("p50_ci_low_ms"),
                                   "p50_ci_high_ms": fr.get("p50_ci_high_ms"), "items_per_s": fr.get("items_per_s"),
                                   "processes": fr.get("processes")}
        if out_dir is not None:
            write_winners(result, frows, store, out_dir, progress)
    result.wall_s = time.monotonic() - t0
    return result


def runtime_doc(backend: str, specs: list, race, rows: dict) -> dict:
    """One runtime's race as the CLI and --json show it."""
    cands = []
    ship = None
    for spec, c in specs:
        row = rows.get(spec.key) or {}
        e = race.entrants.get(spec.key) if race is not None else None
        tune = row.get("tune") or (e.record() if e is not None else {})
        doc = {"variant": spec.variant, "precision": spec.precision, "default": bool(c.default),
               "options": {k: v for k, v in spec.options.items()}, "note": c.note,
               "status": row.get("status") if row.get("status") != "ok" else tune.get("status"),
               "error": row.get("error"), "p50_ms": row.get("p50_ms"), "p50_ci_low_ms": row.get("p50_ci_low_ms"),
               "p50_ci_high_ms": row.get("p50_ci_high_ms"), "items_per_s": row.get("items_per_s"),
               "processes": row.get("processes"), "vs_default": tune.get("vs_default"),
               "elimination": tune.get("elimination"), "eliminated_by": tune.get("eliminated_by"),
               "tied_with": tune.get("tied_with"), "reason": tune.get("reason"),
               "shipped": bool(tune.get("runtime_winner")), "parity": (row.get("parity") or {}).get("verdict")}
        cands.append(doc)
        if doc["shipped"]:
            ship = doc
    return {"backend": backend, "shipped": ship, "candidates": cands,
            "generations": race.generation if race is not None else 0,
            "looks": race.looks if race is not None else []}


def overall_doc(model: str, frows: list, overall: dict | None) -> dict | None:
    if not overall:
        return None
    row = next((r for r in frows if r.get("case_key") == overall["key"]), None)
    if row is None:
        return None
    return {"backend": row["backend"], "variant": row.get("variant"), "precision": row["precision"],
            "status": overall["status"], "p50_ms": row.get("p50_ms"), "p50_ci_low_ms": row.get("p50_ci_low_ms"),
            "p50_ci_high_ms": row.get("p50_ci_high_ms"), "items_per_s": row.get("items_per_s"),
            "vs_runner_up": overall.get("vs_runner_up"), "runner_up": overall.get("runner_up"),
            "tied_with": overall.get("tied_with", []), "vs_default": (row.get("tune") or {}).get("vs_default"),
            "dir": None}


# ---------------------------------------------------------------------------------- the final rotation
@dataclass
class FinalRunnerSettings:
    records: dict  # case key -> the race's tune record of the shipped candidate
    alpha: float = ALPHA
    overall: dict = field(default_factory=dict)  # model -> {"key", "status", "vs_runner_up", ...}


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
            ov = self.settings.overall.get(case.spec.model) or {}
            rec = dict(self.settings.records.get(case.spec.key) or {})
            rec["overall_winner"] = ov.get("key") == case.spec.key
            rec["overall_status"] = ov.get("status") if rec["overall_winner"] else None
            rec["vs_overall"] = ov.get("vs", {}).get(case.spec.key)
            rot.store(case, decision, tune=rec)


def decide_overall(cases: list, alpha: float) -> dict | None:
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
        return {"key": leader.spec.key, "status": "winner", "vs": {}, "tied_with": [], "runner_up": None}
    conf = 1 - alpha / (len(ok) - 1)
    vs, tied = {}, []
    for c in ok:
        if c is leader:
            continue
        sp = speedup(per_item(c), c.rounds, per_item(leader), leader.rounds, confidence=conf,
                     base_procs=c.procs, model_procs=leader.procs)
        vs[c.spec.key] = sp and {k: sp.get(k) for k in ("ratio", "ci_low", "ci_high", "paired", "processes", "how")}
        if not (sp and sp.get("ci_low") is not None and sp["ci_low"] > 1.0):
            tied.append(c)
    runner_up = min((c for c in ok if c is not leader), key=lambda c: med[c.spec.key])
    label = lambda c: f"{c.spec.backend}/{c.spec.variant or c.spec.precision}"  # noqa: E731
    if not tied:
        return {"key": leader.spec.key, "status": "winner", "vs": vs, "vs_runner_up": vs.get(runner_up.spec.key),
                "runner_up": label(runner_up), "tied_with": []}
    pool = [leader, *tied]
    pick = min(pool, key=lambda c: (PRECISION_RANK.get(c.spec.precision, 9), med[c.spec.key]))
    return {"key": pick.spec.key, "status": "tied", "vs": vs, "vs_runner_up": vs.get(runner_up.spec.key),
            "runner_up": label(runner_up), "tied_with": [label(c) for c in pool if c is not pick]}


def write_winners(result: TuneResult, frows: list, store, out_dir, progress) -> None:
    """Each model's overall winner as a tuned directory OUT/<model>."""
    from pathlib import Path

    try:
        from .artifact import write_tuned
    except ImportError:  # pragma: no cover - the artifact module ships with this package
        result.notes.append("tuned directories not written: pfdeploy.tune.artifact is missing")
        return
    run = store.get_run(result.final_run)
    for doc in result.models:
        ov = doc.get("overall")
        if not ov:
            continue
        row = next((r for r in frows if r["model"] == doc["model"] and r["backend"] == ov["backend"]
                    and r.get("variant") == ov["variant"]), None)
        if row is None:
            continue
        target = Path(out_dir) / doc["model"]
        progress.phase(f"writing {target}")
        path = write_tuned(target, row, run_id=result.final_run, store_url=result.store_url,
                           machine=run.get("machine") or {})
        ov["dir"] = str(path)

