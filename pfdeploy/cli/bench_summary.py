"""`pfdeploy bench`'s summary: the facts of a finished run as data (summary_data, also what
`--json -` adds as "summary") and as the bench table with its notes (print_summary). `pfdeploy
fleet bench` prints each node's run through the same functions."""
from __future__ import annotations

from ..labels import accuracy_text, pct, ratio_text, weights_label

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
    for r in (doc or {}).get("results", []):
        try:
            spec = CaseSpec(model=r["model"], backend=r["backend"], device=r["device"], precision=r["precision"],
                            batch=int(r["batch"]), threads=int(r.get("threads") or 1), scenario=r["scenario"],
                            weights=r.get("weights") or "synthetic:0")
        except Exception:  # noqa: BLE001 - a row this pfdeploy cannot describe: left out of the table
            continue
        results.append(CaseResult(spec, Result.from_row(r)))
    return Outcome(run_id, status, results, store_url, wall_s, list(notes))


def summary_data(outcome) -> dict:
    """The facts the table shows, as data (also what --json - adds as "summary"). Every
    parameter-free row carries "comparisons": one per baseline its zoo spec names, with the
    speedup's 95% CI, pairing, verdict, and both models' p50, params and MACs (pfdeploy.claims)."""
    from ..claims import comparisons
    from ..exporters.artifact import parity_verdict
    from ..bench.stats import CV_WARN

    ok = [r for r in outcome.results if r.result["status"] == "ok"]
    docrows = [{**r.result, "samples_ns": r.samples_ns, "sample_rounds": r.rounds} for r in outcome.results]
    by_case: dict[tuple, list] = {}
    for c in (c.to_dict() for c in comparisons(docrows)):  # the JSON "comparisons" of each row
        by_case.setdefault((c["model"], c["backend"], c["device"], c["precision"], c["batch"], c["scenario"]),
                           []).append(c)
    rows = []
    for r in ok:
        s, row = r.spec, r.result
        comps = by_case.get((s.model, s.backend, s.device, s.precision, s.batch, s.scenario), [])
        rows.append({
            "model": s.model, "family": row["family"], "backend": s.backend, "device": s.device,
            "precision": s.precision, "batch": s.batch, "scenario": s.scenario, "n": row["n"], "p50_ms": row["p50_ms"],
            "p50_ci_low_ms": row["p50_ci_low_ms"], "p50_ci_high_ms": row["p50_ci_high_ms"],
            "p90_ms": row["p90_ms"], "p99_ms": row["p99_ms"], "items_per_s": row["items_per_s"],
            "speedup": {c["baseline"]: c["ratio"] for c in comps},
            "comparisons": comps, "clock": row.get("clock"),
            "params": row["params"], "macs": row["macs"], "parity": parity_verdict(row["parity"]),
            "cv": row["cv"], "noisy": bool(row["cv"] is not None and row["cv"] > CV_WARN),
            "peak_rss_mb": row["peak_rss_mb"], "warnings": row["warnings"],
            "weights": row.get("weights"), "accuracy": row.get("accuracy"),
        })
    rows.sort(key=lambda x: (x["backend"], x["precision"], x["batch"], x["p50_ms"] or 0))
    others = [{"case": r.spec.label, "status": r.result["status"], "reason": r.result["error"]}
              for r in outcome.results if r.result["status"] != "ok"]
    from ..digest import summarize_not_measured, summarize_warnings

    all_rows = [r.result for r in outcome.results]
    return {"run_id": outcome.run_id, "status": outcome.status, "store": outcome.store_url,
            "wall_s": round(outcome.wall_s, 1), "results": rows, "not_measured": others,
            # one entry per kind, each with the line printed and every case's message ("details")
            "warnings": summarize_warnings(all_rows), "not_measured_summary": summarize_not_measured(all_rows),
            "notes": outcome.notes + [PAPER_NOTE] + _unpaired_note(rows, outcome.results) + accuracy_note(rows)}


def _unpaired_note(rows: list[dict], results=()) -> list[str]:
    n = sum(1 for r in rows for c in r["comparisons"] if c["ratio"] is not None and not c["paired"])
    if not any(c["ratio"] is not None for r in rows for c in r["comparisons"]):
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


def speedup_columns(results: list[dict]) -> list[str]:
    """The baselines the table has a "vs" column for: every baseline that some parameter-free
    row of the table was compared with (measured), in order of appearance."""
    cols: dict[str, None] = {}
    for r in results:
        for c in r.get("comparisons") or []:
            if c.get("ratio") is not None:
                cols.setdefault(c["baseline"], None)
    return list(cols)


def _cv(r: dict):
    from rich.text import Text

    if r["cv"] is None:
        return "-"
    return Text(f"{r['cv']:.1%} !", style="red") if r["noisy"] else f"{r['cv']:.1%}"


def summary_table(data: dict):
    """(columns, rows, title) of the bench table. Columns in priority order for a terminal (see
    pfdeploy.render.Col): model, backend and p50 [CI] always; precision, batch, device and
    scenario when they vary (else in the title); then the speedups, parity, CV flag; the rest
    behind --wide."""
    from ..render import Col, fmt

    def ms(v):
        return fmt(v, 3)

    def x(r, base):  # "1.66x [1.50, 1.80]", "~1.66x ..." when unpaired (pfdeploy.claims)
        c = next((c for c in r.get("comparisons") or [] if c["baseline"] == base), None)
        return "-" if c is None or c["ratio"] is None else ratio_text(c)

    results = data["results"]
    bases = speedup_columns(results)
    # weights only when some case is not on the default synthetic weights; accuracy only when measured
    show_weights = any(r.get("weights") not in (None, "synthetic:0") for r in results)
    show_acc = any(r.get("accuracy") for r in results)
    cols = ([Col("model"), Col("backend"), Col("device", fold="{}"), Col("prec", fold="{}"),
             Col("batch", right=True, fold="batch {}"), Col("scenario", fold="{}")]
            + ([Col("weights", 1, fold="weights {}")] if show_weights else [])
            + [Col("p50 ms [95% CI]", right=True)]
            + ([Col("top-1 % (PyTorch)", 1, right=True), Col("top-5 %", 6, right=True)] if show_acc else [])
            + [Col(f"vs {b}", 2, right=True) for b in bases]
            + [Col("parity", 3), Col("CV", 4, right=True), Col("items/s", 5, right=True), Col("p90 ms", 6, right=True),
               Col("p99 ms", 7, right=True), Col("params M", 8, right=True), Col("MACs G", 9, right=True),
               Col("n", 10, right=True)])
    rows = []
    for r in results:
        ci = (f" [{r['p50_ci_low_ms']:.3f}, {r['p50_ci_high_ms']:.3f}]" if r["p50_ci_low_ms"] is not None else "")
        acc = r.get("accuracy") or {}
        rows.append([r["model"], r["backend"], r["device"], r["precision"], r["batch"], r["scenario"]]
                    + ([weights_label(r.get("weights"))] if show_weights else [])
                    + [f"{ms(r['p50_ms'])}{ci}"]
                    + ([accuracy_text(acc), pct(acc.get("top5"))] if show_acc else [])
                    + [x(r, b) for b in bases]
                    + [r["parity"], _cv(r), fmt(r["items_per_s"], 1), ms(r["p90_ms"]), ms(r["p99_ms"]),
                       fmt(r["params"] / 1e6 if r["params"] else None, 2),
                       fmt(r["macs"] / 1e9 if r["macs"] else None, 2), r["n"]])
    scenarios = sorted({r["scenario"] for r in results}) or ["latency"]
    title = "pfdeploy bench (host clock)"
    if "throughput" in scenarios:
        title += "; throughput: one sample = every request in flight completed"
    return cols, rows, title


def accuracy_note(results: list[dict]) -> list[str]:
    """One note naming the image sets the table's accuracy was measured on."""
    sets = {}
    for r in results:
        acc = r.get("accuracy") or {}
        if acc.get("images_sha256"):
            sets.setdefault(acc["images_sha256"], acc)
    if not sets:
        return []
    parts = [f"{a.get('n')} labelled images ({a.get('images')}, sha256 {d[:12]})" for d, a in sets.items()]
    return ["top-1/top-5 measured for each exact artifact (its sha256) on " + "; ".join(parts)
            + "; PyTorch fp32's top-1 on the same images in parentheses"]


def print_summary(console, data: dict, wide: bool = False) -> None:
    from rich.text import Text

    from ..render import print_note, print_table

    cols, rows, title = summary_table(data)
    if rows:
        print_table(console, cols, rows, title=title, wide=wide)
    for item in data.get("not_measured_summary") or []:
        print_note(console, item["text"], style="red" if item["status"] == "failed" else "")
    for item in data.get("warnings") or []:
        print_note(console, f"warning: {item['text']}", style="yellow")
    for note in data["notes"]:
        console.print(Text(f"note: {note}"))
    console.print(Text(f"run {data['run_id']} ({data['status']}, {data['wall_s']:.0f} s) stored in {data['store']}"))
