"""`pfdeploy ab BASE HEAD`: base and head measured together in one interleaved run, a sequential
verdict per case to a declared error rate (the CI gate that sees a 5% change; docs/ab.md)."""
from __future__ import annotations

import sys

import click

FAIL_ON = ("regression", "inconclusive", "never")


def _pct(x) -> str:
    return "-" if x is None else f"{x:+.1%}"


def _ratio(c) -> str:
    if c.ratio is None:
        return "-"
    if c.ci_low is None:
        return f"{c.ratio:.3f}"
    return f"{c.ratio:.3f} [{c.ci_low:.3f}, {c.ci_high:.3f}]"


def to_markdown(out, fail_on: str) -> str:
    """The job summary / pull-request comment."""
    n = out.counts
    lines = ["<!-- pfdeploy-ab -->", "## pfdeploy ab: base vs head, measured together", "",
             f"**{n['regression']} regression(s), {n['improvement']} improvement(s), {n['equivalent']} equivalent, "
             f"{n['inconclusive']} inconclusive** (threshold {out.threshold:.0%}; {out.blocks} block(s), "
             f"{out.wall_s:.0f} s of a {out.budget_s:.0f} s budget)", "",
             "| case | verdict | head / base [interval] | detectable change | blocks |",
             "|---|---|---|---|---|"]
    for c in out.cases:
        more = f" (needs ~{c.blocks_needed})" if c.verdict == "inconclusive" and c.blocks_needed else ""
        lines.append(f"| {c.label} | **{c.verdict}** | {_ratio(c)} | {_pct(c.detectable)} | {c.blocks}{more} |")
    for n_ in out.not_compared:
        lines.append(f"| {n_['case']} | not compared | {n_['reason']} | | |")
    lines += ["", f"Error rate: {out.statement}.", "",
              f"Base: `{out.sides[0].path}` ({out.sides[0].kind}); head: `{out.sides[1].path}` ({out.sides[1].kind}); "
              f"runs {out.base_run_id} / {out.head_run_id}."]
    return "\n".join(lines) + "\n"


def print_table(out, console, wide: bool = False) -> None:
    from ..render import Col, print_line, print_table as render_table

    rows = []
    for c in out.cases:
        style = {"regression": "red", "improvement": "green", "equivalent": "cyan"}.get(c.verdict)
        more = f" (needs ~{c.blocks_needed})" if c.verdict == "inconclusive" and c.blocks_needed else ""
        rows.append([c.label, (c.verdict, style) if style else c.verdict, _ratio(c), _pct(c.detectable),
                     f"{c.blocks}{more}",
                     "-" if c.base_p50_ms is None else f"{c.base_p50_ms:.3f}",
                     "-" if c.head_p50_ms is None else f"{c.head_p50_ms:.3f}"])
    for n in out.not_compared:
        rows.append([n["case"], "not compared", n["reason"], "", "", "", ""])
    cols = [Col("case", wrap=True, min=16), Col("verdict"), Col("head/base [interval]"),
            Col("detectable", priority=1), Col("blocks", priority=2), Col("base p50 ms", priority=3, right=True),
            Col("head p50 ms", priority=3, right=True)]
    render_table(console, cols, rows, title=f"pfdeploy ab: threshold {out.threshold:.0%}", wide=wide)
    print_line(console, f"error rate: {out.statement}")
    print_line(console, f"stored: base run {out.base_run_id}, head run {out.head_run_id} "
                        f"({out.blocks} blocks, {out.wall_s:.0f} s)")


@click.command("ab")
@click.argument("base")
@click.argument("head")
@click.option("--models", help="Comma-separated models (zoo names, aliases, timm:<name>); exclusive with --suite.")
@click.option("--suite", help="A named suite: default (the default), paper, quick.")
@click.option("--backends", help="Comma-separated backends (default: the suite's, else every CPU backend both sides run).")
@click.option("--device", default=None, help="cpu (default), cuda:N, or an OpenVINO device.")
@click.option("--precision", help="Comma-separated precisions (default: the suite's).")
@click.option("--batch", help="Comma-separated batch sizes (default 1).")
@click.option("--threads", type=int, help="Intra-op threads for every runtime (default: physical cores; docs/ab.md "
                                           "says which a gate on a small VM should use).")
@click.option("--scenario", type=click.Choice(["latency", "throughput"]), help="latency (default) or throughput.")
@click.option("--threshold", type=float, default=0.05, show_default=True,
              help="Smallest change that counts (0.05 = 5%): equivalent means the whole interval is within it.")
@click.option("--budget", type=float, default=600.0, show_default=True, metavar="SECONDS",
              help="Time for the blocks: blocks are added until every case is decided or this is spent.")
@click.option("--alpha", type=float, default=0.05, show_default=True,
              help="Family-wise error over every case and every look (alpha spending).")
@click.option("--store", "store_url", help="Results store (default: $PFDEPLOY_STORE or ./pfdeploy-results.db).")
@click.option("--tag-base", default="ab-base", show_default=True, help="Tag of the stored base run.")
@click.option("--tag-head", default="ab-head", show_default=True, help="Tag of the stored head run.")
@click.option("--fail-on", type=click.Choice(FAIL_ON), default="regression", show_default=True,
              help="Exit 1 on a regression (or a case that failed), also on inconclusive cases, or never.")
@click.option("--markdown", "markdown_file", metavar="FILE",
              help="Also write the Markdown summary (pull-request comment) to FILE ('-' for stdout).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON instead of a table.")
@click.option("--wide", is_flag=True, help="Table: every column, even where the terminal is narrower.")
def command(base, head, models, suite, backends, device, precision, batch, threads, scenario, threshold, budget,
            alpha, store_url, tag_base, tag_head, fail_on, markdown_file, as_json, wide):
    """Measure BASE and HEAD together: a verdict per case, to a declared error rate.

    BASE and HEAD are paths: a Python interpreter or a virtual environment (that side's worker
    processes run it: its pfdeploy, its runtimes), an artifact cache directory (its artifacts; a
    missing one is exported into it), or a tuned directory (`pfdeploy tune`'s output). The same
    path twice is an A/A, the calibration of a runner.

    Blocks of one fresh base and one fresh head worker per case (order alternating, rounds
    interleaved) are added until every case is decided or --budget is spent. Verdicts:
    regression, improvement, equivalent (no change larger than --threshold), inconclusive. Both
    sides are stored as runs (--tag-base, --tag-head). Markdown is appended to
    $GITHUB_STEP_SUMMARY when it is set.

    Exit status: 1 on a regression (see --fail-on), 0 otherwise; 2 for bad input (nothing timed).
    """
    from ..ab import ABSettings, plan, run_ab
    from ..config import default_store_url
    from ..render import emit, err_console, esc
    from .bench_options import build_config

    settings = ABSettings(budget_s=budget, threshold=threshold, alpha=alpha, tag_base=tag_base, tag_head=tag_head,
                          explicit_backends=bool(backends))
    if markdown_file and markdown_file != "-":
        from ..outputs import check_output_file

        check_output_file(markdown_file, "--markdown")  # before anything is timed
    from ..ab import classify

    if {classify(base, "base").kind, classify(head, "head").kind} == {"tuned"}:
        from .bench_options import check_tuned_flags, tuned_config

        # two tuned directories fix what is measured, as `bench --tuned` does
        check_tuned_flags({"models": models, "suite": suite, "backends": backends, "device": device,
                           "precision": precision, "batch": batch, "threads": threads, "scenario": scenario,
                           "weights": None})
        cfg, _ = tuned_config([base, head], None, None, None, True, tag_base)
        cfg.cases = ()  # plan() pairs the two directories' cases itself
    else:
        cfg = build_config(models, suite, backends, device, precision, batch, threads, scenario, None, None, None,
                           True, tag_base)
        from ..pretrained import plan_models

        cfg.model_weights = plan_models(cfg.models, None, cfg.seed)
    planned = plan(base, head, cfg, settings)  # every refusal (exit 2) before the store is opened
    from ..store import open_store
    from .bench_progress import RichProgress

    store = open_store(default_store_url(store_url))
    with RichProgress(err_console) as progress:
        out = run_ab(base, head, cfg, settings, store, progress, planned=planned)
    store.close()
    from ..compare import publish_markdown

    if markdown_file != "-":  # the result first: a failing --markdown write must not lose it
        emit(out.to_dict(), as_json, lambda con: print_table(out, con, wide=wide))
    publish_markdown(to_markdown(out, fail_on), markdown_file)
    if out.status == "interrupted":
        from .. import signals

        signum = out.signum or 2
        err_console.print(esc(f"interrupted by {signals.signal_name(signum)}: both runs kept, marked interrupted"))
        sys.exit(128 + signum)
    n = out.counts
    if fail_on != "never" and (n["regression"] or n["failed"] or (fail_on == "inconclusive" and n["inconclusive"])):
        sys.exit(1)
