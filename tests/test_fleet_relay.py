"""The fleet's result edge without a Ray cluster (tests/test_fleet.py needs ray): a node relays each
case as the run file's row of it (`Result.to_row(samples=True)`, the store's own export edge), and
the driver types what it receives, counts it and imports it."""
from __future__ import annotations

from types import SimpleNamespace

from pfdeploy.fleet.driver import Display, FleetBench
from pfdeploy.fleet.node_task import _Relay
from pfdeploy.fleet.nodes import Node
from pfdeploy.result import Result
from pfdeploy.store import open_store


def case(model: str, status: str = "ok") -> Result:
    ok = status == "ok"
    return Result.from_row({
        "case_key": f"{model}|synthetic:0|_fake|cpu|fp32|1|1|latency", "model": model, "weights": "synthetic:0",
        "backend": "_fake", "device": "cpu", "precision": "fp32", "batch": 1, "threads": 1, "scenario": "latency",
        "status": status, "error": None if ok else "refused to load", "p50_ms": 1.1 if ok else None,
        "samples_ns": [1_000_000, 1_100_000, 1_200_000, 1_150_000] if ok else None,
        "sample_rounds": [0, 0, 1, 1] if ok else None, "process_rounds": [[0, 1]] if ok else None})


def node_relay(tmp_path):
    local = open_store(tmp_path / "node.db")
    relay = _Relay(local, collector=None, key="n1", fleet_meta={"node_id": "n1"})
    sent = []
    relay._send = lambda kind, payload, wait=True: sent.append((kind, payload))
    return local, relay, sent


def test_a_node_relays_each_case_as_its_run_file_row(tmp_path):
    local, relay, sent = node_relay(tmp_path)
    run_id = relay.begin_run({"tag": "t", "machine_id": "m1"})
    relay.add_result(run_id, case("a"))
    relay.add_result(run_id, case("b", "failed"))
    relay.finish_run(run_id, "finished")
    rows = [p for kind, p in sent if kind == "case"]
    exported = local.export_run(run_id)["results"]
    assert rows == exported  # exactly what the node's run file says of each case, samples included
    assert rows[0]["samples_ns"] == [1_000_000, 1_100_000, 1_200_000, 1_150_000]
    assert rows[0]["sample_rounds"] == [0, 0, 1, 1] and rows[1]["samples_ns"] == []
    local.close()


def test_the_driver_types_counts_and_imports_what_a_node_relayed(tmp_path):
    local, relay, sent = node_relay(tmp_path)
    run_id = relay.begin_run({"tag": "t", "machine_id": "m1"})
    relay.add_result(run_id, case("a"))
    relay.add_result(run_id, case("b", "failed"))  # the node dies here: no finish, no export
    local.close()

    class Shown(Display):
        rows: list = []

        def case(self, nr, row):
            self.rows.append(row)

    store = open_store(tmp_path / "driver.db")
    node = Node(node_id="n1", host="h1", ip="10.0.0.1", cpus=1.0, gpus=0.0)

    def no_collector(*a, **k):
        raise RuntimeError("the collector is gone")

    fb = FleetBench(SimpleNamespace(get=no_collector), None, store, [node], "test")
    fb._pending = [("n1", kind, payload) for kind, payload in sent]
    shown = Shown()
    fb._drain(SimpleNamespace(drain=SimpleNamespace(remote=lambda: None)), shown)
    nr = fb.runs["n1"]
    assert all(isinstance(r, Result) for r in nr.results) and [r.model for r in nr.results] == ["a", "b"]
    assert isinstance(shown.rows[-1], Result)
    assert nr.counts() == {"ok": 1, "failed": 1, "skipped": 0}
    nr.status = "failed"
    fb._import(nr)
    assert nr.imported and nr.run_id == run_id
    stored = store.results(run_id, samples=True)
    assert [(r.model, r.status) for r in stored] == [("a", "ok"), ("b", "failed")]
    assert stored[0].samples_ns == [1_000_000, 1_100_000, 1_200_000, 1_150_000]
    assert stored[0].sample_rounds == [0, 0, 1, 1] and stored[0].process_rounds == [[0, 1]]
    assert store.get_run(run_id)["status"] == "failed"
    store.close()
