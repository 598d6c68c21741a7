"""`pfdeploy bench`: benchmark models through every installed runtime, store every case, print
the comparison table (docs/method.md is the contract; docs/bench.md explains the numbers).

The verb is split by concern: bench_options (the options and their parsing into a BenchConfig),
pfdeploy.preflight (the checks against this machine), bench_progress (the progress bar),
bench_summary (the table and notes); this module runs them in order."""
from __future__ import annotations

import sys

import click

from ..preflight import check_machine, usable_cpus  # noqa: F401 - the names tests and scripts import from here
from .bench_options import bench_options, build_config, check_images
from .bench_progress import RichProgress
from .bench_summary import print_summary, summary_data
from .loadgen_options import loadgen_options


@click.command("bench")
@bench_options
@loadgen_options
@click.option("--tuned", "tuned_dirs", multiple=True, type=click.Path(), metavar="DIR",
              help="Reproduce a `pfdeploy tune` winner: measure the tuned directory DIR's own artifact with its "
                   "runtime settings (repeatable) and say whether the median lies within the interval its "
                   "tuned.json records. Fixes the models, backends, device, precision, batch, threads, "
                   "scenario and weights.")
def command(models, suite, backends, device, precision, batch, threads, processes, scenario, min_time, max_time,
            target_ci, interleave, allow_failed_parity, weights, images, labels, store_url, tag, json_file, wide,
            tuned_dirs=(), **lg_opts):
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

    from .loadgen_options import apply_loadgen, check_loadgen_flags

    # MLPerf LoadGen scenarios (issue 31): checked before anything else, one line and exit 2
    uses_loadgen = check_loadgen_flags(scenario, backends, batch, **lg_opts)
    tuned = None
    if tuned_dirs:
        from .bench_options import check_tuned_flags, tuned_config

        source = click.get_current_context().get_parameter_source("weights")
        check_tuned_flags({"models": models, "suite": suite, "backends": backends, "device": device,
                           "precision": precision, "batch": batch, "threads": threads, "scenario": scenario,
                           "weights": weights if source == click.core.ParameterSource.COMMANDLINE else None})
        cfg, tuned = tuned_config(tuned_dirs, min_time, max_time, target_ci, interleave, tag, processes=processes)
    else:
        cfg = build_config(models, suite, backends, device, precision, batch, threads, scenario, min_time, max_time,
                           target_ci, interleave, tag, processes=processes)
    cfg.allow_failed_parity = allow_failed_parity
    policy = apply_loadgen(cfg, scenario, **lg_opts) if uses_loadgen else None
    parse_device(cfg.device)  # exit 2 with one line before anything is opened or exported
    check_images(images, labels)
    cfg.images, cfg.labels = images, labels
    if uses_loadgen:
        cfg.qsl_images = images  # LoadGen's samples are these images too (None: synthetic)
    if not tuned:
        cfg.weights = None if weights in (None, "synthetic") else weights
        from ..pretrained import plan_models

        # every model's weights before anything runs: a choice that fits none of a model is exit 2,
        # a release checkpoint is fetched (once) and hashed here (a failed download: exit 1)
        cfg.model_weights = plan_models(cfg.models, cfg.weights, cfg.seed)
    if json_file and json_file != "-":
        from ..outputs import check_output_file

        check_output_file(json_file, "--json")  # before the benchmark, not after it
    from ..bench.engine import Engine
    from ..store import open_store

    url = default_store_url(store_url)
    store = open_store(url)
    engine = Engine(cfg, store, store_url=store.url, policy=policy)
    with RichProgress(err_console) as progress:
        outcome = engine.run(progress)
    data = summary_data(outcome)
    checks = None
    if tuned:
        from .bench_options import tuned_checks

        checks = tuned_checks(tuned, outcome.results)
    extra = {"tuned": checks} if checks is not None else {}
    if json_file == "-":
        from ..render import to_json

        sys.stdout.write(to_json({**store.export_run(outcome.run_id), "summary": data.to_dict(), **extra}) + "\n")
        for c in checks or []:
            err_console.print(esc(c["line"]))
    else:
        print_summary(console, data, wide)  # first: a failing --json write must not lose the summary
        if uses_loadgen:  # issue 31: LoadGen's own verdict of each case
            from .loadgen_options import loadgen_lines

            for line in loadgen_lines(outcome.results):
                console.print(esc(line))
        for c in checks or []:
            console.print(esc(c["line"]))
        if json_file and checks is not None:
            from ..outputs import atomic_write_text
            from ..render import to_json

            atomic_write_text(json_file, to_json({**store.export_run(outcome.run_id), **extra}) + "\n", "--json")
        elif json_file:
            store.export_run(outcome.run_id, json_file)  # atomic; a UserError line if it fails now
    store.close()
    if outcome.status == "interrupted":
        from .. import signals

        signum = outcome.signum or 2
        err_console.print(esc(f"interrupted by {signals.signal_name(signum)}: "
                              f"{sum(1 for r in outcome.results if r.result.ok)} finished "
                              f"case(s) kept in {store.url} (run {outcome.run_id}, marked interrupted)"))
        sys.exit(128 + signum)
    if any(r.result.status == "failed" for r in outcome.results):
        sys.exit(1)
    if not any(r.result.ok for r in outcome.results):
        raise UserError(f"nothing was measured: all {len(outcome.results)} case(s) were skipped "
                        f"(reasons above; run {outcome.run_id})")
