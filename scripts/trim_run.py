#!/usr/bin/env python
"""Trim an exported run file (pfdeploy bench --json) to a small golden fixture for tests: the run's
identity, machine id, load and status; per result the case fields, status, error, p50 and CI, and
the raw samples with their rounds (all of them: the statistics are recomputed from them). Drops
runner descriptions, manifests and tool listings.

    python scripts/trim_run.py RUN.json OUT.json
"""
import json
import sys

RUN_KEYS = ("id", "tag", "git_commit", "suite", "suite_version", "machine_id", "status", "started_at",
            "finished_at", "loadavg_before", "loadavg_after", "pfdeploy_version")
ROW_KEYS = ("case_key", "model", "family", "weights", "backend", "device", "precision", "batch", "threads",
            "scenario", "status", "error", "n", "p50_ms", "p50_ci_low_ms", "p50_ci_high_ms", "cv", "clock",
            "ci_method", "ci_units", "round_size", "cpu_contention", "samples_ns", "sample_rounds")


def trim(doc: dict) -> dict:
    run = {k: doc["run"].get(k) for k in RUN_KEYS}
    cfg = doc["run"].get("config") or {}
    run["config"] = {k: cfg.get(k) for k in ("models", "backends", "threads", "rule", "interleave")}
    run["machine"] = {"cpu": (doc["run"].get("machine") or {}).get("cpu")}
    results = [{k: r.get(k) for k in ROW_KEYS} for r in doc["results"]]
    return {"format": doc.get("format", "pfdeploy-run"), "version": doc.get("version", 1), "run": run,
            "results": results}


if __name__ == "__main__":
    src, dst = sys.argv[1], sys.argv[2]
    with open(src) as f:
        doc = json.load(f)
    with open(dst, "w") as f:
        json.dump(trim(doc), f, separators=(",", ":"))
        f.write("\n")
