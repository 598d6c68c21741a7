"""Comparing two run documents case by case (`compare_runs`, docs/compare.md).

For every case (same case key: model, weights, backend, device, precision, batch, threads,
scenario) present in both runs, on the same machine id:

- ratio r = median(head) / median(base) of the raw latency samples;
- its CI from `bench.stats.ratio_stats`: with rows measured in several worker processes, a t
  interval from each side's hierarchical (processes, then rounds) standard error; for rows of one
  process, the percentile bootstrap over rounds (blocks when no rounds were recorded);
- a two-sided Mann-Whitney U p-value as a second opinion (on round medians);
- the 95% holds for the comparison as a whole: each of the m cases with a statistical verdict gets
  a Bonferroni-corrected CI at 1 - 0.05/m and a Mann-Whitney level 0.05/m;
- verdict (`rule.verdict`): regression / improvement / inconclusive / unchanged.

Cases that cannot be compared are listed, never dropped: `failed`, `skipped`, `missing`, `new`,
`not-compared` (different machine ids), `no-samples`.

Everything works on run documents in the run-file format ({"format": "pfdeploy-run",
"version": N, "run": {...}, "results": [...]}); `check_run_doc` types their results (`Result`,
plain rows validated on the way in), and every case is read by attribute from there on.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from pydantic import ValidationError

from ..bench.stats import RatioStats, pooled_process_variance, ratio_stats, row_procs
from ..errors import UsageError, UserError
from ..result import Result, first_error
from ..result.model import MAX_SAMPLE_NS
from .capacity import compare_capacity, is_capacity
from .model import (CASE_FIELDS, CORRECTIONS, DEFAULT_ALPHA, DEFAULT_CONFIDENCE, DEFAULT_RESAMPLES, DEFAULT_SEED,
                    DEFAULT_THRESHOLD, VERDICTS, CaseComparison, Comparison, case_key, run_label)
from .noise import _contention_warnings, _load_warnings
from .parallel import compare_cases, workers_for
from .runs import refuse_impossible_samples
from .rule import exact_level, resamples_for, verdict
from .shift import _apply_shift, stable_seed as _stable_seed


def _ms(ns: float | None) -> float | None:
    return None if ns is None else ns / 1e6


def _index(doc: dict, side: str, warnings: list[str]) -> dict[str, Result]:
    out: dict[str, Result] = {}
    for row in doc["results"]:
        key = case_key(row)
        if key in out:
            warnings.append(f"{side} run has case {key} twice; using the later result")
        out[key] = row
    return out


def _weights_mismatch(cmp: Comparison, base_rows: dict, head_rows: dict) -> None:
    """Cases that differ only in their weights (synthetic in base, a release checkpoint in head...)
    are different cases and are never paired (the weights are part of the case key); say so once
    in the warnings, and on each such case, instead of leaving a silent missing/new pair."""
    def others(rows: dict[str, Result]) -> dict[tuple, set]:
        out: dict[tuple, set] = {}
        for row in rows.values():
            rest = tuple(str(getattr(row, k)) for k in CASE_FIELDS if k != "weights")
            out.setdefault(rest, set()).add(str(row.weights))
        return out

    base_w, head_w = others(base_rows), others(head_rows)
    n, example = 0, None
    for c in cmp.cases:
        rest = tuple(str(getattr(c, k)) for k in CASE_FIELDS if k != "weights")
        if c.verdict == "new" and base_w.get(rest, set()) - {str(c.weights)}:
            other = sorted(base_w[rest] - {str(c.weights)})
            c.note += f"; base measured it with other weights ({', '.join(other)}): not compared across weights"
        elif c.verdict == "missing" and head_w.get(rest, set()) - {str(c.weights)}:
            other = sorted(head_w[rest] - {str(c.weights)})
            c.note += f"; head measured it with other weights ({', '.join(other)}): not compared across weights"
        else:
            continue
        n += 1
        example = example or (c.model, c.weights, other[0])
    if n:
        m, w, o = example
        cmp.warnings.append(f"{n} case(s) differ only in their weights between the runs (e.g. {m}: {w} vs {o}); "
                            "latencies of different weights are never paired: they show as missing/new. Compare "
                            "runs made with the same --weights")


def _case_fields(row: Result) -> dict:
    """The case's identity fields (CaseComparison's keyword arguments)."""
    return {f: getattr(row, f) for f in CASE_FIELDS}


def _p50_ms(row: Result, samples: Sequence[float] | None) -> float | None:
    if samples:
        return float(np.median(np.asarray(samples, dtype=float))) / 1e6
    return float(row.p50_ms) if row.p50_ms is not None else None




def check_run_doc(doc: dict, side: str) -> dict:
    """Input validation before any statistics: a run with no results cannot be compared (a HEAD
    that measured nothing must not pass the gate), every result must be a valid result (typed
    here: the returned document's `results` are `Result`s) and every latency possible: samples
    are whole nanoseconds in 1 .. MAX_SAMPLE_NS, a stored p50 is a positive finite number.
    Raises UserError (exit 1) naming the side, the case and the value."""
    run = doc.get("run") or {}
    results = doc.get("results")
    label = run_label(run) if run else "?"
    if not isinstance(results, list) or not results:
        raise UserError(f"{side} run {label} has no results: nothing was measured, so there is nothing to "
                        f"compare (a {side.upper()} without results never passes the gate)")
    typed = []
    for i, row in enumerate(results):
        if not isinstance(row, (dict, Result)):
            raise UserError(f"{side} run {label}: a result is not an object")
        try:
            r = Result.from_row(row)
        except ValidationError as exc:
            raise UserError(f"{side} run {label}, result {i + 1}: {first_error(exc)}") from None
        refuse_impossible_samples(r, f"{side} run {label}, case {r.case_key}")
        for f, v in (("p50_ms", r.p50_ms), ("min_ms", r.min_ms), ("max_ms", r.max_ms)):
            if v is not None and (not math.isfinite(v) or v <= 0 or v > MAX_SAMPLE_NS / 1e6):
                raise UserError(f"{side} run {label}, case {r.case_key}: impossible {f} {v!r}")
        typed.append(r)
    return {**doc, "results": typed}


def compare_runs(base_doc: dict, head_doc: dict, threshold: float = DEFAULT_THRESHOLD,
                 confidence: float = DEFAULT_CONFIDENCE, resamples: int = DEFAULT_RESAMPLES,
                 seed: int = DEFAULT_SEED, alpha: float = DEFAULT_ALPHA,
                 correction: str = "bonferroni", shift_fails: bool = True, workers: int | None = None) -> Comparison:
    """Compare two run documents (run-file format) case by case. Returns a Comparison whose
    cases cover the union of both runs' case keys.

    `confidence` and `alpha` hold for the comparison as a whole: the gate fails when any case
    regresses, so with `correction="bonferroni"` (default) each of the m cases that get a
    statistical verdict uses a CI at 1 - (1 - confidence)/m and a Mann-Whitney level alpha/m
    (an A/A comparison of 15 cases then calls a false regression with probability <= 5%, not up
    to 15 x 2.5%). `correction="none"`: every case at `confidence` and `alpha`.

    With at least MIN_SHIFT_CASES compared cases, the shift common to all of them is estimated
    (`Comparison.shift`) and every per-case verdict is taken relative to it (see `_apply_shift`);
    `shift_fails`: a common slowdown beyond the threshold fails the gate (default).
    `workers`: processes for the per-case statistics (default: every CPU from
    parallel.PARALLEL_MIN_CASES cases on; the result is the same either way)."""
    if correction not in CORRECTIONS:
        raise UsageError(f"correction must be one of {', '.join(CORRECTIONS)}, not {correction!r}")
    if not 0 < threshold < 1:
        raise UsageError(f"threshold must be between 0 and 1 (a fraction: 0.05 = 5%), not {threshold}")
    if not 0.5 <= confidence < 1:
        raise UsageError(f"confidence must be in [0.5, 1), not {confidence}")
    if resamples < 100:
        raise UsageError(f"resamples must be at least 100, not {resamples}")
    base_doc = check_run_doc(base_doc, "base")
    head_doc = check_run_doc(head_doc, "head")
    base_run, head_run = base_doc.get("run") or {}, head_doc.get("run") or {}
    warnings: list[str] = []
    same_machine = bool(base_run.get("machine_id")) and base_run.get("machine_id") == head_run.get("machine_id")
    if not same_machine:
        warnings.append(
            f"different machines: base ran on {base_run.get('machine_id') or 'an unknown machine'}, head on "
            f"{head_run.get('machine_id') or 'an unknown machine'}; latencies are not compared across machines")
    for side, run in (("base", base_run), ("head", head_run)):
        if run.get("status") and run.get("status") != "finished":
            warnings.append(f"{side} run {run_label(run)} is {run.get('status')}: some cases may be missing")
    warnings.extend(_load_warnings(base_run, head_run))
    warnings.extend(_contention_warnings(base_doc, head_doc))
    base_rows = _index(base_doc, "base", warnings)
    head_rows = _index(head_doc, "head", warnings)
    tested = sum(1 for k, b in base_rows.items() if same_machine and k in head_rows
                 and _testable(b) and _testable(head_rows[k]))
    m = tested if correction == "bonferroni" and tested > 1 else 1
    cmp = Comparison(base_run, head_run, threshold, confidence, alpha, resamples, seed, same_machine,
                     correction=correction, tested=tested, case_confidence=1.0 - (1.0 - confidence) / m,
                     case_alpha=alpha / m, warnings=warnings)
    cmp.shift_fails = shift_fails
    stats: dict[str, RatioStats] = {}
    # each run's process spread pooled per runtime and precision: the floor (and degrees of freedom)
    # of every case's process-level variance (bench.stats.ratios._side_se)
    cmp.priors = (pooled_process_variance(base_rows.values()), pooled_process_variance(head_rows.values()))
    keys = list(base_rows) + [k for k in head_rows if k not in base_rows]
    cmp.cases.extend(compare_cases(keys, base_rows, head_rows, cmp, stats, _compare_case,
                                   workers_for(len(keys), workers)))
    _weights_mismatch(cmp, base_rows, head_rows)
    _apply_shift(cmp, stats, base_rows, head_rows)
    order = {v: i for i, v in enumerate(VERDICTS)}
    cmp.cases.sort(key=lambda c: (order.get(c.verdict, len(order)), c.case_key))
    return cmp


def _testable(row: Result) -> bool:
    """A result that gets a statistical verdict (a member of the Bonferroni family): ok, with
    samples, and not a capacity (compared by its search bracket: compare.capacity)."""
    return row.ok and bool(row.samples_ns) and not is_capacity(row)


def _compare_case(key: str, base: Result | None, head: Result | None, cmp: Comparison,
                  stats_out: dict | None = None) -> CaseComparison:
    row = head or base
    c = CaseComparison(case_key=key, verdict="unchanged", **_case_fields(row))
    c.base_status = base.status if base else None
    c.head_status = head.status if head else None
    b_samples = (base.samples_ns if base else None) or []
    h_samples = (head.samples_ns if head else None) or []
    if base is not None:
        c.base_p50_ms, c.base_n = _p50_ms(base, b_samples), len(b_samples) or base.n
    if head is not None:
        c.head_p50_ms, c.head_n = _p50_ms(head, h_samples), len(h_samples) or head.n
    if base is None:
        c.verdict, c.note = "new", "only in head"
        if c.head_status and c.head_status != "ok":
            c.note += f" ({c.head_status})"
            c.error = head.error
        return c
    if head is None:
        c.verdict, c.note = "missing", "only in base: not run in head"
        return c
    if c.head_status == "failed" or c.base_status == "failed":
        c.verdict = "failed"
        if c.head_status == "failed" and c.base_status == "failed":
            c.note, c.error = "failed in both runs", head.error
        elif c.head_status == "failed":
            c.note, c.error = f"failed in head ({c.base_status} in base)", head.error
        else:
            c.note, c.error = f"failed in base ({c.head_status} in head)", base.error
        return c
    if c.head_status == "skipped" or c.base_status == "skipped":
        c.verdict = "skipped"
        side = "both runs" if c.head_status == c.base_status else ("head" if c.head_status == "skipped" else "base")
        c.note = f"skipped in {side}"
        c.error = (head if c.head_status == "skipped" else base).error
        return c
    if not cmp.same_machine:
        c.verdict, c.note = "not-compared", "different machines"
        if c.base_p50_ms and c.head_p50_ms:
            c.ratio = c.head_p50_ms / c.base_p50_ms
        return c
    if is_capacity(base) and is_capacity(head):  # higher is better: compared by their capacities
        return compare_capacity(c, base, head, cmp.threshold)
    if not b_samples or not h_samples:
        c.verdict = "no-samples"
        c.note = "no raw samples in " + ("both runs" if not b_samples and not h_samples
                                         else "base" if not b_samples else "head")
        return c
    paired = _ab_paired(base, head, b_samples, h_samples, cmp.case_confidence, cmp.threshold)
    if paired is not None:  # `pfdeploy ab`'s two runs: compare by its blocks, base and head measured together
        c.ratio, c.ci_low, c.ci_high, c.ci_width = paired.ratio, paired.ci_low, paired.ci_high, paired.ci_width
        c.base_units, c.head_units = paired.base_units, paired.head_units
        c.resampled = "ab-blocks"
        c.verdict, c.note = verdict(paired, cmp.threshold, cmp.case_alpha)
        extra = f"paired by pfdeploy ab's {paired.base_units} blocks (base and head measured together)"
        c.note = f"{c.note}; {extra}" if c.note else extra
        return c
    stats = ratio_stats(b_samples, h_samples, base.sample_rounds, head.sample_rounds,
                        cmp.case_confidence, resamples_for(cmp.case_confidence, cmp.resamples),
                        _stable_seed(cmp.seed, key), base_procs=row_procs(base), head_procs=row_procs(head),
                        base_prior=_prior(cmp, 0, base), head_prior=_prior(cmp, 1, head),
                        fast=not exact_level(cmp.case_confidence, cmp.resamples))
    c.ratio, c.ci_low, c.ci_high, c.ci_width = stats.ratio, stats.ci_low, stats.ci_high, stats.ci_width
    c.p_value = stats.p_value
    c.base_units, c.head_units = stats.base_units, stats.head_units
    c.resampled = (f"{stats.base_method}/{stats.head_method}" if stats.base_method != stats.head_method
                   else stats.base_method)
    c.verdict, c.note = verdict(stats, cmp.threshold, cmp.case_alpha)
    if stats_out is not None:
        stats_out[key] = stats
    if stats.base_method == "blocks" or stats.head_method == "blocks":
        extra = "blocks of consecutive samples resampled (no rounds recorded)"
        c.note = f"{c.note}; {extra}" if c.note else extra
    return c


def _ab_paired(base: Result, head: Result, b_samples, h_samples, confidence: float, threshold: float):
    """RatioStats of a case whose two results are the two sides of one `pfdeploy ab` (same A/B id):
    head / base from the block ratios and their spread (never below the blocks' own sampling
    error), at `confidence`; None for any other pair."""
    a, b = base.ab, head.ab
    if a is None or b is None or not a.ab_id or a.ab_id != b.ab_id or {a.side, b.side} != {"base", "head"}:
        return None
    import math

    import numpy as np

    from ..bench.stats import RatioStats
    from ..bench.stats.ab import estimate

    rec = b if b.side == "head" else a
    sign = 1.0 if b.side == "head" else -1.0  # compare's head is ab's base: the ratio turns over
    logs = [sign * math.log(v) for v in rec.block_ratios if v]
    if len(logs) < 2:
        return None
    est = estimate(logs, 1 - confidence, threshold, within=[w for w in rec.block_within if w is not None])
    if est.ci_low is None:
        return None
    return RatioStats(ratio=est.ratio, ci_low=est.ci_low, ci_high=est.ci_high, p_value=None,
                      base_median_ns=float(np.median(b_samples)), head_median_ns=float(np.median(h_samples)),
                      base_method="ab-blocks", head_method="ab-blocks", base_units=est.blocks, head_units=est.blocks,
                      base_processes=est.blocks, head_processes=est.blocks)


def _prior(cmp: Comparison, side: int, row: Result):
    priors = getattr(cmp, "priors", None)
    return priors[side].get((row.backend, row.precision, row.device)) if priors else None
