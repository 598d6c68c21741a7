"""`pfdeploy results`: show stored benchmark results (one run, or every run), or list runs."""
from __future__ import annotations

import io
import sys

import click

from ..errors import UsageError
from ..render import Col, fmt, print_table, to_json

# In a terminal the table shows what fits its width in this priority order (0: always); the
# columns naming a case fold into the title when every row shares the value (issue 15).
TABLE_COLUMNS = [
    Col("model"), Col("backend"), Col("device", fold="{}"), Col("precision", fold="{}"),
    Col("batch", right=True, fold="batch {}"), Col("threads", right=True, fold="{} threads"),
    Col("scenario", fold="{}"), Col("weights", fold="weights {}"), Col("status", 1, fold="all {}"),
    Col("p50 ms [95% CI]", right=True), Col("CV", 2, right=True), Col("items/s", 4, right=True),
    Col("p90 ms", 5, right=True), Col("p99 ms", 6, right=True), Col("n", 3, right=True),
    Col("load ms", 7, right=True), Col("peak RSS MB", 8, right=True),
]


def _ci(row) -> str:
    if row.get("p50_ms") is None:
        return "-"
    lo, hi = row.get("p50_ci_low_ms"), row.get("p50_ci_high_ms")
    ci = f" [{fmt(lo, 3)}, {fmt(hi, 3)}]" if lo is not None and hi is not None else ""
    return f"{fmt(row['p50_ms'], 3)}{ci}"


def _cv(v) -> str:
    from ..bench.stats import CV_WARN

    if v is None:
        return "-"
    flag = " !" if v > CV_WARN else ""  # docs/method.md section 5: CV above 5% is flagged
    return f"{v * 100:.1f}%{flag}"


def _table_rows(rows):
    for r in rows:
        yield (r["model"], r["backend"], r["device"], r["precision"], r["batch"], r["threads"], r.get("scenario"),
               r.get("weights"), r["status"], _ci(r), _cv(r.get("cv")), fmt(r.get("items_per_s"), 1),
               fmt(r.get("p90_ms"), 3), fmt(r.get("p99_ms"), 3), fmt(r.get("n")), fmt(r.get("load_ms"), 0),
               fmt(r.get("peak_rss_mb"), 0))


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
@click.option("--store", "store_url", metavar="URL", help="Results store: path, sqlite:///path or "
              "postgresql://... (default: $PFDEPLOY_STORE or ./pfdeploy-results.db).")
@click.option("--run", "run_ref", metavar="ID", help="Run id or prefix, tag, git commit prefix or "
              "'latest' (the default).")
@click.option("--all", "all_runs", is_flag=True, help="Every run in the store (table, csv, parquet).")
@click.option("--list", "list_runs", is_flag=True, help="List the runs instead of results.")
@click.option("--format", "fmt_", type=click.Choice(["table", "csv", "json", "parquet"]), default="table",
              show_default=True, help="json writes the run-file format (with raw samples) that "
              "`pfdeploy compare` reads.")
@click.option("--samples", is_flag=True, help="csv/parquet: add the raw samples (nanoseconds) per result.")
@click.option("--out", metavar="FILE", help="Write to FILE (atomically) instead of stdout; needed for parquet.")
@click.option("--wide", is_flag=True, help="Table: every column, even where the terminal is narrower "
              "(output that is not a terminal always gets every column).")
def command(store_url, run_ref, all_runs, list_runs, fmt_, samples, out, wide):
    """Show stored benchmark results."""
    from ..store import open_store

    if fmt_ == "parquet" and not out:
        raise UsageError("--format parquet writes a binary file: give --out FILE")
    if fmt_ == "table" and out:
        raise UsageError("--format table prints to the terminal; use --format csv, json or parquet with --out")
    if all_runs and run_ref:
        raise UsageError("--all and --run exclude each other")
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


def print_run_table(console, run: dict, rows: list[dict], wide: bool = False) -> None:
    """One run's results: the fitted table, then one line per kind of warning and per reason a
    case was not measured (the per-case details are in `--format json` and the report)."""
    from ..digest import summarize_not_measured, summarize_warnings
    from ..render import print_note

    print_table(console, TABLE_COLUMNS, list(_table_rows(rows)), title=_title(run), wide=wide)
    for item in summarize_not_measured(rows):
        print_note(console, item["text"], style="red" if item["status"] == "failed" else "")
    for item in summarize_warnings(rows):
        print_note(console, f"warning: {item['text']}", style="yellow")


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
