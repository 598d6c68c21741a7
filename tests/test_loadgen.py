"""MLPerf LoadGen driving pfdeploy's runners (issue 31): a real LoadGen test of a second or so on a
tiny ONNX model through each concurrent runtime, its logs read into the record, the engine's
LoadGen rows through the store, and the settings. No duration is asserted."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("mlperf_loadgen")

from pfdeploy.backends import get_backend  # noqa: E402
from pfdeploy.backends.case import CaseSpec  # noqa: E402
from pfdeploy.bench.loadgen.logs import record, summary_reasons  # noqa: E402
from pfdeploy.bench.loadgen.settings import LoadGenSettings, parse_ms  # noqa: E402
from pfdeploy.errors import UsageError  # noqa: E402

X = np.random.default_rng(0).normal(size=(1, 3, 8, 8)).astype(np.float32)


def _runner(backend, scenario, tiny_onnx):
    pytest.importorskip(backend)
    return get_backend(backend).load(CaseSpec(model="tiny", backend=backend, scenario=scenario, threads=1), X,
                                     model_file=str(tiny_onnx))


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_runner_submit_keeps_requests_in_flight_and_hands_outputs_back(backend, tiny_onnx):
    import threading

    r = _runner(backend, "server", tiny_onnx)
    try:
        assert r.in_flight() >= 1
        got, done = [], threading.Event()

        def cb(out, err):
            got.append((out, err))
            if len(got) == 4:
                done.set()

        for _ in range(4):
            r.submit(X, cb)
        assert done.wait(30)
        ref = r.outputs(X)
        for out, err in got:
            assert err is None and np.allclose(np.asarray(out, np.float32).reshape(ref.shape), ref, atol=1e-5)
    finally:
        r.close()


def test_latency_runner_has_no_concurrent_requests(tiny_onnx):
    r = _runner("onnxruntime", "latency", tiny_onnx)
    try:
        assert r.in_flight() == 0
        with pytest.raises(Exception, match="several requests in flight"):
            r.submit(X, lambda *a: None)
    finally:
        r.close()


@pytest.mark.parametrize("backend,scenario", [("onnxruntime", "server"), ("openvino", "server"),
                                              ("onnxruntime", "single-stream"), ("openvino", "offline"),
                                              ("onnxruntime", "multistream")])
def test_real_loadgen_test_on_a_tiny_model(backend, scenario, tiny_onnx, tmp_path):
    from pfdeploy.bench.loadgen.run import run_test

    r = _runner(backend, scenario, tiny_onnx)
    try:
        extra = {"target_qps": 400.0, "latency_bound_ms": 50.0} if scenario == "server" else {}
        reply = run_test(r, {"scenario": scenario, "min_duration_s": 0.5, **extra}, str(tmp_path / "lg"),
                         warmup_s=0.2)
    finally:
        r.close()
    rec = reply["record"]
    assert "MLPerf Results Summary" in rec["summary"] and ":::MLLOG" in rec["detail"]
    assert rec["validity"] in ("VALID", "INVALID") and f"Result is : {rec['validity']}" in rec["summary"]
    assert rec["queries"] >= 1 and rec["sut_samples_per_s"] > 0
    assert scenario == "multistream" or rec["completed_qps"] > 0  # LoadGen gives multistream no rate
    assert rec["percentiles_ms"]["p50"] <= rec["percentiles_ms"]["p99"]
    assert rec["loadgen_version"] and rec["effective"]
    assert len(reply["samples_ns"]) >= 1 and all(v > 0 for v in reply["samples_ns"])
    if scenario == "server":
        # LoadGen issued at least the early-stopping minimum; the SUT answered every query
        assert rec["queries"] >= 460 and rec["sut_queries"] == rec["queries"]
        assert rec["effective"]["target_qps"] == pytest.approx(400.0)
    if scenario == "multistream":  # 8 samples per query; the query's latency is the figure
        assert rec["latency_of"] == "query" and rec["effective"]["samples_per_query"] == 8
        assert rec["issued"] == 8 * rec["queries"]
    if rec["validity"] == "INVALID":
        assert rec["reasons"]


def _images(folder, n):
    from PIL import Image

    folder.mkdir()
    rng = np.random.default_rng(3)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (40 + i, 50, 3), dtype=np.uint8)).save(folder / f"im{i}.png")
    return folder


def test_loadgen_samples_from_images_are_decoded_once_per_model(tmp_path):
    """--images: the QSL's samples are the folder's first images, preprocessed per the model's spec
    by the parent; the worker loads them shaped and typed like its own input, or refuses them."""
    from pfdeploy.bench.loadgen.sut import file_samples, image_samples
    from pfdeploy.errors import UserError
    from pfdeploy.zoo import get_spec

    spec = get_spec("resnet50")
    x, info = image_samples(_images(tmp_path / "imgs", 3), spec, 16)
    assert x.shape == (3, *spec.input_size) and x.dtype == np.float32
    assert info["source"] == "images" and info["count"] == 3 and len(info["sha256"]) == 64
    assert abs(float(x.mean())) < 3 and float(x.std()) > 0.1  # normalised pixels, not raw bytes
    two, _ = image_samples(tmp_path / "imgs", spec, 2)  # the first n, in path order
    np.testing.assert_array_equal(two, x[:2])
    np.save(tmp_path / "qsl.npy", x)
    got = file_samples(str(tmp_path / "qsl.npy"), np.zeros((1, *spec.input_size), np.float16))
    assert len(got) == 3 and got[1].shape == (1, *spec.input_size) and got[1].dtype == np.float16
    with pytest.raises(UserError, match="do not fit the model's input"):
        file_samples(str(tmp_path / "qsl.npy"), np.zeros((1, 3, 8, 8), np.float32))


def test_real_loadgen_test_issues_the_image_samples(tiny_onnx, tmp_path):
    from pfdeploy.bench.loadgen.run import run_test

    samples = np.random.default_rng(5).normal(size=(5, 3, 8, 8)).astype(np.float32)
    np.save(tmp_path / "qsl.npy", samples)
    r = _runner("onnxruntime", "offline", tiny_onnx)
    try:
        reply = run_test(r, {"scenario": "offline", "min_duration_s": 0.3}, str(tmp_path / "lg"), warmup_s=0.1,
                         samples_file=str(tmp_path / "qsl.npy"))
    finally:
        r.close()
    rec = reply["record"]
    assert "Result is :" in rec["summary"] and rec["issued"] >= 1
    import re

    held = re.findall(r'"key": "effective_performance_sample_count", "value": (\d+)', rec["detail"])
    assert held == ["5"], held  # LoadGen's QSL held the 5 image samples


def test_loadgen_overhead_of_a_sut_that_completes_at_once():
    from pfdeploy.bench.loadgen.overhead import measure_overhead

    out = measure_overhead(200.0, seconds=0.3)
    assert "error" not in out, out
    assert out["offline_qps"] > 1000  # the generator alone drives far more than any model here
    by_rate = {s["target_qps"]: s for s in out["server"]}
    assert set(by_rate) == {200.0, 1000.0}
    for s in by_rate.values():
        assert s["achieved_qps"] > 0 and s["cpu_s_per_query"] > 0 and s["p99_ms"] >= s["p50_ms"]


def test_logs_reasons_read_from_the_summary():
    summary = """Result is : INVALID
  Performance constraints satisfied : NO
  Min duration satisfied : Yes
  Early stopping satisfied: NO
Recommendations:
 * Reduce target QPS to improve latency.
Early Stopping Result:
 * Run unsuccessful.
"""
    assert summary_reasons(summary) == ["Performance constraints satisfied : NO", "Early stopping satisfied: NO",
                                        "Reduce target QPS to improve latency."]
    detail = ('junk\n:::MLLOG {"key": "result_validity", "value": "INVALID", "metadata": {}}\n'
              ':::MLLOG {"key": "result_99.00_percentile_latency_ns", "value": 2500000, "metadata": {}}\n'
              ':::MLLOG {"key": "error_runtime", "value": "boom", "metadata": {"is_error": true}}\n')
    rec = record(summary, detail)
    assert rec["validity"] == "INVALID" and rec["percentiles_ms"] == {"p99": 2.5}
    assert rec["errors"] == ["error_runtime: boom"] and rec["summary"] == summary and rec["detail"] == detail


def test_settings_validate_and_bound_the_queries_far_above_capacity():
    assert parse_ms("15ms") == 15 and parse_ms("0.015s") == 15 and parse_ms("15") == 15
    for bad in ("0", "-1ms", "abc", "nan", "inf"):
        with pytest.raises(UsageError):
            parse_ms(bad)
    with pytest.raises(UsageError, match="--target-qps"):
        LoadGenSettings("server", latency_bound_ms=10)
    with pytest.raises(UsageError, match="--latency-bound"):
        LoadGenSettings("server", target_qps=10)
    with pytest.raises(UsageError, match="positive"):
        LoadGenSettings("server", target_qps=0, latency_bound_ms=10)
    s = LoadGenSettings("server", target_qps=10, latency_bound_ms=10, min_duration_s=5)
    assert s.queries == 460 and s.query_bound(20.0) == 0  # below 1.5x saturation: never cut
    far = LoadGenSettings("server", target_qps=1000, latency_bound_ms=10, min_duration_s=5)
    assert far.query_bound(100.0) == 750  # 1.5 x 100 QPS x 5 s: it ends soon after its duration
    assert far.query_bound(10.0) == 460  # never below the early-stopping minimum


@pytest.mark.slow  # over 3 s: the default run stays under 5 min; .ci/run's slow pass runs it
def test_engine_stores_a_loadgen_row_with_every_process_logs(tiny_onnx, tmp_path):
    pytest.importorskip("onnxruntime")
    from pfdeploy.bench.config import StopRule
    from pfdeploy.bench.engine import BenchConfig, Engine, Prepared
    from pfdeploy.store import open_store

    inputs = tmp_path / "x.npy"
    np.save(inputs, X)
    store = open_store(tmp_path / "r.db")
    try:
        spec = CaseSpec(model="tiny", backend="onnxruntime", threads=1, scenario="server")
        cfg = BenchConfig(models=(), rule=StopRule(processes=2), scenario="server",
                          loadgen={"target_qps": 300.0, "latency_bound_ms": 50.0, "min_duration_s": 0.5})
        eng = Engine(cfg, store, store_url=store.url)
        from pfdeploy.bench.loadgen.group import LoadGenPolicy

        assert isinstance(eng.policy, LoadGenPolicy)  # the LoadGen scenarios' policy, chosen by the engine
        eng.policy.overhead = {"skipped": "test"}
        qsl = tmp_path / "qsl.npy"  # --images: the parent's preprocessed samples reach every worker's QSL
        np.save(qsl, np.random.default_rng(2).normal(size=(3, 3, 8, 8)).astype(np.float32))
        source = {"source": "images", "folder": "imgs", "count": 3, "sha256": "0" * 64}
        out = eng.run(None, prepared_cases=[(spec, Prepared(inputs=str(inputs), model_file=str(tiny_onnx),
                                                            family="conv", qsl_inputs=str(qsl), qsl=source))])
        row = out.results[0].result
        assert row.status == "ok", row.error
        lg = row.loadgen
        assert lg["scenario"] == "server" and lg["target_qps"] == 300.0 and len(lg["processes"]) == 2
        assert lg["validity"] in ("VALID", "INVALID") and lg["valid_processes"].endswith("of 2")
        assert all("Result is :" in p["summary"] for p in lg["processes"])
        assert all(p["qsl"] == source and '"effective_performance_sample_count", "value": 3' in p["detail"]
                   for p in lg["processes"])
        assert len({p["pid"] for p in lg["processes"]}) == 2  # fresh worker processes
        assert row.processes == 2 and row.items_per_s == lg["achieved_qps"]
        assert not any(w.kind == "noisy" for w in row.warnings)  # a served latency spreads by nature
        back = store.export_run(out.run_id)["results"][0]  # the run file: plain rows (the edge)
        assert back["loadgen"]["processes"][1]["detail"] == lg["processes"][1]["detail"]
    finally:
        store.close()
