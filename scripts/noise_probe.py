"""What gives a fresh process its level? (issue 29 item 5, docs/ab.md "Threads on a small VM")

Times one ONNX model in fresh processes under several process settings and reports, per setting,
the spread between processes: the sd of the log of each process's median (what `pfdeploy ab`'s
blocks see as process level). Settings are interleaved (A, B, C, A, B, C, ...) so that a machine
that changes state over time touches every setting alike.

    python scripts/noise_probe.py MODEL.onnx --out noise.json [--runtime onnxruntime|openvino]
        [--processes 10] [--seconds 2] [--threads 2]

Settings: threads 1 / N (intra-op; OpenVINO INFERENCE_NUM_THREADS), MALLOC_ARENA_MAX=1, malloc on
transparent huge pages (GLIBC_TUNABLES=glibc.malloc.hugetlb=1: madvise), transparent huge pages off
for the process (prctl PR_SET_THP_DISABLE), jemalloc (LD_PRELOAD, where installed), a fixed
environment and argv size, ASLR off (`setarch -R`, where the kernel allows it), the process pinned
to vCPU 0 (`taskset`, where present), the runtime's own thread pinning on and off (ONNX Runtime:
session.intra_op_thread_affinities; OpenVINO: ENABLE_CPU_PINNING), ONNX Runtime's spinning off.
What a setting needs and the machine lacks is reported as skipped, with the reason. Nothing is
written but --out.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

LOOP = r"""
import os, sys, time
if os.environ.get("NOISE_THP_OFF") == "1":  # before any allocation of the runtime's
    import ctypes
    if ctypes.CDLL(None, use_errno=True).prctl(41, 1, 0, 0, 0) != 0:  # PR_SET_THP_DISABLE
        sys.exit("prctl(PR_SET_THP_DISABLE) refused")
import numpy as np
runtime, path, threads, warm, secs, spin, pin = sys.argv[1:8]
threads, warm, secs = int(threads), float(warm), float(secs)
if runtime == "onnxruntime":
    import onnxruntime as ort
    so = ort.SessionOptions(); so.intra_op_num_threads = threads; so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", spin)
    if pin == "1" and threads > 1:  # one entry per extra intra-op thread, processors 1-based
        aff = ";".join(str(2 + i) for i in range(threads - 1))
        so.add_session_config_entry("session.intra_op_thread_affinities", aff)
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    i = s.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in i.shape]
    x = {i.name: np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
    run = lambda: s.run(None, x)
else:
    import openvino as ov
    cfg = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
    if pin in ("0", "1"):
        cfg["ENABLE_CPU_PINNING"] = pin == "1"
    m = ov.Core().compile_model(path, "CPU", cfg)
    req = m.create_infer_request()
    shape = [d.get_length() if d.is_static else 1 for d in m.input(0).get_partial_shape()]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    run = lambda: req.infer({0: x})
t0 = time.perf_counter()
while time.perf_counter() - t0 < warm: run()
out = []; t0 = time.perf_counter()
while time.perf_counter() - t0 < secs:
    a = time.perf_counter_ns(); run(); out.append(time.perf_counter_ns() - a)
out.sort(); print(out[len(out) // 2] / 1e6)
"""


JEMALLOC = ("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2", "/usr/lib64/libjemalloc.so.2", "/usr/lib/libjemalloc.so.2")


def settings(threads: int, runtime: str) -> tuple[dict[str, dict], dict[str, str]]:
    """({name: setting}, {name: why skipped})."""
    base_env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "PYTHONPATH", "VIRTUAL_ENV")}
    t = f"threads={threads}"
    out = {
        f"{t} (baseline)": {"threads": threads},
        "threads=1": {"threads": 1},
        f"{t}, MALLOC_ARENA_MAX=1": {"threads": threads, "env": {"MALLOC_ARENA_MAX": "1"}},
        f"{t}, malloc on huge pages (glibc.malloc.hugetlb=1)": {"threads": threads,
                                                               "env": {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}},
        f"{t}, THP off (prctl)": {"threads": threads, "env": {"NOISE_THP_OFF": "1"}},
        f"{t}, fixed env and argv": {"threads": threads, "fixed_env": base_env},
        f"{t}, runtime pinning on": {"threads": threads, "pin": "1"},
        f"{t}, runtime pinning off": {"threads": threads, "pin": "0"},
    }
    skipped = {}
    if runtime == "onnxruntime":
        out[f"{t}, spinning off"] = {"threads": threads, "spin": "0"}
    jem = next((j for j in JEMALLOC if os.path.exists(j)), None)
    if jem:
        out[f"{t}, jemalloc (LD_PRELOAD)"] = {"threads": threads, "env": {"LD_PRELOAD": jem}}
    else:
        skipped["jemalloc"] = "libjemalloc.so.2 not installed (apt-get install libjemalloc2)"
    if shutil.which("setarch"):
        out[f"{t}, ASLR off (setarch -R)"] = {"threads": threads, "prefix": ["setarch", "-R"]}
    else:
        skipped["ASLR off"] = "setarch not found"
    if shutil.which("taskset"):
        out["threads=1, pinned to vCPU 0 (taskset)"] = {"threads": 1, "prefix": ["taskset", "-c", "0"]}
    else:
        skipped["taskset"] = "taskset not found"
    return out, skipped


def run_once(runtime: str, model: str, s: dict, warm: float, secs: float, script: str) -> float | str:
    """The process's median in ms, or the last line of its error."""
    env = dict(s.get("fixed_env") or os.environ)
    env.update(s.get("env") or {})
    cmd = [*(s.get("prefix") or []), sys.executable, script, runtime, model, str(s["threads"]), str(warm), str(secs),
           s.get("spin", "1"), s.get("pin", "default")]
    if "fixed_env" in s:
        env["PFDEPLOY_PAD"] = "x" * (4096 - sum(len(k) + len(v) + 2 for k, v in env.items()) % 4096)
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if r.returncode != 0:
        lines = (r.stderr or r.stdout).strip().splitlines()
        return lines[-1] if lines else f"exit {r.returncode}"
    return float(r.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--out", required=True, help="where the JSON goes (nothing else is written)")
    ap.add_argument("--processes", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--runtime", choices=("onnxruntime", "openvino"), default="onnxruntime")
    a = ap.parse_args(argv)
    cfg, skipped = settings(a.threads, a.runtime)
    with tempfile.TemporaryDirectory(prefix="noise-probe-") as tmp:
        script = str(Path(tmp) / "loop.py")
        Path(script).write_text(LOOP)
        meds: dict[str, list] = {k: [] for k in cfg}
        for i in range(a.processes):
            for name, s in cfg.items():
                meds[name].append(run_once(a.runtime, a.model, s, a.warmup, a.seconds, script))
            print(f"round {i + 1}/{a.processes}", file=sys.stderr)
    report = {}
    for name, vals in meds.items():
        ok = [v for v in vals if isinstance(v, float)]
        errors = sorted({v for v in vals if isinstance(v, str)})
        logs = [math.log(v) for v in ok]
        report[name] = {"medians_ms": [round(v, 3) for v in ok], "failed": len(vals) - len(ok), "errors": errors[:3],
                        "process_sd": round(statistics.stdev(logs), 4) if len(logs) > 1 else None,
                        "median_ms": round(statistics.median(ok), 3) if ok else None}
        print(f"{name:45s} process sd {report[name]['process_sd']}  median {report[name]['median_ms']} ms")
    tmp_out = Path(a.out).with_name(Path(a.out).name + ".tmp")
    for name, why in skipped.items():
        print(f"{name:45s} skipped: {why}")
    tmp_out.write_text(json.dumps({"model": a.model, "runtime": a.runtime, "threads": a.threads,
                                   "processes": a.processes, "seconds": a.seconds, "settings": report,
                                   "skipped": skipped}, indent=2))
    os.replace(tmp_out, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
