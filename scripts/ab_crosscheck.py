"""The runtime alone, alternately: the check of a `pfdeploy ab` of two interpreters (issue 29).

Runs a bare ONNX Runtime loop (the runtime's own Python API, no pfdeploy) on one ONNX file in fresh
processes of two interpreters, alternating A, B, B, A, ... (ABBA), and reports head / base as the
geometric mean of the pair ratios with a 95% t interval over pairs. ONNX Runtime's own
`onnxruntime_perf_test` is not part of its Python wheel, so its Python API in a minimal loop is the
runtime's own tool here.

    python scripts/ab_crosscheck.py BASE_PYTHON HEAD_PYTHON MODEL.onnx --out check.json \\
        [--pairs 10] [--threads 1] [--seconds 2]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from noise_probe import LOOP  # noqa: E402 - the same bare loop


def one(python: str, script: str, model: str, threads: int, warm: float, secs: float) -> float:
    r = subprocess.run([python, script, model, str(threads), str(warm), str(secs), "1"], capture_output=True,
                       text=True, timeout=600)
    if r.returncode != 0:
        raise SystemExit(f"{python}: {r.stderr.strip().splitlines()[-1:]}")
    return float(r.stdout.strip().splitlines()[-1])


def version(python: str) -> str:
    return subprocess.run([python, "-c", "import onnxruntime; print(onnxruntime.__version__)"], capture_output=True,
                          text=True).stdout.strip()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base")
    ap.add_argument("head")
    ap.add_argument("model")
    ap.add_argument("--out", required=True)
    ap.add_argument("--pairs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    a = ap.parse_args(argv)
    from scipy.stats import t

    with tempfile.TemporaryDirectory(prefix="ab-crosscheck-") as tmp:
        script = str(Path(tmp) / "loop.py")
        Path(script).write_text(LOOP)
        rows = []
        for i in range(a.pairs):
            order = ("base", "head") if i % 2 == 0 else ("head", "base")
            got = {side: one(getattr(a, side), script, a.model, a.threads, a.warmup, a.seconds) for side in order}
            rows.append(got)
            print(f"pair {i + 1}: base {got['base']:.3f} ms, head {got['head']:.3f} ms", file=sys.stderr)
    logs = [math.log(r["head"] / r["base"]) for r in rows]
    m = statistics.mean(logs)
    se = statistics.stdev(logs) / math.sqrt(len(logs)) if len(logs) > 1 else float("nan")
    q = float(t.ppf(0.975, len(logs) - 1)) if len(logs) > 1 else float("nan")
    out = {"base": a.base, "head": a.head, "base_onnxruntime": version(a.base), "head_onnxruntime": version(a.head),
           "model": a.model, "threads": a.threads, "pairs": rows, "ratio": math.exp(m),
           "ci95": [math.exp(m - q * se), math.exp(m + q * se)]}
    tmp_out = Path(a.out).with_name(Path(a.out).name + ".tmp")
    tmp_out.write_text(json.dumps(out, indent=2))
    os.replace(tmp_out, a.out)
    print(f"head / base {out['ratio']:.4f} [{out['ci95'][0]:.4f}, {out['ci95'][1]:.4f}] over {len(rows)} pairs "
          f"(onnxruntime {out['base_onnxruntime']} -> {out['head_onnxruntime']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
