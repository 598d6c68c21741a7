"""Run pairs: a parameter-free model's result against the result of each baseline its spec names,
in the same configuration of the same run, and the verdict rule every comparison is read by.

Every ratio is `bench.stats.speedup`: baseline p50 / model p50, **above 1 the parameter-free model
is faster**, paired over shared rounds when the two cases ran in the same rotation. No torch: the
baselines come from the results themselves (the engine records the spec's `baselines`); only run
files written before that fall back to the zoo, which imports timm."""
from __future__ import annotations

import functools
from dataclasses import dataclass, fields, replace
from typing import Iterable

from ..labels import ratio_text
from ..result import Result
from ..zoo.spec import PF_FAMILY  # noqa: F401 - one definition; claims.PF_FAMILY kept

# a comparison pairs two cases that differ only in the model
CONFIG_FIELDS = ("device", "backend", "precision", "batch", "threads", "scenario")
VERDICTS = ("yes", "no", "inconclusive", "not measured")
VERDICT_RULE = ("yes: the whole 95% CI of the speedup (baseline p50 / model p50) is above 1; "
                "no: the whole CI is at or below 1 (\"slower\" when it is entirely below 1); "
                "inconclusive: the CI contains 1, or there is no CI; "
                "not measured: the store has no run with both models in that configuration")


# --------------------------------------------------------------------------------------------
# verdicts
# --------------------------------------------------------------------------------------------

def verdict(ci_low: float | None, ci_high: float | None) -> tuple[str, bool]:
    """(verdict, slower) of "the model is faster than the baseline" from the speedup's CI."""
    if ci_low is None or ci_high is None:
        return "inconclusive", False
    if ci_low > 1.0:
        return "yes", False
    if ci_high <= 1.0:
        return "no", ci_high < 1.0
    return "inconclusive", False


@dataclass(frozen=True)
class Speedup:
    """A speedup (baseline p50 / model p50) with its CI, pairing and the verdict it gives;
    `reason` says why there is none."""

    ratio: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    paired: bool = False
    rounds: int = 0
    processes: int | None = None
    how: str | None = None
    verdict: str = "not measured"
    slower: bool = False
    reason: str | None = None

    @property
    def text(self) -> str:
        """'1.71x [1.65, 1.78]', '~0.93x [...]' when unpaired, '-' without a ratio."""
        return ratio_text(self)

    @property
    def word(self) -> str:
        """The verdict as a table shows it: 'no, slower' when the whole CI is below 1."""
        return "no, slower" if self.slower else self.verdict

    def judged(self, **changes):
        """A copy with `changes` applied and the verdict read from its CI."""
        new = replace(self, **changes)
        v, slower = verdict(new.ci_low, new.ci_high)
        return replace(new, verdict=v, slower=slower)


def verdict_text(v: Speedup) -> str:
    """'yes (1.71x [1.65, 1.78])', 'no, slower (0.93x [0.91, 0.95])', 'not measured'."""
    if v.verdict == "not measured" or v.ratio is None:
        return "not measured"
    return f"{v.word} ({v.text})"


def measure(base: Result, model: Result, factor: float = 1.0) -> Speedup | None:
    """The speedup of two successful results: `row_speedup` of their samples (paired by rotation,
    hierarchical over worker processes), or the ratio of their stored medians when one has no raw
    samples (an imported summary: no CI). `factor` scales the ratio and its CI (per item: the
    model's items per step over the baseline's). None when there is nothing to compare."""
    from ..bench.stats import row_speedup

    if not (base.samples_ns and model.samples_ns):
        b, m = base.p50_ms, model.p50_ms
        if b is None or m is None or m <= 0:
            return None
        return Speedup(ratio=b / m * factor, how="ratio of the stored medians (no samples)")
    res = row_speedup(base, model)
    if res is None:
        return None

    def scaled(x):
        return None if x is None else x * factor

    return Speedup(ratio=scaled(res["ratio"]), ci_low=scaled(res["ci_low"]), ci_high=scaled(res["ci_high"]),
                   paired=bool(res["paired"]), rounds=int(res["rounds"] or 0), processes=res.get("processes"),
                   how=res.get("how"))


# --------------------------------------------------------------------------------------------
# every parameter-free model against its named baselines
# --------------------------------------------------------------------------------------------

def named_baselines(r: Result) -> tuple[str, ...]:
    """The baselines the result's model spec names: from the result itself (recorded by the
    engine), else, for a parameter-free result of an older run file, from the zoo."""
    if r.baselines is not None:
        return tuple(str(b) for b in r.baselines)
    if r.family != PF_FAMILY or not r.model:
        return ()
    return _zoo_baselines(str(r.model))


@functools.lru_cache(maxsize=None)
def _zoo_baselines(model: str) -> tuple[str, ...]:
    try:
        from ..zoo import get_spec  # imports timm (seconds); only for rows without "baselines"

        return tuple(get_spec(model).baselines)
    except Exception:  # noqa: BLE001 - an unknown or foreign model simply names no baseline
        return ()


def config_of(r: Result) -> tuple:
    """The configuration a comparison holds fixed (in the order of CONFIG_FIELDS)."""
    return r.device, r.backend, r.precision, r.batch, r.threads, r.scenario


def usable(r: Result | None) -> bool:
    """A successful result with something to compare: raw samples or a median."""
    return r is not None and r.ok and (bool(r.samples_ns) or r.p50_ms is not None)


@dataclass(frozen=True)
class Comparison(Speedup):
    """One comparison: a model's result against the result of `baseline` in the same
    configuration of the same run (`baseline_result` None: the run lacks it)."""

    model: str | None = None
    baseline: str | None = None
    device: str | None = None
    backend: str | None = None
    precision: str | None = None
    batch: int | None = None
    threads: int | None = None
    scenario: str | None = None
    model_result: Result | None = None
    baseline_result: Result | None = None

    @property
    def model_p50_ms(self) -> float | None:
        return self.model_result.p50_ms if self.model_result else None

    @property
    def baseline_p50_ms(self) -> float | None:
        return self.baseline_result.p50_ms if self.baseline_result else None

    @property
    def model_params(self) -> int | None:
        return self.model_result.params if self.model_result else None

    @property
    def model_macs(self) -> int | None:
        return self.model_result.macs if self.model_result else None

    @property
    def baseline_params(self) -> int | None:
        return self.baseline_result.params if self.baseline_result else None

    @property
    def baseline_macs(self) -> int | None:
        return self.baseline_result.macs if self.baseline_result else None

    @property
    def variant(self) -> str | None:
        """The model side's named runtime setting (tables show it when it varies)."""
        return self.model_result.variant if self.model_result else None

    def to_dict(self) -> dict:
        """The JSON of one comparison (`pfdeploy bench --json`'s "comparisons", claims.json)."""
        return {"model": self.model, "baseline": self.baseline, "device": self.device, "backend": self.backend,
                "precision": self.precision, "batch": self.batch, "threads": self.threads, "scenario": self.scenario,
                "model_p50_ms": self.model_p50_ms, "model_params": self.model_params, "model_macs": self.model_macs,
                "baseline_p50_ms": self.baseline_p50_ms, "baseline_params": self.baseline_params,
                "baseline_macs": self.baseline_macs,
                "ratio": self.ratio, "ci_low": self.ci_low, "ci_high": self.ci_high, "paired": self.paired,
                "rounds": self.rounds, "verdict": self.verdict, "slower": self.slower, "reason": self.reason}

    def as_kwargs(self) -> dict:
        """Its fields as keyword arguments (for a subclass that adds to a comparison)."""
        return {f.name: getattr(self, f.name) for f in fields(Comparison)}


def pair(model: Result, base: Result | None, baseline: str | None = None) -> Comparison:
    """One comparison: the model's result against the result of `baseline` in the same
    configuration (None: the run lacks it)."""
    out = Comparison(model=model.model, baseline=base.model if base is not None else baseline,
                     **dict(zip(CONFIG_FIELDS, config_of(model))), model_result=model, baseline_result=base)
    if not usable(model):
        return replace(out, reason=f"{model.model} has no successful result")
    if not usable(base):
        return replace(out, reason=f"{base.model} {base.status}" if base is not None else "baseline not in this run")
    sp = measure(base, model)
    if sp is None:
        return replace(out, reason="no samples to compare")
    return out.judged(ratio=sp.ratio, ci_low=sp.ci_low, ci_high=sp.ci_high, paired=sp.paired, rounds=sp.rounds,
                      processes=sp.processes, how=sp.how)


def comparisons(rows: Iterable[Result | dict]) -> list[Comparison]:
    """Every successful result whose spec names baselines, against each of them, within one run's
    results: the baseline's result of the same device, backend, precision, batch, threads and
    scenario (a "not measured" entry when the run lacks it or it failed). Plain rows are read
    as results (`Result.from_row`)."""
    rows = [Result.from_row(r) for r in rows]
    index = {(config_of(r), r.model): r for r in rows}
    out = []
    for r in rows:
        if not r.ok:
            continue
        for base in named_baselines(r):
            out.append(pair(r, index.get((config_of(r), base)), base))
    return out
