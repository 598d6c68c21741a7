#!/usr/bin/env python
"""Cross-check pfdeploy's medians against the runtimes' own measurements (docs/method.md section 7).

On one artifact at batch 1, alternately in one session (A, B, A, B, ...):
  * OpenVINO: `benchmark_app -m IR -d CPU -hint latency -api sync -infer_precision P` (P = f32 for
    --precision fp32, bf16 for --precision bf16; thread count pinned to pfdeploy's with
    -load_config INFERENCE_NUM_THREADS, since benchmark_app refuses -nthreads together with -hint)
    against pfdeploy's openvino case on the same IR. `-api sync` because that is what a deployed
    application that calls `infer()` sees and what pfdeploy measures: the calling thread takes part
    in the inference (OpenVINO pins it, with pinning on, to one core and a helper thread to the
    other); benchmark_app's default async API runs the request on OpenVINO's own threads instead
    (`--api async` to compare that too);
  * ONNX Runtime: a bare `session.run` loop in a fresh process (same thread settings)
    against pfdeploy's onnxruntime case on the same .onnx.

`pfdeploy tune`'s acceptance test (issue 23) compares a tuned OpenVINO setting against
benchmark_app at its OWN defaults: `--reference-defaults` runs `benchmark_app -hint latency` (or
`-hint throughput` with `--scenario throughput`) and nothing else (its async API, its precision, its
threads and streams), and `--candidate NAME` runs pfdeploy's side with the runner options and
precision of that `tune_space` candidate (or `--options JSON` with `--precision`). Throughput
compares FPS (the ratio is reference FPS / pfdeploy items per second: > 1, pfdeploy is slower).

    .venv/bin/python scripts/crosscheck.py --only openvino --reference-defaults --candidate default \
        --pairs 4 --seconds 3

pfdeploy's side runs through the real engine (worker process, runner, timing loop, statistics)
with --min-time = --max-time = the duration of each turn. Prints a Markdown table; `--out FILE` also
writes the whole report as JSON there (nothing is written otherwise).

    .venv/bin/python scripts/crosscheck.py [--model pf_resnet50_max] [--pairs 10] [--seconds 5]
        [--threads N] [--precision fp32|bf16|int8] [--out crosscheck.json]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

BARE_ORT = r"""
import sys, time, json, numpy as np, onnxruntime as ort
path, inputs, threads, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
so = ort.SessionOptions()
so.intra_op_num_threads = threads
so.inter_op_num_threads = 1
so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
sess = ort.InferenceSession(path, sess_options=so, providers=["CPUExecutionProvider"])
feed = {sess.get_inputs()[0].name: np.load(inputs)}
end = time.perf_counter() + 1.0
n = 0
while time.perf_counter() < end or n < 10:
    sess.run(None, feed); n += 1
samples = []
end = time.perf_counter_ns() + int(seconds * 1e9)
while time.perf_counter_ns() < end:
    t0 = time.perf_counter_ns(); sess.run(None, feed); samples.append(time.perf_counter_ns() - t0)
samples.sort()
print(json.dumps({"n": len(samples), "median_ms": float(np.median(samples)) / 1e6}))
"""


def pfdeploy_median(backend: str, model: str, model_file: str, inputs: str, threads: int, seconds: float,
                    store, precision: str = "fp32", options: dict | None = None, scenario: str = "latency",
                    variant: str = "") -> dict:
    from pfdeploy.bench.config import CaseSpec, StopRule
    from pfdeploy.bench.engine import BenchConfig, Engine, Prepared

    rule = StopRule(min_iters=10, min_time_s=seconds, max_time_s=seconds, min_samples=10)
    spec = CaseSpec(model=model, backend=backend, threads=threads, precision=precision, scenario=scenario,
                    options=dict(options or {}), variant=variant)
    out = Engine(BenchConfig(models=(model,), rule=rule), store).run(
        prepared_cases=[(spec, Prepared(inputs=inputs, model_file=model_file, family="-"))])
    r = out.results[0].result
    if r.status != "ok":
        raise SystemExit(f"pfdeploy {backend} case failed: {r.error}")
    return {"n": r.n, "median_ms": r.p50_ms, "ci": [r.p50_ci_low_ms, r.p50_ci_high_ms],
            "fps": r.items_per_s, "runner": (r.artifact or {}).get("runner")}


OV_PRECISION = {"fp32": "f32", "bf16": "bf16", "fp16": "f16", "int8": None}


def benchmark_app_exe() -> str:
    """benchmark_app of the installed openvino package (a console script beside its Python, or
    beside the openvino package when the venv borrows it through a .pth file)."""
    import shutil

    import openvino

    cand = Path(sys.executable).with_name("benchmark_app")
    if cand.is_file():
        return str(cand)
    found = shutil.which("benchmark_app") or next(
        (str(p / "bin" / "benchmark_app") for p in Path(openvino.__file__).resolve().parents
         if (p / "bin" / "benchmark_app").is_file()), None)
    if not found:
        raise SystemExit("benchmark_app not found (it ships with the openvino package)")
    return found


def benchmark_app_command(xml: str, threads: int, seconds: float, tmp: Path, api: str = "sync",
                          precision: str = "fp32", own_defaults: bool = False, hint: str = "latency") -> list[str]:
    """benchmark_app's command line: pinned to pfdeploy's threads, API and precision, or with
    `own_defaults` nothing but `-hint` (its async API, its precision, threads and streams)."""
    cmd = [benchmark_app_exe(), "-m", xml, "-d", "CPU", "-hint", hint]
    if not own_defaults:
        cfg = tmp / "ov_config.json"
        conf = {"INFERENCE_NUM_THREADS": str(threads)}
        if OV_PRECISION[precision]:
            conf["INFERENCE_PRECISION_HINT"] = OV_PRECISION[precision]
        cfg.write_text(json.dumps({"CPU": conf}))
        cmd += ["-api", api, "-load_config", str(cfg)]
    cmd += ["-shape", "[1,3,224,224]", "-t", str(max(1, int(seconds)))]
    if OV_PRECISION[precision] and not own_defaults:
        cmd += ["-infer_precision", OV_PRECISION[precision]]
    return cmd


def benchmark_app_median(xml: str, threads: int, seconds: float, tmp: Path, api: str = "sync",
                         precision: str = "fp32", own_defaults: bool = False, hint: str = "latency") -> dict:
    cmd = benchmark_app_command(xml, threads, seconds, tmp, api, precision, own_defaults, hint)
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds * 10 + 300)
    if res.returncode != 0:
        raise SystemExit(f"benchmark_app failed:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")
    text = res.stdout
    med = float(re.search(r"Median:\s+([\d.]+) ms", text).group(1))
    count = int(re.search(r"Count:\s+(\d+) iterations", text).group(1))
    fps = re.search(r"Throughput:\s+([\d.]+) FPS", text)
    keys = ("NUM_STREAMS", "INFERENCE_NUM_THREADS", "PERFORMANCE_HINT", "INFERENCE_PRECISION_HINT",
            "ENABLE_CPU_PINNING", "CPU_DENORMALS_OPTIMIZATION", "OPTIMAL_NUMBER_OF_INFER_REQUESTS")
    props = {k: m.group(1).strip() for k in keys if (m := re.search(rf"{k}: (.+)$", text, re.M))}
    return {"n": count, "median_ms": med, "fps": float(fps.group(1)) if fps else None, "properties": props,
            "command": " ".join(cmd)}


def bare_ort_median(onnx_file: str, inputs: str, threads: int, seconds: float) -> dict:
    res = subprocess.run([sys.executable, "-c", BARE_ORT, onnx_file, inputs, str(threads), str(seconds)],
                         capture_output=True, text=True, timeout=seconds * 10 + 300)
    if res.returncode != 0:
        raise SystemExit(f"bare onnxruntime loop failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="pf_resnet50_max")
    ap.add_argument("--pairs", type=int, default=10, help="alternations A,B per runtime")
    ap.add_argument("--seconds", type=float, default=5.0, help="measurement time of each turn")
    ap.add_argument("--threads", type=int, default=None, help="default: physical cores")
    ap.add_argument("--only", choices=["openvino", "onnxruntime"], default=None)
    ap.add_argument("--api", choices=["sync", "async"], default="sync", help="benchmark_app's -api (default sync)")
    ap.add_argument("--precision", choices=["fp32", "bf16", "int8"], default=None,
                    help="default fp32 (or the --candidate's); bf16: OpenVINO only, where the CPU runs it natively")
    ap.add_argument("--options", default=None, metavar="JSON",
                    help='pfdeploy\'s runner options, e.g. \'{"api":"async","io":"shared","precision_hint":"default"}\'')
    ap.add_argument("--candidate", default=None, metavar="NAME",
                    help="pfdeploy's side runs this candidate of the backend's tune_space (its precision and options)")
    ap.add_argument("--reference-defaults", action="store_true",
                    help="benchmark_app with its own defaults: -hint only (no -api, -infer_precision, thread count)")
    ap.add_argument("--scenario", choices=["latency", "throughput"], default="latency",
                    help="throughput: -hint throughput, compared by FPS")
    ap.add_argument("--artifact", default=None,
                    help="an existing artifact directory to check (default: the cached one, exported on demand)")
    ap.add_argument("--out", "--json", dest="out", default=None, metavar="FILE",
                    help="write the report as JSON to FILE (default: no file, the table only)")
    args = ap.parse_args()

    from pfdeploy.devices import machine_metadata, physical_cores
    from pfdeploy.exporters import get_artifact
    from pfdeploy.store import open_store
    from pfdeploy.weights import synthetic_images
    from pfdeploy.zoo import get_spec

    threads = args.threads or physical_cores()
    spec = get_spec(args.model)
    tmp = Path(tempfile.mkdtemp(prefix="pfdeploy-crosscheck-"))
    inputs = tmp / "x.npy"
    np.save(inputs, synthetic_images(1, spec.input_size, spec.mean, spec.std, seed=0).numpy().astype(np.float32))
    store = open_store(tmp / "crosscheck.db")
    report = {"model": spec.name, "threads": threads, "seconds_per_turn": args.seconds, "pairs": args.pairs,
              "machine_id": machine_metadata().get("machine_id"), "loadavg_before": os.getloadavg(), "checks": {}}
    checks = [c for c in ("openvino", "onnxruntime") if args.only in (None, c)]
    from pfdeploy.backends import get_backend
    from pfdeploy.devices import parse_device

    if args.reference_defaults and args.only != "openvino":
        raise SystemExit("--reference-defaults is benchmark_app's: use it with --only openvino")
    if args.scenario == "throughput" and args.only != "openvino":
        raise SystemExit("--scenario throughput compares against benchmark_app: use it with --only openvino")
    report.update(scenario=args.scenario, reference_defaults=args.reference_defaults)
    for check in checks:
        backend = get_backend(check)
        precision, options, variant = args.precision or "fp32", json.loads(args.options) if args.options else {}, ""
        if args.candidate:
            space = {c.name: c for c in backend.tune_space(parse_device("cpu"), args.scenario, 1, threads)}
            if args.candidate not in space:
                raise SystemExit(f"{check} has no candidate {args.candidate!r} here (candidates: {', '.join(space)})")
            cand = space[args.candidate]
            precision, options, variant = args.precision or cand.precision, {**cand.options, **options}, cand.name
        report["precision"] = precision
        why = backend.supports(parse_device("cpu"), precision)
        if why:
            raise SystemExit(f"{check} cannot run {precision} here: {why}")
        req = backend.artifact_request(precision, 1)
        if options.get("artifact"):
            req = {**req, **options["artifact"]}
        options = {k: v for k, v in options.items() if k != "artifact"}
        if args.artifact:
            from pfdeploy.exporters.artifact import load_artifact

            art = load_artifact(args.artifact)
            if (art.target, art.precision) != (req["target"], req["precision"]):
                raise SystemExit(f"{args.artifact} is a {art.target} {art.precision} artifact; {check} "
                                 f"{precision} runs {req['target']} {req['precision']}")
        else:
            art = get_artifact(spec.name, progress=lambda m: print(f"  {m}", file=sys.stderr), **req)
        rows = []
        tput = args.scenario == "throughput"
        for i in range(args.pairs):
            if check == "openvino":
                ref = benchmark_app_median(str(art.model_file), threads, args.seconds, tmp, args.api, precision,
                                           args.reference_defaults, args.scenario)
            else:
                ref = bare_ort_median(str(art.model_file), str(inputs), threads, args.seconds)
            pf = pfdeploy_median(check, spec.name, str(art.model_file), str(inputs), threads, args.seconds, store,
                                 precision, options, args.scenario, variant)
            ratio = ref["fps"] / pf["fps"] if tput else pf["median_ms"] / ref["median_ms"]
            rows.append({"pair": i + 1, "reference_ms": ref["median_ms"], "pfdeploy_ms": pf["median_ms"],
                         "reference_fps": ref.get("fps"), "pfdeploy_fps": pf.get("fps"),
                         "ratio": ratio, "reference": ref, "pfdeploy": pf})
            what = (f"reference {ref['fps']:.2f} FPS, pfdeploy {pf['fps']:.2f} items/s" if tput else
                    f"reference {ref['median_ms']:.3f} ms (n={ref['n']}), pfdeploy {pf['median_ms']:.3f} ms (n={pf['n']})")
            print(f"{check} pair {i + 1}: {what}, ratio {ratio:.4f}", file=sys.stderr)
        ratios = [r["ratio"] for r in rows]
        report["checks"][check] = {
            "artifact": str(art.path), "artifact_sha256": art.manifest.get("sha256"),
            "reference": ((f"benchmark_app -hint {args.scenario} (its own defaults)" if args.reference_defaults else
                           f"benchmark_app -hint {args.scenario} -api {args.api}"
                           + (f" -infer_precision {OV_PRECISION[precision]}" if OV_PRECISION[precision] else ""))
                          if check == "openvino" else "bare session.run loop"),
            "reference_command": rows[0]["reference"].get("command"),
            "reference_properties": rows[0]["reference"].get("properties"),
            "pfdeploy_case": {"precision": precision, "options": options, "variant": variant, "scenario": args.scenario},
            "pfdeploy_settings": {k: (rows[0]["pfdeploy"].get("runner") or {}).get(k)
                                  for k in ("inference_precision", "api", "io", "requests", "streams", "requested")},
            "reference_pinning": (rows[0]["reference"].get("properties") or {}).get("ENABLE_CPU_PINNING"),
            "pfdeploy_pinning": (((rows[0]["pfdeploy"].get("runner") or {}).get("properties") or {})
                                 .get("ENABLE_CPU_PINNING")),
            "ratio_quartiles": [float(q) for q in np.quantile(ratios, [0.25, 0.75])],
            "reference_median_fps": statistics.median(r["reference_fps"] or 0 for r in rows) if tput else None,
            "pfdeploy_median_fps": statistics.median(r["pfdeploy_fps"] or 0 for r in rows) if tput else None,
            "reference_median_ms": statistics.median(r["reference_ms"] for r in rows),
            "pfdeploy_median_ms": statistics.median(r["pfdeploy_ms"] for r in rows),
            "median_ratio": statistics.median(ratios), "min_ratio": min(ratios), "max_ratio": max(ratios),
            "pairs": rows,
        }
    report["loadavg_after"] = os.getloadavg()
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1))
    print(f"| check | reference | reference median ms | pfdeploy median ms | pfdeploy/reference "
          f"({'reference FPS / pfdeploy items/s, ' if args.scenario == 'throughput' else ''}median of {args.pairs} "
          f"alternated pairs) | quartiles of the pairs | range | CPU pinning (reference / pfdeploy) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, c in report["checks"].items():
        q = c["ratio_quartiles"]
        print(f"| {name} | {c['reference']} | {c['reference_median_ms']:.3f} | {c['pfdeploy_median_ms']:.3f} | "
              f"{c['median_ratio']:.4f} ({(c['median_ratio'] - 1) * 100:+.2f}%) | {q[0]:.3f}-{q[1]:.3f} | "
              f"{c['min_ratio']:.3f}-{c['max_ratio']:.3f} | {c.get('reference_pinning') or '-'} / "
              f"{c.get('pfdeploy_pinning') or '-'} |")
    print(f"threads {threads}, {args.seconds:g} s per turn, load average before {report['loadavg_before']}, "
          f"after {report['loadavg_after']}" + (f"; JSON: {args.out}" if args.out else ""))
    store.close()
    shutil.rmtree(tmp, ignore_errors=True)  # the inputs and the scratch store
    return 0


if __name__ == "__main__":
    sys.exit(main())
