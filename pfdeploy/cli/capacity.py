"""`pfdeploy capacity`: the highest target QPS each deployment serves with LoadGen's server scenario
VALID within a p99 latency bound, found by bracketing then bisection, each probe a real MLPerf
LoadGen test (docs/serving.md; the search: pfdeploy.bench.loadgen.capacity)."""
from __future__ import annotations

import sys

import click

from ..render import Col, fmt, print_note, print_table
from .bench_progress import RichProgress
from .loadgen_options import LOADGEN_PROCESSES, check_backends, loadgen_options, loadgen_settings
from .options import parse_budget, weights_option


def _server_options(f):
    return loadgen_options(f, server_only=True)


@click.command("capacity")
@click.argument("models", metavar="MODEL[,MODEL...]", required=False)
@click.option("--backends", metavar="B[,B...]", help="Runtimes with concurrent requests (default: onnxruntime,openvino).")
@click.option("--device", default="cpu", show_default=True, help="cpu or an OpenVINO device.")
@click.option("--precision", default="fp32", show_default=True, help="Comma-separated precisions.")
@click.option("--threads", type=int, default=None, help="Intra-op threads (default: physical cores).")
@click.option("--processes", type=int, default=None, metavar="N",
              help=f"Worker processes per deployment (default {LOADGEN_PROCESSES}): the first searches, the others "
                   "re-probe its last VALID rate.")
@click.option("--tolerance", default="0.15", show_default=True, metavar="FRACTION",
              help="Stop bisecting once the bracket [last VALID, first INVALID] is narrower than this share.")
@click.option("--budget", default="12m", show_default=True, callback=parse_budget, metavar="TIME",
              help="The search's time for all deployments (e.g. 900s, 15m): each gets an equal share of what is "
                   "left; a share spent stops the bisection with a wider bracket (said in the row).")
@click.option("--tuned", "tuned_dirs", multiple=True, type=click.Path(), metavar="DIR",
              help="The deployment a `pfdeploy tune` directory records (its artifact and runtime settings; "
                   "repeatable) instead of the runtimes' defaults; fixes the models, runtimes and precision.")
@click.option("--images", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="The samples LoadGen issues: the first 16 images of DIR (any image folder), preprocessed per "
                   "model before any test (default: synthetic tensors).")
@_server_options
@weights_option(default="synthetic")
@click.option("--store", "store_url", help="Results store (default: $PFDEPLOY_STORE or ./pfdeploy-results.db).")
@click.option("--tag", help="A label for this run.")
@click.option("--json", "as_json", is_flag=True, help="The stored run and the answers as JSON on stdout.")
@click.option("--wide", is_flag=True, help="Table: every column, even where the terminal is narrower.")
def command(models, backends, device, precision, threads, processes, tolerance, budget, tuned_dirs, images,
            latency_bound, loadgen_duration, loadgen_queries, weights, store_url, tag, as_json, wide):
    """For each MODEL through each runtime: the highest target QPS at which MLPerf LoadGen's server
    scenario is VALID with p99 <= --latency-bound, with its bracket over worker processes, the p99
    against QPS of every probe and the saturated throughput (LoadGen Offline) beside it. Stored as
    a run (scenario `capacity`). Exit codes: 0 done, 1 a case failed or a user error, 2 bad usage
    (a bound that is not a positive duration, a runtime without concurrent requests, LoadGen not
    installed), 130/143 interrupted."""
    from ..errors import UsageError

    if latency_bound is None:
        raise UsageError("pfdeploy capacity needs --latency-bound (e.g. 15ms: the p99 bound)")
    if bool(models) == bool(tuned_dirs):
        raise UsageError("pfdeploy capacity takes MODEL[,MODEL...] or --tuned DIR (a tuned directory fixes its model)")
    settings = loadgen_settings("capacity", latency_bound=latency_bound,
                                loadgen_duration=loadgen_duration if loadgen_duration is not None else "2",
                                loadgen_queries=loadgen_queries)
    from ..bench.loadgen.settings import positive

    tol = positive(tolerance, "--tolerance")
    if tol >= 1:
        raise UsageError(f"--tolerance must be a fraction below 1 (0.1 = 10%), got {tolerance!r}")
    backend_list = check_backends(backends)
    if processes is not None and processes < 1:
        raise UsageError(f"--processes must be >= 1, got {processes}")
    if images is not None:
        from ..exporters.images import list_images
        from ..errors import UserError

        try:
            list_images(images, "--images folder")  # before anything is exported or timed
        except UserError as exc:
            raise UsageError(str(exc)) from None
    from ..bench.loadgen import require_loadgen

    require_loadgen()
    from ..devices import parse_device

    parse_device(device)
    from .bench_options import build_config

    if tuned_dirs:
        cfg = tuned_capacity_config(tuned_dirs, tag, processes or LOADGEN_PROCESSES)
    else:
        cfg = build_config(models, None, ",".join(backend_list), device, precision, "1", threads, "capacity", None,
                           None, None, True, tag, processes=processes or LOADGEN_PROCESSES)
        cfg.weights = None if weights in (None, "synthetic") else weights
        from ..pretrained import plan_models

        cfg.model_weights = plan_models(cfg.models, cfg.weights, cfg.seed)
    cfg.loadgen = {**settings, "tolerance": tol, "budget_s": budget}
    cfg.qsl_images = images
    cfg.optional_precisions = ()
    from ..bench.engine import Engine
    from ..bench.loadgen.capacity import CapacityPolicy
    from ..config import default_store_url
    from ..render import console, err_console, esc, to_json
    from ..store import open_store

    store = open_store(default_store_url(store_url))
    engine = Engine(cfg, store, store_url=store.url, policy=CapacityPolicy())
    with RichProgress(err_console) as progress:
        outcome = engine.run(progress)
    answers = [answer(r.result) for r in outcome.results]
    if as_json:
        sys.stdout.write(to_json({**store.export_run(outcome.run_id), "capacity": answers}) + "\n")
    else:
        print_capacity(console, answers, outcome, wide)
    store.close()
    if outcome.status == "interrupted":
        sys.exit(128 + (outcome.signum or 2))
    if any(r.result.status == "failed" for r in outcome.results):
        sys.exit(1)
    if not any(r.result.status == "ok" for r in outcome.results):
        from ..errors import UserError

        raise UserError(f"nothing was measured: every case was skipped ({esc(str(outcome.run_id))})")


def tuned_capacity_config(dirs, tag, processes: int):
    """The bench config of `capacity --tuned DIR...`: each tuned directory's case (its artifact and
    runner options) searched as a capacity case; a setting that cannot keep several requests in
    flight (a synchronous or IO-bound latency winner) fails its case with the runtime's reason."""
    from dataclasses import replace

    from .bench_options import tuned_config

    cfg, _ = tuned_config(dirs, None, None, None, True, tag, processes=processes)
    for c in cfg.cases:
        check_backends(c.backend)
    cfg.cases = tuple(replace(c, scenario="capacity", batch=1) for c in cfg.cases)
    cfg.scenario, cfg.batches = "capacity", (1,)
    return cfg


def answer(row) -> dict:
    """One deployment's answer from its typed result (pfdeploy.result.Result)."""
    lg = row.loadgen or {}  # LoadGen's record: its own JSON, read by its keys
    return {"model": row.model, "backend": row.backend, "precision": row.precision,
            "status": row.status, "error": row.error, "latency_bound_ms": lg.get("latency_bound_ms"),
            "capacity_qps": lg.get("capacity_qps"), "bracket_qps": lg.get("bracket_qps"),
            "floor_qps": lg.get("floor_qps"), "p99_at_capacity_ms": lg.get("p99_at_capacity_ms"),
            "saturated_qps": lg.get("saturated_qps"),
            "probes": lg.get("probes"), "search_wall_s": lg.get("search_wall_s"),
            "budget_share_s": lg.get("budget_share_s"), "budget_spent": lg.get("budget_spent"),
            "curve": lg.get("curve"), "warnings": row.warning_texts}


def print_capacity(console, answers: list[dict], outcome, wide: bool) -> None:
    cols = [Col("model"), Col("backend"), Col("prec", fold="{}"), Col("capacity QPS", right=True),
            Col("bracket QPS", right=True), Col("p99 ms at cap", 1, right=True), Col("saturated QPS", 1, right=True),
            Col("cap/sat", 2, right=True), Col("probes", 2, right=True), Col("search s", 3, right=True)]
    rows = []
    for a in answers:
        if a["status"] != "ok":
            rows.append([a["model"], a["backend"], a["precision"], a["status"], a.get("error") or "", "", "", "", "", ""])
            continue
        b = a.get("bracket_qps") or [None, None]
        sat = a.get("saturated_qps")
        floor = a.get("floor_qps")  # INVALID even at the lowest rate a probe is planned at
        cap = f"< {fmt(floor, 1)}" if floor and not a["capacity_qps"] else fmt(a["capacity_qps"], 1)
        rows.append([a["model"], a["backend"], a["precision"], cap,
                     f"[{fmt(b[0], 1)}, {fmt(b[1], 1)}]", fmt(a["p99_at_capacity_ms"], 1), fmt(sat, 1),
                     fmt(a["capacity_qps"] / sat if sat and a["capacity_qps"] is not None else None, 2),
                     str(a.get("probes") or ""), fmt(a.get("search_wall_s"), 0)])
    bound = next((a["latency_bound_ms"] for a in answers if a.get("latency_bound_ms")), None)
    print_table(console, cols, rows, title=f"pfdeploy capacity: server QPS with p99 <= {fmt(bound, 1)} ms (MLPerf LoadGen)",
                wide=wide)
    for a in answers:
        for w in a.get("warnings") or []:
            print_note(console, f"warning: {a['model']}/{a['backend']}: {w}")
    print_note(console, "capacity: the lowest last-VALID target QPS over worker processes; bracket: [that, the highest "
                        "first-INVALID]; saturated: LoadGen Offline in the first process")
    print_note(console, f"run {outcome.run_id} ({outcome.status}, {outcome.wall_s:.0f} s) stored in {outcome.store_url}")


# ------------------------------------------------------------------ `pfdeploy claims --at capacity`
def _verdict_text(c: dict) -> str:
    """'yes (1.67x [1.48, 1.92])' of one capacity comparison; 'not measured' without a ratio."""
    if c.get("ratio") is None:
        return "not measured"
    word = "no, slower" if c.get("slower") else c["verdict"]
    ci = f" [{fmt(c['ci_low'], 2)}, {fmt(c['ci_high'], 2)}]" if c.get("ci_low") is not None else ""
    return f"{word} ({fmt(c['ratio'], 2)}x{ci})"


def claims_at_capacity(runs, store_url, as_json: bool, wide: bool) -> None:
    """Each parameter-free model against its baselines by capacity at the same p99 bound."""
    from ..capacity import capacity_claims
    from ..errors import UserError
    from ..render import emit

    from .options import load_runs

    docs = load_runs(runs, store_url)
    data = capacity_claims(docs)
    if not data["comparisons"]:
        raise UserError("no capacity run measured a parameter-free model and a baseline it names: run "
                        "`pfdeploy capacity pf_resnet50_max,dw_resnet50,resnet50 --latency-bound B` first")

    def human(console):
        cols = [Col("PF model"), Col("baseline"), Col("runtime"), Col("p99 bound ms", right=True),
                Col("capacity QPS PF / base", right=True), Col("verdict: PF serves more [interval]", wrap=True, min=20)]
        rows = [[c["model"], c["baseline"], f"{c['backend']} {c['precision']} {c['threads']}t",
                 fmt(c["latency_bound_ms"], 1), f"{fmt(c['capacity_qps'], 1)} / {fmt(c['baseline_capacity_qps'], 1)}",
                 _verdict_text(c)] for c in data["comparisons"]]
        print_table(console, cols, rows, title="claims at capacity (MLPerf LoadGen server, p99 bound)", wide=wide)
        print_note(console, f"verdicts: {data['rule']}", indent=0)

    emit(data, as_json, human)
