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

pfdeploy's side runs through the real engine (worker process, runner, timing loop, statistics)
with --min-time = --max-time = the duration of each turn. Prints a Markdown table and writes JSON.

    .venv/bin/python scripts/crosscheck.py [--model pf_resnet50_max] [--pairs 10] [--seconds 5]
        [--threads N] [--precision fp32|bf16|int8] [--json crosscheck.json]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
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
                    store, precision: str = "fp32") -> dict:
    from pfdeploy.bench.config import CaseSpec, StopRule
    from pfdeploy.bench.engine import BenchConfig, Engine, Prepared

    rule = StopRule(min_iters=10, min_time_s=seconds, max_time_s=seconds, min_samples=10)
    spec = CaseSpec(model=model, backend=backend, threads=threads, precision=precision)
    out = Engine(BenchConfig(models=(model,), rule=rule), store).run(
        prepared_cases=[(spec, Prepared(inputs=inputs, model_file=model_file, family="-"))])
    row = out.results[0].row
    if row["status"] != "ok":
        raise SystemExit(f"pfdeploy {backend} case failed: {row['error']}")
    return {"n": row["n"], "median_ms": row["p50_ms"], "ci": [row["p50_ci_low_ms"], row["p50_ci_high_ms"]],
            "runner": row["artifact"].get("runner")}


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


def benchmark_app_median(xml: str, threads: int, seconds: float, tmp: Path, api: str = "sync",
                         precision: str = "fp32") -> dict:
    cfg = tmp / "ov_config.json"
    conf = {"INFERENCE_NUM_THREADS": str(threads)}
    if OV_PRECISION[precision]:
        conf["INFERENCE_PRECISION_HINT"] = OV_PRECISION[precision]
    cfg.write_text(json.dumps({"CPU": conf}))
    cmd = [benchmark_app_exe(), "-m", xml, "-d", "CPU", "-hint", "latency", "-api", api, "-load_config", str(cfg),
           "-shape", "[1,3,224,224]", "-t", str(max(1, int(seconds)))]
    if OV_PRECISION[precision]:
        cmd += ["-infer_precision", OV_PRECISION[precision]]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds * 10 + 300)
    if res.returncode != 0:
        raise SystemExit(f"benchmark_app failed:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")
    text = res.stdout
    med = float(re.search(r"Median:\s+([\d.]+) ms", text).group(1))
    count = int(re.search(r"Count:\s+(\d+) iterations", text).group(1))
    keys = ("NUM_STREAMS", "INFERENCE_NUM_THREADS", "PERFORMANCE_HINT", "INFERENCE_PRECISION_HINT",
            "ENABLE_CPU_PINNING", "CPU_DENORMALS_OPTIMIZATION")
    props = {k: m.group(1).strip() for k in keys if (m := re.search(rf"{k}: (.+)$", text, re.M))}
    return {"n": count, "median_ms": med, "properties": props, "command": " ".join(cmd)}


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
    ap.add_argument("--precision", choices=["fp32", "bf16", "int8"], default="fp32",
                    help="bf16: OpenVINO only, where the CPU runs it natively")
    ap.add_argument("--artifact", default=None,
                    help="an existing artifact directory to check (default: the cached one, exported on demand)")
    ap.add_argument("--json", default="crosscheck.json")
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

    report["precision"] = args.precision
    for check in checks:
        backend = get_backend(check)
        why = backend.supports(parse_device("cpu"), args.precision)
        if why:
            raise SystemExit(f"{check} cannot run {args.precision} here: {why}")
        req = backend.artifact_request(args.precision, 1)
        if args.artifact:
            from pfdeploy.exporters.artifact import load_artifact

            art = load_artifact(args.artifact)
            if (art.target, art.precision) != (req["target"], req["precision"]):
                raise SystemExit(f"{args.artifact} is a {art.target} {art.precision} artifact; {check} "
                                 f"{args.precision} runs {req['target']} {req['precision']}")
        else:
            art = get_artifact(spec.name, progress=lambda m: print(f"  {m}", file=sys.stderr), **req)
        rows = []
        for i in range(args.pairs):
            if check == "openvino":
                ref = benchmark_app_median(str(art.model_file), threads, args.seconds, tmp, args.api, args.precision)
            else:
                ref = bare_ort_median(str(art.model_file), str(inputs), threads, args.seconds)
            pf = pfdeploy_median(check, spec.name, str(art.model_file), str(inputs), threads, args.seconds, store,
                                 args.precision)
            rows.append({"pair": i + 1, "reference_ms": ref["median_ms"], "pfdeploy_ms": pf["median_ms"],
                         "ratio": pf["median_ms"] / ref["median_ms"], "reference": ref, "pfdeploy": pf})
            print(f"{check} pair {i + 1}: reference {ref['median_ms']:.3f} ms (n={ref['n']}), "
                  f"pfdeploy {pf['median_ms']:.3f} ms (n={pf['n']}), ratio {rows[-1]['ratio']:.4f}", file=sys.stderr)
        ratios = [r["ratio"] for r in rows]
        report["checks"][check] = {
            "artifact": str(art.path), "artifact_sha256": art.manifest.get("sha256"),
            "reference": (f"benchmark_app -hint latency -api {args.api}"
                          + (f" -infer_precision {OV_PRECISION[args.precision]}" if OV_PRECISION[args.precision] else "")
                          if check == "openvino" else "bare session.run loop"),
            "reference_pinning": (rows[0]["reference"].get("properties") or {}).get("ENABLE_CPU_PINNING"),
            "pfdeploy_pinning": (((rows[0]["pfdeploy"].get("runner") or {}).get("properties") or {})
                                 .get("ENABLE_CPU_PINNING")),
            "ratio_quartiles": [float(q) for q in np.quantile(ratios, [0.25, 0.75])],
            "reference_median_ms": statistics.median(r["reference_ms"] for r in rows),
            "pfdeploy_median_ms": statistics.median(r["pfdeploy_ms"] for r in rows),
            "median_ratio": statistics.median(ratios), "min_ratio": min(ratios), "max_ratio": max(ratios),
            "pairs": rows,
        }
    report["loadavg_after"] = os.getloadavg()
    Path(args.json).write_text(json.dumps(report, indent=1))
    print(f"| check | reference | reference median ms | pfdeploy median ms | pfdeploy/reference (median of {args.pairs} "
          f"alternated pairs) | quartiles of the pairs | range | CPU pinning (reference / pfdeploy) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, c in report["checks"].items():
        q = c["ratio_quartiles"]
        print(f"| {name} | {c['reference']} | {c['reference_median_ms']:.3f} | {c['pfdeploy_median_ms']:.3f} | "
              f"{c['median_ratio']:.4f} ({(c['median_ratio'] - 1) * 100:+.2f}%) | {q[0]:.3f}-{q[1]:.3f} | "
              f"{c['min_ratio']:.3f}-{c['max_ratio']:.3f} | {c.get('reference_pinning') or '-'} / "
              f"{c.get('pfdeploy_pinning') or '-'} |")
    print(f"threads {threads}, {args.seconds:g} s per turn, load average before {report['loadavg_before']}, "
          f"after {report['loadavg_after']}; JSON: {args.json}")
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
