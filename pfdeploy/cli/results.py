"""`pfdeploy results`: show stored benchmark results (one run, or every run), or list runs."""
from __future__ import annotations

import io
import sys

import click

from ..errors import UsageError
from ..render import Col, fmt, print_table, to_json
from ..result import Result

# In a terminal the table shows what fits its width in this priority order (0: always); the
# columns naming a case fold into the title when every row shares the value (issue 15). The
# variant and the tune status (a `pfdeploy tune` run) are columns only where some row has one, and
# always shown: without them two candidates of one runtime and precision look the same.
TABLE_COLUMNS = [
    Col("model"), Col("backend"), Col("device", fold="{}"), Col("precision", fold="{}"),
    Col("batch", right=True, fold="batch {}"), Col("threads", right=True, fold="{} threads"),
    Col("scenario", fold="{}"), Col("weights", fold="weights {}"), Col("status", 1, fold="all {}"),
    Col("p50 ms [95% CI]", right=True), Col("CV", 2, right=True), Col("items/s", 4, right=True),
    Col("p90 ms", 5, right=True), Col("p99 ms", 6, right=True), Col("n", 3, right=True),
    Col("load ms", 7, right=True), Col("peak RSS MB", 8, right=True),
]
VARIANT_COLUMN = Col("variant", fold="variant {}")
TUNE_COLUMN = Col("tune", fold="tune: {}")


def _ci(r: Result) -> str:
    p50, lo, hi = r.ci
    if p50 is None:
        return "-"
    ci = f" [{fmt(lo, 3)}, {fmt(hi, 3)}]" if lo is not None and hi is not None else ""
    return f"{fmt(p50, 3)}{ci}"


def _cv(v) -> str:
    from ..bench.stats import CV_WARN

    if v is None:
        return "-"
    flag = " !" if v > CV_WARN else ""  # docs/method.md section 5: CV above 5% is flagged
    return f"{v * 100:.1f}%{flag}"


def tune_fate(r: Result) -> str:
    """A candidate's fate in its tune run (docs/tune.md): racing | eliminated | failed | winner |
    tied, "fastest" for the model's overall winner of the final rotation ("fastest, tied" when its
    interval did not separate); '-' for a row that was not raced."""
    t = r.tune
    if t is None:
        return "-"
    if t.overall_winner:
        return "fastest" if t.overall_status in (None, "winner") else f"fastest, {t.overall_status}"
    return t.status or "-"


def table_columns(rows: list[Result]) -> list[Col]:
    """TABLE_COLUMNS, with the variant after the backend and the tune status after the status
    where some row has one."""
    cols = list(TABLE_COLUMNS)
    if any(r.tune is not None for r in rows):
        cols.insert([c.header for c in cols].index("status") + 1, TUNE_COLUMN)
    if any(r.variant for r in rows):
        cols.insert([c.header for c in cols].index("backend") + 1, VARIANT_COLUMN)
    return cols


def _table_rows(rows: list[Result]):
    variant, tune = any(r.variant for r in rows), any(r.tune is not None for r in rows)
    for r in rows:
        yield ((r.model, r.backend) + ((r.variant or "-",) if variant else ())
               + (r.device, r.precision, r.batch, r.threads, r.scenario, r.weights, r.status)
               + ((tune_fate(r),) if tune else ())
               + (_ci(r), _cv(r.cv), fmt(r.items_per_s, 1), fmt(r.p90_ms, 3), fmt(r.p99_ms, 3), fmt(r.n),
                  fmt(r.load_ms, 0), fmt(r.peak_rss_mb, 0)))


def _write_frame(df, fmt_: str, out) -> None:
    if fmt_ == "csv":
        _write(df.to_csv(index=False), out)
    else:
        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        _write(buf.getvalue(), out)


def _write(data: bytes | str, out: str | None) -> None:
    from ..outputs import atomic_write_bytes

    if out is None:
        if isinstance(data, bytes):
            sys.stdout.buffer.write(data)
        else:
            sys.stdout.write(data)
        return
    p = atomic_write_bytes(out, data.encode("utf-8") if isinstance(data, str) else data, "--out")
    click.echo(f"wrote {p}", err=True)


@click.command("results")
@click.argument("run_arg", required=False, metavar="[RUN]")
@click.option("--store", "store_url", metavar="URL", help="Results store: path, sqlite:///path or "
              "postgresql://... (default: $PFDEPLOY_STORE or ./pfdeploy-results.db).")
@click.option("--run", "run_ref", metavar="ID", help="The same as RUN (kept for scripts).")
@click.option("--all", "all_runs", is_flag=True, help="Every run in the store (table, csv, parquet).")
@click.option("--list", "list_runs", is_flag=True, help="List the runs instead of results.")
@click.option("--format", "fmt_", type=click.Choice(["table", "csv", "json", "parquet"]), default="table",
              show_default=True, help="json writes the run-file format (with raw samples) that "
              "`pfdeploy compare` reads.")
@click.option("--samples", is_flag=True, help="csv/parquet: add the raw samples (nanoseconds) per result.")
@click.option("--out", metavar="FILE", help="Write to FILE (atomically) instead of stdout; needed for parquet.")
@click.option("--wide", is_flag=True, help="Table: every column, even where the terminal is narrower "
              "(output that is not a terminal always gets every column).")
def command(run_arg, store_url, run_ref, all_runs, list_runs, fmt_, samples, out, wide):
    """Show stored benchmark results.

    RUN: run id or unique prefix, tag, git commit prefix or "latest" (the default), as
    `pfdeploy compare` and `pfdeploy claims` take runs."""
    from ..store import open_store

    if run_arg is not None and run_ref is not None and run_arg != run_ref:
        raise UsageError(f"two runs given ({run_arg!r} and --run {run_ref!r}): give one")
    run_ref = run_arg if run_arg is not None else run_ref
    if fmt_ == "parquet" and not out:
        raise UsageError("--format parquet writes a binary file: give --out FILE")
    if fmt_ == "table" and out:
        raise UsageError("--format table prints to the terminal; use --format csv, json or parquet with --out")
    if all_runs and run_ref:
        raise UsageError("--all and RUN (--run) exclude each other")
    if fmt_ == "json" and all_runs and not list_runs:
        raise UsageError("--format json exports one run (the run-file format); use csv or parquet with --all")
    if samples and fmt_ not in ("csv", "parquet"):
        raise UsageError("--samples applies to csv and parquet (json always carries the samples)")
    if out:
        from ..outputs import check_output_file

        check_output_file(out, "--out")  # before the store is read

    if list_runs:
        with open_store(store_url, create=False, readonly=True) as store:
            runs = store.runs()
        _emit_runs(runs, fmt_, out, store_url, wide)
        return

    if fmt_ in ("csv", "parquet"):
        from ..results import flatten_for_files, load

        df = flatten_for_files(load(store_url, run=None if all_runs else (run_ref or "latest"), samples=samples),
                               arrays_as_json=fmt_ == "csv")
        _write_frame(df, fmt_, out)
        return

    with open_store(store_url, create=False, readonly=True) as store:
        if fmt_ == "json":
            run = store.resolve_run(run_ref or "latest")
            _write(to_json(store.export_run(run["id"])) + "\n", out)
            return
        runs = store.runs() if all_runs else [store.resolve_run(run_ref or "latest")]
        per_run = [(run, store.results(run["id"])) for run in runs]
        where = store.url
    from rich.text import Text

    from ..render import console

    if not per_run:
        console.print(Text(f"no runs in {where}"))
        return
    for run, rows in per_run:
        print_run_table(console, run, rows, wide)
    console.print(Text(f"store: {where}"))


def print_run_table(console, run: dict, rows: list[Result], wide: bool = False) -> None:
    """One run's results: the fitted table, then one line per kind of warning and per reason a
    case was not measured (each case's figures with `wide`; every case's details are in
    `--format json` and the report)."""
    from ..digest import summarize_not_measured, summarize_warnings
    from ..render import print_note
    from .bench_summary import print_warnings

    print_table(console, table_columns(rows), list(_table_rows(rows)), title=_title(run), wide=wide)
    for item in summarize_not_measured(rows):
        print_note(console, item.text, style="red" if item.status == "failed" else "")
    print_warnings(console, summarize_warnings(rows), wide)


def _title(run) -> str:
    bits = [f"run {run['id'][:12]}", run["status"], run["started_at"][:19].replace("T", " ") + " UTC"]
    if run.get("tag"):
        bits.append(f"tag {run['tag']}")
    if run.get("git_commit"):
        bits.append(f"commit {run['git_commit'][:10]}")
    if run.get("suite"):
        bits.append(f"suite {run['suite']}")
    if run.get("machine_id"):
        bits.append(f"machine {run['machine_id']}")
    return ", ".join(bits)


def _emit_runs(runs, fmt_, out, store_url, wide=False):
    from ..render import console

    cols = ["id", "started_at", "finished_at", "status", "tag", "git_commit", "suite", "machine_id",
            "pfdeploy_version", "n_results"]
    if fmt_ == "json":
        _write(to_json(runs) + "\n", out)
        return
    if fmt_ in ("csv", "parquet"):
        import pandas as pd

        df = pd.DataFrame.from_records([{c: r.get(c) for c in cols} for r in runs], columns=cols)
        _write_frame(df, fmt_, out)
        return
    print_table(console, RUN_COLUMNS,
                [(r["id"][:12], r["started_at"][:19].replace("T", " "), r["status"], r.get("tag") or "-",
                  (r.get("git_commit") or "-")[:10], r.get("suite") or "-", r.get("machine_id") or "-",
                  r["n_results"]) for r in runs], wide=wide)


RUN_COLUMNS = [Col("run"), Col("started (UTC)"), Col("status", 1), Col("tag", 2, wrap=True), Col("commit", 4),
               Col("suite", 3), Col("machine", 5), Col("results", 1, right=True)]
