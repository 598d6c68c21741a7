"""The typed result (pfdeploy/result.py): one definition for the engine, the store, the run file and
every reader. Every field a real run file carries is declared in the published schema; the edge
(Result.from_row / to_row) is strict for what a user hands over and lenient for stored rows."""
from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pydantic
import pytest

from pfdeploy.result import Result, Warn, classify_warning

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "docs" / "run-file.schema.json"


def _real_run(tmp_path):
    from pfdeploy.bench.config import CaseSpec, StopRule
    from pfdeploy.bench.engine import BenchConfig, Engine, Prepared
    from pfdeploy.store import open_store

    x = tmp_path / "x.npy"
    np.save(x, np.zeros((1, 3, 4, 4), np.float32))
    rule = StopRule(min_iters=10, min_time_s=0.02, max_time_s=0.3, warmup_iters=3, warmup_time_s=0.01,
                    target_ci=0.5, min_samples=10, processes=2, max_processes=2)
    store = open_store(tmp_path / "r.db")
    cases = [(CaseSpec(model=m, backend="fake", threads=1, options={"work_us": 200}),
              Prepared(inputs=str(x), family="conv", baselines=("b",))) for m in ("a", "b")]
    out = Engine(BenchConfig(models=(), rule=rule, round_time_s=0.005), store, store_url=store.url).run(
        prepared_cases=cases)
    return store, out


def test_every_field_of_a_real_run_file_is_declared_in_the_published_schema(tmp_path):
    store, out = _real_run(tmp_path)
    doc = store.export_run(out.run_id)
    schema = json.loads(SCHEMA.read_text())
    declared = set(schema["$defs"]["Result"]["properties"])
    for res in doc["results"]:
        assert set(res) <= declared, sorted(set(res) - declared)
        for k in ("processes", "process_sd", "ci_df", "ci_method", "process_rounds", "process_load_ms",
                  "cpu_contention", "baselines", "warnings"):
            assert k in res
    typed = store.results(out.run_id)
    assert all(isinstance(r, Result) and r.model_extra == {} for r in typed)  # nothing travels undeclared
    assert all(len(r.process_rounds) == r.processes == 2 for r in typed)
    store.close()


def test_the_result_is_frozen_and_round_trips_through_its_edge():
    r = Result.from_row({"case_key": "k", "status": "ok", "p50_ms": 1.5, "process_rounds": [[1, 2], [3]],
                         "warnings": ["noisy: coefficient of variation 7.0% > 5%"], "plugin_field": {"x": 1}})
    with pytest.raises(pydantic.ValidationError):
        r.p50_ms = 2.0
    assert r.warnings[0].kind == "noisy" and r.warnings[0].values == {"cv": "7.0", "limit": "5"}
    assert r.extras == {"plugin_field": {"x": 1}}
    back = Result.from_row(r.to_row())
    assert back == r and r.but(p50_ms=2.0).p50_ms == 2.0


def test_a_user_given_row_of_the_wrong_shape_is_refused_and_a_stored_one_degrades():
    bad = {"case_key": "k", "status": "ok", "process_rounds": "abc", "p50_ms": 1.0}
    with pytest.raises(pydantic.ValidationError):
        Result.from_row(bad)
    said = []
    r = Result.from_row(bad, warn=lambda field, msg: said.append(field))
    assert r.process_rounds is None and r.p50_ms == 1.0 and said == ["process_rounds"]


def test_old_warning_texts_are_classified():
    assert classify_warning("stopped at 3 worker processes (--max-processes) before ...")[0] == "max_processes"
    assert classify_warning("something new")[0] == "other"
    assert Warn.model_validate("flush-to-zero is off (read back from the runtime)").kind == "flush_denormal"


# fields only a result has (a manifest, a run record, a worker's reply or tuned.json has none of them;
# warnings, load_ms, peak_rss_mb or accuracy are also keys of a worker's reply and a verify record)
RESULT_ONLY = {"p50_ms", "p50_ci_low_ms", "p50_ci_high_ms", "p90_ms", "p95_ms", "p99_ms", "min_ms", "max_ms",
               "mean_ms", "std_ms", "cv", "items_per_s", "processes", "process_sd", "ci_df", "ci_method",
               "ci_units", "process_rounds", "process_load_ms", "process_first_ms", "round_size", "cpu_contention",
               "device_p50_ms", "device_p50_ci_low_ms", "device_p50_ci_high_ms", "host_p50_ms", "device_n",
               "case_key", "variant", "tune", "ab", "sample_rounds", "baselines", "artifact_sha256"}
EDGE = ("pfdeploy/store/", "pfdeploy/runfile.py", "pfdeploy/migrations/", "pfdeploy/result/", "pfdeploy/results.py")
PRODUCT = ("pfdeploy", "bench", "backends", "exporters", "devices")


def string_reads(root: Path = ROOT) -> dict[str, int]:
    """Subscripts x["f"] and x.get/pop/setdefault("f") with a result-only field name as a constant,
    per product file outside the store / run-file edge (issue 30's count)."""
    out: dict[str, int] = {}
    for d in PRODUCT:
        for p in (root / d).rglob("*.py"):
            rel = str(p.relative_to(root))
            if rel.startswith(EDGE):
                continue
            n = 0
            for node in ast.walk(ast.parse(p.read_text())):
                key = None
                if (isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load)
                        and isinstance(node.slice, ast.Constant)):  # reads only, not a dict being written
                    key = node.slice.value
                elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                      and node.func.attr in ("get", "pop", "setdefault") and node.args
                      and isinstance(node.args[0], ast.Constant)):
                    key = node.args[0].value
                n += isinstance(key, str) and key in RESULT_ONLY
            if n:
                out[rel] = n
    return out


def test_product_code_reads_results_by_attribute():
    """Issue 30: at most 30 string reads of result fields in product code (a JSON document being
    written, a worker's reply or tuned.json's measured record may still be indexed)."""
    reads = string_reads()
    assert sum(reads.values()) <= 30, sorted(reads.items(), key=lambda kv: -kv[1])
