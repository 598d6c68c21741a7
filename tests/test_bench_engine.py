"""The case engine with the fake runner in real worker processes: isolation, interleaving,
crash isolation, interruption, the results store, missing backends. No duration is asserted."""
from __future__ import annotations

import os
import signal

import numpy as np
import psutil
import pytest

from pfdeploy.bench.config import CaseSpec, StopRule
from pfdeploy.bench.engine import BenchConfig, Engine, Prepared, Progress
from pfdeploy.store import open_store

RULE = StopRule(min_iters=20, min_time_s=0.02, max_time_s=0.5, warmup_iters=3, warmup_time_s=0.01,
                target_ci=0.05, min_samples=20)


@pytest.fixture
def inputs(tmp_path):
    p = tmp_path / "x.npy"
    np.save(p, np.zeros((1, 3, 4, 4), np.float32))
    return str(p)


@pytest.fixture
def store(tmp_path):
    s = open_store(tmp_path / "r.db")
    yield s
    s.close()


def fake(name, inputs, **opts):
    return CaseSpec(model=name, backend="_fake", threads=1, options=opts), Prepared(inputs=inputs, family="conv")


def run(store, cases, progress=None, **cfg):
    cfg = {"rule": RULE, "round_time_s": 0.005, **cfg}
    return Engine(BenchConfig(models=(), **cfg), store, store_url=store.url).run(progress, prepared_cases=cases)


def test_one_process_per_case_interleaved_one_at_a_time(store, inputs, tmp_path):
    trace = tmp_path / "trace.txt"
    cases = [fake(n, inputs, work_us=w, trace=str(trace)) for n, w in (("a", 100), ("b", 300), ("c", 200))]
    out = run(store, cases)
    assert out.status == "finished"
    rows = {r.spec.model: r for r in out.results}
    assert all(r.row["status"] == "ok" for r in rows.values())
    pids = {r.row["artifact"]["worker_pid"] for r in rows.values()}
    assert len(pids) == 3 and os.getpid() not in pids
    # interleaved: every case has samples from several rounds, and the rounds overlap in index
    for r in rows.values():
        assert len(set(r.rounds)) >= 2 and r.row["round_size"] >= 1
    assert set(rows["a"].rounds) & set(rows["b"].rounds) & set(rows["c"].rounds)
    # one worker running at a time: no two steps of different processes overlap in time
    steps = sorted(tuple(map(int, line.split()))[1:] + (int(line.split()[0]),)
                   for line in trace.read_text().splitlines())
    for (s0, e0, p0), (s1, e1, p1) in zip(steps, steps[1:]):
        assert s1 >= e0 or p0 == p1
    # and the process order alternates: a later round of a case comes after other cases ran
    order = [p for _, _, p in steps]
    switches = sum(1 for x, y in zip(order, order[1:]) if x != y)
    assert switches >= 4
    # every case row has the contract's statistics
    row = rows["b"].row
    for k in ("n", "min_ms", "p50_ms", "p50_ci_low_ms", "p50_ci_high_ms", "max_ms", "mean_ms", "std_ms", "cv",
              "items_per_s", "load_ms", "first_ms", "peak_rss_mb", "round_size"):
        assert row[k] is not None, k
    assert row["n"] >= RULE.min_iters and row["clock"] == "host"


def test_no_interleave_runs_cases_one_after_another(store, inputs, tmp_path):
    trace = tmp_path / "trace.txt"
    out = run(store, [fake("a", inputs, trace=str(trace)), fake("b", inputs, trace=str(trace))], interleave=False)
    assert out.status == "finished"
    order = [line.split()[0] for line in trace.read_text().splitlines()]
    switches = sum(1 for x, y in zip(order, order[1:]) if x != y)
    assert switches == 1


@pytest.mark.parametrize("where,opts,expect", [
    # 1 ms steps: warm-up (>= 10 ms) takes at most ~11 steps, convergence needs 20 measured ones
    ("step", {"crash": "step", "crash_after": 16, "work_us": 1000}, "SIGSEGV (signal 11) during measure"),
    ("load", {"crash": "load"}, "SIGSEGV"),
    ("load", {"crash": "load", "signal": "SIGKILL"}, "SIGKILL"),
    ("load", {"crash": "load", "exit_code": 3}, "exited with code 3"),
    ("load", {"fail": "load"}, "fake runner refused to load"),
])
def test_crash_isolation(store, inputs, where, opts, expect):
    cases = [fake("ok1", inputs), fake("bad", inputs, **opts), fake("ok2", inputs)]
    out = run(store, cases)
    assert out.status == "finished"
    rows = {r.spec.model: r.row for r in out.results}
    assert rows["ok1"]["status"] == "ok" and rows["ok2"]["status"] == "ok"
    assert rows["bad"]["status"] == "failed"
    assert expect in rows["bad"]["error"]
    stored = {r["model"]: r for r in store.results(out.run_id)}
    assert stored["bad"]["status"] == "failed" and expect in stored["bad"]["error"]
    assert store.get_run(out.run_id)["status"] == "finished"


class InterruptAfterFirst(Progress):
    def case_done(self, result):
        if result.row["status"] == "ok":
            raise KeyboardInterrupt


def test_ctrl_c_keeps_finished_cases_and_marks_the_run(store, inputs):
    # "fast" converges at once; "slow" would keep measuring until max_time
    cases = [fake("fast", inputs, work_us=50), fake("slow", inputs, work_us=2000)]
    rule = StopRule(min_iters=20, min_time_s=0.001, max_time_s=30, warmup_iters=3, warmup_time_s=0.01,
                    target_ci=0.2, min_samples=20)
    out = run(store, cases, progress=InterruptAfterFirst(), rule=rule)
    assert out.status == "interrupted"
    assert [r.spec.model for r in out.results] == ["fast"]
    assert store.get_run(out.run_id)["status"] == "interrupted"
    assert [r["model"] for r in store.results(out.run_id)] == ["fast"]
    assert not [c for c in psutil.Process().children(recursive=True) if c.status() != psutil.STATUS_ZOMBIE]


def test_store_round_trip_of_samples_and_rounds(store, inputs):
    out = run(store, [fake("a", inputs), fake("b", inputs)])
    for r in out.results:
        s = store.samples(r.result_id)
        assert s["latency_ns"] == r.samples_ns and s["round"] == r.rounds
        row = next(x for x in store.results(out.run_id) if x["id"] == r.result_id)
        assert row["case_key"] == r.spec.key and row["n"] == len(r.samples_ns)
    doc = store.export_run(out.run_id)
    assert doc["run"]["config"]["rule"]["min_iters"] == RULE.min_iters


def test_missing_backend_is_skipped_with_reason_and_hint(monkeypatch, store):
    import pfdeploy.backends.base as base
    import pfdeploy.devices.parse as parse_mod

    real = base.is_installed
    monkeypatch.setattr(base, "is_installed", lambda m: False if m == "openvino" else real(m))
    parse_mod.openvino_devices.cache_clear()
    monkeypatch.setattr(parse_mod, "openvino_devices", lambda: ((), "openvino is not installed: pip install 'pfdeploy[cpu]'"))
    eng = Engine(BenchConfig(models=("resnet50",), backends=("onnxruntime", "openvino", "tensorrt")), store)
    from pfdeploy.devices import parse_device

    runnable, skipped = eng.plan(parse_device("cpu"), 2)
    assert [c.backend for c in runnable] == ["onnxruntime"]
    reasons = {c.backend: why for c, why in skipped}
    assert "openvino is not installed" in reasons["openvino"] and "pip install 'pfdeploy[cpu]'" in reasons["openvino"]
    assert "tensorrt" in reasons["tensorrt"]


def test_unsupported_precision_is_skipped_not_dropped(store):
    from pfdeploy.devices import parse_device

    eng = Engine(BenchConfig(models=("resnet50",), backends=("torch",), precisions=("fp32", "int8")), store)
    runnable, skipped = eng.plan(parse_device("cpu"), 1)
    assert [c.precision for c in runnable] == ["fp32"]
    assert len(skipped) == 1 and "int8" in skipped[0][1]


def test_best_expands_per_backend_and_optional_precisions_add_no_skips(monkeypatch, store):
    import pfdeploy.backends.openvino as O
    import pfdeploy.devices as D
    from pfdeploy.devices import parse_device

    monkeypatch.setattr(D, "cpu_native", lambda p, flags=None: None)  # a CPU with native bf16 ...
    monkeypatch.setattr(O, "capabilities", lambda dev: (("FP32", "BF16", "INT8"), None))  # ... and OpenVINO on it
    eng = Engine(BenchConfig(models=("resnet50",), backends=("torch", "onnxruntime", "openvino"),
                             precisions=("best",)), store)
    runnable, skipped = eng.plan(parse_device("cpu"), 1)
    got = sorted((c.backend, c.precision) for c in runnable)
    assert got == [("onnxruntime", "fp32"), ("onnxruntime", "int8"), ("openvino", "fp32"), ("openvino", "int8"),
                   ("torch", "bf16"), ("torch", "fp32")] and not skipped
    # the default suite's optional bf16: measured where a runtime runs it, never a skipped row
    eng = Engine(BenchConfig(models=("resnet50",), backends=("torch", "onnxruntime", "openvino"),
                             optional_precisions=("bf16",)), store)
    runnable, skipped = eng.plan(parse_device("cpu"), 1)
    assert sorted((c.backend, c.precision) for c in runnable) == [
        ("onnxruntime", "fp32"), ("openvino", "bf16"), ("openvino", "fp32"), ("torch", "bf16"), ("torch", "fp32")]
    assert not skipped


def test_a_scenario_a_backend_lacks_is_a_skip_with_the_reason(store):
    from pfdeploy.devices import parse_device

    eng = Engine(BenchConfig(models=("resnet50",), backends=("torch", "onnxruntime"), scenario="throughput"), store)
    runnable, skipped = eng.plan(parse_device("cpu"), 1)
    assert [c.backend for c in runnable] == ["onnxruntime"]
    assert "throughput scenario is not implemented for torch" in skipped[0][1]


def test_peak_rss_is_the_workers_own(store, inputs):
    """A big parent must not leak its size into the workers' peak RSS (Linux keeps ru_maxrss
    across fork and exec)."""
    ballast = np.ones(300 * 2**20 // 8)  # 300 MiB in the parent
    out = run(store, [fake("a", inputs)])
    assert out.results[0].row["peak_rss_mb"] < 250
    del ballast


def test_torch_weights_are_cached_between_runs(tmp_path, store):
    torch = pytest.importorskip("torch")
    from types import SimpleNamespace

    class Source:
        calls = 0

        def model(self):
            Source.calls += 1
            torch.manual_seed(0)
            return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 2)).eval()

    spec = SimpleNamespace(name="tiny", input_size=(3, 8, 8))
    eng = Engine(BenchConfig(models=(), cache_dir=str(tmp_path / "cache")), store)
    path1, params1, macs1 = eng._torch_weights(spec, Source(), tmp_path)
    assert Source.calls == 1 and params1 > 0 and macs1 > 0
    path2, params2, macs2 = eng._torch_weights(spec, Source(), tmp_path)
    assert Source.calls == 1 and (path2, params2, macs2) == (path1, params1, macs1)  # no rebuild
    (tmp_path / "cache" / "torch-weights" / (os.path.basename(path1)[:-3] + ".json")).write_text("{broken")
    eng._torch_weights(spec, Source(), tmp_path)
    assert Source.calls == 2  # an unreadable entry is rebuilt, not trusted
