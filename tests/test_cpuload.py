"""CPU contention during measurement (pfdeploy.devices.cpuload): a real busy process beside the
measurement shows up as other processes' CPU; the measuring process's own work does not; the
engine records it per row and warns; compare says which run had a busy neighbour. Shares are
asserted with wide margins (the machine is shared), never times."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from pfdeploy.devices.cpuload import add_usage, cpu_snapshot, cpu_usage

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/stat is Linux's")

SPIN = "import time\nt = time.monotonic()\nwhile time.monotonic() - t < {s}: pass\n"


def _spin_cpu(cpu_s: float, cap_s: float = 60.0) -> None:
    """Spin until this process has used `cpu_s` of CPU (not of wall time: the machine is shared)."""
    import os

    t0, w0 = sum(os.times()[:2]), time.monotonic()
    while sum(os.times()[:2]) - t0 < cpu_s and time.monotonic() - w0 < cap_s:
        pass


def test_a_busy_neighbour_is_other_cpu_and_own_work_is_self():
    """Accounting, not scheduling: the neighbour's own CPU time (psutil) must appear as other
    processes' CPU, this process's spinning as its own, whatever else runs on the machine."""
    import psutil

    p = subprocess.Popen([sys.executable, "-c", SPIN.format(s=3.0)])
    try:
        proc = psutil.Process(p.pid)
        time.sleep(0.3)
        n0 = sum(proc.cpu_times()[:2])
        before = cpu_snapshot()
        time.sleep(1.0)
        mid = cpu_snapshot()
        neighbour = sum(proc.cpu_times()[:2]) - n0
    finally:
        p.kill()
        p.wait(timeout=30)
    u = cpu_usage(before, mid)
    assert u["wall_s"] >= 1.0 and u["machine_s"] > 0 and 0 <= u["other_share"] <= 1
    tick = 0.02  # the kernel counts in clock ticks (10 ms): two of them
    assert u["other_s"] >= neighbour - 2 * tick, (u, neighbour)
    assert u["self_s"] < 0.2, u  # this process slept

    before = cpu_snapshot()
    _spin_cpu(0.4)
    own = cpu_usage(before, cpu_snapshot())
    assert own["self_s"] >= 0.4 - tick, own  # our own spinning is ours, not other
    assert own["busy_s"] >= own["self_s"] - 2 * tick and own["other_s"] == pytest.approx(max(0.0, own["busy_s"] - own["self_s"]))


def test_add_usage_pools_rounds_and_missing_snapshots_are_none():
    a = {"wall_s": 1.0, "machine_s": 2.0, "busy_s": 1.5, "self_s": 1.0, "other_s": 0.5, "steal_s": 0.0}
    b = {"wall_s": 1.0, "machine_s": 2.0, "busy_s": 2.0, "self_s": 1.0, "other_s": 1.0, "steal_s": 0.2}
    t = add_usage(add_usage(None, a), b)
    assert t["other_s"] == 1.5 and t["machine_s"] == 4.0
    assert t["other_share"] == pytest.approx(0.375) and t["steal_share"] == pytest.approx(0.05)
    assert add_usage(t, None) is t
    assert cpu_usage(None, cpu_snapshot()) is None


def test_engine_rows_carry_contention_and_warn_when_a_neighbour_spins(tmp_path):
    import numpy as np

    from pfdeploy.bench.config import CaseSpec, StopRule
    from pfdeploy.bench.engine import BenchConfig, Engine, Prepared
    from pfdeploy.store import open_store

    inputs = tmp_path / "x.npy"
    np.save(inputs, np.zeros((1, 3, 4, 4), np.float32))
    rule = StopRule(min_iters=20, min_time_s=1.5, max_time_s=1.5, warmup_iters=3, warmup_time_s=0.01,
                    target_ci=0.0001, min_samples=20)
    store = open_store(tmp_path / "r.db")
    try:
        case = (CaseSpec(model="a", backend="fake", threads=1, options={"work_us": 2000}),
                Prepared(inputs=str(inputs), family="conv"))
        import os

        spinners = [subprocess.Popen([sys.executable, "-c", SPIN.format(s=30)]) for _ in range(os.cpu_count() or 1)]
        try:
            out = Engine(BenchConfig(models=(), rule=rule, round_time_s=0.05), store,
                         store_url=store.url).run(None, prepared_cases=[case])
        finally:
            for p in spinners:
                p.kill()
                p.wait()
        row = out.results[0].result
        c = row["cpu_contention"]
        assert c["own_cpu_s"] > 0 and c["machine_cpu_s"] > 0
        # as many spinning processes as CPUs, against one measuring thread: others took most of it
        assert c["other_share"] > 0.3, c
        assert any("other processes used" in w for w in row["warnings"]), row["warnings"]
        # kept through the store (an `extra` field) and read back
        back = store.export_run(out.run_id)
        got = [r for r in back["results"] if r["model"] == "a"][0]
        assert got["cpu_contention"]["other_share"] == c["other_share"]
    finally:
        store.close()


def test_compare_names_the_run_with_a_busy_neighbour():
    from pfdeploy import compare as C

    from test_compare import synth_doc

    cases = tuple((f"m{i}", "conv", "onnxruntime", 10.0 + i) for i in range(6))
    base = synth_doc("b", 1, cases=cases)
    head = synth_doc("h", 2, cases=cases, factor=1.5)
    quiet = {"other_cpu_s": 0.1, "machine_cpu_s": 10.0}
    busy = {"other_cpu_s": 4.5, "machine_cpu_s": 10.0}
    for doc, c in ((base, quiet), (head, busy)):
        for row in doc["results"]:
            row["cpu_contention"] = dict(c)
    assert C.run_contention(head) == pytest.approx(0.45) and C.run_contention(base) == pytest.approx(0.01)
    cmp = C.compare_runs(base, head, resamples=200)
    assert any("45% of the machine's CPU while head's cases were timed" in w for w in cmp.warnings), cmp.warnings
    for row in head["results"]:
        row["cpu_contention"] = dict(quiet)
    assert not any("machine's CPU" in w for w in C.compare_runs(base, head, resamples=200).warnings)
    for doc in (base, head):
        for row in doc["results"]:
            row.pop("cpu_contention")
    assert C.run_contention(base) is None
