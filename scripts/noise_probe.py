"""What gives a fresh process its level? (issue 29 item 5, docs/ab.md "Threads on a small VM")

Times one ONNX model in fresh processes under several process settings and reports, per setting,
the spread between processes: the sd of the log of each process's median (what `pfdeploy ab`'s
blocks see as process level). Settings are interleaved (A, B, C, A, B, C, ...) so that a machine
that changes state over time touches every setting alike.

    python scripts/noise_probe.py MODEL.onnx --out noise.json [--processes 10] [--seconds 2]

Settings: threads 1 / 2 (ORT intra-op), MALLOC_ARENA_MAX=1, a fixed environment and argv size,
ASLR off (`setarch -R`, where the kernel allows it), the process pinned to vCPU 0 (`taskset`,
where present), ORT's own thread pinning off (session.intra_op.allow_spinning=0). What a setting
needs and the machine lacks is reported as skipped, with the reason. Nothing is written but --out.
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
import sys, time, numpy as np, onnxruntime as ort
path, threads, warm, secs, spin = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
so = ort.SessionOptions(); so.intra_op_num_threads = threads; so.inter_op_num_threads = 1
so.add_session_config_entry("session.intra_op.allow_spinning", spin)
s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
i = s.get_inputs()[0]
shape = [d if isinstance(d, int) else 1 for d in i.shape]
x = {i.name: np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
t0 = time.perf_counter()
while time.perf_counter() - t0 < warm: s.run(None, x)
out = []; t0 = time.perf_counter()
while time.perf_counter() - t0 < secs:
    a = time.perf_counter_ns(); s.run(None, x); out.append(time.perf_counter_ns() - a)
out.sort(); print(out[len(out) // 2] / 1e6)
"""


def settings(threads: int) -> dict[str, dict]:
    base_env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "PYTHONPATH", "VIRTUAL_ENV")}
    out = {
        f"threads={threads} (baseline)": {"threads": threads},
        "threads=1": {"threads": 1},
        f"threads={threads}, MALLOC_ARENA_MAX=1": {"threads": threads, "env": {"MALLOC_ARENA_MAX": "1"}},
        f"threads={threads}, fixed env and argv": {"threads": threads, "fixed_env": base_env},
        f"threads={threads}, spinning off": {"threads": threads, "spin": "0"},
    }
    if shutil.which("setarch"):
        out[f"threads={threads}, ASLR off (setarch -R)"] = {"threads": threads, "prefix": ["setarch", "-R"]}
    if shutil.which("taskset"):
        out["threads=1, pinned to vCPU 0 (taskset)"] = {"threads": 1, "prefix": ["taskset", "-c", "0"]}
    return out


def run_once(model: str, s: dict, warm: float, secs: float, script: str) -> float | None:
    env = dict(s.get("fixed_env") or os.environ)
    env.update(s.get("env") or {})
    cmd = [*(s.get("prefix") or []), sys.executable, script, model, str(s["threads"]), str(warm), str(secs),
           s.get("spin", "1")]
    if "fixed_env" in s:
        env["PFDEPLOY_PAD"] = "x" * (4096 - sum(len(k) + len(v) + 2 for k, v in env.items()) % 4096)
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if r.returncode != 0:
        return None
    return float(r.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--out", required=True, help="where the JSON goes (nothing else is written)")
    ap.add_argument("--processes", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    a = ap.parse_args(argv)
    cfg = settings(a.threads)
    with tempfile.TemporaryDirectory(prefix="noise-probe-") as tmp:
        script = str(Path(tmp) / "loop.py")
        Path(script).write_text(LOOP)
        meds: dict[str, list] = {k: [] for k in cfg}
        for i in range(a.processes):
            for name, s in cfg.items():
                meds[name].append(run_once(a.model, s, a.warmup, a.seconds, script))
            print(f"round {i + 1}/{a.processes}", file=sys.stderr)
    report = {}
    for name, vals in meds.items():
        ok = [v for v in vals if v]
        logs = [math.log(v) for v in ok]
        report[name] = {"medians_ms": [round(v, 3) for v in ok], "failed": len(vals) - len(ok),
                        "process_sd": round(statistics.stdev(logs), 4) if len(logs) > 1 else None,
                        "median_ms": round(statistics.median(ok), 3) if ok else None}
        print(f"{name:45s} process sd {report[name]['process_sd']}  median {report[name]['median_ms']} ms")
    tmp_out = Path(a.out).with_name(Path(a.out).name + ".tmp")
    tmp_out.write_text(json.dumps({"model": a.model, "processes": a.processes, "seconds": a.seconds,
                                   "settings": report}, indent=2))
    os.replace(tmp_out, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
