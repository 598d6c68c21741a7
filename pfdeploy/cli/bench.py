"""`pfdeploy bench`: benchmark models through every installed runtime, store every case, print
the comparison table (METHOD.md is the contract; docs/bench.md explains the numbers)."""
from __future__ import annotations

import sys

import click

from ..errors import UsageError

PAPER_NOTE = ("speedup = baseline p50 / this p50, from rounds the two cases ran back to back "
              "(median of the per-round ratios)")


def _csv(value: str | None, what: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    items = tuple(v.strip() for v in value.split(",") if v.strip())
    if not items:
        raise UsageError(f"--{what} needs at least one value")
    return items


def _batches(value: str | None) -> tuple[int, ...] | None:
    items = _csv(value, "batch")
    if items is None:
        return None
    try:
        out = tuple(int(v) for v in items)
    except ValueError:
        raise UsageError(f"--batch takes comma-separated positive integers, got {value!r}") from None
    if any(b < 1 for b in out):
        raise UsageError(f"--batch takes positive integers, got {value!r}")
    return out


def build_config(models, suite, backends, device, precision, batch, threads, scenario, min_time, max_time,
                 target_ci, interleave, tag):
    """BenchConfig from the command-line options (validated; UsageError on bad input)."""
    from dataclasses import replace

    from ..backends import get_backend
    from ..bench.config import PRECISION_TOKENS, PRECISIONS, SCENARIOS, StopRule
    from ..bench.engine import BenchConfig
    from ..bench.suites import get_suite

    if models and suite:
        raise UsageError("--models and --suite are exclusive: a suite fixes its models")
    s = get_suite(suite or "default")
    from ..zoo import canonical_name

    model_list = tuple(canonical_name(m) for m in (_csv(models, "models") or s.models))  # unknown: exit 2
    backend_list = _csv(backends, "backends")
    if backend_list:
        for b in backend_list:
            get_backend(b)  # unknown names: UsageError with the list
    elif s.backends is not None and device in (None, "cpu") and not models:
        backend_list = s.backends
    elif models and device in (None, "cpu"):
        backend_list = get_suite("default").backends
    precisions = _csv(precision, "precision") or s.precisions
    optional = () if precision else s.optional_precisions
    for p in precisions:
        if p not in PRECISIONS + PRECISION_TOKENS:
            raise UsageError(f"unknown precision {p!r}; choose from {', '.join(PRECISIONS + PRECISION_TOKENS)}")
    if scenario and scenario not in SCENARIOS:
        raise UsageError(f"unknown scenario {scenario!r}; choose from {', '.join(SCENARIOS)}")
    if backends and scenario:  # backends asked for by name: a scenario they lack is refused up front
        for b in backend_list:
            why = get_backend(b).supports_scenario(scenario)
            if why:
                raise UsageError(why)
    if threads is not None and threads < 1:
        raise UsageError(f"--threads must be >= 1, got {threads}")
    rule = s.rule
    changes = {}
    if min_time is not None:
        changes["min_time_s"] = min_time
        if max_time is None and min_time > rule.max_time_s:
            changes["max_time_s"] = min_time
    if max_time is not None:
        changes["max_time_s"] = max_time
        if min_time is None and max_time < rule.min_time_s:
            changes["min_time_s"] = max_time
    if target_ci is not None:
        changes["target_ci"] = target_ci
    rule = replace(rule, **changes) if changes else rule  # __post_init__ validates
    return BenchConfig(
        models=model_list, backends=backend_list, device=device or "cpu", precisions=precisions,
        optional_precisions=optional,
        batches=_batches(batch) or s.batches, threads=threads, scenario=scenario or s.scenario, rule=rule,
        interleave=interleave, tag=tag, suite=None if models else s.name, suite_version=None if models else s.version,
    )


class RichProgress:
    """The engine's progress drawn as one rich bar on stderr: current case, elapsed, ETA."""

    def __init__(self, console):
        from rich.progress import (BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        self.console = console
        self.bar = Progress(SpinnerColumn(), TextColumn("{task.description}", style="bold"), BarColumn(),
                            TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(), TextColumn("ETA"),
                            TimeRemainingColumn(), console=console, transient=False, refresh_per_second=4)
        self.task = None
        self.tty = console.is_terminal

    def __enter__(self):
        self.bar.start()
        self.task = self.bar.add_task("preparing", total=None)
        return self

    def __exit__(self, *exc):
        self.bar.stop()

    def phase(self, text):
        self.bar.update(self.task, description=text)
        if not self.tty:
            self.console.print(text)

    def plan(self, total_units):
        self.bar.update(self.task, total=max(total_units, 1e-9), completed=0)

    def update(self, current, completed_units, total_units):
        self.bar.update(self.task, description=current, completed=completed_units, total=max(total_units, 1e-9))

    def case_done(self, result):
        row = result.row
        if row["status"] != "ok" or not self.tty:
            detail = f"{row['p50_ms']:.3f} ms" if row.get("p50_ms") is not None else (row.get("error") or "")
            self.console.print(f"{row['status']:>7}  {result.spec.label}: {detail}")


@click.command("bench")
@click.option("--models", help="Comma-separated models (zoo names, aliases, timm:<name>); exclusive with --suite.")
@click.option("--suite", help="A named suite: default (the default), paper, quick.")
@click.option("--backends", help="Comma-separated: torch,torch-compile,onnxruntime,openvino,tensorrt "
                                 "(default: the suite's, else every backend that runs on the device).")
@click.option("--device", default=None, help="cpu (default), cuda:N, or an OpenVINO device (GPU, NPU, openvino:GPU.0).")
@click.option("--precision", help="Comma-separated: fp32,tf32,fp16,bf16,int8, or best: fp32 and each runtime's fastest "
                                  "precision on the device (default: fp32, plus bf16 where a runtime runs it natively).")
@click.option("--batch", help="Comma-separated batch sizes (default 1).")
@click.option("--threads", type=int, help="Intra-op threads for every runtime (default: physical cores).")
@click.option("--scenario", type=click.Choice(["latency", "throughput"]), help="latency (default) or throughput.")
@click.option("--min-time", type=float, help="Measure each case for at least this many seconds.")
@click.option("--max-time", type=float, help="Never measure a case longer than this many seconds.")
@click.option("--target-ci", type=float, help="Stop once the median's 95% CI half-width is within this fraction (default 0.01).")
@click.option("--interleave/--no-interleave", default=True, show_default=True,
              help="Interleave rounds of all cases (A,B,C,A,B,C...) or run cases one after another.")
@click.option("--store", "store_url", help="Results store: a SQLite path or URL, postgresql://... "
                                           "(default: $PFDEPLOY_STORE or ./pfdeploy-results.db).")
@click.option("--tag", help="A label for this run (compare and report find runs by tag).")
@click.option("--json", "json_file", type=click.Path(dir_okay=False), help="Also write the run as JSON to FILE ('-': stdout).")
def command(models, suite, backends, device, precision, batch, threads, scenario, min_time, max_time, target_ci,
            interleave, store_url, tag, json_file):
    """Benchmark models through every installed runtime and store the results.

    With no arguments: the `default` suite on the CPU (the parameter-free ResNet-50s against
    ResNet-50, the depthwise ResNet-50 and MobileNetV2; torch, ONNX Runtime, OpenVINO; batch 1;
    fp32; latency). Exit codes: 0 done, 1 a case failed or a user error, 2 bad usage or an
    unusable device, 130 interrupted (finished cases are kept)."""
    from ..config import default_store_url
    from ..devices import parse_device
    from ..render import console, err_console
    from ..store import open_store

    cfg = build_config(models, suite, backends, device, precision, batch, threads, scenario, min_time, max_time,
                       target_ci, interleave, tag)
    parse_device(cfg.device)  # exit 2 with one line before anything is opened or exported
    from ..bench.engine import Engine

    url = default_store_url(store_url)
    store = open_store(url)
    engine = Engine(cfg, store, store_url=store.url)
    with RichProgress(err_console) as progress:
        outcome = engine.run(progress)
    data = summary_data(outcome)
    if json_file:
        doc = store.export_run(outcome.run_id)
        if json_file == "-":
            from ..render import to_json

            sys.stdout.write(to_json({**doc, "summary": data}) + "\n")
        else:
            store.export_run(outcome.run_id, json_file)
    if json_file != "-":
        print_summary(console, data)
    store.close()
    if outcome.status == "interrupted":
        err_console.print(f"interrupted: {sum(1 for r in outcome.results if r.row['status'] == 'ok')} finished "
                          f"case(s) kept in {store.url} (run {outcome.run_id}, marked interrupted)")
        sys.exit(130)
    if any(r.row["status"] == "failed" for r in outcome.results):
        sys.exit(1)


def summary_data(outcome) -> dict:
    """The facts the table shows, as data (also what --json - adds as "summary")."""
    from ..exporters.artifact import parity_verdict
    from ..bench.stats import CV_WARN, paired_ratio
    from ..bench.suites import SPEEDUP_BASELINES

    ok = [r for r in outcome.results if r.row["status"] == "ok"]
    by_group: dict[tuple, dict[str, object]] = {}
    for r in ok:
        s = r.spec
        by_group.setdefault((s.backend, s.device, s.precision, s.batch, s.scenario), {})[s.model] = r
    rows = []
    for r in ok:
        s, row = r.spec, r.row
        speed = {}
        group = by_group[(s.backend, s.device, s.precision, s.batch, s.scenario)]
        for base in SPEEDUP_BASELINES:
            b = group.get(base)
            speed[base] = (paired_ratio(b.samples_ns, b.rounds, r.samples_ns, r.rounds)
                           if b is not None and b is not r else ({"ratio": 1.0} if b is r else None))
        rows.append({
            "model": s.model, "family": row["family"], "backend": s.backend, "device": s.device,
            "precision": s.precision, "batch": s.batch, "scenario": s.scenario, "n": row["n"], "p50_ms": row["p50_ms"],
            "p50_ci_low_ms": row["p50_ci_low_ms"], "p50_ci_high_ms": row["p50_ci_high_ms"],
            "p90_ms": row["p90_ms"], "p99_ms": row["p99_ms"], "items_per_s": row["items_per_s"],
            "speedup": {k: (v or {}).get("ratio") for k, v in speed.items()},
            "params": row["params"], "macs": row["macs"], "parity": parity_verdict(row["parity"]),
            "cv": row["cv"], "noisy": bool(row["cv"] is not None and row["cv"] > CV_WARN),
            "peak_rss_mb": row["peak_rss_mb"], "warnings": row["warnings"],
        })
    rows.sort(key=lambda x: (x["backend"], x["precision"], x["batch"], x["p50_ms"] or 0))
    others = [{"case": r.spec.label, "status": r.row["status"], "reason": r.row["error"]}
              for r in outcome.results if r.row["status"] != "ok"]
    return {"run_id": outcome.run_id, "status": outcome.status, "store": outcome.store_url,
            "wall_s": round(outcome.wall_s, 1), "results": rows, "not_measured": others,
            "notes": outcome.notes + [PAPER_NOTE]}


def _cv(r: dict) -> str:
    if r["cv"] is None:
        return "-"
    return f"[red]CV {r['cv']:.1%}[/red]" if r["noisy"] else f"{r['cv']:.1%}"


def print_summary(console, data: dict) -> None:
    from ..render import fmt, table

    def ms(v):
        return fmt(v, 3)

    def x(v):
        return "-" if v is None else f"{v:.2f}x"

    rows = []
    for r in data["results"]:
        ci = (f"[{r['p50_ci_low_ms']:.3f}, {r['p50_ci_high_ms']:.3f}]" if r["p50_ci_low_ms"] is not None else "")
        rows.append((r["model"], r["backend"], r["precision"], r["batch"], f"{ms(r['p50_ms'])} {ci}",
                     ms(r["p90_ms"]), ms(r["p99_ms"]), fmt(r["items_per_s"], 1),
                     x(r["speedup"].get("resnet50")), x(r["speedup"].get("dw_resnet50")),
                     fmt(r["params"] / 1e6 if r["params"] else None, 2), fmt(r["macs"] / 1e9 if r["macs"] else None, 2),
                     r["parity"], _cv(r),
                     r["n"]))
    cols = ["model", "backend", "prec", "batch", "p50 ms [95% CI]", "p90 ms", "p99 ms", "items/s",
            "vs resnet50", "vs dw_resnet50", "params M", "MACs G", "parity", "CV", "n"]
    scenarios = sorted({r["scenario"] for r in data["results"]}) or ["latency"]
    title = f"pfdeploy bench: {', '.join(scenarios)} (host clock)"
    if "throughput" in scenarios:
        title += "; throughput: one sample = every request in flight completed"
    console.print(table(cols, rows, title=title,
                        justify_right=["batch", "p50 ms [95% CI]", "p90 ms", "p99 ms", "items/s", "vs resnet50",
                                       "vs dw_resnet50", "params M", "MACs G", "CV", "n"]))
    if data["not_measured"]:
        console.print(table(["case", "status", "reason"],
                            [(o["case"], o["status"], o["reason"]) for o in data["not_measured"]],
                            title="not measured"))
    for note in data["notes"]:
        console.print(f"note: {note}")
    console.print(f"run {data['run_id']} ({data['status']}, {data['wall_s']:.0f} s) stored in {data['store']}")
