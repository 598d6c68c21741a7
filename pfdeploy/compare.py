"""Regression verdicts between two benchmark runs (`pfdeploy compare`, METHOD.md section 8).

For every case (same case key: model, weights, backend, device, precision, batch, threads,
scenario) present in both runs, on the same machine id:

- ratio r = median(head) / median(base) of the raw latency samples;
- a seeded 95% bootstrap CI of r. Each run is resampled independently; when its samples were
  taken in rounds (interleaved rounds of K iterations), whole rounds are resampled, not single
  samples, so that drift between rounds on a shared machine widens the CI instead of hiding in it;
- a two-sided Mann-Whitney U p-value as a second opinion (on round medians when there are rounds:
  the same independent units the bootstrap resamples);
- the 95% holds for the comparison as a whole: the gate fails when any case regresses, so each
  of the m cases with a statistical verdict gets a Bonferroni-corrected CI at 1 - 0.05/m and a
  Mann-Whitney level 0.05/m (`correction="none"` for plain per-case 95%);
- verdict: **regression** when the CI's lower bound is above 1, r >= 1 + threshold and the
  Mann-Whitney test agrees (p < alpha); **improvement** mirrored (upper bound below 1,
  r <= 1 - threshold, p < alpha); **inconclusive** when the CI is wider (high - low) than the
  threshold, or when the CI calls a change that Mann-Whitney does not; otherwise **unchanged**.

Cases that cannot be compared are listed, never dropped: `failed` (failed in head, or in base),
`skipped`, `missing` (in base only), `new` (in head only), `not-compared` (the runs come from
different machine ids), `no-samples` (an ok result without raw samples).

Everything works on run documents in the run-file format ({"format": "pfdeploy-run",
"version": 1, "run": {...}, "results": [{...row, "samples_ns", "sample_rounds"}]}), which is
what `Store.export_run` returns and what exported JSON files hold.
"""
from __future__ import annotations

import math
import os
import zlib
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .bench.stats import bootstrap_medians, percentile_interval, ratio_replicates  # noqa: F401 (re-exported)
from .errors import UsageError, UserError

DEFAULT_THRESHOLD = 0.05
DEFAULT_CONFIDENCE = 0.95
DEFAULT_RESAMPLES = 2000
DEFAULT_SEED = 0
DEFAULT_ALPHA = 0.05
FAIL_ON = ("regression", "inconclusive", "never")
CORRECTIONS = ("bonferroni", "none")
CASE_FIELDS = ("model", "weights", "backend", "device", "precision", "batch", "threads", "scenario")

# Display order: what needs attention first.
VERDICTS = ("regression", "failed", "inconclusive", "improvement", "unchanged", "no-samples",
            "not-compared", "skipped", "missing", "new")
MARK = {"regression": "🔴", "failed": "❌", "inconclusive": "🟡", "improvement": "🟢",
        "unchanged": "⚪", "no-samples": "❔", "not-compared": "⛔", "skipped": "⏭️",
        "missing": "➖", "new": "➕"}
STYLE = {"regression": "bold red", "failed": "bold red", "inconclusive": "yellow",
         "improvement": "green", "unchanged": "", "no-samples": "dim", "not-compared": "magenta",
         "skipped": "dim", "missing": "dim", "new": "cyan"}


# --------------------------------------------------------------------------------------------
# statistics
# --------------------------------------------------------------------------------------------

def mann_whitney_p(base: Sequence[float], head: Sequence[float]) -> float | None:
    """Two-sided Mann-Whitney U p-value (scipy) of two sets of independent values (round
    medians, or samples when there are no rounds); None when it cannot be computed."""
    from scipy.stats import mannwhitneyu

    a, b = np.asarray(base, dtype=float), np.asarray(head, dtype=float)
    if a.size == 0 or b.size == 0:
        return None
    if np.all(a == a[0]) and np.all(b == b[0]) and a[0] == b[0]:
        return 1.0
    p = float(mannwhitneyu(b, a, alternative="two-sided").pvalue)
    return p if math.isfinite(p) else None


@dataclass(frozen=True)
class RatioStats:
    """What the statistics say about one case: ratio of medians, its CI, Mann-Whitney p."""

    ratio: float
    ci_low: float
    ci_high: float
    p_value: float | None
    base_median_ns: float
    head_median_ns: float
    base_method: str
    head_method: str
    base_units: int
    head_units: int
    replicates: Any = field(default=None, repr=False, compare=False)  # bootstrap replicates of r

    @property
    def ci_width(self) -> float:
        return self.ci_high - self.ci_low


def ratio_stats(base: Sequence[float], head: Sequence[float], base_rounds: Sequence[int] | None = None,
                head_rounds: Sequence[int] | None = None, confidence: float = DEFAULT_CONFIDENCE,
                resamples: int = DEFAULT_RESAMPLES, seed: int | Sequence[int] = DEFAULT_SEED) -> RatioStats:
    """Ratio median(head)/median(base) with a percentile bootstrap CI (base and head resampled
    independently, by rounds where they have them) and the Mann-Whitney p-value. Deterministic for
    a given seed."""
    b, h = np.asarray(base, dtype=float), np.asarray(head, dtype=float)
    if b.size == 0 or h.size == 0:
        raise ValueError("both runs need samples")
    if float(np.median(b)) <= 0:
        raise ValueError("base median is not positive")
    rep = ratio_replicates(h, head_rounds, b, base_rounds, resamples, np.random.default_rng(seed))
    r = rep["ratio"]
    lo, hi = percentile_interval(rep["replicates"], r, confidence)
    if rep["den_method"] == rep["num_method"] == "rounds":
        # the test sees the same independent units the bootstrap resamples: one median per round
        p = mann_whitney_p(_round_medians(b, base_rounds), _round_medians(h, head_rounds))
    else:
        p = mann_whitney_p(b, h)
    return RatioStats(r, lo, hi, p, rep["den_median"], rep["num_median"], rep["den_method"], rep["num_method"],
                      rep["den_units"], rep["num_units"], replicates=rep["replicates"])


def _round_medians(x: np.ndarray, rounds: Sequence[int]) -> np.ndarray:
    r = np.asarray(rounds)
    return np.array([np.median(x[r == k]) for k in np.unique(r)])


def resamples_for(confidence: float, minimum: int = DEFAULT_RESAMPLES, cap: int = 20_000) -> int:
    """Bootstrap replicates for a percentile CI at `confidence`: at least 10 replicates beyond
    each bound (a 99.7% CI needs ~6700), never fewer than `minimum`, at most `cap`."""
    tail = (1.0 - confidence) / 2.0
    return int(min(cap, max(minimum, math.ceil(10.0 / tail))))


def verdict(stats: RatioStats, threshold: float = DEFAULT_THRESHOLD, alpha: float = DEFAULT_ALPHA) -> tuple[str, str]:
    """METHOD.md section 8's rule. Returns (verdict, note)."""
    r, lo, hi, p = stats.ratio, stats.ci_low, stats.ci_high, stats.p_value
    called = None
    if lo > 1.0 and r >= 1.0 + threshold:
        called = "regression"
    elif hi < 1.0 and r <= 1.0 - threshold:
        called = "improvement"
    if called:
        if p is not None and p >= alpha:
            return "inconclusive", f"CI calls a {called} but Mann-Whitney does not (p={p:.2g})"
        return called, ""
    if stats.ci_width > threshold:
        return "inconclusive", f"CI width {stats.ci_width * 100:.1f}% > threshold {threshold * 100:g}%"
    return "unchanged", ""


# --------------------------------------------------------------------------------------------
# runs
# --------------------------------------------------------------------------------------------

def case_key(row: dict) -> str:
    """The row's case key; rebuilt from its fields when a run file lacks it."""
    key = row.get("case_key")
    if key:
        return str(key)
    return "|".join("" if row.get(f) is None else str(row.get(f)) for f in CASE_FIELDS)


def run_label(run: dict) -> str:
    """Short human name of a run: its tag, else its id prefix."""
    rid = str(run.get("id") or "")[:12]
    tag = run.get("tag")
    return f"{tag} ({rid})" if tag and rid else (tag or rid or "?")


@dataclass
class CaseComparison:
    case_key: str
    verdict: str
    model: str | None = None
    weights: str | None = None
    backend: str | None = None
    device: str | None = None
    precision: str | None = None
    batch: Any = None
    threads: Any = None
    scenario: str | None = None
    base_p50_ms: float | None = None
    head_p50_ms: float | None = None
    ratio: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    ci_width: float | None = None
    rel_ratio: float | None = None      # ratio relative to the common shift (the verdict's basis)
    rel_ci_low: float | None = None
    rel_ci_high: float | None = None
    p_value: float | None = None
    base_n: int | None = None
    head_n: int | None = None
    base_units: int | None = None
    head_units: int | None = None
    resampled: str | None = None
    note: str = ""
    base_status: str | None = None
    head_status: str | None = None
    error: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Comparison:
    base: dict
    head: dict
    threshold: float
    confidence: float
    alpha: float
    resamples: int
    seed: int
    same_machine: bool
    correction: str = "bonferroni"
    tested: int = 0                    # cases with a statistical verdict (the family)
    case_confidence: float = DEFAULT_CONFIDENCE
    case_alpha: float = DEFAULT_ALPHA
    cases: list[CaseComparison] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    shift: Any = None                  # Shift, with >= MIN_SHIFT_CASES compared cases
    shift_fails: bool = True
    # {backend: Shift}: each runtime's own common shift, when at least two backends have
    # MIN_SHIFT_CASES compared cases each (a neighbour slows runtimes unequally)
    backend_shifts: dict = field(default_factory=dict)

    def shifts_failing(self) -> list:
        return [sh for sh in (self.shift, *self.backend_shifts.values()) if sh is not None and sh.fails_gate]

    def levels(self) -> str:
        """How the confidence was spent, in words."""
        if self.correction == "bonferroni" and self.tested > 1:
            return (f"{self.confidence * 100:g}% family-wise over {self.tested} cases (Bonferroni: "
                    f"{self.case_confidence * 100:.3g}% CI and Mann-Whitney α={self.case_alpha:.2g} per case)")
        return f"{self.case_confidence * 100:.3g}% CI, Mann-Whitney α={self.case_alpha:.2g}"

    @property
    def counts(self) -> dict[str, int]:
        out = {v: 0 for v in VERDICTS}
        for c in self.cases:
            out[c.verdict] = out.get(c.verdict, 0) + 1
        return {k: v for k, v in out.items() if v}

    def failing(self, fail_on: str = "regression") -> list[CaseComparison]:
        """Cases that make the gate fail at level `fail_on`: `regression` counts regressions and
        cases that ran in base but fail in head; `inconclusive` adds inconclusive, no-samples and
        not-compared cases; `never` counts nothing."""
        if fail_on not in FAIL_ON:
            raise UsageError(f"--fail-on must be one of {', '.join(FAIL_ON)}, not {fail_on!r}")
        if fail_on == "never":
            return []
        bad = [c for c in self.cases if c.verdict == "regression"
               or (c.verdict == "failed" and c.head_status == "failed" and c.base_status == "ok")]
        if fail_on == "inconclusive":
            bad += [c for c in self.cases if c.verdict in ("inconclusive", "no-samples", "not-compared")]
        if self.shifts_failing():
            # the whole run (or every case of a runtime) slowed beyond the threshold
            bad += [c for c in self.cases if c.rel_ratio is not None and c not in bad]
        return bad

    def exit_code(self, fail_on: str = "regression") -> int:
        return 1 if self.failing(fail_on) else 0

    def headline(self) -> str:
        counts = self.counts
        parts = [f"{n} {v}" for v, n in counts.items()]
        if self.shift is not None and self.shift.beyond_threshold:
            parts.insert(0, f"machine-wide shift {(self.shift.ratio - 1) * 100:+.1f}%")
        elif any(sh.beyond_threshold for sh in self.backend_shifts.values()):
            parts.insert(0, "shift of " + ", ".join(f"{b} {(sh.ratio - 1) * 100:+.1f}%" for b, sh in
                                                    self.backend_shifts.items() if sh.beyond_threshold))
        return ", ".join(parts) if parts else "no cases"

    def to_dict(self, fail_on: str | None = None) -> dict:
        d = {
            "base": _run_summary(self.base), "head": _run_summary(self.head),
            "threshold": self.threshold, "confidence": self.confidence, "alpha": self.alpha,
            "resamples": self.resamples, "seed": self.seed, "same_machine": self.same_machine,
            "correction": self.correction, "tested": self.tested, "case_confidence": self.case_confidence,
            "case_alpha": self.case_alpha,
            "counts": self.counts, "warnings": list(self.warnings),
            "shift": self.shift.to_dict() if self.shift is not None else None,
            "backend_shifts": {b: sh.to_dict() for b, sh in self.backend_shifts.items()},
            "cases": [c.to_dict() for c in self.cases],
        }
        if fail_on is not None:
            d["fail_on"] = fail_on
            d["failing"] = [c.case_key for c in self.failing(fail_on)]
            d["exit_code"] = self.exit_code(fail_on)
        return d

    def to_markdown(self, fail_on: str = "regression") -> str:
        return to_markdown(self, fail_on)


def _run_summary(run: dict) -> dict:
    keys = ("id", "tag", "git_commit", "started_at", "finished_at", "status", "suite",
            "machine_id", "loadavg_before", "loadavg_after", "pfdeploy_version")
    return {k: run.get(k) for k in keys}


def _ms(ns: float | None) -> float | None:
    return None if ns is None else ns / 1e6


def _index(doc: dict, side: str, warnings: list[str]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for row in doc.get("results") or []:
        key = case_key(row)
        if key in out:
            warnings.append(f"{side} run has case {key} twice; using the later result")
        out[key] = row
    return out


def _weights_mismatch(cmp: Comparison, base_rows: dict, head_rows: dict) -> None:
    """Cases that differ only in their weights (synthetic in base, a release checkpoint in head...)
    are different cases and are never paired (the weights are part of the case key); say so once
    in the warnings, and on each such case, instead of leaving a silent missing/new pair."""
    def others(rows: dict) -> dict[tuple, set]:
        out: dict[tuple, set] = {}
        for row in rows.values():
            f = _case_fields(row)
            out.setdefault(tuple(str(f[k]) for k in CASE_FIELDS if k != "weights"), set()).add(str(f["weights"]))
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


def _case_fields(row: dict) -> dict:
    return {f: row.get(f) for f in CASE_FIELDS}


def _p50_ms(row: dict, samples: Sequence[float] | None) -> float | None:
    if samples:
        return float(np.median(np.asarray(samples, dtype=float))) / 1e6
    v = row.get("p50_ms")
    return float(v) if isinstance(v, (int, float)) else None


def _stable_seed(seed: int, key: str) -> list[int]:
    # Seeded per case (not per position), so a case's CI does not change when others are added.
    return [int(seed), zlib.crc32(key.encode("utf-8"))]


MAX_SAMPLE_NS = 86_400 * 10**9  # one day: no single timed inference takes longer; larger is corrupt input


def check_run_doc(doc: dict, side: str) -> None:
    """Input validation before any statistics: a run with no results cannot be compared (a HEAD
    that measured nothing must not pass the gate), and every latency must be possible: samples
    are whole nanoseconds in 1 .. MAX_SAMPLE_NS, a stored p50 is a positive finite number.
    Raises UserError (exit 1) naming the side, the case and the value."""
    run = doc.get("run") or {}
    results = doc.get("results")
    label = run_label(run) if run else "?"
    if not isinstance(results, list) or not results:
        raise UserError(f"{side} run {label} has no results: nothing was measured, so there is nothing to "
                        f"compare (a {side.upper()} without results never passes the gate)")
    for row in results:
        if not isinstance(row, dict):
            raise UserError(f"{side} run {label}: a result is not an object")
        key = row.get("case_key") or "?"
        for s in row.get("samples_ns") or []:
            if isinstance(s, bool) or not isinstance(s, int) or not 1 <= s <= MAX_SAMPLE_NS:
                raise UserError(f"{side} run {label}, case {key}: impossible latency sample {s!r} ns "
                                f"(samples are whole nanoseconds from 1 to {MAX_SAMPLE_NS}, one day)")
        for f in ("p50_ms", "min_ms", "max_ms"):
            v = row.get(f)
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0 \
                    or v > MAX_SAMPLE_NS / 1e6:
                raise UserError(f"{side} run {label}, case {key}: impossible {f} {v!r}")


def compare_runs(base_doc: dict, head_doc: dict, threshold: float = DEFAULT_THRESHOLD,
                 confidence: float = DEFAULT_CONFIDENCE, resamples: int = DEFAULT_RESAMPLES,
                 seed: int = DEFAULT_SEED, alpha: float = DEFAULT_ALPHA,
                 correction: str = "bonferroni", shift_fails: bool = True) -> Comparison:
    """Compare two run documents (run-file format) case by case. Returns a Comparison whose
    cases cover the union of both runs' case keys.

    `confidence` and `alpha` hold for the comparison as a whole: the gate fails when any case
    regresses, so with `correction="bonferroni"` (default) each of the m cases that get a
    statistical verdict uses a CI at 1 - (1 - confidence)/m and a Mann-Whitney level alpha/m
    (an A/A comparison of 15 cases then calls a false regression with probability <= 5%, not up
    to 15 x 2.5%). `correction="none"`: every case at `confidence` and `alpha`.

    With at least MIN_SHIFT_CASES compared cases, the shift common to all of them is estimated
    (`Comparison.shift`) and every per-case verdict is taken relative to it (see `_apply_shift`);
    `shift_fails`: a common slowdown beyond the threshold fails the gate (default)."""
    if correction not in CORRECTIONS:
        raise UsageError(f"correction must be one of {', '.join(CORRECTIONS)}, not {correction!r}")
    if not 0 < threshold < 1:
        raise UsageError(f"threshold must be between 0 and 1 (a fraction: 0.05 = 5%), not {threshold}")
    if not 0.5 <= confidence < 1:
        raise UsageError(f"confidence must be in [0.5, 1), not {confidence}")
    if resamples < 100:
        raise UsageError(f"resamples must be at least 100, not {resamples}")
    check_run_doc(base_doc, "base")
    check_run_doc(head_doc, "head")
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
    for key in list(base_rows) + [k for k in head_rows if k not in base_rows]:
        cmp.cases.append(_compare_case(key, base_rows.get(key), head_rows.get(key), cmp, stats))
    _weights_mismatch(cmp, base_rows, head_rows)
    _apply_shift(cmp, stats, base_rows, head_rows)
    order = {v: i for i, v in enumerate(VERDICTS)}
    cmp.cases.sort(key=lambda c: (order.get(c.verdict, len(order)), c.case_key))
    return cmp


@dataclass
class Shift:
    """The change common to every compared case (a whole-run shift: the machine, a neighbour's
    load, a shared dependency), estimated as the median over cases of log(ratio)."""

    ratio: float                # exp(median log ratio): 1.10 = every case 10% slower
    ci_low: float
    ci_high: float
    cases: int                  # how many cases it is estimated from
    spread: float               # tau: case-to-case spread of the shift beyond measurement noise (log)
    significant: bool           # the CI excludes 1
    beyond_threshold: bool      # significant and |ratio - 1| >= threshold
    fails_gate: bool            # a common slowdown beyond the threshold (with shift_fails)

    def to_dict(self) -> dict:
        return asdict(self)

    def message(self, threshold: float, backend: str | None = None) -> str:
        pct = (self.ratio - 1) * 100
        ci = f"[{(self.ci_low - 1) * 100:+.1f}%, {(self.ci_high - 1) * 100:+.1f}%]"
        scope = f"{backend} " if backend else ""
        if not self.beyond_threshold:
            return (f"common shift of all {self.cases} {scope}cases {pct:+.1f}% {ci}: within the threshold; per-case "
                    "verdicts are relative to it")
        word = "slower" if self.ratio > 1 else "faster"
        if backend:
            text = (f"{backend} shift: every {backend} case moved {pct:+.1f}% {ci} ({self.cases} cases, {word}): the "
                    f"machine, a neighbour or {backend} itself changed; its per-case verdicts are relative to this "
                    "shift")
        else:
            text = (f"machine-wide shift: every case moved {pct:+.1f}% {ci} ({self.cases} cases, {word}): the "
                    "machine or a shared dependency changed; per-case verdicts below are relative to this shift")
        if self.fails_gate:
            text += (". Timing alone cannot tell a runtime upgrade from a noisy neighbour, so a common slowdown "
                     "beyond the threshold fails the gate: rerun both back to back on a quiet machine")
        return text


MIN_SHIFT_CASES = 4
# a shift per runtime must shrink the spread tau by a quarter and by at least this much (log
# scale, ~1%): below that the runtimes moved together and one shift is the better model
PER_BACKEND_MIN_GAIN = 0.01


def _apply_shift(cmp: Comparison, stats: dict, base_rows: dict, head_rows: dict) -> None:
    """Estimate the whole-run shift and re-take every per-case verdict relative to it.

    Model: log r_i = s + d_i + noise_i, s the shift common to all cases, d_i the case's own change.
    s is the median over cases of log r_i; its CI comes from a two-level bootstrap (cases
    resampled, and each case's own bootstrap replicate). A case's relative change is
    log r_i minus the median of the *other* cases (leave-one-out, so a case never hides its own
    change in the shift), with replicates from the same bootstrap. A machine-wide shift is rarely
    uniform (a busy core slows one runtime more than another), so the spread of the relative
    changes beyond their measurement noise, tau, is estimated robustly (the tau that makes the
    median |standardised relative change| that of a normal, 0.6745: one outlying case does not
    move it) and added to every case's relative CI. Verdicts then use the usual rule on the
    relative ratio; Mann-Whitney compares base round medians with head round medians divided by
    the leave-one-out shift."""
    keys = [c.case_key for c in cmp.cases if c.case_key in stats]
    if len(keys) < MIN_SHIFT_CASES:
        if keys:
            cmp.warnings.extend(_few_cases_warning(cmp, len(keys)))
        return
    reps = [np.log(stats[k].replicates) for k in keys]
    width = min(r.size for r in reps)
    L = np.vstack([r[:width] for r in reps])                       # (m, B) log-ratio replicates
    point = np.array([math.log(stats[k].ratio) for k in keys])      # (m,)
    m = len(keys)
    rng = np.random.default_rng(_stable_seed(cmp.seed, "shift"))
    s_point, lo, hi = _shift_interval(L, point, np.arange(m), rng, cmp.confidence)
    by_key = {c.case_key: c for c in cmp.cases}
    # Each runtime gets its own common shift when at least two of them have MIN_SHIFT_CASES
    # compared cases: a neighbour slows runtimes unequally (a busy core: ONNX Runtime 3.4x, OpenVINO
    # 1.8x), so one shift for all would leave that difference to every case's verdict.
    backends = [by_key[k].backend for k in keys]
    big = sorted(b for b, n in Counter(backends).items() if n >= MIN_SHIFT_CASES)

    def relative(group):
        # leave-one-out: a case never hides its own change in the shift it is compared with
        members = [np.array([j for j in range(m) if j != i and (group[i] is None or group[j] == group[i])])
                   for i in range(m)]
        loo_point = np.array([np.median(point[members[i]]) for i in range(m)])
        loo_reps = np.vstack([np.median(L[members[i]], axis=0) for i in range(m)])
        d, D = point - loo_point, L - loo_reps
        sd = np.array([max(_iqr_sd(D[i]), 1e-9) for i in range(m)])
        return group, loo_point, d, D, _robust_tau(d, sd)

    chosen = relative([None] * m)
    if len(big) >= 2:
        # a shift per runtime only where it explains the cases better than one shift for all
        # (a smaller spread tau); with runtimes that moved together, the leave-one-out medians
        # of a few cases per runtime would only add noise
        grouped = relative([b if b in big else None for b in backends])
        if grouped[4] < 0.75 * chosen[4] and chosen[4] - grouped[4] > PER_BACKEND_MIN_GAIN:
            chosen = grouped
    group, loo_point, d, D, tau = chosen
    per_backend = any(g is not None for g in group)
    noise = rng.standard_normal(D.shape) * tau
    cmp.shift = _make_shift(cmp, s_point, lo, hi, m, tau)
    beyond = cmp.shift.beyond_threshold
    cmp.warnings.append(cmp.shift.message(cmp.threshold))
    for b in big if per_backend else ():
        sub = np.array([i for i in range(m) if backends[i] == b])
        cmp.backend_shifts[b] = _make_shift(cmp, *_shift_interval(L, point, sub, rng, cmp.confidence), sub.size, tau)
    if cmp.backend_shifts:
        cmp.warnings.append("per-runtime shifts (each case's verdict is relative to its runtime's): " + "; ".join(
            f"{b} {(sh.ratio - 1) * 100:+.1f}% [{(sh.ci_low - 1) * 100:+.1f}%, {(sh.ci_high - 1) * 100:+.1f}%]"
            for b, sh in cmp.backend_shifts.items()))
        cmp.warnings.extend(sh.message(cmp.threshold, b) for b, sh in cmp.backend_shifts.items()
                            if sh.beyond_threshold and not beyond)
    for i, key in enumerate(keys):
        c, st = by_key[key], stats[key]
        rel = float(np.exp(d[i]))
        rlo, rhi = percentile_interval(np.exp(D[i] + noise[i]), rel, cmp.case_confidence)
        base, head = base_rows[key], head_rows[key]
        p = st.p_value
        if st.base_method == st.head_method == "rounds":
            hm = _round_medians(np.asarray(head["samples_ns"], float), head["sample_rounds"]) / math.exp(loo_point[i])
            p = mann_whitney_p(_round_medians(np.asarray(base["samples_ns"], float), base["sample_rounds"]), hm)
        rs = RatioStats(rel, rlo, rhi, p, st.base_median_ns, st.head_median_ns, st.base_method, st.head_method,
                        st.base_units, st.head_units)
        c.rel_ratio, c.rel_ci_low, c.rel_ci_high = rel, rlo, rhi
        c.p_value = p
        v, note = verdict(rs, cmp.threshold, cmp.case_alpha)
        own = cmp.backend_shifts.get(group[i]) if group[i] else None
        if own is not None:
            extra = (f"relative to the {group[i]} shift ({(own.ratio - 1) * 100:+.1f}%)"
                     if (own.beyond_threshold or beyond) else "")
        else:
            extra = f"relative to the common shift ({(cmp.shift.ratio - 1) * 100:+.1f}%)" if beyond else ""
        if "no rounds recorded" in c.note:
            extra = "; ".join(x for x in (extra, "blocks of consecutive samples resampled (no rounds recorded)") if x)
        c.verdict = v
        c.note = "; ".join(x for x in (note, extra) if x)


def _shift_interval(L: np.ndarray, point: np.ndarray, idx: np.ndarray, rng, confidence: float):
    """(s, lo, hi): the common log shift of cases `idx` (median of their log ratios) and its CI
    from the two-level bootstrap (cases resampled, each with its own bootstrap replicate)."""
    width = L.shape[1]
    pick = rng.integers(0, idx.size, size=(width, idx.size))
    reps = np.median(L[idx][pick, np.arange(width)[:, None]], axis=1)
    s = float(np.median(point[idx]))
    lo, hi = percentile_interval(reps, s, confidence)
    return s, lo, hi


def _make_shift(cmp: Comparison, s: float, lo: float, hi: float, cases: int, tau: float) -> Shift:
    sig = lo > 0 or hi < 0
    beyond = sig and abs(math.exp(s) - 1) >= cmp.threshold
    return Shift(ratio=math.exp(s), ci_low=math.exp(lo), ci_high=math.exp(hi), cases=int(cases), spread=float(tau),
                 significant=bool(sig), beyond_threshold=bool(beyond),
                 fails_gate=bool(beyond and s > 0 and cmp.shift_fails))


def _iqr_sd(x: np.ndarray) -> float:
    q1, q3 = np.quantile(x, [0.25, 0.75])
    return float((q3 - q1) / 1.349)


def _robust_tau(d: np.ndarray, sd: np.ndarray) -> float:
    """The smallest tau >= 0 with median(|d| / sqrt(sd^2 + tau^2)) <= 0.6745 (bisection)."""
    def med_z(t):
        return float(np.median(np.abs(d) / np.sqrt(sd ** 2 + t ** 2)))

    if med_z(0.0) <= 0.6745:
        return 0.0
    lo, hi = 0.0, float(np.max(np.abs(d))) / 0.6745 + 1e-9
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if med_z(mid) <= 0.6745 else (mid, hi)
    return hi


def _few_cases_warning(cmp: Comparison, n: int) -> list[str]:
    """Too few cases to separate a machine-wide shift from a change: say so when they all moved."""
    ratios = [c.ratio for c in cmp.cases if c.ci_low is not None and c.ratio]
    if ratios and (all(r >= 1 + cmp.threshold for r in ratios) or all(r <= 1 - cmp.threshold for r in ratios)):
        return [f"all {n} compared cases moved the same way (median ratio {float(np.median(ratios)):.2f}); with fewer "
                f"than {MIN_SHIFT_CASES} cases a machine-wide shift cannot be told from a code change: rerun both "
                "back to back before trusting these verdicts"]
    return []


def _testable(row: dict) -> bool:
    return row.get("status") == "ok" and bool(row.get("samples_ns"))


CONTENTION_WARN = 0.10  # share of the machine's CPU taken by other processes during the timed rounds


def run_contention(doc: dict) -> float | None:
    """The share of the machine's CPU that other processes took while the run's cases were timed
    (every ok row's `cpu_contention`, pooled); None when the rows do not carry it."""
    other = machine = 0.0
    for row in doc.get("results") or []:
        c = row.get("cpu_contention") if row.get("status") == "ok" else None
        if isinstance(c, dict) and isinstance(c.get("machine_cpu_s"), (int, float)) and c["machine_cpu_s"] > 0:
            other += float(c.get("other_cpu_s") or 0.0)
            machine += float(c["machine_cpu_s"])
    return other / machine if machine > 0 else None


def _contention_warnings(base_doc: dict, head_doc: dict) -> list[str]:
    """Other processes took a different share of the CPU in the two runs: measured, not guessed
    from the load average (which counts waiting tasks, whatever their priority)."""
    b, h = run_contention(base_doc), run_contention(head_doc)
    if b is None or h is None or max(b, h) <= CONTENTION_WARN or abs(h - b) < CONTENTION_WARN:
        return []
    side = "head" if h > b else "base"
    return [f"other processes took {max(b, h):.0%} of the machine's CPU while {side}'s cases were timed (the other "
            f"run: {min(b, h):.0%}): a busy neighbour, not the code, moved that run; rerun on a quiet machine"]


def _load_warnings(base_run: dict, head_run: dict) -> list[str]:
    """Machine load differs between the runs: a verdict may then reflect the neighbours."""
    def peak(run):
        vals = []
        for k in ("loadavg_before", "loadavg_after"):
            v = run.get(k)
            if isinstance(v, (list, tuple)) and v:
                v = v[0]
            if isinstance(v, (int, float)):
                vals.append(float(v))
        return max(vals) if vals else None

    b, h = peak(base_run), peak(head_run)
    if b is None or h is None:
        return []
    cores = None
    for run in (head_run, base_run):
        m = run.get("machine") or {}
        cpu = m.get("cpu") if isinstance(m.get("cpu"), dict) else {}
        cores = cpu.get("logical_cores") or m.get("logical_cores") or m.get("cpu_count")
        if cores:
            break
    limit = 0.5 * float(cores) if isinstance(cores, (int, float)) and cores else 1.0
    if abs(h - b) >= limit:
        return [f"1-minute load average differed between the runs (base up to {b:.2f}, head up to {h:.2f}): "
                "other processes may explain part of any difference"]
    return []


def _compare_case(key: str, base: dict | None, head: dict | None, cmp: Comparison,
                  stats_out: dict | None = None) -> CaseComparison:
    row = head or base or {}
    c = CaseComparison(case_key=key, verdict="unchanged", **_case_fields(row))
    c.base_status = base.get("status") if base else None
    c.head_status = head.get("status") if head else None
    b_samples = (base or {}).get("samples_ns") or []
    h_samples = (head or {}).get("samples_ns") or []
    if base is not None:
        c.base_p50_ms, c.base_n = _p50_ms(base, b_samples), len(b_samples) or base.get("n")
    if head is not None:
        c.head_p50_ms, c.head_n = _p50_ms(head, h_samples), len(h_samples) or head.get("n")
    if base is None:
        c.verdict, c.note = "new", "only in head"
        if c.head_status and c.head_status != "ok":
            c.note += f" ({c.head_status})"
            c.error = head.get("error")
        return c
    if head is None:
        c.verdict, c.note = "missing", "only in base: not run in head"
        return c
    if c.head_status == "failed" or c.base_status == "failed":
        c.verdict = "failed"
        if c.head_status == "failed" and c.base_status == "failed":
            c.note, c.error = "failed in both runs", head.get("error")
        elif c.head_status == "failed":
            c.note, c.error = f"failed in head ({c.base_status} in base)", head.get("error")
        else:
            c.note, c.error = f"failed in base ({c.head_status} in head)", base.get("error")
        return c
    if c.head_status == "skipped" or c.base_status == "skipped":
        c.verdict = "skipped"
        side = "both runs" if c.head_status == c.base_status else ("head" if c.head_status == "skipped" else "base")
        c.note = f"skipped in {side}"
        c.error = (head if c.head_status == "skipped" else base).get("error")
        return c
    if not cmp.same_machine:
        c.verdict, c.note = "not-compared", "different machines"
        if c.base_p50_ms and c.head_p50_ms:
            c.ratio = c.head_p50_ms / c.base_p50_ms
        return c
    if not b_samples or not h_samples:
        c.verdict = "no-samples"
        c.note = "no raw samples in " + ("both runs" if not b_samples and not h_samples
                                         else "base" if not b_samples else "head")
        return c
    stats = ratio_stats(b_samples, h_samples, base.get("sample_rounds"), head.get("sample_rounds"),
                        cmp.case_confidence, resamples_for(cmp.case_confidence, cmp.resamples),
                        _stable_seed(cmp.seed, key))
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


# --------------------------------------------------------------------------------------------
# loading BASE / HEAD
# --------------------------------------------------------------------------------------------

def existing_store(url: str | None = None):
    """Open the results store without creating one: a SQLite file that does not exist is a user
    error (a typo in --store would otherwise silently start an empty store)."""
    from .store import open_store

    return open_store(url, create=False, readonly=True)


def load_run(ref: str, store_url: str | None = None, store=None) -> dict:
    """BASE/HEAD reference -> run document. `ref` is an exported JSON run file (a path that
    exists, or anything ending in .json), else a store reference: run id or unique prefix, tag
    (tags may contain slashes: `feature/x`), git commit prefix, or "latest" (Store.resolve_run)."""
    from .store import read_run_file

    path = Path(ref).expanduser()
    try:
        is_file = path.is_file()
    except OSError:  # too long to be a file name (a 10,000-character tag): a store reference
        is_file = False
    if is_file:
        return read_run_file(path)
    if ref.lower().endswith(".json"):
        raise UserError(f"run file {ref} does not exist")
    if store is None:
        store = existing_store(store_url)
    run = store.resolve_run(ref)
    return store.export_run(run["id"])


# --------------------------------------------------------------------------------------------
# rendering
# --------------------------------------------------------------------------------------------

def _pct(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{(x - 1) * 100:+.{digits}f}%"


def _num(x: float | None, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return f"{x:.{digits}f}"


def _ci(c: CaseComparison) -> str:
    if c.ci_low is None:
        return "-"
    return f"[{_num(c.ci_low)}, {_num(c.ci_high)}]"


def _rel(c: CaseComparison) -> str:
    if c.rel_ratio is None:
        return "-"
    return f"{_pct(c.rel_ratio)} [{_num(c.rel_ci_low)}, {_num(c.rel_ci_high)}]"


def _p(c: CaseComparison) -> str:
    return "-" if c.p_value is None else f"{c.p_value:.2g}"


def _case_label(c: CaseComparison) -> str:
    if not c.model:
        return c.case_key
    weights = f" [{c.weights}]" if c.weights and c.weights != "synthetic:0" else ""
    return f"{c.model}{weights} {c.backend} {c.device} {c.precision} b{c.batch} t{c.threads} {c.scenario}"


def _note(c: CaseComparison) -> str:
    text = c.note or ""
    if c.error:
        err = " ".join(str(c.error).split())
        text = f"{text}: {err[:200]}" if text else err[:200]
    return text


def md_escape(text: Any) -> str:
    """Escape a value for a Markdown table cell: HTML entities (GitHub renders inline HTML),
    Markdown punctuation, pipes, and line breaks."""
    s = "" if text is None else str(text)
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    out = []
    for ch in s:
        if ch in "\\`*_[]|~#!$":
            out.append("\\" + ch)
        elif ch in "\r\n\t":
            out.append(" ")
        else:
            out.append(ch)
    return "".join(out)


def to_markdown(cmp: Comparison, fail_on: str = "regression") -> str:
    """Markdown for a pull-request comment or $GITHUB_STEP_SUMMARY."""
    failing = cmp.failing(fail_on)
    status = "❌ fails" if failing else "✅ passes"
    lines = [
        f"### pfdeploy compare: {md_escape(cmp.headline())}",
        "",
        f"{status} the gate (`--fail-on {fail_on}`, threshold {cmp.threshold * 100:g}%; bootstrap CI of the "
        f"ratio of medians and Mann-Whitney: {cmp.levels()}).",
        "",
        f"- base: {md_escape(run_label(cmp.base))}, commit {md_escape((cmp.base.get('git_commit') or '-')[:12])}, "
        f"{md_escape(cmp.base.get('started_at') or '-')}",
        f"- head: {md_escape(run_label(cmp.head))}, commit {md_escape((cmp.head.get('git_commit') or '-')[:12])}, "
        f"{md_escape(cmp.head.get('started_at') or '-')}",
        f"- machine: {md_escape(cmp.head.get('machine_id') or '-')}"
        + ("" if cmp.same_machine else f" (base: {md_escape(cmp.base.get('machine_id') or '-')})"),
    ]
    for w in cmp.warnings:
        lines.append(f"- ⚠️ {md_escape(w)}")
    lines += ["", "| verdict | model | backend | device | precision | batch | threads | scenario | "
                  "base p50 ms | head p50 ms | change | CI of ratio | vs shift [CI] | p (MWU) | note |",
              "|---|---|---|---|---|---|---|---|---:|---:|---:|---|---|---:|---|"]
    for c in cmp.cases:
        cells = [f"{MARK.get(c.verdict, '')} {c.verdict}", c.model or c.case_key, c.backend, c.device,
                 c.precision, c.batch, c.threads, c.scenario]
        lines.append("| " + " | ".join(
            [md_escape(cells[0])] + [md_escape("-" if v is None else v) for v in cells[1:]]
            + [_num(c.base_p50_ms), _num(c.head_p50_ms), _pct(c.ratio), _ci(c), _rel(c), _p(c),
               md_escape(_note(c))]) + " |")
    return "\n".join(lines) + "\n"


def print_table(cmp: Comparison, console, fail_on: str = "regression") -> None:
    """The rich table for people. Values from the store are passed as Text (never parsed as
    rich markup)."""
    from rich.table import Table
    from rich.text import Text

    t = Table(title=Text(f"compare {run_label(cmp.base)} -> {run_label(cmp.head)}"), header_style="bold")
    for col, right in (("verdict", False), ("case", False), ("base p50 ms", True), ("head p50 ms", True),
                       ("change", True), ("CI of ratio", True), ("vs shift [CI]", True), ("p (MWU)", True),
                       ("note", False)):
        t.add_column(col, justify="right" if right else "left")
    for c in cmp.cases:
        t.add_row(Text(c.verdict, style=STYLE.get(c.verdict, "")), Text(_case_label(c)),
                  _num(c.base_p50_ms), _num(c.head_p50_ms), _pct(c.ratio), _ci(c), _rel(c), _p(c), Text(_note(c)))
    console.print(t)
    for w in cmp.warnings:
        console.print(Text(f"warning: {w}", style="yellow"))
    failing = cmp.failing(fail_on)
    console.print(Text(f"{cmp.headline()}; threshold {cmp.threshold * 100:g}%, {cmp.levels()}; "
                       f"gate (--fail-on {fail_on}): "
                       + (f"FAIL ({len(failing)} case(s))" if failing else "pass"),
                       style="bold red" if failing else "bold green"))


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` atomically (pfdeploy.outputs: temp file + rename, umask mode,
    one-line errors)."""
    from .outputs import atomic_write_text

    atomic_write_text(path, text, "--markdown")


def append_step_summary(markdown: str, env: dict | None = None) -> Path | None:
    """Append to $GITHUB_STEP_SUMMARY when set (GitHub Actions' job summary). Returns the path."""
    target = (env if env is not None else os.environ).get("GITHUB_STEP_SUMMARY")
    if not target:
        return None
    try:
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(markdown + "\n")
    except OSError as exc:
        raise UserError(f"cannot append to GITHUB_STEP_SUMMARY={target}: {exc.strerror}") from None
    return Path(target)
