"""`pfdeploy fleet` on a real multi-node Ray cluster on this machine (ray.cluster_utils.Cluster:
a head and a worker node, one CPU each, every node its own raylet and worker processes).

All nodes share this machine's hardware, so each node is given its own identity the documented
way: $PFDEPLOY_MACHINE_NAME in the node's environment (Cluster passes `env_vars` to the node's
raylet, whose workers inherit it; on a real cluster: `PFDEPLOY_MACHINE_NAME=x ray start ...`).
The benchmarks go through the engine's fake runner (tests/fake_runner.py, found by the nodes'
workers through PFDEPLOY_PLUGINS and PYTHONPATH, which the raylets inherit from conftest),
so a node's run takes seconds; everything else (Ray tasks pinned to nodes, the relay, the
import into the store, the CLI's connection, probing and refusals) is the product's path.
"""
from __future__ import annotations

import os
import socket
import threading
import time

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="ray is not installed: pip install 'pfdeploy[fleet]'")

from pfdeploy import fleet  # noqa: E402
from pfdeploy.bench.config import CaseSpec, StopRule  # noqa: E402
from pfdeploy.bench.engine import BenchConfig, Prepared  # noqa: E402
from pfdeploy.store import open_store  # noqa: E402

from conftest import run_cli  # noqa: E402

pytestmark = pytest.mark.fleet


def patient_startup(limit_s: float = 600.0) -> None:
    """Ray gives a starting node a fixed 30 s (a constant inside ray._private.node) to register with
    the GCS, and its raylet waits a limited time for its agent processes; on a machine loaded far
    beyond its cores (a 2-core machine at load 30-50 while this was written) both pass before the
    processes get the CPU to start. The waits are raised through Ray's own settings (RAY_*
    environment variables, inherited by the raylets started here) and the node-info lookup
    it polls keeps polling for up to `limit_s`: test infrastructure only (how fast a local test
    cluster starts), nothing pfdeploy does."""
    from ray._private import services

    for name, value in (("RAY_agent_register_timeout_ms", limit_s * 1000), ("RAY_raylet_start_wait_time_s", limit_s),
                        ("RAY_worker_register_timeout_seconds", limit_s), ("RAY_py_gcs_connect_timeout_s", limit_s),
                        ("RAY_gcs_rpc_server_connect_timeout_s", limit_s)):
        os.environ.setdefault(name, str(int(value)))

    if getattr(services.get_node, "_patient", False):
        return
    original = services.get_node

    def get_node(*args, **kwargs):
        deadline = time.monotonic() + limit_s
        while True:
            try:
                return original(*args, **kwargs)
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    get_node._patient = True
    services.get_node = get_node


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    import psutil

    patient_startup()
    # a try that fails anyway gets two more (the processes of a failed try are ended: a head
    # that failed to start is not known to Cluster.shutdown)
    for attempt in range(3):
        before = {p.pid for p in psutil.Process().children(recursive=True)}
        c = Cluster()
        try:
            c.add_node(num_cpus=1, include_dashboard=False, env_vars={"PFDEPLOY_MACHINE_NAME": "node-a"})
            c.add_node(num_cpus=1, env_vars={"PFDEPLOY_MACHINE_NAME": "node-b"})
            c.wait_for_nodes()
            break
        except Exception:
            c.shutdown()
            for p in psutil.Process().children(recursive=True):
                if p.pid not in before:
                    p.kill()
            if attempt == 2:
                raise
    yield c
    fleet.disconnect()
    c.shutdown()


@pytest.fixture
def conn(cluster):
    r = fleet.connect(cluster.address)
    yield r
    fleet.disconnect()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    p = tmp_path_factory.mktemp("fleet") / "x.npy"
    np.save(p, np.zeros((1, 3, 8, 8), np.float32))
    return str(p)


def fake_cases(inputs, second_options: dict | None = None):
    """A parameter-free model and its baseline through the fake runner (options of the second
    case: e.g. hang_after, a hung runtime that only a cancel ends)."""
    pf = CaseSpec(model="pf_resnet50_max", backend="fake", threads=1, options={"work_us": 300})
    base = CaseSpec(model="resnet50", backend="fake", threads=1, options={"work_us": 300, **(second_options or {})})
    return [(pf, Prepared(inputs=inputs, family="parameter-free", baselines=("resnet50",))),
            (base, Prepared(inputs=inputs, family="conv"))]


def config(tag: str, min_time=0.3, max_time=0.6, interleave=True) -> BenchConfig:
    return BenchConfig(models=(), tag=tag, interleave=interleave,
                       rule=StopRule(warmup_time_s=0.05, min_time_s=min_time, max_time_s=max_time, target_ci=0.5))


def _by_name(store, tag):
    return {r["machine"].get("machine_name"): r for r in store.runs(tag=tag)}


def check_fleet_runs(store, tag, nodes):
    runs = _by_name(store, tag)
    assert set(runs) == {"node-a", "node-b"}
    ids = {n.machine_name: n.node_id for n in nodes}
    for name, run in runs.items():
        assert run["status"] == "finished"
        assert run["fleet"]["ray_node_id"] == ids[name] == run["fleet"]["node_id"]
        assert run["fleet"]["host"] == next(n.host for n in nodes if n.machine_name == name)
        assert run["fleet"]["reserved"]["CPU"] == 1.0
        assert run["machine"]["machine_name"] == name
        rows = store.results(run["id"])
        assert [r.status for r in rows] == ["ok", "ok"]
        for r in rows:
            s = store.samples(r.id)
            assert len(s["latency_ns"]) == r.n > 0
    assert len({r["machine_id"] for r in runs.values()}) == 2  # two machines, not one
    return runs


@pytest.mark.slow  # over 3 s: the default run stays under 5 min; .ci/run's slow pass runs it
def test_fleet_bench_two_nodes_sqlite_and_report(conn, inputs, tmp_path):
    nodes = fleet.probe_nodes(conn)
    assert sorted(n.machine_name for n in nodes) == ["node-a", "node-b"]
    assert not any(n.unusable for n in nodes)
    store = open_store(tmp_path / "fleet.db")
    fb = fleet.FleetBench(conn, config("fleet-t1"), store, nodes, "test", prepared_cases=fake_cases(inputs))
    runs = fb.run()
    assert [nr.status for nr in runs] == ["finished", "finished"] and all(nr.imported for nr in runs)
    stored = check_fleet_runs(store, "fleet-t1", nodes)
    # the runs were measured on their nodes, at the same time: their wall intervals overlap
    a, b = stored["node-a"], stored["node-b"]
    assert a["started_at"] < b["finished_at"] and b["started_at"] < a["finished_at"]
    # the report: one overview section per machine, the PF model against its baseline in each
    from pfdeploy.report.build import load_docs
    from pfdeploy.report.data import overview_sections

    sections = overview_sections(load_docs(store))
    assert sorted(s["machine"].split(" ")[0] for s in sections) == ["node-a", "node-b"]
    assert len({s["machine_id"] for s in sections}) == 2
    out = run_cli("report", "--store", str(tmp_path / "fleet.db"), "--out", str(tmp_path / "site"))
    assert out.returncode == 0, out.stderr
    html = (tmp_path / "site" / "index.html").read_text()
    assert "node-a" in html and "node-b" in html
    store.close()


@pytest.mark.postgres
def test_fleet_bench_into_postgres(conn, inputs, postgres_url):
    nodes = fleet.probe_nodes(conn)
    store = open_store(postgres_url)
    runs = fleet.FleetBench(conn, config("fleet-pg"), store, nodes, "test", prepared_cases=fake_cases(inputs)).run()
    assert [nr.status for nr in runs] == ["finished", "finished"]
    check_fleet_runs(store, "fleet-pg", nodes)
    store.close()


@pytest.mark.slow  # over 3 s: the default run stays under 5 min; .ci/run's slow pass runs it
def test_fleet_nodes_cli(cluster):
    out = run_cli("fleet", "nodes", "--address", cluster.address, "--wide")
    assert out.returncode == 0, out.stderr
    assert "node-a" in out.stdout and "node-b" in out.stdout and "Traceback" not in out.stderr
    import json

    js = run_cli("fleet", "nodes", "--address", cluster.address, "--json")
    assert js.returncode == 0, js.stderr
    nodes = json.loads(js.stdout)["nodes"]
    assert sorted(n["machine_name"] for n in nodes) == ["node-a", "node-b"]
    from pfdeploy import __version__

    assert all(n["pfdeploy_version"] == __version__ and n["unusable"] is None and n["cpus"] == 1 for n in nodes)
    assert all(n["tools"].get("onnxruntime") for n in nodes)  # the runtimes found there


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_cluster_is_one_line(tmp_path):
    port = _free_port()
    for args in (["fleet", "nodes"], ["fleet", "bench", "--suite", "quick", "--store", str(tmp_path / "s.db")]):
        out = run_cli(*args, "--address", f"127.0.0.1:{port}")
        assert out.returncode == 1
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and "cannot reach the Ray cluster at 127.0.0.1" in lines[0], out.stderr
    out = run_cli("fleet", "nodes", env={"RAY_ADDRESS": ""})
    assert out.returncode == 1 and "--address" in out.stderr
    # checkpoints and image folders are this machine's files: refused in one line, before any connection
    out = run_cli("fleet", "bench", "--address", f"127.0.0.1:{port}", "--weights", "release",
                  "--store", str(tmp_path / "s.db"))
    assert out.returncode == 2 and "synthetic weights only" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "s.db").exists()


def test_version_mismatch_refused_before_anything_runs(cluster, tmp_path, monkeypatch, capsys):
    """The driver is 'another' pfdeploy (its version patched here, in the driver process only); the
    nodes' workers import the installed one: every node is refused, no task runs, no run is stored."""
    import pfdeploy
    from pfdeploy.cli import main

    monkeypatch.setattr(pfdeploy, "__version__", "0.0.0+other")
    code = main(["fleet", "bench", "--address", cluster.address, "--models", "resnet50", "--backends", "onnxruntime",
                 "--store", str(tmp_path / "v.db")])
    err = capsys.readouterr().err
    assert code == 1
    assert "refused before anything ran: 2 of 2" in err and "0.0.0+other here" in err, err
    assert open_store(tmp_path / "v.db").runs() == []


@pytest.mark.slow  # over 3 s: the default run stays under 5 min; .ci/run's slow pass runs it
def test_fleet_bench_cli_bad_selector_and_node_refusal(cluster, tmp_path):
    out = run_cli("fleet", "bench", "--address", cluster.address, "--nodes", "no-such-node", "--suite", "quick",
                  "--store", str(tmp_path / "s.db"))
    assert out.returncode == 2 and "no alive node matches 'no-such-node'" in out.stderr, out.stderr
    # --threads above the CPUs a node's process may use: not checked against the driver's CPUs but
    # on the node, which refuses its run before measuring anything
    out = run_cli("fleet", "bench", "--address", cluster.address, "--nodes", "node-b", "--models", "resnet50",
                  "--backends", "onnxruntime", "--threads", "999", "--store", str(tmp_path / "s.db"))
    assert out.returncode == 1, out.stderr
    assert "--threads 999 is more than the" in out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    assert "node-b" in out.stdout and "failed" in out.stdout  # the per-node summary table


def _run_in_thread(fb, display=None):
    box = {}

    def target():
        box["runs"] = fb.run(display)

    t = threading.Thread(target=target, daemon=True)
    t.start()
    return t, box


def _wait_for(pred, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError("timed out waiting")


@pytest.mark.slow  # over 3 s: the default run stays under 5 min; .ci/run's slow pass runs it
def test_interrupt_cancels_remote_tasks_and_keeps_finished_cases(conn, inputs, tmp_path):
    """Ctrl-C on the driver as pfdeploy.signals delivers it (a KeyboardInterrupt in the driver's
    main thread while it waits), right after a node's first case arrived."""

    class CtrlC(fleet.Display):
        seen: set = set()

        def case(self, nr, row):
            self.seen.add(nr.node.node_id)
            if len(self.seen) == 2:  # both nodes have a finished case, both now hang in the second
                self.seen.add("fired")
                raise KeyboardInterrupt

    nodes = fleet.probe_nodes(conn)
    store = open_store(tmp_path / "int.db")
    cfg = config("fleet-int", min_time=0.3, max_time=0.5, interleave=False)
    cases = fake_cases(inputs, {"hang_after": 50})  # the second case hangs: only the cancel ends it
    fb = fleet.FleetBench(conn, cfg, store, nodes, "test", prepared_cases=cases)
    runs = fb.run(CtrlC())
    assert fb.signum == 2
    assert {nr.status for nr in runs} == {"interrupted"}
    stored = _by_name(store, "fleet-int")
    assert set(stored) == {"node-a", "node-b"}
    for run in stored.values():
        assert run["status"] == "interrupted"
        rows = store.results(run["id"])
        assert [r.model for r in rows if r.ok] == ["pf_resnet50_max"]  # the finished case kept
    # the remote tasks really stopped: the nodes' CPUs are free again for a new fleet run
    again = fleet.FleetBench(conn, config("fleet-int2"), store, nodes, "test", prepared_cases=fake_cases(inputs)).run()
    assert [nr.status for nr in again] == ["finished", "finished"]


@pytest.mark.slow  # ~30 s (a Ray node killed and its tasks retried)
def test_node_killed_mid_run(cluster, conn, inputs, tmp_path):
    """A third node joins, is benchmarked beside node-a and is removed from the cluster once its
    first case is stored: node-a's run finishes, node-c's is recorded failed with the reason and
    keeps its finished case."""
    node_c = cluster.add_node(num_cpus=1, env_vars={"PFDEPLOY_MACHINE_NAME": "node-c"})
    cluster.wait_for_nodes()
    nodes = fleet.select(fleet.probe_nodes(conn), "node-a,node-c")
    assert sorted(n.machine_name for n in nodes) == ["node-a", "node-c"]
    store = open_store(tmp_path / "kill.db")
    cases = fake_cases(inputs)
    # each case measures for 3 s, one after the other: node-c dies during its second
    cfg = config("fleet-kill", min_time=3.0, max_time=3.5, interleave=False)
    fb = fleet.FleetBench(conn, cfg, store, nodes, "test", prepared_cases=cases)
    t, box = _run_in_thread(fb)
    c_id = next(n.node_id for n in nodes if n.machine_name == "node-c")
    _wait_for(lambda: len(fb.runs[c_id].results) >= 1)
    cluster.remove_node(node_c)
    t.join(180)
    assert not t.is_alive()
    by = {nr.node.machine_name: nr for nr in box["runs"]}
    assert by["node-c"].status == "failed"
    assert "died" in by["node-c"].error or "removed" in by["node-c"].error
    stored = _by_name(store, "fleet-kill")
    assert stored["node-c"]["status"] == "failed"
    assert "died" in stored["node-c"]["fleet"]["error"]
    kept = store.results(stored["node-c"]["id"])
    assert [r.model for r in kept if r.ok] == ["pf_resnet50_max"]
    assert len(store.samples(kept[0].id)["latency_ns"]) == kept[0].n > 0
    # node-a is unaffected: both its cases measured, its run finished
    assert stored["node-a"]["status"] == "finished"
    assert [r.status for r in store.results(stored["node-a"]["id"])] == ["ok", "ok"]
    assert by["node-a"].status == "finished"
