"""`pfdeploy bench`'s summary: the facts of a finished run as data (summary_data, also what
`--json -` adds as "summary") and as the bench table with its notes (print_summary). `pfdeploy
fleet bench` prints each node's run through the same functions."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..digest import NotMeasured, WarningGroup, summarize_not_measured, summarize_warnings
from ..labels import accuracy_text, pct, ratio_text, weights_label
from ..result import Result

PAPER_NOTE = ("vs <baseline> = baseline p50 / this p50 with its 95% CI (above 1: faster), for each baseline the "
              "model's spec names; paired over the rounds the two cases ran back to back; `pfdeploy claims` "
              "turns them into verdicts")


def outcome_of_run(doc: dict, run_id: str | None, status: str, store_url: str, wall_s: float = 0.0,
                   notes=()):
    """A stored run (its run file) as the engine's Outcome, so that its table is exactly
    `pfdeploy bench`'s (`fleet bench` prints each node's run this way). Rows this pfdeploy cannot
    describe as a case are left out."""
    from ..bench.config import CaseSpec
    from ..bench.engine import CaseResult, Outcome
    from ..result import Result

    results = []
    for row in (doc or {}).get("results", []):  # the run file's plain rows: the edge
        try:
            r = Result.from_row(row)
            spec = CaseSpec(model=r.model, backend=r.backend, device=r.device, precision=r.precision,
                            batch=int(r.batch), threads=int(r.threads or 1), scenario=r.scenario,
                            weights=r.weights or "synthetic:0")
        except Exception:  # noqa: BLE001 - a row this pfdeploy cannot describe: left out of the table
            continue
        results.append(CaseResult(spec, r))
    return Outcome(run_id, status, results, store_url, wall_s, list(notes))


@dataclass(frozen=True)
class SummaryRow:
    """One measured case of the bench table: its typed result and its comparisons with the
    baselines its spec names (pfdeploy.claims' comparison records, JSON dicts)."""

    result: Result
    comparisons: list = field(default_factory=list)

    @property
    def speedup(self) -> dict:
        return {c["baseline"]: c["ratio"] for c in self.comparisons}

    @property
    def parity(self) -> str:
        from ..exporters.artifact import parity_verdict

        return parity_verdict(self.result.parity)

    @property
    def noisy(self) -> bool:
        from ..bench.stats import CV_WARN

        return bool(self.result.cv is not None and self.result.cv > CV_WARN)

    def to_dict(self) -> dict:
        """The row of `--json -`'s "summary" (its keys and order are the users' contract)."""
        r = self.result
        return {"model": r.model, "family": r.family, "backend": r.backend, "device": r.device,
                "precision": r.precision, "batch": r.batch, "scenario": r.scenario, "n": r.n, "p50_ms": r.p50_ms,
                "p50_ci_low_ms": r.p50_ci_low_ms, "p50_ci_high_ms": r.p50_ci_high_ms, "p90_ms": r.p90_ms,
                "p99_ms": r.p99_ms, "items_per_s": r.items_per_s, "speedup": self.speedup,
                "comparisons": list(self.comparisons), "clock": r.clock, "params": r.params, "macs": r.macs,
                "parity": self.parity, "cv": r.cv, "noisy": self.noisy, "peak_rss_mb": r.peak_rss_mb,
                "warnings": r.warning_texts, "weights": r.weights,
                "accuracy": r.accuracy.to_dict() if r.accuracy is not None else None}


@dataclass(frozen=True)
class BenchSummary:
    """The facts of a finished run that the bench table shows (`to_dict()`: what `--json -` adds
    as "summary")."""

    run_id: str | None
    status: str
    store: str
    wall_s: float
    rows: list[SummaryRow]
    not_measured: list[dict]  # {case, status, reason}
    warnings: list[WarningGroup]  # one per kind (pfdeploy.digest)
    not_measured_summary: list[NotMeasured]
    notes: list[str]

    def to_dict(self) -> dict:
        return {"run_id": self.run_id, "status": self.status, "store": self.store, "wall_s": self.wall_s,
                "results": [r.to_dict() for r in self.rows], "not_measured": [dict(d) for d in self.not_measured],
                # one entry per kind, each with the line printed and every case's message and figures
                "warnings": [w.to_dict() for w in self.warnings],
                "not_measured_summary": [n.to_dict() for n in self.not_measured_summary], "notes": list(self.notes)}


def summary_data(outcome) -> BenchSummary:
    """The facts the table shows. Every parameter-free row carries its comparisons: one per
    baseline its zoo spec names, with the speedup's 95% CI, pairing, verdict, and both models'
    p50, params and MACs (pfdeploy.claims)."""
    from ..claims import comparisons

    results = [c.result for c in outcome.results]  # with their samples
    ident = ("model", "backend", "device", "precision", "batch", "scenario")
    by_case: dict[tuple, list] = {}
    for c in comparisons(results):
        c = c if isinstance(c, dict) else c.to_dict()  # claims' comparison as its JSON record (the summary's)
        by_case.setdefault(tuple(c[k] for k in ident), []).append(c)
    rows = [SummaryRow(r, by_case.get(tuple(getattr(r, k) for k in ident), [])) for r in results if r.ok]
    rows.sort(key=lambda x: (x.result.backend, x.result.precision, x.result.batch, x.result.p50_ms or 0))
    others = [{"case": c.spec.label, "status": c.result.status, "reason": c.result.error}
              for c in outcome.results if not c.result.ok]
    return BenchSummary(outcome.run_id, outcome.status, outcome.store_url, round(outcome.wall_s, 1), rows, others,
                        summarize_warnings(results), summarize_not_measured(results),
                        outcome.notes + [PAPER_NOTE] + _unpaired_note(rows, outcome.results) + accuracy_note(rows))


def _unpaired_note(rows: list[SummaryRow], results=()) -> list[str]:
    n = sum(1 for r in rows for c in r.comparisons if c["ratio"] is not None and not c["paired"])
    if not any(c["ratio"] is not None for r in rows for c in r.comparisons):
        return []  # no speedup in the table: nothing to qualify
    measured = [set(r.rounds) for r in results if r.rounds]
    if len(measured) > 1 and not any(a & b for i, a in enumerate(measured) for b in measured[i + 1:]):
        # no two cases shared a rotation (--no-interleave): nothing here is paired
        return ["no two cases ran in the same rotation (--no-interleave): every speedup is unpaired (~), machine "
                "drift between cases is not cancelled and their CIs are wider"]
    if not n:
        return []
    return [f"{n} speedup(s) are unpaired (~): the two cases never ran in the same rotation, so machine drift "
            "between them is not cancelled and their CI is wider"]


def speedup_columns(rows: list[SummaryRow]) -> list[str]:
    """The baselines the table has a "vs" column for: every baseline that some parameter-free
    row of the table was compared with (measured), in order of appearance."""
    cols: dict[str, None] = {}
    for r in rows:
        for c in r.comparisons:
            if c["ratio"] is not None:
                cols.setdefault(c["baseline"], None)
    return list(cols)


def _cv(r: SummaryRow):
    from rich.text import Text

    cv = r.result.cv
    if cv is None:
        return "-"
    return Text(f"{cv:.1%} !", style="red") if r.noisy else f"{cv:.1%}"


def summary_table(data: BenchSummary):
    """(columns, rows, title) of the bench table. Columns in priority order for a terminal (see
    pfdeploy.render.Col): model, backend and p50 [CI] always; precision, batch, device and
    scenario when they vary (else in the title); the variant when cases differ by it (`bench
    --tuned`); then the speedups, parity, CV flag; the rest behind --wide."""
    from ..render import Col, fmt

    def ms(v):
        return fmt(v, 3)

    def x(r: SummaryRow, base):  # "1.66x [1.50, 1.80]", "~1.66x ..." when unpaired (pfdeploy.claims)
        c = next((c for c in r.comparisons if c["baseline"] == base), None)
        return "-" if c is None or c["ratio"] is None else ratio_text(c)

    results = data.rows
    bases = speedup_columns(results)
    # weights only when some case is not on the default synthetic weights; accuracy only when measured;
    # the variant only when two rows would otherwise look the same
    show_weights = any(r.result.weights not in (None, "synthetic:0") for r in results)
    show_acc = any(r.result.accuracy for r in results)
    show_variant = len({r.result.variant for r in results}) > 1
    cols = ([Col("model"), Col("backend")] + ([Col("variant", wrap=True)] if show_variant else [])
            + [Col("device", fold="{}"), Col("prec", fold="{}"),
               Col("batch", right=True, fold="batch {}"), Col("scenario", fold="{}")]
            + ([Col("weights", 1, fold="weights {}")] if show_weights else [])
            + [Col("p50 ms [95% CI]", right=True)]
            + ([Col("top-1 % (PyTorch)", 1, right=True), Col("top-5 %", 6, right=True)] if show_acc else [])
            + [Col(f"vs {b}", 2, right=True) for b in bases]
            + [Col("parity", 3), Col("CV", 4, right=True), Col("items/s", 5, right=True), Col("p90 ms", 6, right=True),
               Col("p99 ms", 7, right=True), Col("params M", 8, right=True), Col("MACs G", 9, right=True),
               Col("n", 10, right=True)])
    rows = []
    for sr in results:
        r = sr.result
        p50, lo, hi = r.ci
        ci = f" [{lo:.3f}, {hi:.3f}]" if lo is not None else ""
        acc = r.accuracy.to_dict() if r.accuracy is not None else {}
        rows.append([r.model, r.backend] + ([r.variant or "-"] if show_variant else [])
                    + [r.device, r.precision, r.batch, r.scenario]
                    + ([weights_label(r.weights)] if show_weights else [])
                    + [f"{ms(p50)}{ci}"]
                    + ([accuracy_text(acc), pct(r.accuracy.top5 if r.accuracy else None)] if show_acc else [])
                    + [x(sr, b) for b in bases]
                    + [sr.parity, _cv(sr), fmt(r.items_per_s, 1), ms(r.p90_ms), ms(r.p99_ms),
                       fmt(r.params / 1e6 if r.params else None, 2),
                       fmt(r.macs / 1e9 if r.macs else None, 2), r.n])
    scenarios = sorted({r.result.scenario for r in results}) or ["latency"]
    title = "pfdeploy bench (host clock)"
    if "throughput" in scenarios:
        title += "; throughput: one sample = every request in flight completed"
    return cols, rows, title


def accuracy_note(rows: list[SummaryRow]) -> list[str]:
    """One note naming the image sets the table's accuracy was measured on."""
    sets = {}
    for r in rows:
        acc = r.result.accuracy
        if acc is not None and acc.images_sha256:
            sets.setdefault(acc.images_sha256, acc)
    if not sets:
        return []
    parts = [f"{a.n} labelled images ({a.images}, sha256 {d[:12]})" for d, a in sets.items()]
    return ["top-1/top-5 measured for each exact artifact (its sha256) on " + "; ".join(parts)
            + "; PyTorch fp32's top-1 on the same images in parentheses"]


def print_warnings(console, groups, wide: bool = False) -> None:
    """One line per kind of warning (pfdeploy.digest); each case's figures with --wide."""
    from ..render import print_note

    for g in groups:
        print_note(console, f"warning: {g.wide_text if wide else g.text}", style="yellow")


def print_summary(console, data: BenchSummary, wide: bool = False) -> None:
    from rich.text import Text

    from ..render import print_note, print_table

    cols, rows, title = summary_table(data)
    if rows:
        print_table(console, cols, rows, title=title, wide=wide)
    for item in data.not_measured_summary:
        print_note(console, item.text, style="red" if item.status == "failed" else "")
    print_warnings(console, data.warnings, wide)
    for note in data.notes:
        console.print(Text(f"note: {note}"))
    console.print(Text(f"run {data.run_id} ({data.status}, {data.wall_s:.0f} s) stored in {data.store}"))
