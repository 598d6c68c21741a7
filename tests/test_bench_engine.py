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
                target_ci=0.05, min_samples=20, processes=2, max_processes=3)


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
    return CaseSpec(model=name, backend="fake", threads=1, options=opts), Prepared(inputs=inputs, family="conv")


def run(store, cases, progress=None, **cfg):
    cfg = {"rule": RULE, "round_time_s": 0.005, **cfg}
    return Engine(BenchConfig(models=(), **cfg), store, store_url=store.url).run(progress, prepared_cases=cases)


def test_fresh_processes_per_case_interleaved_one_at_a_time(store, inputs, tmp_path):
    trace = tmp_path / "trace.txt"
    cases = [fake(n, inputs, work_us=w, trace=str(trace)) for n, w in (("a", 100), ("b", 300), ("c", 200))]
    out = run(store, cases)
    assert out.status == "finished"
    rows = {r.spec.model: r for r in out.results}
    assert all(r.result["status"] == "ok" for r in rows.values())
    # every case in RULE.processes (or more) fresh worker processes of its own
    pids = [p for r in rows.values() for p in r.result["artifact"]["worker_pids"]]
    assert len(pids) == len(set(pids)) and os.getpid() not in pids
    for r in rows.values():
        assert RULE.processes <= r.result["processes"] == len(r.result["artifact"]["worker_pids"]) <= RULE.max_processes
        assert len(r.result["process_rounds"]) == r.result["processes"] and all(r.result["process_rounds"])
        assert sorted(x for pr in r.result["process_rounds"] for x in pr) == sorted(set(r.rounds))
        assert r.result["ci_method"] == "processes" and r.result["ci_df"] == r.result["processes"] - 1
    # interleaved: every case has samples from several rounds, and the rounds overlap in index
    for r in rows.values():
        assert len(set(r.rounds)) >= 2 and r.result["round_size"] >= 1
    assert set(rows["a"].rounds) & set(rows["b"].rounds) & set(rows["c"].rounds)
    # one worker running at a time: no two steps of different processes overlap in time
    steps = sorted(tuple(map(int, line.split()))[1:] + (int(line.split()[0]),)
                   for line in trace.read_text().splitlines() if not line.startswith("M "))
    for (s0, e0, p0), (s1, e1, p1) in zip(steps, steps[1:]):
        assert s1 >= e0 or p0 == p1
    # after warm-up, the measured rounds go A, B, C, A, B, C ...: at least two full cycles in
    # the load order (warm-up and load also switch processes, so count measured rounds only)
    pid_of = {p: m for m, r in rows.items() for p in r.result["artifact"]["worker_pids"]}
    rounds = [pid_of[int(line.split()[1])] for line in trace.read_text().splitlines() if line.startswith("M ")]
    assert rounds[:6] == ["a", "b", "c", "a", "b", "c"], rounds[:12]
    # round ids: one per rotation, shared by exactly the cases measured in it
    assert rows["a"].rounds[0] == rows["b"].rounds[0] == rows["c"].rounds[0]
    # every case row has the contract's statistics
    row = rows["b"].result
    for k in ("n", "min_ms", "p50_ms", "p50_ci_low_ms", "p50_ci_high_ms", "max_ms", "mean_ms", "std_ms", "cv",
              "items_per_s", "load_ms", "first_ms", "peak_rss_mb", "round_size"):
        assert row[k] is not None, k
    assert row["n"] >= RULE.min_iters and row["clock"] == "host"


def test_no_interleave_runs_cases_one_after_another(store, inputs, tmp_path):
    trace = tmp_path / "trace.txt"
    out = run(store, [fake("a", inputs, trace=str(trace)), fake("b", inputs, trace=str(trace))], interleave=False)
    assert out.status == "finished"
    model_of = {str(p): r.spec.model for r in out.results for p in r.result["artifact"]["worker_pids"]}
    order = [model_of[line.split()[0]] for line in trace.read_text().splitlines() if not line.startswith("M ")]
    switches = sum(1 for x, y in zip(order, order[1:]) if x != y)
    assert switches == 1  # every process of a, then every process of b
    # no two results share a round id, so no speedup between them is called paired
    a, b = out.results
    assert not set(a.rounds) & set(b.rounds)
    from pfdeploy.bench.stats import speedup

    res = speedup(a.samples_ns, a.rounds, b.samples_ns, b.rounds)
    assert res["paired"] is False and res["rounds"] == 0 and res["ci_low"] is not None
    # (the table's marking of unpaired speedups, `~`, is tested with the claims in tests/test_claims.py)


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
    rows = {r.spec.model: r.result for r in out.results}
    assert rows["ok1"]["status"] == "ok" and rows["ok2"]["status"] == "ok"
    assert rows["bad"]["status"] == "failed"
    assert expect in rows["bad"]["error"]
    stored = {r["model"]: r for r in store.results(out.run_id)}
    assert stored["bad"]["status"] == "failed" and expect in stored["bad"]["error"]
    assert store.get_run(out.run_id)["status"] == "finished"


class InterruptAfterFirst(Progress):
    def case_done(self, result):
        if result.result["status"] == "ok":
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
    assert out.results[0].result["peak_rss_mb"] < 250
    del ballast


def test_torch_weights_are_cached_between_runs(tmp_path, store):
    torch = pytest.importorskip("torch")
    from types import SimpleNamespace

    class Source:  # the engine's model source: builds the model, names its weights
        calls = 0
        source = "synthetic:0"

        def model(self):
            Source.calls += 1
            torch.manual_seed(0)
            return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 2)).eval()

    spec = SimpleNamespace(name="tiny", input_size=(3, 8, 8))
    from pfdeploy.bench.prepare import Preparer

    eng = Preparer(BenchConfig(models=(), cache_dir=str(tmp_path / "cache")))
    path1, params1, macs1 = eng.torch_weights(spec, Source(), tmp_path)
    assert Source.calls == 1 and params1 > 0 and macs1 > 0
    path2, params2, macs2 = eng.torch_weights(spec, Source(), tmp_path)
    assert Source.calls == 1 and (path2, params2, macs2) == (path1, params1, macs1)  # no rebuild
    (tmp_path / "cache" / "torch-weights" / (os.path.basename(path1)[:-3] + ".json")).write_text("{broken")
    eng.torch_weights(spec, Source(), tmp_path)
    assert Source.calls == 2  # an unreadable entry is rebuilt, not trusted


def test_pairing_only_within_rotations(store, inputs, monkeypatch):
    """Cases split over two interleaving groups never share a round id: their speedup is unpaired;
    cases of one group share every round they both ran and are paired."""
    import pfdeploy.bench.plan as plan
    from pfdeploy.bench.stats import speedup

    monkeypatch.setattr(plan, "MAX_GROUP", 2)
    out = run(store, [fake(n, inputs) for n in ("a", "b", "c")])
    rows = {r.spec.model: r for r in out.results}
    groups = [set(rows[m].rounds) for m in "abc"]
    together = [(x, y) for x, y in (("a", "b"), ("a", "c"), ("b", "c")) if set(rows[x].rounds) & set(rows[y].rounds)]
    assert len(together) == 1  # exactly one pair shared a rotation
    x, y = together[0]
    z = ({"a", "b", "c"} - {x, y}).pop()
    assert speedup(rows[x].samples_ns, rows[x].rounds, rows[y].samples_ns, rows[y].rounds)["paired"] is True
    assert speedup(rows[x].samples_ns, rows[x].rounds, rows[z].samples_ns, rows[z].rounds)["paired"] is False
    assert len(set().union(*groups)) == sum(len(g) for g in groups) - len(set(rows[x].rounds) & set(rows[y].rounds))


def test_groups_keep_a_model_with_its_baselines(monkeypatch):
    """With more cases than fit one rotation, a parameter-free model lands with its baselines."""
    import pfdeploy.bench.plan as plan

    monkeypatch.setattr(plan, "MAX_GROUP", 4)
    names = ["pf_vit_ti", "mobilenetv2_100", "pf_resnet50_max", "deit_tiny_patch16_224", "resnet50", "dw_resnet50"]
    todo = [(CaseSpec(model=m, backend="onnxruntime"), Prepared()) for m in names]
    groups = plan.groups(todo)
    where = {spec.model: i for i, g in enumerate(groups) for spec, _ in g}
    assert all(len(g) <= 4 for g in groups)
    assert where["pf_resnet50_max"] == where["resnet50"] == where["dw_resnet50"]
    assert where["pf_vit_ti"] == where["deit_tiny_patch16_224"]


def test_rewarm_calls_are_made_and_not_recorded(store, inputs, tmp_path):
    trace = tmp_path / "trace.txt"
    out = run(store, [fake("a", inputs, trace=str(trace)), fake("b", inputs, trace=str(trace))], rewarm=3)
    lines = trace.read_text().splitlines()
    assert len(out.results) == 2 and all(r.result["status"] == "ok" for r in out.results)
    for r in out.results:
        pids = r.result["artifact"]["worker_pids"]
        warmups = r.result["artifact"]["process_warmup_iters"]
        assert len(pids) == len(warmups) == len(r.result["process_rounds"]) >= RULE.processes
        for pid, warm, rounds in zip(pids, warmups, r.result["process_rounds"]):
            steps = sum(1 for line in lines if not line.startswith("M ") and int(line.split()[0]) == pid)
            n_rounds = sum(1 for line in lines if line.startswith("M ") and int(line.split()[1]) == pid)
            measured = sum(1 for x in r.rounds if x in set(rounds))
            # per process: first inference + warm-up + (3 discarded + measured) per round
            assert measured > 0 and steps == 1 + warm + 3 * n_rounds + measured
            assert n_rounds == len(rounds)


@pytest.mark.slow  # over 3 s: the default run stays under 5 min; .ci/run's slow pass runs it
def test_stop_reasons_converged_and_max_time(store, inputs):
    never = StopRule(min_iters=5, min_time_s=0.01, max_time_s=0.2, warmup_iters=3, warmup_time_s=0.01,
                     target_ci=1e-6, min_samples=5, processes=2, max_processes=100)
    out = run(store, [fake("jittery", inputs, work_us=300)], rule=never)
    row = out.results[0].result
    assert row["artifact"]["stop_reason"] == "max_time"
    assert any("stopped at max-time" in w for w in row["warnings"])
    assert sum(out.results[0].samples_ns) >= 0.2e9  # the case's own measured time reached max-time
    easy = StopRule(min_iters=5, min_time_s=0.01, max_time_s=30, warmup_iters=3, warmup_time_s=0.01,
                    target_ci=0.5, min_samples=5, min_rounds=5)
    out = run(store, [fake("steady", inputs, work_us=300)], rule=easy)
    r = out.results[0]
    assert r.result["artifact"]["stop_reason"] == "converged" and len(set(r.rounds)) >= 5
    assert r.result["ci_method"] == "processes" and r.result["ci_units"] == len(set(r.rounds))
    assert r.result["processes"] == easy.processes  # converged at the minimum number of processes
    few = StopRule(min_iters=5, min_time_s=0.01, max_time_s=30, warmup_iters=3, warmup_time_s=0.01,
                   target_ci=1e-6, min_samples=5, processes=2, max_processes=3)
    row = run(store, [fake("capped", inputs, work_us=300)], rule=few).results[0].result
    assert row["artifact"]["stop_reason"] == "max_processes" and row["processes"] == 3
    assert any("stopped at 3 worker processes" in w for w in row["warnings"])


@pytest.mark.slow  # over 3 s: the default run stays under 5 min; .ci/run's slow pass runs it
def test_hung_worker_fails_its_case_and_the_run_goes_on(store, inputs, monkeypatch):
    import pfdeploy.bench.rotation as rotation

    monkeypatch.setattr(rotation, "MEASURE_TIMEOUT_MIN_S", 2.0)
    rule = StopRule(min_iters=200, min_time_s=0.3, max_time_s=5, warmup_iters=3, warmup_time_s=0.01,
                    target_ci=0.05, min_samples=20)
    out = run(store, [fake("ok", inputs), fake("hung", inputs, work_us=1000, hang_after=40)], rule=rule)
    rows = {r.spec.model: r.result for r in out.results}
    assert out.status == "finished" and rows["ok"]["status"] == "ok"
    assert rows["hung"]["status"] == "failed" and "no answer to measure" in rows["hung"]["error"]
    assert not [c for c in psutil.Process().children(recursive=True) if c.status() != psutil.STATUS_ZOMBIE]


@pytest.mark.slow  # over 3 s: the default run stays under 5 min; .ci/run's slow pass runs it
def test_one_model_failing_preparation_leaves_the_others(store, inputs, monkeypatch, tmp_path):
    """The real preparation step: one model's preparation raises, its cases fail with the cause,
    the other model is prepared and measured."""
    import pfdeploy.complexity as complexity
    import pfdeploy.zoo as zoo

    real_get_spec = zoo.get_spec

    def get_spec(name):
        if name == "dw_resnet50":
            raise RuntimeError("disk on fire")
        return real_get_spec(name)

    class Cx:
        params, macs = 1, 2

    monkeypatch.setattr(zoo, "get_spec", get_spec)
    monkeypatch.setattr(complexity, "complexity_of", lambda name: Cx())
    eng = Engine(BenchConfig(models=(), rule=RULE, round_time_s=0.005), store, store_url=store.url)
    from pfdeploy.bench.prepare import Preparer

    monkeypatch.setattr(Preparer, "artifact", lambda self, model, req, source=None: (
        "unused", "ab" * 32, {"target": req["target"]}, {"verdict": "passed", "passed": True}, None))  # no accuracy
    specs = [CaseSpec(model=m, backend="onnxruntime") for m in ("resnet50", "dw_resnet50")]
    prepared = Preparer(eng.config).prepare(specs, tmp_path)
    assert prepared[specs[0].key].error is None and prepared[specs[0].key].inputs
    assert "preparing dw_resnet50 failed: RuntimeError: disk on fire" == prepared[specs[1].key].error
    # run them (the fake runner stands in for onnxruntime): the failed one is listed, the other measured
    for s in specs:  # the fake runner has no model: no runtime parity check of its outputs
        prepared[s.key].parity_inputs = prepared[s.key].parity_refs = None
    cases = [(CaseSpec(model=s.model, backend="fake", threads=1), prepared[s.key]) for s in specs]
    out = eng.run(prepared_cases=cases)
    rows = {r.spec.model: r.result for r in out.results}
    assert rows["resnet50"]["status"] == "ok" and rows["dw_resnet50"]["status"] == "failed"
    assert "disk on fire" in rows["dw_resnet50"]["error"] and out.status == "finished"


_SIGINT_DRIVER = """
import sys
from pfdeploy.bench.config import CaseSpec
from pfdeploy.bench.engine import Engine, Prepared
from pfdeploy.cli import main

inputs = sys.argv[1]
specs = [CaseSpec(model="resnet50", backend="fake", threads=1, options={"work_us": 50}),
         # processes 2x apart: this case cannot reach its interval before the SIGINT (it once finished first)
         CaseSpec(model="dw_resnet50", backend="fake", threads=1, options={"work_us": 3000, "process_spread": 0.7})]
Engine.plan = lambda self, device, threads: (specs, [])
_init = Engine.__init__
def _two_processes(self, config, *args, **kwargs):  # keep the run short: 2-4 worker processes per case
    config.processes = 2
    _init(self, config, *args, **kwargs)
Engine.__init__ = _two_processes
import pfdeploy.bench.prepare as prepare
prepare.Preparer.prepare = lambda self, cases, tmp: {c.key: Prepared(inputs=inputs, family="conv") for c in cases}
sys.argv = ["pfdeploy", "bench", "--models", "resnet50,dw_resnet50", "--store", sys.argv[2], "--min-time", "0.05",
            "--max-time", "60", "--target-ci", "0.2"]
main()
"""


@pytest.mark.slow  # over 3 s: the default run stays under 5 min; .ci/run's slow pass runs it
@pytest.mark.subprocess
def test_real_sigint_exits_130_keeps_finished_cases_and_marks_the_run(tmp_path, inputs):
    """`pfdeploy bench` in a subprocess, Ctrl-C (a real SIGINT) once one case is stored."""
    import subprocess
    import sys
    import time

    db = tmp_path / "sig.db"
    driver = tmp_path / "driver.py"
    driver.write_text(_SIGINT_DRIVER)
    proc = subprocess.Popen([sys.executable, str(driver), inputs, str(db)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    stored = []
    while time.monotonic() < deadline and proc.poll() is None and not stored:
        time.sleep(0.3)
        if db.exists():
            try:
                s = open_store(db)
                runs = s.runs()
                stored = [r for r in s.results(runs[0]["id"]) if r["status"] == "ok"] if runs else []
                s.close()
            except Exception:  # noqa: BLE001 - the database is being created
                stored = []
    assert stored, "no case finished in time"
    workers = [c for c in psutil.Process(proc.pid).children(recursive=True)]
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    s = open_store(db)
    run_row = s.runs()[0]
    assert run_row["status"] == "interrupted"
    assert [r["model"] for r in s.results(run_row["id"])] == ["resnet50"]
    s.close()
    assert not [w for w in workers if w.is_running() and w.status() != psutil.STATUS_ZOMBIE]
