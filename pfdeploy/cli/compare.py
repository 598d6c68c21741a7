"""`pfdeploy compare BASE HEAD`: regression verdict per case between two runs (the CI gate)."""
from __future__ import annotations

import os
import sys

import click

from ..compare import (CORRECTIONS, DEFAULT_ALPHA, DEFAULT_CONFIDENCE, DEFAULT_RESAMPLES, DEFAULT_SEED,
                       DEFAULT_THRESHOLD, FAIL_ON)


@click.command("compare")
@click.argument("base")
@click.argument("head")
@click.option("--store", "store_url", metavar="URL",
              help="Results store (path, sqlite:///..., postgresql://...); default $PFDEPLOY_STORE or "
                   "./pfdeploy-results.db.")
@click.option("--threshold", type=float, default=DEFAULT_THRESHOLD, show_default=True,
              help="Smallest change that counts, as a fraction of the base median (0.05 = 5%).")
@click.option("--fail-on", type=click.Choice(FAIL_ON), default="regression", show_default=True,
              help="Exit 1 on regressions (and cases newly failing), also on inconclusive cases, or never.")
@click.option("--markdown", "markdown_file", metavar="FILE",
              help="Also write the Markdown summary (pull-request comment) to FILE ('-' for stdout).")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON instead of a table.")
@click.option("--confidence", type=float, default=DEFAULT_CONFIDENCE, show_default=True,
              help="Confidence level of the bootstrap CI of the ratio (for all cases together, see "
                   "--correction).")
@click.option("--resamples", type=int, default=DEFAULT_RESAMPLES, show_default=True,
              help="Bootstrap replicates (at least; more where a corrected CI needs them).")
@click.option("--alpha", type=float, default=DEFAULT_ALPHA, show_default=True,
              help="Mann-Whitney significance level that a regression/improvement must also meet.")
@click.option("--shift-fails/--shift-passes", default=True, show_default=True,
              help="Whether a slowdown common to every case (a machine-wide shift beyond the threshold) fails the "
                   "gate. It is reported either way; timing alone cannot tell a runtime upgrade from a noisy "
                   "neighbour.")
@click.option("--correction", type=click.Choice(CORRECTIONS), default="bonferroni", show_default=True,
              help="bonferroni: --confidence and --alpha hold for all cases together (the gate fails on "
                   "any one); none: for each case separately.")
@click.option("--seed", type=int, default=DEFAULT_SEED, show_default=True, help="Bootstrap seed.")
@click.option("--base-window", type=click.IntRange(1, 100), default=None, metavar="N",
              help="Pool the last N finished runs of BASE's tag on HEAD's machine (HEAD left out) as the base: "
                   "each run's worker processes count as processes of the baseline (docs/compare.md).")
@click.option("--wide", is_flag=True, help="Table: every column, even where the terminal is narrower.")
def command(base, head, store_url, threshold, fail_on, markdown_file, as_json, confidence, resamples,
            alpha, correction, seed, shift_fails, base_window, wide):
    """Compare run HEAD against run BASE, case by case.

    BASE and HEAD are run ids (or unique prefixes), tags (latest run with it), git commit prefixes
    recorded in the store, "latest", or exported JSON run files (`pfdeploy results --run ID
    --format json`). Verdicts (docs/method.md, "Regression verdict"): ratio of medians with a CI
    that covers each run's worker processes (processes, then rounds), Mann-Whitney as a second
    opinion. Missing, failed and new cases are listed. `--base-window N` compares against the
    pooled last N runs of BASE's tag instead of one run.
    Markdown is appended to $GITHUB_STEP_SUMMARY when it is set.

    Exit status: 1 when the gate fails (see --fail-on), 0 otherwise; 2 for usage errors.
    """
    from ..compare import compare_runs, load_run, print_table, publish_markdown, to_markdown
    from ..render import console, emit

    if markdown_file and markdown_file != "-":
        from ..outputs import check_output_file

        check_output_file(markdown_file, "--markdown")  # before loading and resampling
    store = None
    docs = []
    if base_window is not None and _is_file_ref(base):
        raise click.UsageError("--base-window pools runs of the store: BASE must be a tag or run reference, "
                               "not a run file")
    for side, ref in (("head", head), ("base", base)):  # HEAD first: a window leaves it out
        if store is None and not _is_file_ref(ref):
            from ..compare import existing_store

            store = existing_store(store_url)
        if side == "base" and base_window is not None:
            from ..compare.window import load_window

            head_run = docs[0].get("run") or {}
            docs.insert(0, load_window(ref, base_window, store, exclude_ids={str(head_run.get("id"))},
                                       machine_id=head_run.get("machine_id")))
        elif side == "base":
            docs.insert(0, load_run(ref, store_url, store=store))
        else:
            docs.append(load_run(ref, store_url, store=store))
    cmp = compare_runs(docs[0], docs[1], threshold=threshold, confidence=confidence,
                       resamples=resamples, seed=seed, alpha=alpha, correction=correction,
                       shift_fails=shift_fails)
    if markdown_file or os.environ.get("GITHUB_STEP_SUMMARY"):  # (10,000 cases: ~0.7 s of Markdown)
        publish_markdown(to_markdown(cmp, fail_on), markdown_file)
    if markdown_file != "-":
        emit(cmp.to_dict(fail_on), as_json, lambda c: print_table(cmp, console, fail_on, wide=wide))
    code = cmp.exit_code(fail_on)
    if code:
        # SystemExit, not click's Exit: pfdeploy.cli.main runs click with standalone_mode=False,
        # where an Exit's code is returned by click and not passed on as the process status.
        sys.exit(code)


def _is_file_ref(ref: str) -> bool:
    """A path (anything there, even a broken link or a FIFO, or a name ending in .json), not a
    store reference: `compare.runs.load_run` reads it or says what is wrong with it."""
    from pathlib import Path

    from ..compare.runs import file_kind

    return file_kind(Path(ref).expanduser()) is not None or ref.lower().endswith(".json")
