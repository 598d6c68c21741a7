"""Each model at its best deployment (`pfdeploy claims --at best`, issue 23 item 6): from the newest
`pfdeploy tune` final run, each parameter-free model against each baseline its results name, both
at the deployment the tune kept (its `TuneRecord`): per runtime, and across runtimes."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

from ..result import Result, TuneRecord
from .docs import RunInfo, results_of, started
from .pairs import VERDICT_RULE, Speedup, measure, named_baselines, usable

TUNE_FINAL_SUITE = "tune-final"  # the run in which every model's runtime winners ran in one rotation
ANY_RUNTIME = "any runtime"  # the runtime label of an across-runtimes comparison
# a deployment: what a tune-final result names (the rest of the result stays in the store)
DEPLOYMENT_FIELDS = ("backend", "precision", "variant", "batch", "threads", "scenario", "options")
TUNE_FIELDS = ("candidate", "default", "note", "status", "runtime_winner", "overall_winner", "tied_with",
               "vs_default")
BEST_RULE = VERDICT_RULE.replace("the store has no run with both models in that configuration",
                                  "the tune run has no successful deployment of one of the two there")
BEST_ORIENTATION = ("speedup = baseline p50 / parameter-free p50, each at its own best deployment "
                    "(per item when the two differ in items per step); above 1 the parameter-free model is faster")


def no_tune_results(store: str) -> str:
    """The one message for a store without a `pfdeploy tune` final run."""
    return f"no `pfdeploy tune` results in {store}: run `pfdeploy tune MODELS` first"


def is_tune_final(doc: dict) -> bool:
    return str(RunInfo.of(doc).suite or "") == TUNE_FINAL_SUITE


def tune_final_docs(docs: Sequence[dict]) -> list[dict]:
    """The newest finished tune-final run document of each machine, device, scenario and batch
    (newest first; an interrupted one only where there is no finished one): a throughput tune of
    one model does not hide the latency tune of three."""
    out: dict[tuple, dict] = {}

    def rank(doc):
        run = RunInfo.of(doc)
        return run.status == "finished", run.started_at

    for doc in sorted((d for d in docs if is_tune_final(d)), key=rank, reverse=True):
        run = RunInfo.of(doc)
        cfg = run.config
        key = (run.machine_id, str(cfg.get("device")), str(cfg.get("scenario")), str(cfg.get("batches")))
        out.setdefault(key, doc)
    return list(out.values())


# --------------------------------------------------------------------------------------------
# a deployment: what one side of a comparison ran
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Deployment:
    """What a side of a best-deployment comparison ran: the tune-final result itself (backend,
    precision, variant, batch, threads, scenario, options, its p50 with CI) and the tune's record
    (status, tied set, speedup over the runtime's default)."""

    result: Result

    @property
    def tune(self) -> TuneRecord:
        return self.result.tune or TuneRecord()

    @property
    def variant(self) -> str:
        return self.result.variant or self.tune.candidate or ""

    @property
    def backend(self) -> str | None:
        return self.result.backend

    @property
    def precision(self) -> str | None:
        return self.result.precision

    @property
    def batch(self) -> int | None:
        return self.result.batch

    @property
    def options(self) -> dict | None:
        return self.result.options

    def text(self, with_backend: bool = True, compact: bool = False) -> str:
        """'openvino · int8 · int8-s8s8': '(default)' (compact: '*') marks the runtime's own default,
        'b8' a batch other than 1, '(tied)' a winner the tune could not separate from other settings."""
        r, tune = self.result, self.tune
        parts = ([str(r.backend)] if with_backend else []) + [str(r.precision)]
        mark = ("*" if compact else " (default)") if tune.default else ""
        if self.variant:
            parts.append(self.variant + mark)
        elif mark:
            parts.append("default" if not compact else "*")
        if r.batch not in (None, 1):
            parts.append(f"b{r.batch}")
        text = " · ".join(parts)
        return text + " (tied)" if tune.status == "tied" else text

    def to_dict(self) -> dict:
        """The JSON of a deployment ("model_deployment", "baseline_deployment")."""
        r, t = self.result, self.tune
        p50, low, high = r.ci
        return {"backend": r.backend, "precision": r.precision, "variant": self.variant, "batch": r.batch,
                "threads": r.threads, "scenario": r.scenario, "options": r.options,
                "p50_ms": p50, "p50_ci_low_ms": low, "p50_ci_high_ms": high, "n": r.n, "processes": r.processes,
                "status": r.status, "params": r.params, "macs": r.macs,
                "tune": {"candidate": t.candidate, "default": t.default, "note": t.note, "status": t.status,
                         "runtime_winner": t.runtime_winner, "overall_winner": t.overall_winner,
                         "tied_with": list(t.tied_with), "vs_default": t.vs_default}}


def deployment(r: Result | None) -> Deployment | None:
    return None if r is None else Deployment(r)


def deployment_text(d: Deployment | None, with_backend: bool = True, compact: bool = False) -> str:
    """`Deployment.text`, '-' for no deployment."""
    return "-" if d is None else d.text(with_backend, compact)


# --------------------------------------------------------------------------------------------
# the comparisons
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BestComparison(Speedup):
    """A parameter-free model against one baseline, each at its best deployment: on one runtime
    (kind "runtime") or across runtimes (kind "overall", runtime ANY_RUNTIME)."""

    kind: str = "runtime"
    model: str = ""
    baseline: str = ""
    device: str | None = None
    scenario: str | None = None
    runtime: str = ""
    model_deployment: Deployment | None = None
    baseline_deployment: Deployment | None = None
    per_item: bool = False
    run: RunInfo | None = None

    @property
    def overall(self) -> bool:
        return self.kind == "overall"

    @property
    def model_p50_ms(self) -> float | None:
        return self.model_deployment.result.p50_ms if self.model_deployment else None

    @property
    def baseline_p50_ms(self) -> float | None:
        return self.baseline_deployment.result.p50_ms if self.baseline_deployment else None

    @property
    def model_at(self) -> str:
        """The model's deployment as a cell (the backend only across runtimes)."""
        return deployment_text(self.model_deployment, with_backend=self.overall)

    @property
    def baseline_at(self) -> str:
        return deployment_text(self.baseline_deployment, with_backend=self.overall)

    @property
    def run_id(self):
        return self.run.id if self.run else None

    @property
    def machine_id(self) -> str:
        return self.run.machine_id if self.run else "unknown"

    def to_dict(self) -> dict:
        """The JSON of one comparison of `pfdeploy claims --at best --json`."""
        run, md, bd = self.run, self.model_deployment, self.baseline_deployment
        return {"kind": self.kind, "model": self.model, "baseline": self.baseline, "device": self.device,
                "scenario": self.scenario, "runtime": self.runtime,
                "model_deployment": md.to_dict() if md else None, "baseline_deployment": bd.to_dict() if bd else None,
                "model_p50_ms": self.model_p50_ms, "baseline_p50_ms": self.baseline_p50_ms,
                "per_item": self.per_item, "ratio": self.ratio, "ci_low": self.ci_low, "ci_high": self.ci_high,
                "paired": self.paired, "rounds": self.rounds, "processes": self.processes, "how": self.how,
                "verdict": self.verdict, "slower": self.slower, "reason": self.reason,
                "run_id": run.id if run else None, "run_tag": run.tag if run else None,
                "started_at": run.started if run else None, "machine_id": self.machine_id}


def _pick(rows: Sequence[Result], flag: str | None = None) -> Result | None:
    """The result that stands for a set of winners: a successful one first; among them the one
    the tune marked overall winner (`flag` "overall"), then the declared winner over a tied one,
    then the lowest p50."""
    if not rows:
        return None

    def rank(r: Result):
        t = r.tune or TuneRecord()
        return (not usable(r), not (flag == "overall" and t.overall_winner), t.status != "winner",
                r.p50_ms if r.p50_ms is not None else float("inf"))

    return min(rows, key=rank)


def best_pair(kind: str, model_row: Result | None, base_row: Result | None, model: str, baseline: str,
              device, scenario, backend: str, missing: str | None = None) -> BestComparison:
    """One best-deployment comparison: the speedup of the baseline's result over the model's,
    paired over the shared rounds of the final rotation, hierarchical over worker-process
    generations; per item (`Result.per_item_ms`: by items per step) when the two differ in items
    per step."""
    out = BestComparison(kind=kind, model=model, baseline=baseline, device=device, scenario=scenario,
                         runtime=backend, model_deployment=deployment(model_row),
                         baseline_deployment=deployment(base_row))
    if model_row is None or base_row is None:
        return replace(out, reason=missing or "not measured")
    for r in (model_row, base_row):
        if not usable(r):
            return replace(out, reason=f"{r.model} {r.status}: {r.error or 'no result'}")
    m_items, b_items = model_row.items_per_step, base_row.items_per_step
    per_item = m_items != b_items
    # per item: (base p50 / its items) / (model p50 / its items), the ratio and its CI scaled alike
    sp = measure(base_row, model_row, factor=m_items / b_items if per_item else 1.0)
    if sp is None:
        return replace(out, reason="no samples to compare", per_item=per_item)
    return out.judged(ratio=sp.ratio, ci_low=sp.ci_low, ci_high=sp.ci_high, paired=sp.paired, rounds=sp.rounds,
                      processes=sp.processes, how=sp.how, per_item=per_item)


def best_comparisons(doc: dict) -> list[BestComparison]:
    """Every parameter-free model of one tune-final run against each baseline its results name:
    per runtime (each side's winner on that runtime, kind "runtime") and across runtimes (each
    side's overall winner, kind "overall"), per device and scenario."""
    run = RunInfo.of(doc)
    # (device, scenario) -> model -> backend -> [results the tune kept for that runtime]
    where: dict[tuple, dict[str, dict[str, list[Result]]]] = {}
    for r in results_of(doc):
        if not r.model:
            continue
        if r.tune is not None and "runtime_winner" in r.tune.model_fields_set and not r.tune.runtime_winner:
            continue  # a tune-final run holds winners only; anything else is not a deployment
        where.setdefault((r.device, r.scenario), {}).setdefault(str(r.model), {}).setdefault(
            str(r.backend), []).append(r)
    out = []
    for (device, scenario), models in where.items():
        for model in sorted(models):
            backends = models[model]
            anyrow = next(r for rs in backends.values() for r in rs)
            for base in named_baselines(anyrow):
                theirs = models.get(base, {})
                for backend in sorted(set(backends) | set(theirs)):
                    m, b = _pick(backends.get(backend, [])), _pick(theirs.get(backend, []))
                    missing = (None if m and b else
                               f"{model if m is None else base} has no tuned deployment on {backend} in this run")
                    out.append(best_pair("runtime", m, b, model, base, device, scenario, backend, missing))
                m = _pick([r for rs in backends.values() for r in rs], "overall")
                b = _pick([r for rs in theirs.values() for r in rs], "overall")
                out.append(best_pair("overall", m, b, model, base, device, scenario, ANY_RUNTIME,
                                     None if b else f"{base} was not tuned in this run"))
    return [replace(c, run=run) for c in out]


@dataclass(frozen=True)
class BestClaims:
    """`best_claims`: the tune-final runs read and their comparisons (`pfdeploy claims --at best`)."""

    runs: list[RunInfo]
    machines: dict[str, str]
    comparisons: list[BestComparison]
    rule: str = BEST_RULE
    orientation: str = BEST_ORIENTATION

    def to_dict(self) -> dict:
        """The JSON of `pfdeploy claims --at best --json` and the report's claims-best.json."""
        return {"at": "best", "rule": self.rule, "orientation": self.orientation,
                "runs": [{"id": r.id, "tag": r.tag, "started_at": r.started, "machine_id": r.machine_id,
                          "suite": r.suite, "git_commit": r.git_commit} for r in self.runs],
                "machines": self.machines, "comparisons": [c.to_dict() for c in self.comparisons]}


def best_claims(docs: Sequence[dict], newest_only: bool = True) -> BestClaims:
    """Each parameter-free model against its baselines at each one's best deployment, from the
    newest tune-final run of every machine among `docs` (`newest_only=False`: every tune-final
    run of `docs`, e.g. runs named on the command line; other runs are ignored); `runs` is empty
    when there is no tune-final run."""
    finals = (tune_final_docs(docs) if newest_only
              else sorted((d for d in docs if is_tune_final(d)), key=started, reverse=True))
    runs, machines, comps = [], {}, []
    for doc in finals:
        run = RunInfo.of(doc)
        machines[run.machine_id] = run.machine
        runs.append(run)
        comps += best_comparisons(doc)
    return BestClaims(runs=runs, machines=machines, comparisons=comps)
