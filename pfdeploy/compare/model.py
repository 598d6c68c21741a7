"""What a comparison is made of: the verdict vocabulary, one case's comparison and the whole
comparison with its gate (`failing`, `exit_code`), as plain data (docs/compare.md)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import UsageError
from ..result import Result

DEFAULT_THRESHOLD = 0.05
DEFAULT_CONFIDENCE = 0.95
DEFAULT_RESAMPLES = 2000
DEFAULT_SEED = 0
DEFAULT_ALPHA = 0.05
FAIL_ON = ("regression", "inconclusive", "never")
CORRECTIONS = ("bonferroni", "none")
from ..backends.case import CASE_FIELDS, case_key_of  # noqa: E402 (the one case key)

# Display order: what needs attention first.
VERDICTS = ("regression", "failed", "inconclusive", "improvement", "unchanged", "no-samples",
            "not-compared", "skipped", "missing", "new")
MARK = {"regression": "🔴", "failed": "❌", "inconclusive": "🟡", "improvement": "🟢",
        "unchanged": "⚪", "no-samples": "❔", "not-compared": "⛔", "skipped": "⏭️",
        "missing": "➖", "new": "➕"}
STYLE = {"regression": "bold red", "failed": "bold red", "inconclusive": "yellow",
         "improvement": "green", "unchanged": "", "no-samples": "dim", "not-compared": "magenta",
         "skipped": "dim", "missing": "dim", "new": "cyan"}



def case_key(row: Result | dict) -> str:
    """The result's case key. A plain row (a caller not yet typed: pfdeploy.report) may lack it:
    then it is rebuilt from the row's fields."""
    if isinstance(row, Result):
        return row.case_key
    return str(row.get("case_key") or case_key_of(row))


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
    # what `ratio` is the ratio of: "p50_ms" (head / base latency, above 1 slower) or, for
    # `pfdeploy capacity` results, "capacity_qps" (head / base capacity, above 1: head serves more)
    metric: str = "p50_ms"
    base_capacity_qps: float | None = None
    head_capacity_qps: float | None = None

    @property
    def higher_is_better(self) -> bool:
        return self.metric == "capacity_qps"

    def to_dict(self) -> dict:
        return {**asdict(self), "higher_is_better": self.higher_is_better}


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
            seen = {id(c) for c in bad}  # by identity: `c not in bad` compares dataclasses, m x m
            bad += [c for c in self.cases if c.rel_ratio is not None and id(c) not in seen]
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


def _run_summary(run: dict) -> dict:
    keys = ("id", "tag", "git_commit", "started_at", "finished_at", "status", "suite",
            "machine_id", "loadavg_before", "loadavg_after", "pfdeploy_version")
    return {k: run.get(k) for k in keys}


