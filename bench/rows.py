"""A case's result row: its statistics (the hierarchical CI over its worker processes), provenance
(artifact, runner settings read back, parity, accuracy) and every warning rule, in one place."""
from __future__ import annotations

from ..clock import utc_now_iso
from ..result import Result, warn
from ..devices.cpuload import row_record
from ..exporters.artifact import parity_verdict
from .config import CaseSpec
from .model import BenchConfig, CaseRun, Prepared
from .stats import CV_WARN, summarize
from .timing import Decision

OTHER_CPU_WARN = 0.10  # a row warns when others took more than this share of the machine's CPU
SPEED_STATE_SPAN = 1.35  # round medians spanning more than this (p90 / p10): the machine changed speed


def speed_states(samples, rounds) -> float | None:
    """The span (90th / 10th percentile) of a case's round medians when it shows the machine
    changing speed state while the case was measured (two states ~1.7x apart lasting tens of
    seconds were measured on these VMs, issue 29), else None. The median and every paired ratio
    already keep a switch out of the estimate; the row says it happened."""
    import numpy as np

    if not samples or not rounds or len(samples) != len(rounds):
        return None
    by: dict = {}
    for s_, r in zip(samples, rounds):
        by.setdefault(r, []).append(s_)
    meds = np.array([np.median(v) for v in by.values()], dtype=float)
    if meds.size < 6 or meds.min() <= 0:
        return None
    span = float(np.percentile(meds, 90) / np.percentile(meds, 10))
    return span if span > SPEED_STATE_SPAN else None


def build_row(config: BenchConfig, spec: CaseSpec, prep: Prepared, status: str, error: str | None,
              live: CaseRun | None = None, final: dict | None = None, decision: Decision | None = None,
              oversubscribed: str | None = None, **records) -> Result:
    """The typed result of one case (pfdeploy.result.Result: the store's columns, its samples),
    with every warning rule applied. `live`: what its worker processes measured (None: never
    started); `final`: the merged close replies of its processes; `records`: the records a policy
    adds (`tune=`, `ab=`, a plugin's own fields)."""
    warnings: list = []
    if oversubscribed and status == "ok":
        warnings.append(warn("oversubscribed", oversubscribed))
    measured = live is not None and status == "ok"
    summary = summarize(live.samples if measured else [], live.rounds if measured else None,
                        procs=live.procs if measured else None)
    items_per_s = None
    if status == "ok" and summary.n and live.measured_ns:
        per_step = (final or {}).get("items_per_step") or spec.batch
        items_per_s = per_step * summary.n / (live.measured_ns / 1e9)
        if summary.cv is not None and summary.cv > CV_WARN:
            warnings.append(warn("noisy", f"noisy: coefficient of variation {summary.cv:.1%} > {CV_WARN:.0%}",
                                 cv=summary.cv, limit=CV_WARN))
        if decision is not None and decision.reason in ("max_time", "max_processes"):
            hw = decision.ci_halfwidth
            limit = (f"max-time ({config.rule.max_time_s:g} s measured)" if decision.reason == "max_time"
                     else f"{summary.processes} worker processes (--max-processes)")
            spread = f"; its processes differ by {summary.process_sd:.1%}" if summary.process_sd else ""
            warnings.append(warn(decision.reason,
                                 f"stopped at {limit} before the median's CI reached +-{config.rule.target_ci:.1%}"
                                 + (f" (it is +-{hw:.1%}{spread})" if hw is not None else ""),
                                 limit=(config.rule.max_time_s if decision.reason == "max_time"
                                        else summary.processes),
                                 target=config.rule.target_ci, ci=hw, process_sd=summary.process_sd))
    span = speed_states(live.samples, live.rounds) if measured else None
    if span is not None:
        warnings.append(warn("speed_state", f"the machine changed speed while this case was measured: its round "
                             f"medians span x{span:.2f} (p90/p10); paired ratios keep a switch out, a lone "
                             "median may not", span=round(span, 3)))
    cpu = row_record(live.cpu) if (live is not None and status == "ok") else None
    if cpu and cpu["other_share"] is not None and cpu["other_share"] > OTHER_CPU_WARN:
        warnings.append(warn("cpu_contention", f"other processes used {cpu['other_share']:.0%} of the machine's CPU "
                             "while this case was measured: its figures include their interference",
                             share=cpu["other_share"]))
    if cpu and cpu["steal_share"] is not None and cpu["steal_share"] > OTHER_CPU_WARN:
        warnings.append(warn("steal", f"the hypervisor gave {cpu['steal_share']:.0%} of this VM's CPU time to other "
                             "guests while this case was measured (steal)", share=cpu["steal_share"]))
    if status == "ok" and prep.parity and parity_verdict(prep.parity) == "failed":
        warnings.append(warn("parity_failed", "timed although its parity check FAILED (--allow-failed-parity): its "
                             "outputs are not what PyTorch computes"))
    artifact = dict(prep.artifact)
    if live is not None and live.load:
        artifact["runner"] = live.load.get("describe")
        artifact["worker_pid"] = live.load.get("pid")
        artifact["worker_pids"] = [ld.get("pid") for ld in live.loads]
        artifact["process_warmup_iters"] = [ld.get("warmup_n") for ld in live.loads]
        thr = live.load.get("threads") or {}
        artifact["threads_applied"] = thr
        warnings += [warn("threads", str(w)) for w in thr.get("warnings") or []]
        desc = live.load.get("describe") or {}
        if thr.get("flush_denormal") is False or desc.get("flush_denormal") is False:
            warnings.append(warn("flush_denormal", "flush-to-zero is off (read back from the runtime)"))
    if (prep.parity or {}).get("verdict") == "failed" and status == "ok":
        warnings.append(warn("parity_failed", f"parity failed at {spec.precision}: "
                             f"{'; '.join(prep.parity.get('failures') or [])}", precision=spec.precision))
    device_fields: dict = {}
    if live is not None and live.device_ms:
        dev_rounds = live.rounds if len(live.rounds) == len(live.device_ms) else None
        dev = summarize([int(v * 1e6) for v in live.device_ms], dev_rounds)
        device_fields = {"device_p50_ms": dev.p50_ms, "device_p50_ci_low_ms": dev.p50_ci_low_ms,
                         "device_p50_ci_high_ms": dev.p50_ci_high_ms, "device_n": dev.n,
                         "host_p50_ms": summary.p50_ms}
        artifact["device_clock"] = {"clock": "device (CUDA events, compute only, inputs on the device)",
                                    **dev.to_dict(),
                                    "h2d_p50_ms": summarize([int(v * 1e6) for v in live.h2d_ms]).p50_ms,
                                    "d2h_p50_ms": summarize([int(v * 1e6) for v in live.d2h_ms]).p50_ms}
    if final and final.get("runtime_peak_gpu_mb") is not None:
        artifact["runtime_peak_gpu_mb"] = final["runtime_peak_gpu_mb"]  # the runtime's own, narrower figure
    if live is not None:
        artifact["warmup_iters"] = live.warmup_n
        if decision is not None:
            artifact["stop_reason"] = decision.reason
    row = {
        "case_key": spec.key, "model": spec.model, "family": prep.family, "baselines": list(prep.baselines),
        "weights": spec.weights,
        "backend": spec.backend, "device": spec.device, "precision": spec.precision, "batch": spec.batch,
        "threads": spec.threads, "scenario": spec.scenario, "status": status, "error": error,
        # a named runtime setting (`pfdeploy tune`, `bench --tuned`) and the runner options it sets
        "variant": spec.variant or None, "options": dict(spec.options) or None,
        **{k: v for k, v in summary.to_dict().items()},
        "items_per_s": items_per_s,
        "load_ms": live.load.get("load_ms") if live and live.load else None,
        "first_ms": live.load.get("first_ms") if live and live.load else None,
        "peak_rss_mb": (final or {}).get("peak_rss_mb"), "peak_gpu_mb": (final or {}).get("peak_gpu_mb"),
        "peak_gpu_source": (final or {}).get("peak_gpu_source"),
        # which clock each figure is: the main statistics (p50_ms ... cv) are always the host
        # clock (docs/method.md 1); "host+device": the row also carries device_* figures (CUDA events)
        "clock": "host+device" if device_fields else "host", **device_fields,
        # CPU that other processes (other_share) and other VMs (steal_share) took from the
        # machine while this case's rounds were timed (pfdeploy.devices.cpuload)
        "cpu_contention": cpu,
        "params": prep.params, "macs": prep.macs,
        "artifact_sha256": prep.artifact_sha256, "artifact": artifact, "parity": prep.parity or {},
        # top-1/top-5 measured for exactly this artifact (exporters/accuracy.py), None when never measured
        "accuracy": prep.accuracy,
        "warnings": warnings, "round_size": live.k if live else None, "created_at": utc_now_iso(),
        # several worker processes per case (docs/method.md): how many, the rounds each measured (the
        # CI and every ratio resample them as processes, then rounds), the spread between their
        # medians and each one's load and first-inference time
        "processes": summary.processes if summary.n else None,
        "process_sd": summary.process_sd,
        "ci_df": summary.ci_df,
        "process_rounds": [list(r) for r in live.process_rounds] if measured else None,
        "process_load_ms": [ld.get("load_ms") for ld in live.loads] if live is not None and live.loads else None,
        "process_first_ms": [ld.get("first_ms") for ld in live.loads] if live is not None and live.loads else None,
        "samples_ns": list(live.samples) if live is not None else [],
        "sample_rounds": list(live.rounds) if live is not None else None,
        "device_samples_ns": ([int(v * 1e6) for v in live.device_ms]
                              if live is not None and live.device_ms and len(live.device_ms) == len(live.samples)
                              else None),
        **records,
    }
    return Result.from_row(row)
