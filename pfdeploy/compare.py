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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

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
# Bootstrap replicates are processed in chunks so memory stays bounded (chunk x samples ints).
_CHUNK_CELLS = 4_000_000


# --------------------------------------------------------------------------------------------
# statistics
# --------------------------------------------------------------------------------------------

def _units(samples: np.ndarray, rounds: Sequence[int] | None) -> tuple[np.ndarray, np.ndarray, int, str]:
    """Sort `samples` and give each its resampling unit: its round when the samples were taken
    in at least two rounds, else itself. Returns (sorted samples, unit index per sorted sample,
    number of units, method)."""
    order = np.argsort(samples, kind="stable")
    values = samples[order]
    if rounds is not None and len(rounds) == len(samples):
        labels, unit = np.unique(np.asarray(rounds)[order], return_inverse=True)
        if len(labels) >= 2:
            return values, unit.astype(np.intp), len(labels), "rounds"
    return values, np.arange(len(values)), len(values), "samples"


def bootstrap_medians(samples: Sequence[float], rounds: Sequence[int] | None, resamples: int,
                      rng: np.random.Generator) -> tuple[np.ndarray, str, int]:
    """Bootstrap distribution of the median of `samples`.

    Each replicate draws as many units as there are (with replacement): whole rounds when
    `rounds` gives at least two distinct round indices, else single samples, and takes the median
    of all samples of the drawn units (a weighted median over the sorted samples, so no replicate
    is materialised). Returns (medians[resamples], method "rounds" | "samples", units)."""
    x = np.asarray(samples, dtype=float)
    if x.size == 0:
        raise ValueError("no samples")
    values, unit, n_units, method = _units(x, rounds)
    medians = np.empty(resamples)
    chunk = max(1, min(resamples, _CHUNK_CELLS // max(1, values.size)))
    p = np.full(n_units, 1.0 / n_units)
    for start in range(0, resamples, chunk):
        b = min(chunk, resamples - start)
        counts = rng.multinomial(n_units, p, size=b)            # (b, units): times each unit drawn
        cum = np.cumsum(counts[:, unit], axis=1)                # (b, samples) in sorted order
        total = cum[:, -1]
        lo_rank = (total + 1) // 2                              # 1-based order statistics of the median
        hi_rank = total // 2 + 1
        lo_idx = (cum < lo_rank[:, None]).sum(axis=1)
        hi_idx = (cum < hi_rank[:, None]).sum(axis=1)
        medians[start:start + b] = (values[lo_idx] + values[hi_idx]) / 2.0
    return medians, method, n_units


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
    mb, mh = float(np.median(b)), float(np.median(h))
    if mb <= 0:
        raise ValueError("base median is not positive")
    rng = np.random.default_rng(seed)
    bm, b_method, b_units = bootstrap_medians(b, base_rounds, resamples, rng)
    hm, h_method, h_units = bootstrap_medians(h, head_rounds, resamples, rng)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = hm / bm
    ratios = ratios[np.isfinite(ratios)]
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(ratios, [alpha, 1.0 - alpha])
    r = mh / mb
    # The percentile interval of a skewed statistic may, rarely, not contain the point estimate;
    # widen it to do so, so "CI above 1" never contradicts the ratio shown beside it.
    lo, hi = min(float(lo), r), max(float(hi), r)
    if b_method == h_method == "rounds":
        # the test sees the same independent units the bootstrap resamples: one median per round
        p = mann_whitney_p(_round_medians(b, base_rounds), _round_medians(h, head_rounds))
    else:
        p = mann_whitney_p(b, h)
    return RatioStats(r, lo, hi, p, mb, mh, b_method, h_method, b_units, h_units)


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
        return bad

    def exit_code(self, fail_on: str = "regression") -> int:
        return 1 if self.failing(fail_on) else 0

    def headline(self) -> str:
        counts = self.counts
        parts = [f"{n} {v}" for v, n in counts.items()]
        return ", ".join(parts) if parts else "no cases"

    def to_dict(self, fail_on: str | None = None) -> dict:
        d = {
            "base": _run_summary(self.base), "head": _run_summary(self.head),
            "threshold": self.threshold, "confidence": self.confidence, "alpha": self.alpha,
            "resamples": self.resamples, "seed": self.seed, "same_machine": self.same_machine,
            "correction": self.correction, "tested": self.tested, "case_confidence": self.case_confidence,
            "case_alpha": self.case_alpha,
            "counts": self.counts, "warnings": list(self.warnings),
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


def compare_runs(base_doc: dict, head_doc: dict, threshold: float = DEFAULT_THRESHOLD,
                 confidence: float = DEFAULT_CONFIDENCE, resamples: int = DEFAULT_RESAMPLES,
                 seed: int = DEFAULT_SEED, alpha: float = DEFAULT_ALPHA,
                 correction: str = "bonferroni") -> Comparison:
    """Compare two run documents (run-file format) case by case. Returns a Comparison whose
    cases cover the union of both runs' case keys.

    `confidence` and `alpha` hold for the comparison as a whole: the gate fails when any case
    regresses, so with `correction="bonferroni"` (default) each of the m cases that get a
    statistical verdict uses a CI at 1 - (1 - confidence)/m and a Mann-Whitney level alpha/m
    (an A/A comparison of 15 cases then calls a false regression with probability <= 5%, not up
    to 15 x 2.5%). `correction="none"`: every case at `confidence` and `alpha`."""
    if correction not in CORRECTIONS:
        raise UsageError(f"correction must be one of {', '.join(CORRECTIONS)}, not {correction!r}")
    if not 0 < threshold < 1:
        raise UsageError(f"threshold must be between 0 and 1 (a fraction: 0.05 = 5%), not {threshold}")
    if not 0.5 <= confidence < 1:
        raise UsageError(f"confidence must be in [0.5, 1), not {confidence}")
    if resamples < 100:
        raise UsageError(f"resamples must be at least 100, not {resamples}")
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
    base_rows = _index(base_doc, "base", warnings)
    head_rows = _index(head_doc, "head", warnings)
    tested = sum(1 for k, b in base_rows.items() if same_machine and k in head_rows
                 and _testable(b) and _testable(head_rows[k]))
    m = tested if correction == "bonferroni" and tested > 1 else 1
    cmp = Comparison(base_run, head_run, threshold, confidence, alpha, resamples, seed, same_machine,
                     correction=correction, tested=tested, case_confidence=1.0 - (1.0 - confidence) / m,
                     case_alpha=alpha / m, warnings=warnings)
    for key in list(base_rows) + [k for k in head_rows if k not in base_rows]:
        cmp.cases.append(_compare_case(key, base_rows.get(key), head_rows.get(key), cmp))
    order = {v: i for i, v in enumerate(VERDICTS)}
    cmp.cases.sort(key=lambda c: (order.get(c.verdict, len(order)), c.case_key))
    cmp.warnings.extend(_shift_warnings(cmp))
    return cmp


def _shift_warnings(cmp: Comparison) -> list[str]:
    """Every case slower (or faster) by a similar factor looks like the machine, not the code:
    a neighbour's load, a CPU frequency change. Statistics cannot tell the two apart; say so."""
    ratios = [c.ratio for c in cmp.cases if c.ci_low is not None and c.ratio]
    if len(ratios) < 4:
        return []
    slower = sum(1 for r in ratios if r >= 1 + cmp.threshold)
    faster = sum(1 for r in ratios if r <= 1 - cmp.threshold)
    for n, word in ((slower, "slower"), (faster, "faster")):
        if n >= 0.8 * len(ratios):
            med = float(np.median(ratios))
            return [f"{n} of {len(ratios)} compared cases are {word} (median ratio {med:.2f}): a machine-wide "
                    "shift (other load, CPU frequency) looks the same as a code change; rerun both on a quiet "
                    "machine, or back to back, before trusting these verdicts"]
    return []


def _testable(row: dict) -> bool:
    return row.get("status") == "ok" and bool(row.get("samples_ns"))


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


def _compare_case(key: str, base: dict | None, head: dict | None, cmp: Comparison) -> CaseComparison:
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
    if stats.base_method == "samples" or stats.head_method == "samples":
        extra = "samples resampled singly (no rounds recorded)"
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
    if path.is_file():
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
                  "base p50 ms | head p50 ms | change | CI of ratio | p (MWU) | note |",
              "|---|---|---|---|---|---|---|---|---:|---:|---:|---|---:|---|"]
    for c in cmp.cases:
        cells = [f"{MARK.get(c.verdict, '')} {c.verdict}", c.model or c.case_key, c.backend, c.device,
                 c.precision, c.batch, c.threads, c.scenario]
        lines.append("| " + " | ".join(
            [md_escape(cells[0])] + [md_escape("-" if v is None else v) for v in cells[1:]]
            + [_num(c.base_p50_ms), _num(c.head_p50_ms), _pct(c.ratio), _ci(c), _p(c), md_escape(_note(c))]) + " |")
    return "\n".join(lines) + "\n"


def print_table(cmp: Comparison, console, fail_on: str = "regression") -> None:
    """The rich table for people. Values from the store are passed as Text (never parsed as
    rich markup)."""
    from rich.table import Table
    from rich.text import Text

    t = Table(title=f"compare {run_label(cmp.base)} -> {run_label(cmp.head)}", header_style="bold")
    for col, right in (("verdict", False), ("case", False), ("base p50 ms", True), ("head p50 ms", True),
                       ("change", True), ("CI of ratio", True), ("p (MWU)", True), ("note", False)):
        t.add_column(col, justify="right" if right else "left")
    for c in cmp.cases:
        t.add_row(Text(c.verdict, style=STYLE.get(c.verdict, "")), Text(_case_label(c)),
                  _num(c.base_p50_ms), _num(c.head_p50_ms), _pct(c.ratio), _ci(c), _p(c), Text(_note(c)))
    console.print(t)
    for w in cmp.warnings:
        console.print(Text(f"warning: {w}", style="yellow"))
    failing = cmp.failing(fail_on)
    console.print(Text(f"{cmp.headline()}; threshold {cmp.threshold * 100:g}%, {cmp.levels()}; "
                       f"gate (--fail-on {fail_on}): "
                       + (f"FAIL ({len(failing)} case(s))" if failing else "pass"),
                       style="bold red" if failing else "bold green"))


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` through a temporary file in the same directory and a rename."""
    import tempfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
