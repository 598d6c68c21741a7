"""The tuned directory (issue 23 item 4, docs/tune.md): write_tuned/read_tuned with a real exported
artifact (pf_vit_ti to ONNX, shared through the session's artifact cache), refusal of whatever
else is at its path, a modified artifact refused, `pfdeploy.tune.load`, and `pfdeploy bench
--tuned DIR` end to end in this process (real ONNX Runtime, short measurement)."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from pfdeploy.errors import UserError

from conftest import invoke_cli

MODEL = "pf_vit_ti"


@pytest.fixture(scope="session")
def vit_onnx(artifact_cache):
    from pfdeploy.exporters import get_artifact

    return get_artifact(MODEL, "onnx")


def winner_row(art, **extra):
    """A stored winner result as the store returns it (the fields write_tuned reads)."""
    from pfdeploy.result import Result

    row = {
        "case_key": "x", "model": MODEL, "weights": "synthetic:0", "backend": "onnxruntime", "device": "cpu",
        "precision": "fp32", "batch": 1, "threads": 1, "scenario": "latency", "status": "ok",
        "variant": "ort-seq", "options": {"allow_cpu_nodes": False, "artifact": {}},
        "p50_ms": 10.0, "p50_ci_low_ms": 9.5, "p50_ci_high_ms": 10.5, "processes": 3,
        "artifact_sha256": art.sha256,
        "artifact": {"target": "onnx", "precision": "fp32", "path": str(art.path),
                     "runner": {"backend": "onnxruntime", "intra_op_threads": 1,
                                "execution_mode": "ORT_SEQUENTIAL"}},
        "tune": {"candidate": "ort-seq", "default": False, "note": "sequential", "status": "winner",
                 "runtime_winner": True, "overall_winner": True, "eliminated_by": None, "eliminated_at": None,
                 "elimination": None, "vs_default": {"ratio": 1.05, "ci_low": 1.01, "ci_high": 1.09},
                 "tied_with": []},
    }
    row.update(extra)
    return Result.from_row(row)


MACHINE = {"machine_id": "m1", "cpu": {"model": "Test CPU", "isa": ["avx2"]}, "hostname": "h"}


def write(dest, art, **extra):
    from pfdeploy.tune.artifact import write_tuned

    return write_tuned(dest, winner_row(art, **extra), run_id="run1", store_url="sqlite:///r.db", machine=MACHINE)


def tree_sha(path: Path) -> str:
    """A digest of what is at `path` (kind, link target, every file's bytes), to show it was left alone."""
    h = hashlib.sha256()
    if path.is_symlink():
        h.update(b"link " + os.readlink(path).encode())
    elif path.is_dir():
        for f in sorted(path.rglob("*")):
            h.update(str(f.relative_to(path)).encode())
            if f.is_file():
                h.update(f.read_bytes())
    elif path.is_file():
        h.update(b"file " + path.read_bytes())
    else:
        h.update(f"mode {os.lstat(path).st_mode}".encode())
    return h.hexdigest()


def test_round_trip(vit_onnx, tmp_path):
    from pfdeploy.tune.artifact import FORMAT, read_tuned

    d = write(tmp_path / "tuned" / MODEL, vit_onnx)
    assert d == (tmp_path / "tuned" / MODEL).absolute()
    assert sorted(p.name for p in d.iterdir()) == sorted([*vit_onnx.manifest["files"], "manifest.json", "tuned.json"])
    t = read_tuned(d)
    assert t["format"] == FORMAT and t["model"] == MODEL and t["variant"] == "ort-seq"
    assert t["options"] == {"allow_cpu_nodes": False}  # runner options, without "artifact"
    assert t["artifact"] == {"file": "model.onnx", "sha256": vit_onnx.sha256, "manifest": "manifest.json",
                             "request": {"target": "onnx", "precision": "fp32"}}
    assert t["runtime_settings"]["execution_mode"] == "ORT_SEQUENTIAL"
    m = t["measured"]
    assert (m["p50_ms"], m["p50_ci_low_ms"], m["p50_ci_high_ms"], m["processes"]) == (10.0, 9.5, 10.5, 3)
    assert (m["run_id"], m["store"], m["machine_id"], m["cpu"]) == ("run1", "sqlite:///r.db", "m1",
                                                                   {"model": "Test CPU", "isa": ["avx2"]})
    assert t["vs_default"]["ratio"] == 1.05 and t["status"] == "winner" and t["tied_with"] == []
    man = json.loads((d / "manifest.json").read_text())
    assert man["tuned"]["variant"] == "ort-seq" and man["tuned"]["runtime_settings"] == t["runtime_settings"]
    assert man["sha256"] == vit_onnx.sha256
    assert not [p for p in d.parent.iterdir() if p.name.startswith(".")]  # no temporary left
    # written again over itself: replaced as a whole
    (d / "accuracy.json").write_text("{}")  # pfdeploy's own file (bench --tuned --images) is no obstacle
    d2 = write(d, vit_onnx, p50_ms=11.0)
    assert read_tuned(d2)["measured"]["p50_ms"] == 11.0 and not (d2 / "accuracy.json").exists()


def test_torch_row_has_no_artifact_file(tmp_path, vit_onnx):
    from pfdeploy.tune.artifact import read_tuned

    d = write(tmp_path / "t", vit_onnx, backend="torch", artifact={"source": "zoo", "weights": "synthetic:0",
                                                                  "runner": {"backend": "torch"}},
              artifact_sha256=None, variant="eager-fp32", options={})
    t = read_tuned(d)
    assert t["artifact"] == {"file": None, "sha256": None, "manifest": None, "request": None}
    assert t["weights"] == "synthetic:0" and sorted(p.name for p in d.iterdir()) == ["tuned.json"]


def _fifo(p):
    os.mkfifo(p)


@pytest.mark.parametrize("kind", ["file", "symlink", "fifo", "foreign_dir", "tuned_dir_with_foreign_file",
                                  "symlink_to_tuned"])
def test_refuses_what_is_not_its_own(kind, vit_onnx, tmp_path):
    dest = tmp_path / "dest"
    if kind == "file":
        dest.write_text("mine")
    elif kind == "symlink":
        (tmp_path / "elsewhere").mkdir()
        dest.symlink_to(tmp_path / "elsewhere")
    elif kind == "fifo":
        _fifo(dest)
    elif kind == "foreign_dir":
        dest.mkdir()
        (dest / "notes.txt").write_text("mine")
    elif kind == "tuned_dir_with_foreign_file":
        write(dest, vit_onnx)
        (dest / "notes.txt").write_text("mine")
    else:
        real = write(tmp_path / "real", vit_onnx)
        dest.symlink_to(real)
    before = tree_sha(dest)
    with pytest.raises(UserError) as exc:
        write(dest, vit_onnx)
    assert str(dest) in str(exc.value) and "\n" not in str(exc.value)
    assert tree_sha(dest) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_read_tuned_refuses_a_modified_artifact(vit_onnx, tmp_path):
    from pfdeploy.tune.artifact import read_tuned

    d = write(tmp_path / "t", vit_onnx)
    f = d / "model.onnx"
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other bytes
    f.write_bytes(bytes(data))
    with pytest.raises(UserError, match="sha256"):
        read_tuned(d)
    f.write_bytes(bytes(data[:-10]))
    with pytest.raises(UserError, match="truncated"):
        read_tuned(d)
    f.unlink()
    with pytest.raises(UserError, match="missing"):
        read_tuned(d)


@pytest.mark.parametrize("damage, needle", [
    ("no_tuned_json", "no tuned.json"), ("format", "not a pfdeploy tuned record"), ("field", "missing measured"),
    ("corrupt", "corrupt"), ("traversal", "inside the directory"),
])
def test_read_tuned_one_line_per_problem(damage, needle, vit_onnx, tmp_path):
    from pfdeploy.tune.artifact import read_tuned

    d = write(tmp_path / "t", vit_onnx)
    p = d / "tuned.json"
    t = json.loads(p.read_text())
    if damage == "no_tuned_json":
        p.unlink()
    elif damage == "format":
        p.write_text(json.dumps({**t, "format": "other/1"}))
    elif damage == "field":
        del t["measured"]
        p.write_text(json.dumps(t))
    elif damage == "corrupt":
        p.write_text("{")
    else:
        t["artifact"]["file"] = "../model.onnx"
        p.write_text(json.dumps(t))
    with pytest.raises(UserError, match=needle) as exc:
        read_tuned(d)
    assert "\n" not in str(exc.value)


def test_load_in_three_lines(vit_onnx, tmp_path):
    d = write(tmp_path / "tuned" / MODEL, vit_onnx)
    from pfdeploy.tune import load

    runner = load(d)
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    y = runner.outputs(x)
    assert runner.case.variant == "ort-seq" and runner.case.options == {"allow_cpu_nodes": False}
    assert runner.model_file == str(d / "model.onnx")
    import onnxruntime as ort

    sess = ort.InferenceSession(str(vit_onnx.model_file), providers=["CPUExecutionProvider"])
    ref = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)
    assert runner.describe()["intra_op_threads"] == 1
    runner.close()


def test_bench_tuned_flags_clash(vit_onnx, tmp_path):
    d = write(tmp_path / "t", vit_onnx)
    for flag in (["--models", MODEL], ["--precision", "int8"], ["--batch", "2"], ["--threads", "1"],
                 ["--scenario", "latency"], ["--backends", "openvino"], ["--weights", "synthetic"]):
        r = invoke_cli("bench", "--tuned", str(d), *flag, "--store", str(tmp_path / "r.db"))
        assert r.returncode == 2, (flag, r.stdout, r.stderr)
        assert flag[0] in r.stderr and "--tuned" in r.stderr
    r = invoke_cli("bench", "--tuned", str(tmp_path / "missing"), "--store", str(tmp_path / "r.db"))
    assert r.returncode == 1 and "tuned directory not found" in r.stderr


def test_preparer_refuses_a_sha_mismatch(vit_onnx, tmp_path):
    from pfdeploy.bench.model import BenchConfig
    from pfdeploy.bench.prepare import Preparer

    d = write(tmp_path / "t", vit_onnx)
    p = Preparer(BenchConfig(models=(MODEL,)))
    req = {"target": "onnx", "precision": "fp32", "file": str(d / "model.onnx"), "sha256": vit_onnx.sha256}
    ok = p.artifact(MODEL, req)
    assert isinstance(ok, tuple) and ok[0] == str(d / "model.onnx") and ok[1] == vit_onnx.sha256
    assert ok[2]["source"] == "tuned" and ok[2]["path"] == str(d)
    assert "modified" in p.artifact(MODEL, {**req, "sha256": "0" * 64})
    assert "precision" in p.artifact(MODEL, {**req, "precision": "int8"})


@pytest.mark.slow  # over 3 s: the default run stays under 5 min; .ci/run's slow pass runs it
def test_bench_tuned_reproduces_through_the_cli(vit_onnx, tmp_path):
    """Two tuned directories (two variants of one case) in one run: one whose recorded interval
    holds any median, one that none can be in; the rows carry the variant and the options."""
    from pfdeploy.store import open_store

    wide = write(tmp_path / "wide", vit_onnx, variant="wide", p50_ms=5.0, p50_ci_low_ms=0.001, p50_ci_high_ms=1e6)
    narrow = write(tmp_path / "narrow", vit_onnx, variant="narrow", p50_ms=1e-6, p50_ci_low_ms=1e-7,
                   p50_ci_high_ms=2e-6)
    db = tmp_path / "r.db"
    out = tmp_path / "run.json"
    r = invoke_cli("bench", "--tuned", str(wide), "--tuned", str(narrow), "--processes", "1", "--min-time", "0.2",
                   "--max-time", "0.4", "--store", str(db), "--json", str(out))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert f"reproduced: p50 " in r.stdout and f"recorded ({wide})" in r.stdout
    assert f"NOT within the recorded interval" in r.stdout.replace("\n", " ")
    doc = json.loads(out.read_text())
    checks = {Path(c["dir"]).name: c for c in doc["tuned"]}
    assert checks["wide"]["reproduced"] is True and checks["narrow"]["reproduced"] is False
    rows = {x["variant"]: x for x in doc["results"]}
    assert set(rows) == {"wide", "narrow"} and all(x["status"] == "ok" for x in rows.values())
    for name, d in (("wide", wide), ("narrow", narrow)):
        x = rows[name]
        assert x["options"] == {"allow_cpu_nodes": False,
                                "artifact": {"file": str(d / "model.onnx"), "sha256": vit_onnx.sha256}}
        assert x["artifact"]["source"] == "tuned" and x["artifact"]["path"] == str(d)
        assert x["artifact_sha256"] == vit_onnx.sha256 and x["case_key"].endswith(f"|{name}")
        assert x["parity"].get("verdict") == "passed"
    store = open_store(str(db))
    stored = store.results(doc["run"]["id"] if "id" in doc["run"] else doc["results"][0]["run_id"])
    assert {x["variant"] for x in stored} == {"wide", "narrow"}
    store.close()


def test_load_torch_winner_rebuilds_the_seeded_model(vit_onnx, tmp_path):
    """A torch winner has no artifact: load() rebuilds the model with the recorded synthetic seed,
    which computes what the ONNX artifact of the same weights computes."""
    from pfdeploy.tune import load

    d = write(tmp_path / "t", vit_onnx, backend="torch", artifact={"source": "zoo", "runner": {}},
              artifact_sha256=None, variant="eager-fp32", options={})
    with load(d) as runner:
        x = np.random.default_rng(1).standard_normal((1, 3, 224, 224)).astype(np.float32)
        y = runner.outputs(x)
        assert runner.case.backend == "torch" and runner.model_file is None
    import onnxruntime as ort

    sess = ort.InferenceSession(str(vit_onnx.model_file), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(y, sess.run(None, {sess.get_inputs()[0].name: x})[0], rtol=1e-3, atol=1e-3)
