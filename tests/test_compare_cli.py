"""`pfdeploy compare BASE HEAD` on the command line: run files and store references, exit codes,
Markdown / JSON / $GITHUB_STEP_SUMMARY, user errors (one line, no traceback)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli
from pfdeploy.cli import main
from pfdeploy.store import open_store, write_run_file
from test_compare import synth_doc, write_run


def invoke(*args, capsys) -> tuple[int, str, str]:
    """Run the CLI in-process (fast); returns (exit code, stdout, stderr)."""
    try:
        code = main(list(args))
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("runs")
    paths = {}
    for name, doc in {
        "base": synth_doc("base", 1),
        "aa": synth_doc("aa", 2),
        "slow": synth_doc("slow", 3, factor={"resnet50": 1.10}),
        "other_machine": synth_doc("other", 4, machine_id="m-elsewhere"),
    }.items():
        paths[name] = write_run_file(doc, d / f"{name}.json")
    return paths


def test_regression_exits_1(files, capsys, tmp_path, monkeypatch):
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    code, out, err = invoke("compare", str(files["base"]), str(files["slow"]), capsys=capsys)
    assert code == 1, err
    assert "regression" in out and "resnet50" in out and "FAIL" in out
    assert summary.read_text().startswith("### pfdeploy compare: 1 regression, 2 unchanged")


def test_a_a_exits_0(files, capsys):
    code, out, err = invoke("compare", str(files["base"]), str(files["aa"]), capsys=capsys)
    assert code == 0, err
    assert "gate (--fail-on regression): pass" in out
    code, out, _ = invoke("compare", str(files["base"]), str(files["aa"]), "--json", capsys=capsys)
    assert set(json.loads(out)["counts"]) <= {"unchanged", "inconclusive"}


def test_fail_on_never_and_json(files, capsys):
    code, out, _ = invoke("compare", str(files["base"]), str(files["slow"]), "--json", "--fail-on", "never",
                          capsys=capsys)
    assert code == 0
    d = json.loads(out)
    assert d["counts"] == {"regression": 1, "unchanged": 2}
    assert d["exit_code"] == 0 and d["fail_on"] == "never"
    assert d["cases"][0]["verdict"] == "regression" and d["cases"][0]["model"] == "resnet50"


def test_markdown_file_and_stdout(files, capsys, tmp_path):
    md = tmp_path / "sub" / "pr-comment.md"
    code, _, _ = invoke("compare", str(files["base"]), str(files["slow"]), "--markdown", str(md), capsys=capsys)
    assert code == 1
    text = md.read_text()
    assert text.startswith("### pfdeploy compare") and "| verdict |" in text
    code, out, _ = invoke("compare", str(files["base"]), str(files["slow"]), "--markdown", "-", "--fail-on",
                          "never", capsys=capsys)
    assert code == 0 and out == text.replace("❌ fails", "✅ passes").replace("--fail-on regression", "--fail-on never")


def test_threshold_option(files, capsys):
    code, out, _ = invoke("compare", str(files["base"]), str(files["slow"]), "--threshold", "0.2", "--json",
                          capsys=capsys)
    assert code == 0
    assert "regression" not in json.loads(out)["counts"]


def test_different_machines_are_not_compared(files, capsys):
    code, out, _ = invoke("compare", str(files["base"]), str(files["other_machine"]), "--json", capsys=capsys)
    d = json.loads(out)
    assert code == 0 and d["same_machine"] is False
    assert d["counts"] == {"not-compared": 3}
    code, _, _ = invoke("compare", str(files["base"]), str(files["other_machine"]), "--fail-on", "inconclusive",
                        capsys=capsys)
    assert code == 1


def test_store_references(tmp_path, capsys):
    db = tmp_path / "results.db"
    store = open_store(db)
    base_id = write_run(store, synth_doc("v1.0", 1, commit="aaaa1111" * 5))
    write_run(store, synth_doc("v1.1", 2, factor=1.10, commit="bbbb2222" * 5))
    # by tag, by commit prefix, by run id prefix, "latest", and a file against a store run
    for base, head in (("v1.0", "v1.1"), ("aaaa1111", "bbbb2222"), (base_id[:8], "latest")):
        code, out, err = invoke("compare", base, head, "--store", str(db), "--json", capsys=capsys)
        assert code == 1, err
        assert json.loads(out)["counts"] == {"regression": 3}
    write_run(store, synth_doc("feature/faster", 3, factor=0.8))  # a tag with a slash is not a path
    code, out, err = invoke("compare", "v1.0", "feature/faster", "--store", str(db), "--json", capsys=capsys)
    assert code == 0, err
    assert json.loads(out)["counts"] == {"improvement": 3}
    exported = tmp_path / "base.json"
    store.export_run(base_id, exported)
    code, out, _ = invoke("compare", str(exported), "v1.0", "--store", str(db), "--json", capsys=capsys)
    assert code == 0 and json.loads(out)["counts"] == {"unchanged": 3}


def test_user_errors_are_one_line(tmp_path, files, cli):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    cases = [
        (("compare", str(tmp_path / "missing.json"), str(files["base"])), "does not exist"),
        (("compare", str(bad), str(files["base"])), "bad.json"),
        (("compare", "nosuchtag", str(files["base"]), "--store", str(tmp_path / "none.db")), "none.db"),
        (("compare", str(files["base"]), str(files["slow"]), "--threshold", "5"), "threshold"),
    ]
    for args, needle in cases:
        res = cli(*args)
        assert res.returncode in (1, 2), (args, res.returncode, res.stderr)
        assert "Traceback" not in res.stderr
        assert res.stderr.strip().count("\n") == 0 and needle in res.stderr, res.stderr
    assert not (tmp_path / "none.db").exists()
    res = cli("compare", str(files["base"]), str(files["slow"]), "--fail-on", "sometimes")
    assert res.returncode == 2 and "Traceback" not in res.stderr


@pytest.mark.slow  # over 3 s: the default run stays under 5 min; .ci/run's slow pass runs it
@pytest.mark.subprocess
def test_exit_code_of_the_real_process(files):
    assert run_cli("compare", str(files["base"]), str(files["slow"])).returncode == 1
    assert run_cli("compare", str(files["base"]), str(files["aa"])).returncode == 0
