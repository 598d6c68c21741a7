"""`pfdeploy tune` end to end through the real runtimes (ONNX Runtime, OpenVINO) on MobileNetV2
(small, quick to export): the races, the final rotation, the stored runs, the tuned directory and
its reproduction by `pfdeploy bench --tuned` in a fresh process. No time is asserted: which
candidate wins is the machine's business; that every claim the output makes is backed by the
stored rows is the test's."""
from __future__ import annotations

import json

import pytest

from conftest import run_cli
from pfdeploy.store import open_store

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.subprocess]


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("openvino")
    d = tmp_path_factory.mktemp("tune")
    r = run_cli("tune", "mobilenetv2_100", "--backends", "onnxruntime,openvino", "--budget", "150s",
                "--max-generations", "3", "--processes", "2", "--store", str(d / "r.db"), "--out", str(d / "tuned"),
                "--json", timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:]
    return d, json.loads(r.stdout)


def test_every_runtime_races_its_default_and_ships_one_deployment(tuned):
    d, doc = tuned
    (m,) = doc["models"]
    assert m["model"] == "mobilenetv2_100"
    assert {rt["backend"] for rt in m["runtimes"]} == {"onnxruntime", "openvino"}
    for rt in m["runtimes"]:
        cands = rt["candidates"]
        assert cands[0]["default"] and sum(c["default"] for c in cands) == 1
        assert len({c["variant"] for c in cands}) == len(cands)
        shipped = [c for c in cands if c["shipped"]]
        assert len(shipped) == 1 and shipped[0] is not None and rt["shipped"]["variant"] == shipped[0]["variant"]
        assert shipped[0]["status"] in ("winner", "tied")
        for c in cands:  # every elimination names the leader and a paired interval above 1
            if c["status"] == "eliminated":
                assert c["elimination"]["ci_low"] > 1.0 and c["eliminated_by"]
            if c["status"] == "failed":
                assert c["error"]
        default = cands[0]
        if default["status"] != "failed":
            assert default["vs_default"]["how"] == "itself"
    assert m["overall"]["backend"] in ("onnxruntime", "openvino")


def test_the_runs_are_stored_with_their_fates(tuned):
    d, doc = tuned
    s = open_store(d / "r.db")
    try:
        runs = {r["id"]: r for r in s.runs()}
        assert runs[doc["runs"][0]]["suite"] == "tune" and runs[doc["final_run"]]["suite"] == "tune-final"
        race_rows = s.results(doc["runs"][0])
        assert len({r.case_key for r in race_rows}) == len(race_rows)
        assert all(r.variant and r.tune is not None and r.tune.candidate for r in race_rows)
        final = [r for r in s.results(doc["final_run"]) if r.ok]
        assert {r.backend for r in final} == {"onnxruntime", "openvino"}
        assert sum(bool(r.tune.overall_winner) for r in final) == 1
        assert all(r.tune.runtime_winner for r in final)
    finally:
        s.close()


def test_the_winner_is_a_directory_that_bench_reproduces_in_a_fresh_process(tuned):
    d, doc = tuned
    target = d / "tuned" / "mobilenetv2_100"
    meta = json.loads((target / "tuned.json").read_text())
    ov = doc["models"][0]["overall"]
    assert (meta["backend"], meta["variant"]) == (ov["backend"], ov["variant"])
    assert meta["measured"]["run_id"] == doc["final_run"]
    r = run_cli("bench", "--tuned", str(target), "--processes", "2", "--store", str(d / "r.db"), timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "reproduced:" in r.stdout or "NOT within the recorded interval" in r.stdout
    s = open_store(d / "r.db")
    try:
        newest = s.runs(limit=1)[0]
        (row,) = [x for x in s.results(newest["id"]) if x.ok]
        assert row.variant == meta["variant"] and row.backend == meta["backend"]
    finally:
        s.close()
