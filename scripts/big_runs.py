"""Write two synthetic run files of many cases (base.json, head.json) for timing `pfdeploy compare`
at fleet scale (issue 32, item 5). Writes only into --out, which must exist or is created.

    python scripts/big_runs.py --out /tmp/big --cases 10000
    /usr/bin/time -v pfdeploy compare /tmp/big/base.json /tmp/big/head.json --json /tmp/big/cmp.json

Each case is measured like a real bench row: `--processes` worker processes of `--rounds` rounds of
`--per-round` samples (process levels spread `--process-sd` in log, round levels `--drift`, skewed
per-sample noise), with `processes`, `process_rounds`, `process_sd`, `sample_rounds` as bench stores
them. Case keys vary model, backend, precision, batch and threads, so cases group by runtime as in a
fleet. HEAD: every case slower by `--shift`, and `--regress` cases (evenly spread) by `--factor` more.
`make_docs` is the same generator for tests (tests/test_compare_scale.py)."""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

BACKENDS = ("onnxruntime", "openvino", "torch", "tensorrt", "torch-compile")
PRECISIONS = ("fp32", "fp16", "int8", "bf16")


def _case_fields(i: int) -> dict:
    backend = BACKENDS[i % len(BACKENDS)]
    precision = PRECISIONS[(i // len(BACKENDS)) % len(PRECISIONS)]
    rest = i // (len(BACKENDS) * len(PRECISIONS))
    batch = (1, 8)[rest % 2]
    threads = (2, 4)[(rest // 2) % 2]
    model = f"m{rest // 4:05d}"
    fields = {"model": model, "family": "conv", "weights": "synthetic:0", "backend": backend, "device": "cpu",
              "precision": precision, "batch": batch, "threads": threads, "scenario": "latency"}
    fields["case_key"] = "|".join(str(fields[k]) for k in ("model", "weights", "backend", "device", "precision",
                                                           "batch", "threads", "scenario"))
    return fields


def _row(i: int, rng: np.random.Generator, factor: float, processes: int, rounds: int, per_round: int,
         process_sd: float, drift: float, noise: float) -> dict:
    median_ms = 2.0 + 60.0 * ((i * 7919) % 1000) / 1000.0
    levels = np.exp(process_sd * rng.standard_normal(processes))                      # one per process
    round_levels = np.repeat(levels, rounds) * np.exp(drift * rng.standard_normal(processes * rounds))
    x = np.repeat(round_levels, per_round) * (1.0 + noise * np.abs(rng.standard_normal(processes * rounds * per_round)))
    samples = np.maximum(1, (x * median_ms * factor * 1e6).astype(np.int64))
    round_ids = np.repeat(np.arange(processes * rounds), per_round)
    ms = samples / 1e6
    p50 = float(np.median(ms))
    row = dict(_case_fields(i), status="ok", error=None, clock="host", n=int(samples.size), p50_ms=p50,
               p50_ci_low_ms=p50 * 0.99, p50_ci_high_ms=p50 * 1.01, min_ms=float(ms.min()), max_ms=float(ms.max()),
               mean_ms=float(ms.mean()), std_ms=float(ms.std()), cv=float(ms.std() / ms.mean()),
               ci_method="processes" if processes > 1 else "rounds", ci_units=processes * rounds,
               round_size=per_round, samples_ns=samples.tolist(), sample_rounds=round_ids.tolist())
    if processes > 1:
        proc_meds = [float(np.median(ms[p * rounds * per_round:(p + 1) * rounds * per_round])) for p in range(processes)]
        row.update(processes=processes, process_sd=float(np.std(np.log(proc_meds), ddof=1)),
                   process_rounds=[list(range(p * rounds, (p + 1) * rounds)) for p in range(processes)])
    return row


def make_docs(cases: int, seed: int = 0, processes: int = 3, rounds: int = 10, per_round: int = 10,
              process_sd: float = 0.01, drift: float = 0.01, noise: float = 0.02, shift: float = 1.0,
              regress: int = 0, factor: float = 1.2) -> tuple[dict, dict]:
    """(base, head) run documents of `cases` cases each (see the module docstring)."""
    docs = []
    slow = set(range(0, cases, max(1, cases // regress))[:regress]) if regress > 0 else set()
    for side in (0, 1):
        rng = np.random.default_rng([seed, side])
        results = [_row(i, rng, (shift * (factor if i in slow else 1.0)) if side else 1.0, processes, rounds,
                        per_round, process_sd, drift, noise) for i in range(cases)]
        run = {"id": f"big{side}{seed:04d}{cases:08d}", "tag": ("base", "head")[side], "git_commit": "0" * 40,
               "suite": "synthetic", "suite_version": "1", "machine_id": "m-big", "status": "finished",
               "started_at": f"2026-12-0{side + 1}T00:00:00+00:00", "finished_at": f"2026-12-0{side + 1}T01:00:00+00:00",
               "config": {}, "machine": {}}
        docs.append({"format": "pfdeploy-run", "version": 1, "run": run, "results": results})
    return docs[0], docs[1]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="directory for base.json and head.json (created if missing)")
    ap.add_argument("--cases", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--processes", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=10, help="rounds per process")
    ap.add_argument("--per-round", type=int, default=10)
    ap.add_argument("--shift", type=float, default=1.0, help="factor on every head case")
    ap.add_argument("--regress", type=int, default=10, help="head cases slower by --factor")
    ap.add_argument("--factor", type=float, default=1.2)
    a = ap.parse_args(argv)
    if a.cases < 1 or a.processes < 1 or a.rounds < 1 or a.per_round < 1 or not math.isfinite(a.shift) or a.shift <= 0:
        ap.error("--cases, --processes, --rounds, --per-round must be >= 1 and --shift > 0")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    base, head = make_docs(a.cases, a.seed, a.processes, a.rounds, a.per_round, shift=a.shift, regress=a.regress,
                           factor=a.factor)
    for name, doc in (("base.json", base), ("head.json", head)):
        (out / name).write_text(json.dumps(doc) + "\n", encoding="utf-8")
        print(out / name)


if __name__ == "__main__":
    main()
