"""`pfdeploy bench`'s options, defined once (`pfdeploy fleet bench` takes the very same ones), and
their parsing into a validated BenchConfig (build_config). Nothing heavy is imported: a usage
error answers at once."""
from __future__ import annotations

from pathlib import Path

import click

from ..errors import UsageError, UserError
from .options import weights_option


def _unique(items) -> tuple:
    """Items in their first order, each once (`--batch 1,1` measures batch 1 once)."""
    return tuple(dict.fromkeys(items))


def _csv(value: str | None, what: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    parts = [v.strip() for v in value.split(",")]
    if not any(parts):
        raise UsageError(f"--{what} needs at least one value")
    if not all(parts):  # `--batch 1,,2`: a typo, not "batches 1 and 2"
        raise UsageError(f"--{what} has an empty item in {value!r} (comma-separated values, none empty)")
    return _unique(parts)


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
                 target_ci, interleave, tag, processes: int | None = None, local_checks: bool = True):
    """BenchConfig from the command-line options (validated; UsageError on bad input).
    local_checks=False leaves out the checks against this machine's CPUs and memory (`fleet
    bench` runs them on each node: pfdeploy.preflight.check_machine)."""
    from dataclasses import replace

    from ..preflight import check_batch_memory, check_threads

    from ..backends import get_backend
    from ..bench.config import PRECISION_TOKENS, PRECISIONS, SCENARIOS
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
    if processes is not None and processes < 1:
        raise UsageError(f"--processes must be >= 1, got {processes}")
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
        interleave=interleave, tag=tag, processes=processes, suite=None if models else s.name, suite_version=None if models else s.version,
    )


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
    click.option("--scenario", type=click.Choice(["latency", "throughput", "server", "multistream", "single-stream",
                                                  "offline"]),
                 help="latency (default) or throughput (pfdeploy's timing loop); server, multistream, single-stream, "
                      "offline: MLPerf LoadGen drives the runtime (the `loadgen` extra; docs/serving.md)."),
    click.option("--processes", type=int, metavar="N",
                 help="Fresh worker processes per case; default: the suite's."),
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
                      "in the artifact's accuracy.json); rows carry it beside the latency. LoadGen scenarios: also "
                      "the samples LoadGen issues (the first 16 images, preprocessed per model)."),
    click.option("--labels", type=click.Path(dir_okay=False), default=None,
                 help="Labels for --images: lines 'relative/path.jpg label' (ImageNet-1k index or synset id)."),
    click.option("--store", "store_url", help="Results store: a SQLite path or URL, postgresql://... "
                                               "(default: $PFDEPLOY_STORE or ./pfdeploy-results.db)."),
    click.option("--tag", help="A label for this run (compare and report find runs by tag)."),
    click.option("--json", "json_file", type=click.Path(), help="Also write the run as JSON to FILE ('-': stdout)."),
    click.option("--wide", is_flag=True, help="Table: every column, even where the terminal is narrower "
                  "(output that is not a terminal always gets every column)."),
]


def bench_options(f):
    """Apply every `pfdeploy bench` option to a click command (keyword arguments models ... wide,
    in `pfdeploy.cli.bench.command`'s order; build_config turns them into a BenchConfig)."""
    for deco in reversed(_BENCH_OPTIONS):
        f = deco(f)
    return f


def check_images(images, labels) -> None:
    """--images/--labels: refused before anything runs when they cannot give labelled images."""
    if labels is not None and images is None:
        raise UsageError("--labels needs --images DIR (the folder the labelled paths are relative to)")
    if images is None:
        return
    from pathlib import Path

    if not Path(images).expanduser().is_dir():
        raise UserError(f"--images {images}: not a directory")
    from ..exporters.accuracy import labelled_images

    labelled_images(images, labels)  # one line when the images carry no labels


# `pfdeploy bench --tuned DIR`: the options a tuned directory fixes itself
TUNED_FIXES = ("models", "suite", "backends", "device", "precision", "batch", "threads", "scenario", "weights")


def check_tuned_flags(given: dict) -> None:
    """--tuned DIR fixes what is measured: the flags that choose it are a usage error beside it.
    `given`: {option name: value, None when not given on the command line}."""
    clash = [k for k in TUNED_FIXES if given.get(k) is not None]
    if clash:
        flags = ", ".join(f"--{k}" for k in clash)
        raise UsageError(f"--tuned DIR fixes the model, runtime, device, precision, batch, threads, scenario and "
                         f"weights of what it measures (from its tuned.json); {flags} cannot be given with it")


def tuned_config(dirs, min_time, max_time, target_ci, interleave, tag, processes: int | None = None):
    """(BenchConfig, [(DIR, tuned record)]) of `pfdeploy bench --tuned DIR...`: one explicit case
    per tuned directory (its variant and runner options, its artifact request pointing at the
    model file in DIR with the sha256 tuned.json records: nothing is exported), the models,
    backends, precisions, batches, threads and scenario those cases have, and the weights they were
    measured with (the PyTorch reference of the parity check)."""
    from ..tune.artifact import bench_case, model_weights, read_tuned, seed_of

    tuned = [(d, read_tuned(d)) for d in _unique(dirs)]  # a broken directory: one UserError line
    cases = []
    for d, t in tuned:  # each DIR's own case first: a value this machine refuses names its file
        try:
            c = bench_case(d, t)
            build_config(c.model, None, c.backend, c.device, c.precision, str(c.batch), c.threads, c.scenario,
                         min_time, max_time, target_ci, interleave, tag, processes=processes)
        except UsageError as exc:
            import re

            why = re.sub(r"--([a-z][a-z-]*) ", lambda m: m.group(1).replace("-", "_") + " ", str(exc))
            raise UserError(f"{Path(d) / 'tuned.json'} records a case this machine cannot run: {why} "
                            "(run `pfdeploy tune` again here)") from None
        cases.append(c)
    for what in ("device", "scenario"):
        values = {str(t[what]) for _, t in tuned}
        if len(values) > 1:
            raise UsageError(f"--tuned directories of different {what}s ({', '.join(sorted(values))}) cannot "
                             "run together; give them to separate runs")
    seeds = {seed_of(t) for (_, t), c in zip(tuned, cases) if str(c.weights).startswith("synthetic:")}
    if len(seeds) > 1:
        raise UsageError(f"--tuned directories with different synthetic seeds ({sorted(seeds)}) cannot run together")
    weights: dict = {}
    for (_, t), c in zip(tuned, cases):
        w = model_weights(t)
        if weights.setdefault(c.model, w) != w:
            raise UsageError(f"--tuned directories of {c.model} with different weights cannot run together")
    cfg = build_config(",".join(_unique(c.model for c in cases)), None, ",".join(_unique(c.backend for c in cases)),
                       cases[0].device, ",".join(_unique(c.precision for c in cases)),
                       ",".join(str(b) for b in _unique(c.batch for c in cases)), max(c.threads for c in cases),
                       cases[0].scenario, min_time, max_time, target_ci, interleave, tag, processes=processes)
    cfg.cases = tuple(cases)
    cfg.seed = next(iter(seeds), 0)
    cfg.model_weights = weights
    choices = {w.choice for w in weights.values()}
    cfg.weights = None if choices == {None} else ",".join(sorted(c or "synthetic" for c in choices))
    return cfg, tuned


_SAME_CASE = ("model", "backend", "precision", "batch", "scenario", "variant")


def tuned_checks(tuned, results) -> list[dict]:
    """For each tuned directory, whether the new median lies within the interval tuned.json
    records: {"dir", "case", "p50_ms", "recorded": [lo, hi], "recorded_p50_ms", "reproduced",
    "status", "line"} (the JSON `bench --tuned` writes under "tuned")."""
    from ..tune.artifact import case_of

    out = []
    for d, t in tuned:
        case = case_of(t)
        m = t["measured"]  # tuned.json's record of the tune's measurement (a manifest, not a result)
        lo, hi = float(m["p50_ci_low_ms"]), float(m["p50_ci_high_ms"])
        row = next((c.result for c in results
                    if all(getattr(c.spec, k) == getattr(case, k) for k in _SAME_CASE)), None)
        p50 = row.p50_ms if row is not None and row.ok else None
        ok = p50 is not None and lo <= p50 <= hi
        if p50 is None:
            why = (row.error or row.status) if row is not None else "not run"
            line = f"not reproduced: {d}: the case was not measured ({why})"
        elif ok:
            line = f"reproduced: p50 {p50:.3f} ms within [{lo:.3f}, {hi:.3f}] recorded ({d})"
        else:
            line = (f"NOT within the recorded interval: p50 {p50:.3f} ms, [{lo:.3f}, {hi:.3f}] recorded "
                    f"({d}; recorded p50 {float(m['p50_ms']):.3f} ms)")
        out.append({"dir": str(d), "case": row.case_key if row is not None else None, "variant": case.variant or None,
                    "p50_ms": p50, "recorded": [lo, hi], "recorded_p50_ms": m["p50_ms"],
                    "recorded_run": m.get("run_id"), "reproduced": ok,
                    "status": row.status if row is not None else None, "line": line})
    return out
