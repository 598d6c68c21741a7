"""The LoadGen options of `pfdeploy bench` (`--scenario server|multistream|single-stream|offline`)
and `pfdeploy capacity`, and their checks: every bad input is one line and exit 2 before anything
is exported or timed (a bound or QPS that is not a positive number, a runtime without concurrent
requests, LoadGen not installed). Nothing heavy is imported."""
from __future__ import annotations

import click

from ..errors import UsageError

LOADGEN_PROCESSES = 2  # worker processes per LoadGen case unless --processes says otherwise
CONCURRENT_BACKENDS = ("onnxruntime", "openvino")


def loadgen_options(f, server_only: bool = False):
    """--target-qps (bench only), --latency-bound, --loadgen-duration, --loadgen-queries."""
    opts = [
        click.option("--latency-bound", "latency_bound", metavar="DURATION",
                     help="LoadGen server: the p99 latency bound, e.g. 15ms or 0.015s."),
        click.option("--loadgen-duration", "loadgen_duration", type=str, metavar="SECONDS",
                     help="LoadGen: the minimum duration of each test, in seconds (default 5)."),
        click.option("--loadgen-queries", "loadgen_queries", type=str, metavar="N",
                     help="LoadGen: the minimum query count of each test (default: what early stopping needs: "
                          "server 460, multistream 662, single-stream 64; offline samples 64)."),
    ]
    if not server_only:
        opts.insert(0, click.option("--target-qps", "target_qps", metavar="N",
                                    help="LoadGen server: the target rate of Poisson arrivals (queries per second)."))
    for deco in reversed(opts):
        f = deco(f)
    return f


def loadgen_settings(scenario: str, target_qps=None, latency_bound=None, loadgen_duration=None,
                     loadgen_queries=None) -> dict:
    """The LoadGenSettings fields of the options (UsageError, exit 2, on a bad value)."""
    from ..bench.loadgen.settings import LoadGenSettings, parse_ms, positive

    kw: dict = {"scenario": scenario}
    if target_qps is not None:
        kw["target_qps"] = positive(target_qps, "--target-qps")
    if latency_bound is not None:
        kw["latency_bound_ms"] = parse_ms(latency_bound)
    if loadgen_duration is not None:
        kw["min_duration_s"] = positive(loadgen_duration, "--loadgen-duration")
    if loadgen_queries is not None:
        try:
            kw["min_queries"] = int(loadgen_queries)
        except ValueError:
            raise UsageError(f"--loadgen-queries must be a positive whole number, got {loadgen_queries!r}") from None
    settings = LoadGenSettings(**kw)  # validates (one line, exit 2)
    out = settings.to_dict()
    out.pop("scenario")
    out.pop("seed")
    return {k: v for k, v in out.items() if v is not None}


def check_loadgen_flags(scenario: str | None, backends: str | None, batch: str | None, **opts) -> bool:
    """Before the bench config is built: True when the run is a LoadGen run. LoadGen options without a
    LoadGen scenario, LoadGen missing, a runtime without concurrent requests or a batch other than 1:
    UsageError (one line, exit 2)."""
    from ..backends.case import LOADGEN_SCENARIOS

    given = [f"--{k.replace('_', '-')}" for k, v in opts.items() if v is not None]
    if scenario not in LOADGEN_SCENARIOS:
        if given:
            raise UsageError(f"{', '.join(given)} apply to the LoadGen scenarios (--scenario server, multistream, "
                             "single-stream, offline)")
        return False
    if scenario == "capacity":
        raise UsageError("capacity is a search, not a bench scenario: run `pfdeploy capacity MODEL --latency-bound B`")
    loadgen_settings(scenario, **opts)  # bad numbers first: they need no LoadGen
    check_backends(backends)
    if batch is not None and [b.strip() for b in str(batch).split(",") if b.strip()] != ["1"]:
        raise UsageError("LoadGen's samples are single images: its scenarios run at --batch 1 (LoadGen forms the "
                         "queries; multistream and offline keep several in flight)")
    from ..bench.loadgen import require_loadgen

    require_loadgen()
    return True


def check_backends(backends: str | None) -> tuple[str, ...]:
    """The runtimes of a LoadGen run: the named ones, each able to keep several requests in flight
    (else one line, exit 2), or by default ONNX Runtime and OpenVINO."""
    from ..backends import get_backend
    from ..bench.loadgen import concurrency_problem

    if not backends:
        return CONCURRENT_BACKENDS
    names = tuple(dict.fromkeys(get_backend(b.strip()).name for b in backends.split(",") if b.strip()))
    for name in names:
        why = concurrency_problem(get_backend(name))
        if why:
            raise UsageError(why)
    return names


def apply_loadgen(cfg, scenario: str, **opts):
    """Configure a bench config for LoadGen (backends that serve it, processes, settings); returns
    the engine's policy."""
    from ..bench.loadgen.group import LoadGenPolicy

    cfg.loadgen = loadgen_settings(scenario, **opts)
    if not cfg.backends or any(b not in CONCURRENT_BACKENDS for b in cfg.backends):
        cfg.backends = tuple(b for b in (cfg.backends or CONCURRENT_BACKENDS) if b in CONCURRENT_BACKENDS) \
            or CONCURRENT_BACKENDS
    if cfg.processes is None:
        cfg.processes = LOADGEN_PROCESSES
    cfg.optional_precisions = ()
    return LoadGenPolicy()


def loadgen_lines(results) -> list[str]:
    """One line per LoadGen row after the bench table: LoadGen's verdict, rates and percentiles, and
    its reasons (the logs themselves are in the row's `loadgen` record)."""
    from ..render import fmt

    lines = []
    for r in results:
        lg = r.result.loadgen
        if not isinstance(lg, dict):
            continue
        pct = lg.get("percentiles_ms") or {}
        rate = (f"target {fmt(lg['target_qps'], 2)} QPS, scheduled {fmt(lg.get('scheduled_qps'), 2)}, "
                if lg.get("target_qps") else "")
        line = (f"LoadGen {lg['scenario']} {r.result.model}/{r.result.backend}: {lg['validity']} "
                f"({lg['valid_processes']} processes), {rate}achieved {fmt(lg.get('achieved_qps'), 2)} QPS "
                f"{_range(lg.get('achieved_qps_range'))}, p50 {fmt(pct.get('p50'), 2)} ms, p99 {fmt(pct.get('p99'), 2)} "
                f"ms {_range((lg.get('percentile_ranges_ms') or {}).get('p99'))}")
        lines.append(line)
        lines += [f"  {why}" for why in lg.get("reasons") or []]
    return lines


def _range(span) -> str:
    from ..render import fmt

    return f"[{fmt(span[0], 2)}, {fmt(span[1], 2)}]" if span else ""
