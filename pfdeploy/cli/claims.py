"""`pfdeploy claims`: the paper's claims checked against the results store, per machine, device,
runtime and precision, with the release's GPU figures beside them (docs/claims.md)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ..render import Col, fmt, print_line, print_note, print_table

if TYPE_CHECKING:  # the claims' typed results (imported where used: the CLI starts fast)
    from ..claims import BestClaims, BestComparison, ClaimsCheck, ClaimVerdict


@click.command("claims")
@click.argument("runs", nargs=-1, metavar="[RUN]...")
@click.option("--store", "store_url", metavar="URL",
              help="Results store (path, sqlite:///..., postgresql://...); default $PFDEPLOY_STORE or "
                   "./pfdeploy-results.db.")
@click.option("--at", "at", type=click.Choice(["same", "best", "capacity"]), default="same", show_default=True,
              help="same: each claim where both models ran in the same configuration (runtime, precision, "
                   "batch, threads); best: each parameter-free model against each of its baselines, both at "
                   "their best deployment found by `pfdeploy tune` (the newest tune run of each machine), per "
                   "runtime and across runtimes; capacity: each parameter-free model against its baselines by "
                   "the server QPS each serves within the same p99 bound (`pfdeploy capacity` runs).")
@click.option("--all", "show_all", is_flag=True,
              help="Also list configurations where a claim was not measured (JSON always has them).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (every verdict).")
@click.option("--wide", is_flag=True, help="Table: every column, even where the terminal is narrower "
              "(output that is not a terminal always gets every column).")
def command(runs, store_url, at, show_all, as_json, wide):
    """Check the paper's claims ("R50-max is faster than ResNet-50", "ViT-S-max is faster than
    DeiT-S", ...) against stored runs: for every machine, device, runtime, precision, batch,
    threads and scenario, the newest run that measured both models gives a verdict from the
    speedup's 95% CI: yes (whole CI above 1), no (at or below 1; "slower" when below), or
    inconclusive; "not measured" where no run has both.

    With --at best: each parameter-free model against each baseline its spec names, both at
    their best deployment as found by `pfdeploy tune` (its final run, in which every model's
    winners ran in one rotation): per runtime, and the fastest deployment of each across runtimes.

    RUN: run ids, tags, "latest" or run files (.json) to check instead of the whole store (with
    --at best: `pfdeploy tune` final runs)."""
    from ..claims import check_claims
    from ..errors import UserError
    from ..render import emit

    if at == "best":
        return _best(runs, store_url, show_all, as_json, wide)
    if at == "capacity":  # issue 31
        from .capacity import claims_at_capacity

        return claims_at_capacity(runs, store_url, as_json, wide)
    from .options import load_runs

    docs = load_runs(runs, store_url)
    if not docs:
        raise UserError("the results store has no runs yet: run `pfdeploy bench` first")
    data = check_claims(docs)

    def human(console):
        print_claims(console, data, show_all=show_all, wide=wide)

    emit(data, as_json, human)


# priority order for a terminal (0: always shown). The claim wraps between words but keeps room
# for two lines of text; the runtime wraps between its parts; numbers never wrap or get cut.
COLUMNS = [Col("claim", wrap=True, min=26), Col("runtime", wrap=True, min=12), Col("verdict"),
           Col("speedup [95% CI]", right=True), Col("p50 ms PF/base", 1, right=True),
           Col("release GPU PF/base", 2, right=True), Col("params M", 3, right=True), Col("MACs G", 4, right=True)]
VERDICT_STYLE = {"yes": "green", "no": "red", "inconclusive": "yellow", "not measured": "dim"}


def _pair_cell(model, base, scale: float, digits: int) -> str:
    """'14.2/25.6': a figure of the model and of the baseline, scaled ('-' where missing)."""
    return "/".join(fmt(x / scale if x else None, digits) for x in (model, base))


def claim_rows(verdicts: list[ClaimVerdict]) -> list[list]:
    """The table rows of some verdicts (`ClaimVerdict`s): text cells, the verdict a (word, style) pair."""
    rows = []
    for v in verdicts:
        where = f"{v.backend} {v.precision} b{v.batch} {v.threads}t"
        if v.scenario != "latency":
            where += f" {v.scenario}"
        ms = (f"{fmt(v.model_p50_ms, 2)} / {fmt(v.baseline_p50_ms, 2)}" if v.ratio is not None else "-")
        params = _pair_cell(v.model_params, v.baseline_params, 1e6, 1)
        macs = _pair_cell(v.model_macs, v.baseline_macs, 1e9, 2)
        rows.append([v.statement, where, (v.word, VERDICT_STYLE[v.verdict]), v.text, ms, v.info.release_gpu,
                     params, macs])
    return rows


def print_claims(console, data: ClaimsCheck, show_all: bool = False, wide: bool = False) -> None:
    """One fitted table per machine and device (`data`: a ClaimsCheck), then the notes on the
    release's figures and the rule."""
    sections: dict[tuple, list] = {}
    for v in data.verdicts:
        sections.setdefault((v.machine_id, v.device), []).append(v)
    for (mid, device), vs in sections.items():
        shown = [v for v in vs if show_all or v.verdict != "not measured"]
        missing = sorted({v.statement for v in vs} - {v.statement for v in vs if v.verdict != "not measured"})
        title = f"claims on {device} · {data.machines.get(mid, mid)} ({mid[:12]})"
        if shown:
            print_table(console, COLUMNS, claim_rows(shown), title=title, wide=wide)
        else:
            print_line(console, (title, "bold"))
        if missing and not show_all:
            print_note(console, f"not measured on this machine and device: {'; '.join(missing)}", indent=0)
    print_note(console, "release GPU: the PfLayer release's GPU latency (batch 1; GPU, precision and timing method "
                        "not published) and the ratio baseline / PF where it has both; '-': no such figure. Per claim:",
               indent=0)
    for c in data.claims:
        print_note(console, f"{c.statement}: {c.release}", indent=2)
    print_note(console, f"verdicts: {data.rule}", indent=0)


# --------------------------------------------------------------------------------------------
# --at best: each model at its best deployment (the newest `pfdeploy tune` final run)
# --------------------------------------------------------------------------------------------

def _best(runs, store_url, show_all: bool, as_json: bool, wide: bool) -> None:
    from ..claims import TUNE_FINAL_SUITE, RunInfo, best_claims, is_tune_final, no_tune_results
    from ..compare import existing_store, load_run
    from ..errors import UserError
    from ..render import emit

    if runs:
        store, docs = None, []
        for ref in runs:
            if store is None and not ref.lower().endswith(".json"):
                store = existing_store(store_url)
            doc = load_run(ref, store=store)
            if not is_tune_final(doc):
                suite = RunInfo.of(doc).suite
                raise UserError(f"run {ref} is not a `pfdeploy tune` result (suite {suite!r}, not "
                                f"{TUNE_FINAL_SUITE!r}): run `pfdeploy tune MODELS` first")
            docs.append(doc)
    else:
        store = existing_store(store_url)
        finals = store.runs(suite=TUNE_FINAL_SUITE)
        if not finals:
            raise UserError(no_tune_results(store.url))
        newest: dict = {}  # newest first: the first run of each machine (store run records, not results)
        for run in finals:
            newest.setdefault(str(run.get("machine_id") or "unknown"), run["id"])
        docs = [store.export_run(rid) for rid in newest.values()]
    data = best_claims(docs, newest_only=not runs)  # runs named on the command line: each of them

    def human(console):
        print_best(console, data, show_all=show_all, wide=wide)

    emit(data, as_json, human)


# one table per parameter-free model: a row per baseline and runtime, then across runtimes. Both
# deployments share one cell (PF on the first line, the baseline on the second) so that both are
# named in 100 columns; the numbers never wrap.
BEST_COLUMNS = [Col("baseline", wrap=True, min=11), Col("runtime", wrap=True, min=8), Col("verdict"),
                Col("speedup [95% CI]", right=True), Col("each at its best", wrap=True, min=12),
                Col("p50 ms PF/base", 1, right=True), Col("vs default PF/base", 2, right=True)]


def best_rows(comps: list[BestComparison]) -> list[list]:
    """The table rows of best-deployment comparisons (`BestComparison`s): per runtime the
    deployments without the backend (it is the runtime column), across runtimes with it."""
    from ..claims import deployment_text

    rows = []
    for c in comps:
        md, bd = c.model_deployment, c.baseline_deployment
        ms = (f"{fmt(c.model_p50_ms, 2)} / {fmt(c.baseline_p50_ms, 2)}" if c.ratio is not None else "-")
        vsd = " / ".join(_ratio(d.tune.vs_default if d else None) for d in (md, bd))
        where = (f"PF: {deployment_text(md, with_backend=c.overall, compact=True)}\n"
                 f"base: {deployment_text(bd, with_backend=c.overall, compact=True)}")
        rows.append([c.baseline, ((c.runtime, "bold") if c.overall else c.runtime),
                     (c.word, VERDICT_STYLE[c.verdict]), c.text, where, ms, vsd])
    return rows


def _ratio(sp: dict | None) -> str:
    """A tune record's speedup over the default (its JSON dict, not a result) as '1.30x'."""
    ratio = sp.get("ratio") if isinstance(sp, dict) else None
    return f"{ratio:.2f}x" if isinstance(ratio, (int, float)) else "-"


def print_best(console, data: BestClaims, show_all: bool = False, wide: bool = False) -> None:
    """One fitted table per machine, device, scenario and parameter-free model (`data`: a
    BestClaims; its tune run named in the title): per baseline, one row per runtime and one
    across runtimes; then the notes."""
    tags = {r.id: r.tag for r in data.runs}
    sections: dict[tuple, list] = {}
    for c in data.comparisons:
        sections.setdefault((c.machine_id, c.run_id, c.device, c.scenario, c.model), []).append(c)
    for (mid, rid, device, scenario, model), cs in sections.items():
        shown = [c for c in cs if show_all or c.verdict != "not measured"]
        title = (f"{model} vs its baselines, each at its best deployment on {device} ({scenario}) · "
                 f"{data.machines.get(mid, mid)} ({mid[:12]}) · tune run {tags.get(rid) or str(rid)[:12]}")
        if shown:
            print_table(console, BEST_COLUMNS, best_rows(shown), title=title, wide=wide)
        else:
            print_line(console, (title, "bold"))
        missing = sorted({c.baseline for c in cs if c.overall and c.verdict == "not measured"})
        if missing and not show_all:
            print_note(console, f"baselines of {model} not tuned in this run: {', '.join(missing)}", indent=0)
    if not data.comparisons:
        print_line(console, ("no parameter-free model with a named baseline in the tune run(s)", "bold"))
    print_note(console, "each at its best: the runtime winner of the parameter-free model (PF) and of the "
                        "baseline (base), as precision · variant ('*': the runtime's own default setting, '(tied)': "
                        "the tune could not separate it from other settings); 'any runtime': each model's fastest "
                        "deployment overall, backend first. vs default: each one's speedup over its runtime's "
                        "default. " + data.orientation + ".", indent=0)
    print_note(console, f"verdicts: {data.rule}", indent=0)
