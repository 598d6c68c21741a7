"""Capacity results compared (`pfdeploy capacity` runs; docs/compare.md, "Capacity runs"): higher is
better.

A capacity result's figure is the highest target QPS at which LoadGen's server scenario was VALID
in every worker process, with the search's bracket [last VALID, first INVALID] over processes
(`Result.capacity`). Its latency samples are those of the probes at capacity: a capacity that
moved changes the load they were taken at, so they say nothing about a change on their own.

The ratio is head / base capacity (above 1: head serves more). Its interval is the ratio of the
brackets' far ends, [head low / base high, head high / base low], the rule `claims --at capacity`
uses for two models: the bracket is what the search knows (its tolerance, and the processes'
disagreement), not a sampling interval, so no family-wise level applies and these cases do not
enter the Bonferroni family or the whole-run shift. Verdicts mirror the latency rule, reversed:

* regression  - the whole interval below 1 and head <= base / (1 + threshold);
* improvement - the whole interval above 1 and head >= base x (1 + threshold);
* inconclusive - the interval wider than the threshold (the searches' tolerance), or a record
  that cannot be read;
* unchanged   - otherwise.
"""
from __future__ import annotations

import math

from ..labels import num
from ..result import Result
from .model import CaseComparison


def is_capacity(row: Result | None) -> bool:
    return row is not None and row.scenario == "capacity"


def compare_capacity(c: CaseComparison, base: Result, head: Result, threshold: float) -> CaseComparison:
    """Fill `c` (both results ok, same machine) with the capacity ratio, its interval and verdict."""
    c.metric = "capacity_qps"
    b, h = base.capacity, head.capacity
    if b is None or h is None:
        side = "both runs" if b is None and h is None else ("base" if b is None else "head")
        c.verdict, c.note = "inconclusive", f"capacity record missing or damaged in {side}"
        return c
    (bc, blo, bhi), (hc, hlo, hhi) = b, h
    c.base_capacity_qps, c.head_capacity_qps = bc, hc
    brackets = f"base {_bracket(b)} QPS, head {_bracket(h)} QPS"
    if bc <= 0 or hc <= 0:
        if bc <= 0 and hc <= 0:
            c.verdict, c.note = "unchanged", f"no target QPS met the bound in either run ({brackets})"
        elif bc <= 0:
            c.verdict, c.note = "improvement", f"head meets the bound, base met it at no QPS ({brackets})"
        else:
            c.verdict, c.note = "regression", f"head meets the bound at no QPS ({brackets})"
        return c
    c.ratio = hc / bc
    c.ci_low = hlo / bhi if bhi else 0.0
    c.ci_high = hhi / blo if hhi is not None and blo > 0 else math.inf
    c.ci_width = c.ci_high - c.ci_low
    c.resampled = "capacity-brackets"
    if c.ci_high < 1 and c.ratio <= 1 / (1 + threshold):
        c.verdict = "regression"
    elif c.ci_low > 1 and c.ratio >= 1 + threshold:
        c.verdict = "improvement"
    elif c.ci_width > threshold:
        c.verdict = "inconclusive"
    else:
        c.verdict = "unchanged"
    why = (f"; interval width {c.ci_width * 100:.0f}% > threshold {threshold * 100:g}%: narrow the searches "
           "(--tolerance)" if c.verdict == "inconclusive" and math.isfinite(c.ci_width) else
           "; no INVALID probe bounds a capacity from above" if c.verdict == "inconclusive" else "")
    c.note = f"capacity, higher is better: {brackets}{why}"
    return c


def _bracket(cap: tuple) -> str:
    value, lo, hi = cap
    return f"{num(value, 3)} [{num(lo, 3)}, {num(hi, 3) if hi is not None else 'none INVALID'}]"
