"""The statistics of `pfdeploy ab` (docs/method.md 8b, docs/ab.md): base and head measured in
blocks, a sequential verdict to a declared size.

A block is, for every case, one fresh base worker and one fresh head worker measured together:
every round times the base and the head of the case in adjacent slots. Within a block:

* each round gives one log ratio, log(median(head's round) / median(base's round)), over the
  rounds the two shared;
* the block's value is the MEDIAN of its round log ratios: a machine switching speed state
  between the two slots of a round (measured here: two states ~1.7x apart lasting tens of
  seconds) spoils that one round's ratio, not the block's (a mean would carry it whole).

Across blocks, the estimate is the mean of the block values and its interval a Student t
interval with B - 1 degrees of freedom from their spread: the process level of each side (its
memory placement, its thread placement, the state it ran in) varies from block to block, so the
interval covers what a rerun in fresh processes would see. The spread used is never below the
blocks' own sampling error (each block's median of round ratios has a variance its rounds tell):
measured here under load, three A/A blocks of noisy rounds (round ratios 0.75-1.67) agreed to
0.1% by chance, and a t interval on that spread alone called an A/A an improvement.

Sequential: after each block (from MIN_BLOCKS on) every undecided case is looked at. The
family-wise error `alpha` is held over the m cases (Bonferroni) and over the looks by a
Pocock-type alpha-spending function (Lan-DeMets): at information fraction t = blocks / max_blocks
the cumulative alpha is a(t) = alpha ln(1 + (e - 1) t); each look spends a(t_k) - a(t_{k-1}), and
the union bound over looks and cases keeps the total at alpha whatever the function. Pocock-type
spends more on the early looks than O'Brien-Fleming-type (2 - 2 Phi(z_{1-alpha/2} / sqrt(t)), this
module's first choice), which spent almost nothing before the last looks of a budget of 50-70
blocks: replayed through both, the block values of 13 stored quiet runs (pf_resnet50_max made 5%
and 10% slower) were decided as regressions after 3-16 blocks instead of 10-20 (the 10% ones after
3-8 instead of 10-15), and those of 10 stored A/A runs stayed equivalent in every case, some a few
blocks later (issue 29's closing note).

Verdicts (threshold d, default 5%; ratio r = head / base, > 1: head slower):

* equivalent  - the whole interval inside [1/(1+d), 1+d]: no change larger than d;
* regression  - the whole interval above 1 and not inside the equivalence band;
* improvement - the whole interval below 1 and not inside the band;
* inconclusive - none of these when the budget is spent.

Every case states the change it could have detected at this run's noise with 80% power and, when
inconclusive, how many blocks the threshold would take.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from .summary import t_quantile

ALPHA = 0.05
POWER = 0.80
MIN_BLOCKS = 3  # the first look: fewer block values say nothing about the spread between blocks
VERDICTS = ("regression", "improvement", "equivalent", "inconclusive")


def block_value(base_samples, base_rounds, head_samples, head_rounds) -> tuple[float | None, int]:
    """(median over the shared rounds of log(head round median / base round median), rounds
    shared) of one block; (None, 0) when the two shared no round."""
    v, n, _ = block_stats(base_samples, base_rounds, head_samples, head_rounds)
    return v, n


def block_stats(base_samples, base_rounds, head_samples, head_rounds) -> tuple[float | None, int, float | None]:
    """`block_value` and the sampling variance of that median from the block's own rounds
    (pi/2 x robust variance of the round log ratios / rounds): what the block value would vary by
    if the block were run again in the same processes. A spread between blocks below it is chance
    (three noisy blocks can agree to 0.1%), so the interval never rests on less (`estimate`)."""
    def by_round(samples, rounds):
        out: dict[int, list[int]] = {}
        for s, r in zip(samples, rounds):
            out.setdefault(int(r), []).append(int(s))
        return out

    b, h = by_round(base_samples, base_rounds), by_round(head_samples, head_rounds)
    shared = sorted(set(b) & set(h))
    if not shared:
        return None, 0, None
    logs = np.array([math.log(float(np.median(h[r])) / float(np.median(b[r]))) for r in shared
                     if np.median(b[r]) > 0 and np.median(h[r]) > 0])
    if not logs.size:
        return None, 0, None
    med = float(np.median(logs))
    within = None
    if logs.size >= 3:
        robust_sd = 1.4826 * float(np.median(np.abs(logs - med)))
        within = (math.pi / 2) * robust_sd ** 2 / logs.size
    return med, int(logs.size), within


def spent(t: float, alpha: float) -> float:
    """Cumulative alpha spent at information fraction t (Pocock-type, Lan-DeMets)."""
    if t <= 0:
        return 0.0
    return alpha * math.log(1 + (math.e - 1) * min(1.0, t))


@dataclass
class Estimate:
    """One case's A/B estimate at a look."""

    blocks: int
    ratio: float | None = None  # head / base (> 1: head slower)
    ci_low: float | None = None
    ci_high: float | None = None
    confidence: float | None = None  # of this look's interval (family-wise share of this look)
    sd: float | None = None  # spread of the block log ratios
    detectable: float | None = None  # the change detectable at 80% power at this noise (fraction)
    blocks_needed: int | None = None  # blocks for the threshold to be detectable at this noise

    def to_dict(self) -> dict:
        return asdict(self)


def estimate(values: list[float], alpha_look: float, threshold: float, power: float = POWER,
             alpha_detect: float | None = None, within: list[float] | None = None) -> Estimate:
    """The interval of the mean block log ratio at two-sided level 1 - alpha_look; the detectable
    change and the blocks the threshold needs at level 1 - alpha_detect (default alpha_look: the
    run's whole share for the case, not one look's)."""
    alpha_detect = alpha_look if alpha_detect is None else alpha_detect
    x = np.asarray([v for v in values if v is not None], dtype=float)
    b = int(x.size)
    if b == 0:
        return Estimate(0)
    mean = float(x.mean())
    if b < 2:
        return Estimate(b, ratio=math.exp(mean))
    sd = float(x.std(ddof=1))
    floor = [w for w in (within or []) if w is not None]
    if floor:  # never more precise than the blocks' own sampling error (block_stats)
        sd = max(sd, math.sqrt(float(np.mean(floor))))
    se = sd / math.sqrt(b)
    q = t_quantile(1 - alpha_look / 2, b - 1)
    q_power = t_quantile(power, b - 1)
    detect = _exp((t_quantile(1 - alpha_detect / 2, b - 1) + q_power) * se) - 1
    need = None
    if sd > 0:
        from scipy.stats import norm

        z = norm.ppf(1 - alpha_detect / 2) + norm.ppf(power)
        need = max(b, int(math.ceil((z * sd / math.log1p(threshold)) ** 2)))
    return Estimate(b, ratio=math.exp(mean), ci_low=_exp(mean - q * se), ci_high=_exp(mean + q * se),
                    confidence=1 - alpha_look, sd=sd, detectable=detect, blocks_needed=need)


def _exp(x: float) -> float:
    """exp, inf beyond the largest float: an early look of a long budget spends little alpha, and its
    t quantile on 2 degrees of freedom is huge (O'Brien-Fleming-type spending: ~10^6), so the
    interval's upper end can pass e^709 (seen on a quiet machine, where the budget buys many blocks
    and the first look is at t = 3 / max_blocks). Such an interval decides nothing, as it should."""
    return math.exp(x) if x < 709.0 else math.inf


def decide(est: Estimate, threshold: float) -> str | None:
    """The verdict an interval allows (None: not decided yet)."""
    if est.ci_low is None:
        return None
    lo, hi = est.ci_low, est.ci_high
    if lo >= 1 / (1 + threshold) and hi <= 1 + threshold:
        return "equivalent"
    if lo > 1:
        return "regression"
    if hi < 1:
        return "improvement"
    return None


@dataclass
class Sequential:
    """The sequential test over m cases: which look spends how much alpha, and each case's state."""

    cases: list[str]
    max_blocks: int
    alpha: float = ALPHA
    threshold: float = 0.05
    looks: int = 0
    spent_so_far: float = 0.0
    verdicts: dict = field(default_factory=dict)  # case -> verdict (decided cases only)
    estimates: dict = field(default_factory=dict)  # case -> Estimate at its last look
    decided_at: dict = field(default_factory=dict)  # case -> blocks when decided

    def look(self, values: dict[str, list[float]], final: bool = False,
             within: dict[str, list[float]] | None = None) -> dict[str, str]:
        """Look at every undecided case with its block values (and each block's own sampling
        variance, `within`); returns the cases decided now. `final`: the budget is spent, this
        look spends everything left."""
        undecided = [c for c in self.cases if c not in self.verdicts]
        if not undecided:
            return {}
        blocks = max((len(values.get(c) or []) for c in undecided), default=0)
        if blocks < MIN_BLOCKS and not final:
            return {}
        t = 1.0 if final else min(1.0, blocks / max(1, self.max_blocks))
        total = spent(t, self.alpha)
        look_alpha = max(0.0, total - self.spent_so_far)
        self.spent_so_far = total
        self.looks += 1
        m = len(self.cases)
        alpha_case = look_alpha / m if look_alpha > 0 else 0.0
        now = {}
        for c in undecided:
            vals = values.get(c) or []
            est = estimate(vals, max(alpha_case, 1e-12), self.threshold, alpha_detect=self.alpha / m,
                           within=(within or {}).get(c))
            self.estimates[c] = est
            v = decide(est, self.threshold) if alpha_case > 0 else None
            if v is not None:
                self.verdicts[c] = v
                self.decided_at[c] = est.blocks
                now[c] = v
        if final:
            for c in undecided:
                if c not in self.verdicts:
                    self.verdicts[c] = "inconclusive"
                    self.decided_at[c] = len(values.get(c) or [])
        return now

    def statement(self) -> str:
        """The error rate the run holds, in one sentence (shown with every A/B result)."""
        return (f"family-wise error {self.alpha:.0%} over {len(self.cases)} case(s) and {self.looks} look(s) "
                f"(Bonferroni over cases, Pocock-type alpha spending over looks, at most "
                f"{self.max_blocks} blocks); equivalent = the whole interval within +-{self.threshold:.0%}")
