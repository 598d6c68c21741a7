"""CLI basics and error paths: one line, right exit code, no traceback."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from conftest import run_cli
from pfdeploy.cli import VERBS

OPTIONAL = ["onnxruntime", "openvino", "nncf", "tensorrt", "pynvml", "psycopg", "playwright", "pycuda", "cuda"]
BLOCKER = f"""
import sys
# None in sys.modules: `import x` raises ImportError and importlib.util.find_spec(x) returns None,
# exactly what a machine without the package looks like to both kinds of probe.
for name in {OPTIONAL!r}:
    sys.modules[name] = None
"""


def _no_traceback(proc):
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout


@pytest.fixture
def invoke(capsys):
    """Run the CLI in-process (same entry point as the console script, no interpreter start-up)."""
    from pfdeploy.cli import main

    def run(*args):
        code = main(list(args))
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out, err)

    return run


@pytest.mark.subprocess
def test_version_and_python_m():
    from pfdeploy import __version__

    proc = run_cli("--version")
    assert proc.returncode == 0 and __version__ in proc.stdout


def test_models_json_and_family_filter(invoke):
    proc = invoke("models", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    names = {d["name"] for d in data}
    assert {"pf_resnet50_max", "pf_resnet50_hybrid", "pf_vit_ti", "pf_vit_s", "pf_vit_b", "pf_pit_ti", "pf_pit_s",
            "pf_pit_b", "resnet50", "dw_resnet50", "mobilenetv2_100", "efficientnet_b0",
            "deit_small_patch16_224", "pit_s_224"} <= names
    proc = invoke("models", "--family", "depthwise", "--json")
    assert {d["family"] for d in json.loads(proc.stdout)} == {"depthwise"}
    table = invoke("models")
    assert table.returncode == 0 and "pf_resnet50_hybrid" in table.stdout and "pf_resnet50" in table.stdout


def test_info_computes_params_and_macs(invoke):
    proc = invoke("info", "pf_resnet50", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["name"] == "pf_resnet50_hybrid"
    assert abs(data["computed"]["params_m"] - 17.3) < 0.1 and abs(data["computed"]["macs_g"] - 2.6) < 0.05
    assert data["published"]["gpu_ms"] == 7.3
    human = invoke("info", "resnet50_max")
    assert human.returncode == 0 and "14.23" in human.stdout and "published" in human.stdout


def test_unknown_model_exits_2_with_close_matches(invoke):
    proc = invoke("info", "pf_resnet5")
    assert proc.returncode == 2
    _no_traceback(proc)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "did you mean" in lines[0] and "pf_resnet50" in lines[0]


def test_bad_weights_file_is_one_clear_line(tmp_path, invoke):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"garbage")
    proc = invoke("info", "pf_resnet50_max", "--weights", str(bad))
    assert proc.returncode == 1
    _no_traceback(proc)
    assert len(proc.stderr.strip().splitlines()) == 1 and "not a readable" in proc.stderr
    wrong = tmp_path / "wrong.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, wrong)
    proc = invoke("info", "pf_resnet50_max", "--weights", str(wrong))
    assert proc.returncode == 1 and "missing" in proc.stderr
    _no_traceback(proc)


def test_unknown_verb_and_bad_option_are_usage_errors(invoke):
    proc = invoke("frobnicate")
    assert proc.returncode == 2
    _no_traceback(proc)
    proc = invoke("models", "--family", "nope")
    assert proc.returncode == 2
    _no_traceback(proc)


@pytest.mark.slow  # over 3 s: the default run stays under 5 min; .ci/run's slow pass runs it
@pytest.mark.subprocess
def test_every_module_imports_and_every_help_runs_with_core_dependencies_only():
    """Optional runtimes (onnxruntime, openvino, tensorrt, ...) are blocked: nothing may import
    them at module level, and every verb's --help still works."""
    script = BLOCKER + """
import pkgutil, importlib, pfdeploy
mods = ['pfdeploy']
for pkg in ['pfdeploy', 'pfdeploy.exporters', 'pfdeploy.bench', 'pfdeploy.devices']:
    m = importlib.import_module(pkg)
    mods += [i.name for i in pkgutil.walk_packages(m.__path__, pkg + '.')]
for name in mods:
    # __main__ runs the CLI; migrations.env is a script Alembic runs, with its own context
    if name not in ('pfdeploy.__main__', 'pfdeploy.migrations.env'):
        importlib.import_module(name)
from pfdeploy.cli import main, VERBS
assert main(['--help']) == 0
for verb in VERBS:
    assert main([verb, '--help']) == 0, verb
print('imported', len(mods))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "imported" in proc.stdout
    for verb in VERBS:
        assert f"Usage: pfdeploy {verb}" in proc.stdout


HEAVY = ("torch", "timm", "pandas", "onnxruntime", "openvino", "torchvision", "onnx", "scipy")
LISTING = [  # verbs that must answer at once: listings, --help of every verb, usage errors and refusals
    ["models"], ["models", "--json"], ["devices"], ["devices", "--json"], ["results", "--list"],
    ["results", "--list", "--format", "json"], ["store", "info"], ["weights", "list"], ["claims"],
    ["--help"], *[[verb, "--help"] for verb in VERBS],
    ["weights", "fetch", "--help"], ["store", "upgrade", "--help"], ["fleet", "bench", "--help"],
    ["bench", "--threads", "0"], ["bench", "--models", "resnet5O"], ["bench", "--backends", "tensorflow"],
    ["bench", "--processes", "0"], ["bench", "--batch", "x"], ["bench", "--threads", "100000"],
    ["bench", "--suite", "nope"], ["bench", "--device", "tpu"], ["info", "nope"], ["nope"],
]
IMPORT_CHECK = """
import json, sys
from pfdeploy.cli import main
heavy, calls = {heavy!r}, {calls!r}
for argv in calls:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    found = [m for m in heavy if m in sys.modules]
    print(json.dumps({{"argv": argv, "code": code, "heavy": found}}), file=sys.__stderr__)
    if found:
        break
"""


def test_listing_verbs_and_refusals_import_no_runtime(tmp_path):
    """`models`, `devices`, `results --list`, `store info`, `weights list`, `claims`, every --help and
    usage errors answer without importing torch, timm, pandas or a runtime (each is seconds here).
    `devices` reads what the runtimes report from the per-machine probe cache: the first call
    fills it (and may import them), the calls checked here must not."""
    from pfdeploy.store import open_store

    store = tmp_path / "r.db"
    with open_store(store) as s:
        s.import_run(json.load(open(__file__.rsplit("/", 1)[0] + "/data/claims-run.json")))
    env = {"PFDEPLOY_STORE": str(store), "COLUMNS": "100"}
    warm = run_cli("devices", "--json", env=env)  # fills the probe cache of this test session
    assert warm.returncode == 0, warm.stderr
    calls = list(LISTING)
    import os

    if not os.path.exists("/proc/driver/nvidia/version") and not os.path.exists("/dev/nvidiactl"):
        calls.append(["bench", "--device", "cuda:0"])  # the no-GPU refusal: answered without torch
    proc = subprocess.run([sys.executable, "-c", IMPORT_CHECK.format(heavy=HEAVY, calls=calls)], capture_output=True,
                          text=True, timeout=300, env={**os.environ, **env}, cwd=tmp_path)
    reports = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith('{"argv"')]
    for r in reports:
        assert not r["heavy"], f"pfdeploy {' '.join(r['argv'])} imported {', '.join(r['heavy'])}"
    assert len(reports) == len(calls), proc.stderr[-3000:]
    codes = {tuple(r["argv"]): r["code"] for r in reports}
    assert codes[("models",)] == 0 and codes[("devices",)] == 0 and codes[("results", "--list")] == 0
    assert codes[("store", "info")] == 0 and codes[("weights", "list")] == 0 and codes[("claims",)] == 0
    assert all(codes[tuple(c)] == 2 for c in calls if c[0] == "bench" and "--help" not in c), codes
    assert "Traceback" not in proc.stderr


def test_usage_errors_of_click_are_one_line(invoke):
    for args in (["bench", "--processes", "two"], ["nope"], ["results", "--format", "xml"]):
        proc = invoke(*args)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("pfdeploy: error: ") and "--help" in lines[0], lines
