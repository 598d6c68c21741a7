"""The race of one runtime's candidate settings (docs/tune.md, "The race").

Every candidate of a runtime is a case of ONE rotation (`bench.rotation.Rotation`): each
generation starts a fresh worker process per surviving candidate, runs interleaved rounds A, B,
C, A, B, C ... and closes them, exactly as `pfdeploy bench` measures. After every generation the
race looks at what the survivors measured so far:

* the leader is the survivor with the lowest median;
* every other survivor is compared with the leader by the paired speedup of the across-runs
  estimator (`bench.stats.speedup`: the ratio of round medians over the rounds the two shared,
  hierarchical t interval over the generations of worker processes), at the family-wise
  confidence 1 - alpha / m (Bonferroni over the m comparisons of that look);
* a survivor whose whole interval says the leader is faster is eliminated. Nothing is eliminated
  by rank alone, and nothing before two generations (one process per side is no process level);
* as in successive halving, the measuring time of a generation is spread over the survivors: the
  fewer remain, the longer each process of the next generation measures.

The race ends when one survivor is left (the winner: its interval excluded every other), or at
`max_generations` or the time budget, when the survivors that no interval separated from the
leader are reported as a tie. The runtime's own default is always a candidate and is measured to
the end as the reference of every "x faster than the default" (its row says whether it was
eliminated as a candidate). A candidate that the runtime refuses, or whose outputs fail the
parity check against PyTorch, is dropped with the reason and never races.

Pure policy (`Race`, `Entrant`) is kept apart from the engine glue (`RacePolicy`), so the policy is
tested on simulated benchmarks and the glue with the engine's fake runner.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from ..bench.stats import ci_halfwidth_rel
from ..bench.stats.ratios import speedup
from ..bench.timing import Decision
from ..exporters.artifact import parity_verdict
from ..result import Accuracy, TuneRecord

ALPHA = 0.05  # family-wise error of each look (Bonferroni over its comparisons)
MIN_GENERATIONS = 2  # no elimination before two worker processes per candidate
MAX_GENERATIONS = 6
# ties are shipped at the safest setting: the highest precision, then the runtime's default
PRECISION_RANK = {"fp32": 0, "tf32": 1, "bf16": 2, "fp16": 3, "int8": 4}


@dataclass
class Entrant:
    """One candidate in the race: its case key, variant name and fate."""

    key: str
    name: str
    precision: str = "fp32"
    default: bool = False
    note: str = ""
    status: str = "racing"  # racing | eliminated | failed | winner | tied
    reason: str | None = None
    eliminated_by: str | None = None
    eliminated_at: int | None = None
    elimination: dict | None = None
    vs_default: dict | None = None
    tied_with: list[str] = field(default_factory=list)
    shipped: bool = False  # the runtime's deployment (the winner, or the pick of a tie)
    p50_ms: float | None = None

    def record(self) -> TuneRecord:
        """The result's `tune` record (tune-contract: status, runtime_winner, eliminated_by ...)."""
        return TuneRecord(candidate=self.name, default=self.default, note=self.note, status=self.status,
                          runtime_winner=self.shipped, overall_winner=False, eliminated_by=self.eliminated_by,
                          eliminated_at=self.eliminated_at, elimination=self.elimination,
                          vs_default=self.vs_default, tied_with=list(self.tied_with), reason=self.reason)


@dataclass
class Measured:
    """What a candidate's worker processes measured so far."""

    samples: list[int]
    rounds: list[int]
    procs: list[int]

    @property
    def median(self) -> float:
        return float(np.median(self.samples)) if self.samples else math.inf

    @property
    def generations(self) -> int:
        return len(set(self.procs))


class Race:
    """Successive elimination over one runtime's candidates (see the module docstring)."""

    def __init__(self, entrants: list[Entrant], alpha: float = ALPHA, max_generations: int = MAX_GENERATIONS,
                 min_generations: int = MIN_GENERATIONS):
        if not entrants:
            raise ValueError("a race needs candidates")
        self.entrants = {e.key: e for e in entrants}
        self.alpha = alpha
        self.max_generations = max_generations
        self.min_generations = min_generations
        self.generation = 0
        self.looks: list[dict] = []  # one record per look: leader, comparisons, eliminations

    # ------------------------------------------------------------------ state
    @property
    def racing(self) -> list[Entrant]:
        return [e for e in self.entrants.values() if e.status == "racing"]

    @property
    def default(self) -> Entrant | None:
        return next((e for e in self.entrants.values() if e.default), None)

    def measured_keys(self) -> list[str]:
        """Keys to measure in the next generation: the survivors and, while the race goes on,
        the runtime's default (the reference of every speedup), even when it was eliminated."""
        keys = [e.key for e in self.racing]
        d = self.default
        if keys and d is not None and d.status in ("racing", "eliminated") and d.key not in keys:
            keys.append(d.key)
        return keys

    def decided(self) -> bool:
        return len(self.racing) <= 1

    def fail(self, key: str, reason: str) -> None:
        e = self.entrants[key]
        e.status, e.reason = "failed", reason

    # ------------------------------------------------------------------ one look
    def look(self, data: dict[str, Measured]) -> list[Entrant]:
        """After a generation: eliminate every survivor the leader beats by its whole interval.
        Returns the entrants eliminated at this look."""
        self.generation += 1
        racing = [e for e in self.racing if e.key in data and data[e.key].samples]
        for e in self.racing:
            if e not in racing:
                self.fail(e.key, "measured nothing")
        if len(racing) < 2:
            return []
        leader = min(racing, key=lambda e: data[e.key].median)
        others = [e for e in racing if e is not leader]
        confidence = 1 - self.alpha / len(others)
        record = {"generation": self.generation, "leader": leader.name, "confidence": confidence,
                  "comparisons": {}}
        out = []
        if min(data[e.key].generations for e in racing) >= self.min_generations:
            for e in others:
                sp = self.compare(data[e.key], data[leader.key], confidence)
                record["comparisons"][e.name] = sp
                if sp and sp.get("ci_low") is not None and sp["ci_low"] > 1.0:
                    e.status, e.eliminated_by, e.eliminated_at, e.elimination = (
                        "eliminated", leader.name, self.generation, _short(sp, confidence))
                    e.reason = (f"{leader.name} is x{sp['ratio']:.3f} faster "
                                f"[{sp['ci_low']:.3f}, {sp['ci_high']:.3f}] ({confidence:.1%} paired interval, "
                                f"{sp.get('processes')} generations)")
                    out.append(e)
        self.looks.append(record)
        return out

    @staticmethod
    def compare(slow: Measured, fast: Measured, confidence: float) -> dict | None:
        """How much faster `fast` is than `slow`: median(slow) / median(fast), paired by round,
        hierarchical over the generations (> 1: `fast` is faster)."""
        return speedup(slow.samples, slow.rounds, fast.samples, fast.rounds, confidence=confidence,
                       base_procs=slow.procs, model_procs=fast.procs)

    # ------------------------------------------------------------------ the end
    def finish(self, data: dict[str, Measured], why: str) -> Entrant | None:
        """End the race: one survivor is the winner; several are a tie, shipped at the safest
        setting (highest precision, then the default, then the lowest median). Every entrant
        gets its speedup over the default. Returns the shipped entrant (None: all failed)."""
        for e in self.entrants.values():
            if e.key in data and data[e.key].samples:
                e.p50_ms = data[e.key].median / 1e6
        racing = [e for e in self.racing if e.key in data and data[e.key].samples]
        shipped = None
        if len(racing) == 1:
            shipped = racing[0]
            shipped.status = "winner"
            shipped.reason = ("the only candidate" if len(self.entrants) == 1 else
                              "every other candidate was eliminated by a paired interval")
        elif racing:
            leader = min(racing, key=lambda e: data[e.key].median)
            for e in racing:
                e.status = "tied"
                e.tied_with = [o.name for o in racing if o is not e]
                e.reason = (f"not separated from {leader.name} within {why}" if e is not leader
                            else f"leader, not separated from {', '.join(e.tied_with)} within {why}")
            shipped = min(racing, key=lambda e: (PRECISION_RANK.get(e.precision, 9), not e.default,
                                                 data[e.key].median))
        if shipped is not None:
            shipped.shipped = True
        for e in self.entrants.values():
            self.set_vs_default(e, data)
        return shipped

    def set_vs_default(self, e: Entrant, data: dict[str, Measured]) -> None:
        """`e.vs_default`: how much faster `e` is than the runtime's default (95% paired interval
        over the rounds the two shared)."""
        d = self.default
        if d is None or e.key not in data or d.key not in data or not data[e.key].samples or not data[d.key].samples:
            return
        e.vs_default = (_short(self.compare(data[d.key], data[e.key], 0.95), 0.95) if e is not d
                        else {"ratio": 1.0, "ci_low": 1.0, "ci_high": 1.0, "how": "itself"})


def accuracy_gate(accuracy: Accuracy | dict | None, max_drop: float | None) -> str | None:
    """Why a candidate is dropped by the accuracy gate (`--max-drop` with `--images`): its
    artifact's top-1 on the images more than `max_drop` below PyTorch fp32's on the same images.
    `accuracy`: the artifact's accuracy record (the prepared case holds it as the exporter's
    plain dict: typed here). None: it passes (or there is no gate)."""
    if max_drop is None:
        return None
    acc = Accuracy.model_validate(accuracy) if accuracy else None
    if acc is None or acc.top1 is None or acc.torch_top1 is None:
        return "dropped from the race: no accuracy measured for its artifact on --images (the gate needs one)"
    drop = float(acc.torch_top1) - float(acc.top1)
    if drop > max_drop:
        return (f"dropped from the race: top-1 {acc.top1:.2%} on {acc.n} images is "
                f"{drop:.2%} below PyTorch fp32's {acc.torch_top1:.2%} (--max-drop {max_drop:.2%})")
    return None


def per_item(case) -> list[float]:
    """A case's samples as time per item: a throughput step completes several requests (and a
    batch several images), so settings with different requests in flight compare per item."""
    final = case.finals[0] if case.finals else {}
    n = final.get("items_per_step") or case.spec.batch or 1
    return [s / n for s in case.samples] if n != 1 else list(case.samples)


def _short(sp: dict | None, confidence: float) -> dict | None:
    if sp is None:
        return None
    keep = ("ratio", "ci_low", "ci_high", "paired", "rounds", "processes", "how")
    return {**{k: sp.get(k) for k in keep}, "confidence": confidence}


# ---------------------------------------------------------------------------------- the glue
@dataclass
class RaceSettings:
    """How a race is run: the statistics (alpha, generations) and its time."""

    alpha: float = ALPHA
    max_generations: int = MAX_GENERATIONS
    min_generations: int = MIN_GENERATIONS
    process_s: float = 0.5  # measured time of each worker process while every candidate races
    max_process_s: float = 2.0  # successive halving: survivors measure longer, up to this
    budget: object = None  # a Budget: when this race must end (None: generations only)
    candidates: dict = field(default_factory=dict)  # case key -> Candidate (name, default, note)
    on_look: object = None  # callable(RacePolicy) after every look (the CLI draws the race)
    results: dict = field(default_factory=dict)  # filled: group's first key -> finished Race
    max_drop: float | None = None  # with --images: the most top-1 a candidate may lose to PyTorch fp32


class Budget:
    """The time of a whole tune, shared out among its races as each one starts: what is left
    (less what the final rotation needs) divided by the races still to run."""

    def __init__(self, total_s: float | None, races: int, reserve_s: float = 0.0):
        self.deadline = None if total_s is None else time.monotonic() + total_s
        self.races_left = max(1, races)
        self.reserve_s = reserve_s

    def start_race(self) -> float | None:
        """The deadline (time.monotonic) of the race that starts now."""
        if self.deadline is None:
            return None
        left = self.deadline - self.reserve_s - time.monotonic()
        share = max(0.0, left) / self.races_left
        self.races_left = max(1, self.races_left - 1)
        return time.monotonic() + share


class RacePolicy:
    """Measures one rotation as a race: the Rotation's generations of fresh worker processes (its
    public steps), with the race deciding after each generation who goes on. One policy object
    races every rotation (runtime) of a model; the state of the current race is on it (`race`,
    `cases`, `backend`), for the progress display (`settings.on_look(policy)`)."""

    name = "race"

    def __init__(self, settings: RaceSettings):
        self.settings = settings
        self.race: Race | None = None
        self.cases: dict = {}
        self.backend: str | None = None
        self.deadline: float | None = None
        self.live_count = 1
        self.first_count = 1
        self.failed: set[str] = set()

    def process_share_s(self) -> float:
        s = self.settings
        return min(s.max_process_s, s.process_s * self.first_count / max(1, self.live_count))

    def records(self, spec, status: str, why: str | None) -> dict:
        """The tune record of a candidate stored before the race (its artifact failed to export or
        verify, or the runtime cannot run it here): it never raced, and says why."""
        cand = self.settings.candidates.get(spec.key)
        e = Entrant(key=spec.key, name=spec.variant or spec.precision, precision=spec.precision,
                    default=bool(getattr(cand, "default", False)), note=getattr(cand, "note", "") or "",
                    status="failed", reason=f"{status} before the race: {why}" if why else status)
        return {"tune": e.record()}

    def run(self, rot) -> None:
        s = self.settings
        self.rot = rot
        self.failed = rot.failed
        entrants = []
        for key, case in rot.cases.items():
            spec = case.spec
            cand = s.candidates.get(key)
            entrants.append(Entrant(key=key, name=spec.variant or spec.precision, precision=spec.precision,
                                    default=bool(getattr(cand, "default", False)),
                                    note=getattr(cand, "note", "") or ""))
        race = self.race = Race(entrants, s.alpha, s.max_generations, s.min_generations)
        s.results[next(iter(rot.cases))] = race
        cases = self.cases = rot.cases
        self.backend = next(iter(cases.values())).spec.backend
        self.first_count = len(cases)
        self.deadline = s.budget.start_race() if s.budget is not None else None
        why_end = f"{s.max_generations} generations"
        gen = 0
        while True:
            keys = [k for k in race.measured_keys() if k not in rot.failed]
            if not keys:
                break
            self.live_count = len(keys)
            live = rot.start_generation([cases[k] for k in keys], gen)
            rot.rotate(live, self.process_share_s(), 2)  # nothing is stored when a process closes
            for k in keys:  # refused by the runtime (load, warm-up) or died: out of the race
                if k in rot.failed and race.entrants[k].status in ("racing", "eliminated"):
                    race.fail(k, "the worker failed (see the row's error)")
            if gen == 0:
                self._drop_failed_parity(race)
            data = self.measured()
            eliminated = race.look(data)
            for e in eliminated:
                if not e.default:  # the default stays measured as the reference
                    e.p50_ms = data[e.key].median / 1e6
                    race.set_vs_default(e, data)
                    self._store(cases[e.key], e)
            gen += 1
            if s.on_look:
                s.on_look(self)
            if race.decided():
                why_end = "the race"
                break
            if gen >= s.max_generations:
                break
            if self.deadline is not None and time.monotonic() >= self.deadline:
                why_end = "the time budget"
                break
        race.finish(self.measured(), why_end)
        for e in race.entrants.values():
            if e.status in ("winner", "tied", "eliminated"):  # stored once (eliminated ones already are)
                self._store(cases[e.key], e)
        if s.on_look:
            s.on_look(self)

    def measured(self) -> dict[str, Measured]:
        return {k: Measured(per_item(c), c.rounds, c.procs) for k, c in self.cases.items()
                if k not in self.failed}

    def _drop_failed_parity(self, race: Race) -> None:
        """A candidate whose timed runner failed the parity check never races (issue 23: a
        broken int8 artifact must never win)."""
        for key, case in self.cases.items():
            if key in self.failed or race.entrants[key].status != "racing":
                continue
            msg = None
            if case.prep.parity and parity_verdict(case.prep.parity) == "failed":
                why = "; ".join((case.prep.parity.get("failures") or [])[:2]) or case.prep.parity.get("why") or ""
                msg = f"dropped from the race: its outputs failed the parity check against PyTorch ({why})"
            else:
                msg = accuracy_gate(case.prep.accuracy, self.settings.max_drop)
            if msg:
                race.fail(key, msg)
                self.rot.fail(case, msg, tune=race.entrants[key].record())

    def _store(self, case, entrant: Entrant) -> None:
        if case.spec.key in self.failed:
            return
        hw = ci_halfwidth_rel(case.samples, case.rounds, procs=case.procs) if len(case.samples) >= 2 else None
        self.rot.store(case, Decision(True, f"race: {entrant.status}", hw), tune=entrant.record())
