#!/usr/bin/env python
"""Cross-check: LoadGen's single-stream p50 against pfdeploy's own `latency` p50 (issue 31).

On one artifact at batch 1, in fresh bench worker processes (one per pair), each worker loads the
`latency` runner (the runner `--scenario single-stream` uses), warms it up, then alternates A, B:
A = one pfdeploy measurement round (the timing loop of every case, `Runner.timed`) of `--seconds`,
B = one LoadGen single-stream test of `--seconds` through pfdeploy's SUT. Adjacent turns in one
process share the process's level and the machine's load of those seconds, so their ratio is the
difference between the two ways of measuring, not the machine's drift.

    .venv/bin/python scripts/loadgen_crosscheck.py --model pf_resnet50_max --backend openvino \
        [--pairs 3] [--seconds 5] [--processes 2] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="pf_resnet50_max")
    ap.add_argument("--backend", default="openvino")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json")
    a = ap.parse_args(argv)

    import numpy as np

    from pfdeploy.backends import get_backend
    from pfdeploy.backends.case import CaseSpec
    from pfdeploy.bench.config import StopRule
    from pfdeploy.bench.worker import WorkerProcess
    from pfdeploy.devices import physical_cores
    from pfdeploy.exporters import get_artifact
    from pfdeploy.weights import synthetic_images
    from pfdeploy.zoo import get_spec

    backend = get_backend(a.backend)
    art = get_artifact(a.model, **backend.artifact_request("fp32", 1))
    tmp = Path(tempfile.mkdtemp(prefix="pfdeploy-lgx-"))
    ms = get_spec(a.model)
    x = tmp / "x.npy"
    np.save(x, np.ascontiguousarray(synthetic_images(1, ms.input_size, ms.mean, ms.std, seed=0).numpy(),
                                    dtype=np.float32))
    spec = CaseSpec(model=a.model, backend=a.backend, threads=a.threads or physical_cores(), scenario="latency")
    pairs = []
    for proc in range(a.processes):
        w = WorkerProcess(spec.label)
        try:
            w.call("load", timeout_s=600, case=spec.to_dict(), inputs=str(x), model_file=str(art.model_file))
            warm = w.call("warmup", rule=StopRule().to_dict(), max_time_s=10)["samples_ns"]
            per = statistics.median(warm) / 1e9
            for i in range(a.pairs):
                own = w.call("measure", iters=max(10, int(a.seconds / per)), rewarm=1)["samples_ns"]
                lg = w.call("loadgen", settings={"scenario": "single-stream", "min_duration_s": a.seconds},
                            outdir=str(tmp / f"lg_{proc}_{i}"), warmup_s=0.2)["record"]
                p50_own = statistics.median(own) / 1e6
                p50_lg = lg["percentiles_ms"]["p50"]
                pairs.append({"process": proc + 1, "pair": i + 1, "pfdeploy_p50_ms": p50_own, "loadgen_p50_ms": p50_lg,
                              "ratio": p50_lg / p50_own, "loadgen_validity": lg["validity"],
                              "loadgen_queries": lg["queries"], "pfdeploy_n": len(own)})
                print(f"process {proc + 1} pair {i + 1}: pfdeploy p50 {p50_own:.2f} ms, LoadGen p50 {p50_lg:.2f} ms, "
                      f"ratio {p50_lg / p50_own:.3f}", flush=True)
        finally:
            try:
                w.close()
            except Exception:  # noqa: BLE001
                w.kill()
    ratios = [p["ratio"] for p in pairs]
    out = {"model": a.model, "backend": a.backend, "artifact": str(art.model_file), "pairs": pairs,
           "median_ratio": statistics.median(ratios), "ratio_range": [min(ratios), max(ratios)]}
    print(f"LoadGen single-stream p50 / pfdeploy latency p50: median {out['median_ratio']:.3f} "
          f"[{min(ratios):.3f}, {max(ratios):.3f}] over {len(ratios)} adjacent pairs")
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
