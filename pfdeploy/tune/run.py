"""A whole `pfdeploy tune` (docs/tune.md): every runtime's candidate settings for each model
(declared by the backend modules, `Backend.tune_space`), one race per model and runtime
(pfdeploy.tune.race), then ONE final rotation (pfdeploy.tune.final) in which the shipped
deployment of every model and runtime runs together, so that "the fastest deployment of this
model" and "PF model vs its baselines, each at its best" are paired comparisons with the
hierarchical interval. This module plans and orchestrates; what the CLI prints lives in
pfdeploy.cli.tune.

Stored as ordinary runs: one per model (suite "tune"), and the final one (suite "tune-final").
The overall winner of each model is written as a deployable directory (pfdeploy.tune.artifact).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..errors import UsageError
from ..result import Result, TuneRecord
from .final import PROCESS_WALL_S, FinalRotationPolicy, FinalRunnerSettings, final_row, final_rule, overall_doc
from .race import ALPHA, MAX_GENERATIONS, Budget, RacePolicy, RaceSettings

TUNE_VERSION = "1"
# compiles at the first inference of every worker (minutes per candidate on a 2-core machine):
# raced only when named with --backends
NOT_BY_DEFAULT = ("torch-compile",)
PER_MODEL_BUDGET_S = 240.0  # default --budget: this much per model
FINAL_PROCESSES = 4


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
    raced: list[tuple[str, dict, list[tuple[str, dict]]]] = []  # (model, its JSON doc, [(backend, runtime doc)])
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
        runtimes = []
        rows = {r.case_key: r for r in store.results(outcome.run_id)}
        for backend, specs in mp.races:
            race = settings.results.get(specs[0][0].key)
            runtime = runtime_doc(backend, specs, race, rows)
            runtimes.append((backend, runtime))
            progress.race_done(mp.model, backend, runtime)
            if race is not None:
                for spec, _ in specs:
                    e = race.entrants.get(spec.key)
                    if e is not None and e.shipped:
                        shipped[spec.key] = (spec, e)
        model_doc["runtimes"] = [rt for _, rt in runtimes]
        result.models.append(model_doc)
        raced.append((mp.model, model_doc, runtimes))
        if outcome.status != "finished":
            result.status = outcome.status
            result.notes.append(f"interrupted while racing {mp.model}; nothing after it was measured")
            break
    if shipped and result.status == "finished":
        final_cases = [spec for spec, _ in shipped.values()]
        records = {key: e.record() for key, (_, e) in shipped.items()}
        final = FinalRunnerSettings(records=records, alpha=cfg.alpha)
        fcfg = BenchConfig(models=tuple(p.model for p in plans), cases=tuple(final_cases), device=str(device),
                           threads=threads, scenario=cfg.scenario, rule=final_rule(cfg.final_processes), tag=cfg.tag,
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
        frows = store.results(outcome.run_id)
        for model, model_doc, runtimes in raced:
            model_doc["overall"] = overall_doc(frows, final.overall.get(model))
            for backend, rt in runtimes:
                fr = next((r for r in frows if r.model == model and r.backend == backend and r.ok), None)
                if fr is not None:
                    rt["final"] = {"p50_ms": fr.p50_ms, "p50_ci_low_ms": fr.p50_ci_low_ms,
                                   "p50_ci_high_ms": fr.p50_ci_high_ms, "items_per_s": fr.items_per_s,
                                   "processes": fr.processes}
        if out_dir is not None:
            write_winners(result, [(model, model_doc, final_row(frows, final.overall.get(model)))
                                   for model, model_doc, _ in raced], store, out_dir, progress)
    result.wall_s = time.monotonic() - t0
    return result


def runtime_doc(backend: str, specs: list, race, rows: dict[str, Result]) -> dict:
    """One runtime's race as the CLI and --json show it."""
    cands = []
    ship = None
    for spec, c in specs:
        row = rows.get(spec.key)
        e = race.entrants.get(spec.key) if race is not None else None
        tune: TuneRecord | None = (row.tune if row is not None else None) or (e.record() if e is not None else None)
        doc = {"variant": spec.variant, "precision": spec.precision, "default": bool(c.default),
               "options": {k: v for k, v in spec.options.items()}, "note": c.note,
               "status": None if row is None else row.status if not row.ok else tune.status if tune else None,
               "error": row and row.error, "p50_ms": row and row.p50_ms, "p50_ci_low_ms": row and row.p50_ci_low_ms,
               "p50_ci_high_ms": row and row.p50_ci_high_ms, "items_per_s": row and row.items_per_s,
               "processes": row and row.processes, "vs_default": tune and tune.vs_default,
               "elimination": tune and tune.elimination, "eliminated_by": tune and tune.eliminated_by,
               "tied_with": tune and tune.tied_with, "reason": tune and tune.reason,
               "shipped": bool(tune and tune.runtime_winner),
               "parity": ((row and row.parity) or {}).get("verdict")}
        cands.append(doc)
        if doc["shipped"]:
            ship = doc
    return {"backend": backend, "shipped": ship, "candidates": cands,
            "generations": race.generation if race is not None else 0,
            "looks": race.looks if race is not None else []}


def winners_of(result: TuneResult, frows: list[Result]) -> list[tuple[str, dict, Result | None]]:
    """(model, its JSON doc, its overall winner's final-rotation result or None) of a finished tune,
    from the final run's results: what `write_winners` takes (the CLI writes after it has printed)."""
    out = []
    for doc in result.models:
        ov = doc.get("overall")
        row = None
        if ov:
            row = next((r for r in frows if r.model == doc["model"] and r.backend == ov.get("backend")
                        and (r.variant or "") == (ov.get("variant") or "") and r.ok), None)
        out.append((doc["model"], doc, row))
    return out


def write_winners(result: TuneResult, winners: list[tuple[str, dict, Result | None]], store, out_dir,
                  progress) -> None:
    """Each model's overall winner (its final-rotation result) as a tuned directory OUT/<model>;
    `winners`: (model, its JSON doc, the winner's result or None)."""
    from pathlib import Path

    try:
        from .artifact import write_tuned
    except ImportError:  # pragma: no cover - the artifact module ships with this package
        result.notes.append("tuned directories not written: pfdeploy.tune.artifact is missing")
        return
    run = store.get_run(result.final_run)
    for model, model_doc, row in winners:
        if row is None or not model_doc["overall"]:
            continue
        target = Path(out_dir) / model
        progress.phase(f"writing {target}")
        path = write_tuned(target, row, run_id=result.final_run, store_url=result.store_url,
                           machine=run.get("machine") or {})
        model_doc["overall"]["dir"] = str(path)
