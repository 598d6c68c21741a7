"""`pfdeploy bench` at the command line: usage errors, the no-GPU path, and (slow) a real run."""
from __future__ import annotations

import json

import pytest

from conftest import invoke_cli, run_cli


def test_help_lists_the_issue_options():
    r = invoke_cli("bench", "--help")
    assert r.returncode == 0
    for opt in ("--models", "--suite", "--backends", "--device", "--precision", "--batch", "--threads",
                "--scenario", "--min-time", "--max-time", "--target-ci", "--interleave", "--no-interleave",
                "--store", "--tag", "--json", "--processes"):
        assert opt in r.stdout, opt


def test_cuda_without_a_gpu_exits_2_with_one_line(tmp_path):
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a usable GPU")
    r = invoke_cli("bench", "--device", "cuda:0", "--models", "resnet50", "--store", str(tmp_path / "r.db"), cwd=tmp_path)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "cuda:0" in lines[0] and "Traceback" not in r.stderr
    assert not (tmp_path / "r.db").exists()  # nothing opened, nothing exported


@pytest.mark.parametrize("args,needle", [
    (["--models", "resnet50", "--suite", "quick"], "exclusive"),
    (["--suite", "nope"], "unknown suite"),
    (["--backends", "tensorflow"], "unknown backend"),
    (["--batch", "x"], "--batch"),
    (["--batch", "0"], "--batch"),
    (["--precision", "fp64"], "unknown precision"),
    (["--min-time", "5", "--max-time", "1"], "--min-time"),
    (["--target-ci", "2"], "--target-ci"),
    (["--models", "resnet5O"], "unknown model"),
    (["--threads", "0"], "--threads"),
    (["--processes", "0"], "--processes must be >= 1"),
    (["--processes", "two"], "--processes"),
    (["--backends", "torch", "--scenario", "throughput"], "throughput scenario is not implemented for torch"),
    (["--backends", "tensorrt", "--scenario", "throughput"], "not implemented for tensorrt"),
])
def test_usage_errors_exit_2_without_traceback(args, needle, tmp_path, capsys, monkeypatch):
    from pfdeploy.cli import main

    monkeypatch.chdir(tmp_path)
    rc = main(["bench", *args, "--store", str(tmp_path / "r.db")])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert needle in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r.db").exists()


def test_processes_reaches_the_bench_config():
    """--processes N is passed into BenchConfig(processes=N); left out, the suite's default (None)."""
    from pfdeploy.cli.bench_options import build_config

    args = ("resnet50", None, "torch", None, None, None, None, None, None, None, None, True, None)
    assert build_config(*args, processes=3).processes == 3
    assert build_config(*args).processes is None


@pytest.mark.slow
def test_quick_suite_end_to_end(tmp_path):
    out = tmp_path / "run.json"
    r = run_cli("bench", "--suite", "quick", "--store", str(tmp_path / "r.db"), "--json", str(out), "--tag", "ci",
                cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "stored in" in r.stdout and "vs resnet50" in r.stdout
    from pfdeploy.store import read_run_file

    doc = read_run_file(out)
    assert doc["run"]["status"] == "finished" and doc["run"]["suite"] == "quick"
    oks = [x for x in doc["results"] if x["status"] == "ok"]
    assert {x["model"] for x in oks} == {"pf_resnet50_max", "resnet50", "dw_resnet50"}
    assert all(x["samples_ns"] and x["artifact_sha256"] and x["parity"] for x in oks)
    json.dumps(doc)
