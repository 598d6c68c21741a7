"""LoadGen's logs read into the row's `loadgen` record.

LoadGen writes `mlperf_log_summary.txt` (human text ending in "Result is : VALID / INVALID" and the
reasons) and `mlperf_log_detail.txt` (one `:::MLLOG {json}` line per key). The verdict, its
reasons, the percentiles and the effective settings are read from the detail log's keys; both
texts are kept whole in the record, so anyone can read LoadGen's own verdict.
"""
from __future__ import annotations

import json
import re

PREFIX = ":::MLLOG "
_PCT = re.compile(r"^result_(\d+(?:\.\d+)?)_percentile_latency_ns$")
_QPCT = re.compile(r"^result_(\d+(?:\.\d+)?)_percentile_per_query_latency_ns$")  # multistream: per query


def detail_keys(detail: str) -> dict:
    """{key: value} of the detail log's MLLOG lines (the last value of a repeated key); the
    `errors` and `warnings` keys list the messages LoadGen flagged as such."""
    out: dict = {}
    errors, warnings = [], []
    for line in detail.splitlines():
        if not line.startswith(PREFIX):
            continue
        try:
            entry = json.loads(line[len(PREFIX):])
        except ValueError:
            continue
        key, value = entry.get("key"), entry.get("value")
        meta = entry.get("metadata") or {}
        if meta.get("is_error"):
            errors.append(f"{key}: {value}")
        elif meta.get("is_warning"):
            warnings.append(f"{key}: {value}")
        if key:
            out[key] = value
    out["errors"], out["warnings"] = errors, warnings
    return out


def summary_reasons(summary: str) -> list[str]:
    """The summary's failed checks ("Min duration satisfied : NO") and its recommendations."""
    reasons, recommend = [], False
    for raw in summary.splitlines():
        line = raw.strip()
        if line.startswith("Recommendations"):
            recommend = True
            continue
        if recommend:
            if line.startswith("*"):
                reasons.append(line.lstrip("* ").strip())
                continue
            recommend = False
        if re.search(r"satisfied\s*:\s*NO\b", line):
            reasons.append(line)
    return reasons


def _ms(ns) -> float | None:
    return None if ns is None else float(ns) / 1e6


def record(summary: str, detail: str) -> dict:
    """The verdict and figures of one LoadGen test (both logs kept whole)."""
    k = detail_keys(detail)
    percentiles, sample_pct = {}, {}
    for key, value in k.items():
        m, mq = _PCT.match(key), _QPCT.match(key)
        if m:
            sample_pct[f"p{float(m.group(1)):g}"] = _ms(value)
        if mq:
            percentiles[f"p{float(mq.group(1)):g}"] = _ms(value)
    per_query = bool(percentiles)  # multistream: the query's latency (its last sample) is the figure
    percentiles = percentiles or sample_pct
    validity = k.get("result_validity")
    if validity is None:  # an older LoadGen: the summary line
        m = re.search(r"Result is\s*:\s*(\w+)", summary)
        validity = m.group(1) if m else None
    reasons = summary_reasons(summary) if validity != "VALID" else []
    early = k.get("early_stopping_result")
    if early and validity != "VALID":
        reasons.append("early stopping: " + " ".join(str(early).replace("*", " ").split()))
    effective = {key[len("effective_"):]: v for key, v in k.items() if key.startswith("effective_")}
    return {
        "validity": validity, "reasons": reasons,
        # samples completed per second: server, offline; single-stream: with LoadGen's overhead
        "completed_qps": next((k[q] for q in ("result_completed_samples_per_sec", "result_samples_per_second",
                                              "result_qps_with_loadgen_overhead") if k.get(q) is not None), None),
        "qps_without_loadgen_overhead": k.get("result_qps_without_loadgen_overhead"),
        "scheduled_qps": k.get("result_scheduled_samples_per_sec"),
        "queries": k.get("result_query_count"), "over_latency_queries": k.get("result_overlatency_query_count"),
        "min_ms": _ms(k.get("result_min_query_latency_ns" if per_query else "result_min_latency_ns")),
        "max_ms": _ms(k.get("result_max_query_latency_ns" if per_query else "result_max_latency_ns")),
        "mean_ms": _ms(k.get("result_mean_query_latency_ns" if per_query else "result_mean_latency_ns")),
        "percentiles_ms": percentiles, "latency_of": "query" if per_query else "sample",
        **({"sample_percentiles_ms": sample_pct} if per_query else {}),
        # single-stream / multistream: the early-stopping estimate of the target percentile
        "early_stopping_ms": _ms(k.get("early_stopping_latency_ss") or k.get("early_stopping_latency_ms")),
        "checks": {name: k.get(f"result_{name}_met") for name in ("perf_constraints", "min_duration", "min_queries")}
        | {"early_stopping": k.get("early_stopping_met")},
        "effective": effective, "loadgen_version": k.get("loadgen_version"),
        "errors": k["errors"], "warnings": k["warnings"],
        "summary": summary, "detail": detail,
    }
