"""Runtimes and export targets as plugins (issue 22, item 3).

tests/plugin_dist is a separate distribution (`pfdeploy-testplugin`) that adds the export target
`onnx-basic` and the runtime `ort-basic` through the entry-point groups `pfdeploy.targets` and
`pfdeploy.backends` only. It is pip-installed into a temporary --target folder put on PYTHONPATH
(the shared virtual environment is not touched) and pfdeploy is run with it as a user would:
`pfdeploy devices`, `pfdeploy export --to onnx-basic`, `pfdeploy bench --backends ort-basic`.
A broken plugin costs one warning line in listings and one error line when named, never a
traceback.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from pfdeploy.errors import UsageError, UserError
from pfdeploy.plugins import EntryPointRegistry

DIST = Path(__file__).resolve().parent / "plugin_dist"
MODEL = "timm:resnet10t"  # 5 M parameters: exports and runs in seconds


def _pfdeploy(env, *args, timeout=600):
    return subprocess.run([sys.executable, "-m", "pfdeploy", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def _env(tmp: Path, pythonpath: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(pythonpath), env.get("PYTHONPATH", "")) if p)
    env["PFDEPLOY_CACHE_DIR"] = str(tmp / "cache")
    env["PFDEPLOY_STORE"] = str(tmp / "results.db")
    env["COLUMNS"] = "200"
    return env


@pytest.fixture(scope="module")
def plugin(tmp_path_factory):
    """The plugin distribution installed into a temporary folder (pip --target): (env, folder)."""
    tmp = tmp_path_factory.mktemp("plugin")
    src = tmp / "src"
    shutil.copytree(DIST, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))  # pip writes there
    site = tmp / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                        "--no-index", "--target", str(site), str(src)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    eps = (next(site.glob("pfdeploy_testplugin-*.dist-info")) / "entry_points.txt").read_text()
    assert "onnx-basic = pfdeploy_testplugin.target" in eps and "ort-basic = pfdeploy_testplugin.backend" in eps
    yield _env(tmp, site), site
    shutil.rmtree(tmp, ignore_errors=True)


def test_the_plugin_is_listed_without_an_edit_to_pfdeploy(plugin):
    env, _ = plugin
    r = _pfdeploy(env, "devices", "--json")
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr and "warning" not in r.stderr
    cpu = next(d for d in json.loads(r.stdout)["devices"] if d["device"] == "cpu")
    assert "ort-basic" in cpu["backends"] and cpu["precisions"]["ort-basic"] == ["fp32"]
    assert json.loads(r.stdout)["machine"]["tools"]["onnxruntime"]  # its declared tools are recorded
    code = ("import json; from pfdeploy.backends import backend_names, get_backend; "
            "from pfdeploy.exporters.targets import get_target, target_names; "
            "b = get_backend('ort-basic'); t = get_target('onnx-basic'); "
            "print(json.dumps([backend_names(), target_names(), b.target, b.load_timeout_s, b.install_hint, "
            "t.model_file, list(t.precisions)]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    backends, targets, target, timeout, hint, model_file, precisions = json.loads(out.stdout)
    assert backends[-1] == "ort-basic" and targets == ["onnx", "openvino", "trt", "onnx-basic"]
    assert (target, timeout, hint, model_file, precisions) == ("onnx-basic", 120.0, "pip install onnxruntime",
                                                               "model.onnx", ["fp32"])
    r = _pfdeploy(env, "export", "--help")
    assert "onnx-basic" in r.stdout  # --to's choices come from the registry


@pytest.mark.slow
def test_the_plugin_exports_and_benchmarks_end_to_end(plugin, tmp_path):
    env, _ = plugin
    r = _pfdeploy(env, "export", MODEL, "--to", "onnx-basic", "--json")  # the dynamic batch a bench asks for
    assert r.returncode == 0, r.stderr
    art = json.loads(r.stdout)
    m = art["manifest"]
    assert art["status"] == "ok" and art["target"] == "onnx-basic" and Path(art["model_file"]).is_file()
    assert Path(art["path"]).parent.name == "onnx-basic"  # the cache keeps each target apart
    assert "ORT_ENABLE_BASIC" in m["exporter"]["name"] and m["exporter"]["nodes_after"] > 0
    assert m["exporter"]["parent"]["path"].split(os.sep)[-2] == "onnx"  # derived from the verified fp32 ONNX
    assert m["parity"]["verdict"] == "passed" and m["tools"]["onnxruntime"]
    assert m["parity"]["runtime_config"]["backend"] == "ort-basic"  # verified by the plugin's runtime
    assert m["parity"]["runtime_config"]["graph_optimization_level"] == "ORT_DISABLE_ALL"

    r = _pfdeploy(env, "bench", "--models", MODEL, "--backends", "ort-basic", "--batch", "1", "--threads", "1",
                  "--min-time", "0.2", "--max-time", "1", "--tag", "plugin")
    assert r.returncode == 0, r.stderr[-3000:]
    from pfdeploy.store import open_store

    with open_store(env["PFDEPLOY_STORE"], readonly=True) as store:
        run = store.resolve_run("plugin")
        rows = store.results(run["id"])
        tools = run["tools"]
    assert len(rows) == 1, rows
    row = rows[0]
    assert (row["backend"], row["model"], row["status"], row["precision"]) == ("ort-basic", MODEL, "ok", "fp32")
    assert row["n"] > 0 and row["p50_ms"] > 0 and row["artifact_sha256"] == m["sha256"]  # the one exported above
    assert row["artifact"]["target"] == "onnx-basic" and row["parity"]["verdict"] == "passed"
    assert tools["onnxruntime"] and run["status"] == "finished"


# ------------------------------------------------------------------------------ broken plugins

def _fake_dist(site: Path, name: str, entry_points: str) -> None:
    info = site / f"{name}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(entry_points)


def test_a_broken_plugin_is_one_line_never_a_traceback(tmp_path):
    site = tmp_path / "site"
    _fake_dist(site, "broken_plugin", "[pfdeploy.backends]\nbroken-rt = no_such_module_xyz\n"
                                      "not-a-backend = os:sep\nonnxruntime = os:sep\n"
                                      "[pfdeploy.targets]\nbroken-tg = no_such_module_xyz\n")
    env = _env(tmp_path, site)
    r = _pfdeploy(env, "devices", "--json")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 3 and all(ln.startswith("warning: ") for ln in lines), lines
    assert any("'broken-rt'" in ln and "ModuleNotFoundError" in ln for ln in lines)
    assert any("'not-a-backend'" in ln and "not a pfdeploy.backends.Backend" in ln for ln in lines)
    assert any("'onnxruntime'" in ln and "built into pfdeploy" in ln for ln in lines)
    cpu = json.loads(r.stdout)["devices"][0]
    assert "onnxruntime" in cpu["backends"] or "onnxruntime" in cpu["unavailable"]  # the built-in one, untouched

    r = _pfdeploy(env, "bench", "--models", "resnet50", "--backends", "broken-rt", "--store", str(tmp_path / "r.db"))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert [ln for ln in r.stderr.splitlines() if "broken-rt" in ln and "cannot be used" in ln]
    assert not (tmp_path / "r.db").exists()
    r = _pfdeploy(env, "export", "resnet50", "--to", "broken-tg")
    assert r.returncode == 1 and "Traceback" not in r.stderr and "'broken-tg'" in r.stderr
    assert len([ln for ln in r.stderr.splitlines() if ln.strip()]) == 1, r.stderr


def _registry(monkeypatch, *entries, builtin=("onnx",)):
    eps = [metadata.EntryPoint(name, value, "pfdeploy.test") for name, value in entries]
    monkeypatch.setattr("pfdeploy.plugins.metadata.entry_points", lambda group: eps if group == "pfdeploy.test" else [])
    return EntryPointRegistry("pfdeploy.test", "test", builtin=builtin)


def test_the_registry_reads_entry_points_lazily_and_checks_them(monkeypatch, capsys):
    reg = _registry(monkeypatch, ("good", "json:dumps"), ("bad name,x", "json:dumps"), ("onnx", "json:dumps"),
                    ("twice", "json:dumps"), ("twice", "json:loads"), ("gone", "no_such_module_xyz"))
    assert reg.names() == ("gone", "good", "twice")
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and all(ln.startswith("warning: ") for ln in err)
    import json as json_mod

    assert reg.load("good", lambda name, obj: obj) is json_mod.dumps
    with pytest.raises(UserError, match=r"^test plugin 'gone' \(no_such_module_xyz\) cannot be used: ModuleNotFoundError"):
        reg.load("gone", lambda name, obj: obj)

    def refuse(name, obj):
        raise UserError("it is not a thing")

    with pytest.raises(UserError, match="'twice' .* cannot be used: it is not a thing"):
        reg.load("twice", refuse)
    assert reg.try_load("gone", lambda n, o: o) is None
    assert capsys.readouterr().err.count("warning: test plugin 'gone'") == 1
    assert reg.try_load("gone", lambda n, o: o) is None
    assert capsys.readouterr().err == ""  # once per process


def test_unknown_backend_and_target_names_still_say_what_exists():
    from pfdeploy.backends import get_backend
    from pfdeploy.exporters.targets import get_target

    with pytest.raises(UsageError, match="unknown backend 'onnxruntim'.*did you mean onnxruntime"):
        get_backend("onnxruntim")
    with pytest.raises(UsageError, match="unknown target 'onx'.*did you mean onnx"):
        get_target("onx")
