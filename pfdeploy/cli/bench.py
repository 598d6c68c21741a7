"""`pfdeploy bench`: benchmark models through every installed runtime, store every case, print
the comparison table (METHOD.md is the contract; docs/bench.md explains the numbers)."""
from __future__ import annotations

import re
import sys

import click
from rich.text import Text

from ..errors import UsageError
from .options import weights_option

PAPER_NOTE = ("vs <baseline> = baseline p50 / this p50 with its 95% CI (above 1: faster), for each baseline the "
              "model's spec names; paired over the rounds the two cases ran back to back; `pfdeploy claims` "
              "turns them into verdicts")


def _unique(items) -> tuple:
    """Items in their first order, each once (`--batch 1,1` measures batch 1 once)."""
    return tuple(dict.fromkeys(items))


def _csv(value: str | None, what: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    items = _unique(v.strip() for v in value.split(",") if v.strip())
    if not items:
        raise UsageError(f"--{what} needs at least one value")
    return items


# A batch is refused up front when this many times its input tensor (a floor for the
# activations a CNN/ViT keeps alive at once) exceeds the memory available now.
BATCH_MEMORY_FACTOR = 16


def usable_cpus() -> int:
    """Logical CPUs this process may run on: its affinity mask, capped by a container quota."""
    import math

    from ..devices.machine import _affinity, _cgroup_cpu_limit

    n = len(_affinity())
    quota = _cgroup_cpu_limit()
    return max(1, min(n, math.ceil(quota))) if quota else max(1, n)


def check_threads(threads: int | None) -> None:
    """--threads: 1 .. the CPUs this process may use. More threads than CPUs measure the OS
    scheduler (on 2 CPUs, 16 threads made a 3.5 ms case take 105 ms), so they are refused; more
    than the physical cores is allowed with a warning in the table and the stored row."""
    if threads is None:
        return
    if threads < 1:
        raise UsageError(f"--threads must be >= 1, got {threads}")
    cpus = usable_cpus()
    if threads > cpus:
        raise UsageError(f"--threads {threads} is more than the {cpus} CPU(s) this process may use; "
                         f"oversubscribed threads measure contention, not the runtime (use at most {cpus})")


def check_batch_memory(models: tuple[str, ...], batches: tuple[int, ...]) -> None:
    """Refuse a batch whose inputs alone could not fit (BATCH_MEMORY_FACTOR x the input tensor
    against the memory available now): fail in a second, not after allocating for minutes."""
    try:
        import psutil

        available = psutil.virtual_memory().available
    except Exception:  # noqa: BLE001 - no reading, no check
        return
    from ..zoo import get_spec

    for m in models:
        per_item = 4
        for d in get_spec(m).input_size:
            per_item *= int(d)
        for b in batches:
            need = b * per_item * BATCH_MEMORY_FACTOR
            if need > available:
                raise UsageError(
                    f"--batch {b} is too large for {m}: its fp32 inputs alone take {b * per_item / 2**30:.1f} GiB "
                    f"and {BATCH_MEMORY_FACTOR}x that (a floor for the activations) is more than the "
                    f"{available / 2**30:.1f} GiB of memory available")


def check_machine(cfg) -> None:
    """The checks of a config against the machine that will run it: --threads against its CPUs,
    --batch against its memory (UsageError on failure)."""
    check_threads(cfg.threads)
    check_batch_memory(cfg.models, cfg.batches)


def _batches(value: str | None) -> tuple[int, ...] | None:
    items = _csv(value, "batch")
    if items is None:
        return None
    try:
        out = _unique(int(v) for v in items)
    except ValueError:
        raise UsageError(f"--batch takes comma-separated positive integers, got {value!r}") from None
    if any(b < 1 for b in out):
        raise UsageError(f"--batch takes positive integers, got {value!r}")
    return out


def build_config(models, suite, backends, device, precision, batch, threads, scenario, min_time, max_time,
                 target_ci, interleave, tag, local_checks: bool = True):
    """BenchConfig from the command-line options (validated; UsageError on bad input).
    local_checks=False leaves out the checks against this machine's CPUs and memory (`fleet
    bench` runs them on each node: check_machine)."""
    from dataclasses import replace

    from ..backends import get_backend
    from ..bench.config import PRECISION_TOKENS, PRECISIONS, SCENARIOS, StopRule
    from ..bench.engine import BenchConfig
    from ..bench.suites import get_suite

    if models and suite:
        raise UsageError("--models and --suite are exclusive: a suite fixes its models")
    s = get_suite(suite or "default")
    from ..zoo import canonical_name

    model_list = _unique(canonical_name(m) for m in (_csv(models, "models") or s.models))  # unknown: exit 2
    backend_list = _csv(backends, "backends")
    if backend_list:
        backend_list = _unique(get_backend(b).name for b in backend_list)  # unknown: UsageError with the list
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
    batches = _batches(batch) or s.batches
    if local_checks:
        check_threads(threads)
        check_batch_memory(model_list, batches)
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
        batches=batches, threads=threads, scenario=scenario or s.scenario, rule=rule,
        interleave=interleave, tag=tag, suite=None if models else s.name, suite_version=None if models else s.version,
    )


def _middle(text: str, n: int) -> str:
    """`text` in `n` characters, its middle replaced by '…' (both ends tell cases apart)."""
    if len(text) <= n:
        return text
    if n <= 1:
        return "…"[:n]
    front = (n - 1) // 2
    back = n - 1 - front  # the end gets the odd character: pf_resnet50_max vs _hybrid
    return text[:front] + "…" + (text[-back:] if back else "")


def fit_progress_text(text: str, budget: int) -> str:
    """`text` in at most `budget` cells for the progress line: the case label is shortened (the
    middle of its longest parts replaced by '…'), a trailing '(round 3, n=120)' is kept whole."""
    if len(text) <= budget:
        return text
    head, tail = text, ""
    m = re.search(r" \((round|n=)[^()]*\)$", text)
    if m:
        head, tail = text[:m.start()], text[m.start():]
    head = head.replace(" / ", "/")
    room = budget - len(tail)
    if room < 5:  # no room for a useful part of the label: the numbers alone
        return tail.strip()
    if len(head) <= room:
        return head + tail
    words = head.split(" ")
    label = next((i for i in range(len(words) - 1, -1, -1) if "/" in words[i]), None)
    if label is not None:
        parts = words[label].split("/")
        room_label = room - (len(head) - len(words[label]))
        if room_label >= 4 * len(parts):  # model/backend[/precision/bN]: cut the longest parts
            cut = [len(p) for p in parts]
            while sum(cut) + len(parts) - 1 > room_label:
                i = max(range(len(parts)), key=lambda j: cut[j])
                cut[i] -= 1
            words[label] = "/".join(_middle(p, n) for p, n in zip(parts, cut))
            return " ".join(words) + tail
    return _middle(head, room) + tail


class RichProgress:
    """The engine's progress drawn as one rich bar on stderr: current case, elapsed, ETA. The line
    fits the terminal (80 columns and up): the label is shortened, never the numbers."""

    # spinner, bar, "100%", elapsed "0:00:00", "ETA", remaining "0:00:00" and the six gaps between
    # the seven columns: everything but the label
    FIXED = 1 + 4 + 7 + 3 + 7 + 6

    def __init__(self, console):
        from rich.progress import (BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)
        from rich.table import Column

        self.console = console
        width = console.width
        self.bar_width = 6 if width < 100 else min(40, width - 100 + 10)
        self.bar = Progress(SpinnerColumn(),
                            TextColumn("{task.description}", style="bold", markup=False,  # user text: literal
                                       table_column=Column(no_wrap=True, overflow="crop")),
                            BarColumn(bar_width=self.bar_width),
                            TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(), TextColumn("ETA"),
                            TimeRemainingColumn(), console=console, transient=False, refresh_per_second=4)
        self.task = None
        self.tty = console.is_terminal

    def label_budget(self) -> int:
        return max(8, self.console.width - self.FIXED - self.bar_width - 1)

    def _fit(self, text: str) -> str:
        return fit_progress_text(text, self.label_budget())

    def __enter__(self):
        self.bar.start()
        self.task = self.bar.add_task("preparing", total=None)
        return self

    def __exit__(self, *exc):
        self.bar.stop()

    def phase(self, text):
        self.bar.update(self.task, description=self._fit(text))
        if not self.tty:
            self.console.print(Text(text))

    def plan(self, total_units):
        self.bar.update(self.task, total=max(total_units, 1e-9), completed=0)

    def update(self, current, completed_units, total_units):
        self.bar.update(self.task, description=self._fit(current), completed=completed_units,
                        total=max(total_units, 1e-9))

    def case_done(self, result):
        row = result.row
        if row["status"] != "ok" or not self.tty:
            detail = f"{row['p50_ms']:.3f} ms" if row.get("p50_ms") is not None else (row.get("error") or "")
            self.console.print(Text(f"{row['status']:>7}  {result.spec.label}: {detail}"))


# Every `pfdeploy bench` option: what runs, where it is stored, how it is shown. `pfdeploy fleet
# bench` takes the very same ones (bench_options), so the two verbs cannot drift apart.
_BENCH_OPTIONS = [
    click.option("--models", help="Comma-separated models (zoo names, aliases, timm:<name>); exclusive with --suite."),
    click.option("--suite", help="A named suite: default (the default), paper, quick."),
    click.option("--backends", help="Comma-separated: torch,torch-compile,onnxruntime,openvino,tensorrt "
                                     "(default: the suite's, else every backend that runs on the device)."),
    click.option("--device", default=None, help="cpu (default), cuda:N, or an OpenVINO device (GPU, NPU, openvino:GPU.0)."),
    click.option("--precision", help="Comma-separated: fp32,tf32,fp16,bf16,int8, or best: fp32 and each runtime's fastest "
                                      "precision on the device (default: fp32, plus bf16 where a runtime runs it natively)."),
    click.option("--batch", help="Comma-separated batch sizes (default 1)."),
    click.option("--threads", type=int, help="Intra-op threads for every runtime (default: physical cores)."),
    click.option("--scenario", type=click.Choice(["latency", "throughput"]), help="latency (default) or throughput."),
    click.option("--min-time", type=float, help="Measure each case for at least this many seconds."),
    click.option("--max-time", type=float, help="Never measure a case longer than this many seconds."),
    click.option("--target-ci", type=float, help="Stop once the median's round-aware 95% CI half-width is within this fraction (default 0.02)."),
    click.option("--interleave/--no-interleave", default=True, show_default=True,
                  help="Interleave rounds of all cases (A,B,C,A,B,C...) or run cases one after another."),
    click.option("--allow-failed-parity", is_flag=True,
                  help="Also time artifacts whose parity check failed (NaN/Inf or far from PyTorch); their rows say "
                       "parity failed. Default: such cases fail without being timed."),
    weights_option(default="synthetic", extra_help=(
        " A choice that fits no model of the run is refused before anything runs: --weights release alone "
        "fits only the parameter-free models the release published; release,pretrained gives the baselines "
        "timm's weights, release,synthetic keeps synthetic ones. The weights are part of every case key.")),
    click.option("--images", type=click.Path(file_okay=False), default=None,
                 help="Labelled images (class subfolders n01440764/ or 0/, or --labels FILE): before timing, "
                      "top-1/top-5 of each artifact and of PyTorch on them (once per artifact and image set, kept "
                      "in the artifact's accuracy.json); rows carry it beside the latency."),
    click.option("--labels", type=click.Path(dir_okay=False), default=None,
                 help="Labels for --images: lines 'relative/path.jpg label' (ImageNet-1k index or synset id)."),
    click.option("--store", "store_url", help="Results store: a SQLite path or URL, postgresql://... "
                                               "(default: $PFDEPLOY_STORE or ./pfdeploy-results.db)."),
    click.option("--tag", help="A label for this run (compare and report find runs by tag)."),
    click.option("--json", "json_file", type=click.Path(dir_okay=False), help="Also write the run as JSON to FILE ('-': stdout)."),
    click.option("--wide", is_flag=True, help="Table: every column, even where the terminal is narrower "
                  "(output that is not a terminal always gets every column)."),
]


def bench_options(f):
    """Apply every `pfdeploy bench` option to a click command (keyword arguments models ... wide,
    in `command`'s order; build_config turns them into a BenchConfig)."""
    for deco in reversed(_BENCH_OPTIONS):
        f = deco(f)
    return f


@click.command("bench")
@bench_options
def command(models, suite, backends, device, precision, batch, threads, scenario, min_time, max_time, target_ci,
            interleave, allow_failed_parity, weights, images, labels, store_url, tag, json_file, wide):
    """Benchmark models through every installed runtime and store the results.

    With no arguments: the `default` suite on the CPU (the parameter-free ResNet-50s against
    ResNet-50, the depthwise ResNet-50 and MobileNetV2; torch, ONNX Runtime, OpenVINO; batch 1;
    fp32; latency). Exit codes: 0 done, 1 a case failed, nothing was measured (every case
    skipped) or a user error, 2 bad usage or an unusable device, 130 interrupted by Ctrl-C, 143 by
    SIGTERM (finished cases are kept, the run is marked interrupted)."""
    from ..config import default_store_url
    from ..devices import parse_device
    from ..errors import UserError
    from ..render import console, err_console, esc
    from ..store import open_store

    cfg = build_config(models, suite, backends, device, precision, batch, threads, scenario, min_time, max_time,
                       target_ci, interleave, tag)
    cfg.allow_failed_parity = allow_failed_parity
    parse_device(cfg.device)  # exit 2 with one line before anything is opened or exported
    check_images(images, labels)
    cfg.images, cfg.labels = images, labels
    cfg.weights = None if weights in (None, "synthetic") else weights
    from ..pretrained import plan_models

    # every model's weights before anything runs: a choice that fits none of a model is exit 2,
    # a release checkpoint is fetched (once) and hashed here (a failed download: exit 1)
    cfg.model_weights = plan_models(cfg.models, cfg.weights, cfg.seed)
    if json_file and json_file != "-":
        from ..outputs import check_output_file

        check_output_file(json_file, "--json")  # before the benchmark, not after it
    from ..bench.engine import Engine

    url = default_store_url(store_url)
    store = open_store(url)
    engine = Engine(cfg, store, store_url=store.url)
    with RichProgress(err_console) as progress:
        outcome = engine.run(progress)
    data = summary_data(outcome)
    if json_file == "-":
        from ..render import to_json

        sys.stdout.write(to_json({**store.export_run(outcome.run_id), "summary": data}) + "\n")
    else:
        print_summary(console, data, wide)  # first: a failing --json write must not lose the summary
        if json_file:
            store.export_run(outcome.run_id, json_file)  # atomic; a UserError line if it fails now
    store.close()
    if outcome.status == "interrupted":
        from .. import signals

        signum = outcome.signum or 2
        err_console.print(esc(f"interrupted by {signals.signal_name(signum)}: "
                              f"{sum(1 for r in outcome.results if r.row['status'] == 'ok')} finished "
                              f"case(s) kept in {store.url} (run {outcome.run_id}, marked interrupted)"))
        sys.exit(128 + signum)
    if any(r.row["status"] == "failed" for r in outcome.results):
        sys.exit(1)
    if not any(r.row["status"] == "ok" for r in outcome.results):
        raise UserError(f"nothing was measured: all {len(outcome.results)} case(s) were skipped "
                        f"(reasons above; run {outcome.run_id})")


def check_images(images, labels) -> None:
    """--images/--labels: refused before anything runs when they cannot give labelled images."""
    from ..errors import UserError

    if labels is not None and images is None:
        raise UsageError("--labels needs --images DIR (the folder the labelled paths are relative to)")
    if images is None:
        return
    from pathlib import Path

    if not Path(images).expanduser().is_dir():
        raise UserError(f"--images {images}: not a directory")
    from ..exporters.accuracy import labelled_images

    labelled_images(images, labels)  # one line when the images carry no labels


def summary_data(outcome) -> dict:
    """The facts the table shows, as data (also what --json - adds as "summary"). Every
    parameter-free row carries "comparisons": one per baseline its zoo spec names, with the
    speedup's 95% CI, pairing, verdict, and both models' p50, params and MACs (pfdeploy.claims)."""
    from ..claims import comparisons
    from ..exporters.artifact import parity_verdict
    from ..bench.stats import CV_WARN

    ok = [r for r in outcome.results if r.row["status"] == "ok"]
    docrows = [{**r.row, "samples_ns": r.samples_ns, "sample_rounds": r.rounds} for r in outcome.results]
    by_case: dict[tuple, list] = {}
    for c in comparisons(docrows):
        by_case.setdefault((c["model"], c["backend"], c["device"], c["precision"], c["batch"], c["scenario"]),
                           []).append(c)
    rows = []
    for r in ok:
        s, row = r.spec, r.row
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
    others = [{"case": r.spec.label, "status": r.row["status"], "reason": r.row["error"]}
              for r in outcome.results if r.row["status"] != "ok"]
    from ..digest import summarize_not_measured, summarize_warnings

    all_rows = [r.row for r in outcome.results]
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
    from ..claims import ratio_text
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
                    + ([accuracy_text(acc), _pct(acc.get("top5"))] if show_acc else [])
                    + [x(r, b) for b in bases]
                    + [r["parity"], _cv(r), fmt(r["items_per_s"], 1), ms(r["p90_ms"]), ms(r["p99_ms"]),
                       fmt(r["params"] / 1e6 if r["params"] else None, 2),
                       fmt(r["macs"] / 1e9 if r["macs"] else None, 2), r["n"]])
    scenarios = sorted({r["scenario"] for r in results}) or ["latency"]
    title = "pfdeploy bench (host clock)"
    if "throughput" in scenarios:
        title += "; throughput: one sample = every request in flight completed"
    return cols, rows, title


def weights_label(source: str | None) -> str:
    """A weights identity shortened for a table cell: release:resnet50_max@sha256:<hex> ->
    release:resnet50_max@1a2b3c4d (the full identity is in the stored row and the JSON)."""
    if not source:
        return "-"
    if "sha256:" in source:
        head, _, digest = source.rpartition("sha256:")
        return f"{head}{digest[:8]}" if head.endswith("@") else f"sha256:{digest[:8]}"
    return source


def _pct(v) -> str:
    return "-" if v is None else f"{v * 100:.1f}"


def accuracy_text(acc: dict | None) -> str:
    """'76.2 (76.4)': the artifact's top-1 and, in parentheses, PyTorch's on the same images."""
    if not acc or acc.get("top1") is None:
        return "-"
    torch_top1 = acc.get("torch_top1")
    return _pct(acc["top1"]) + (f" ({_pct(torch_top1)})" if torch_top1 is not None else "")


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
