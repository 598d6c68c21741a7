"""The shared PostgreSQL store end to end through the command line: `results`, `compare` and
`report` read a PostgreSQL store as they read SQLite (the store's own tests run against both in
tests/test_store.py). Runs when $PFDEPLOY_TEST_POSTGRES_URL names a server (.ci/run starts one)."""
from __future__ import annotations

import json

import pytest

from pfdeploy.store import open_store
from test_compare import synth_doc, write_run
from test_compare_cli import invoke

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_store(postgres_url):
    with open_store(postgres_url) as store:
        write_run(store, synth_doc("base", 1))
        write_run(store, synth_doc("head-slow", 3, factor={"resnet50": 1.10}))
        write_run(store, synth_doc("feature/[wip]", 5))
    return postgres_url


def test_results_list_and_json_from_postgres(pg_store, capsys):
    code, out, err = invoke("results", "--store", pg_store, "--list", capsys=capsys)
    assert code == 0, err
    assert "feature/[wip]" in out and "head-slow" in out and "base" in out
    code, out, err = invoke("results", "--store", pg_store, "--run", "base", "--format", "json", capsys=capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["run"]["tag"] == "base" and len(doc["results"]) == 3
    assert all(len(r["samples_ns"]) > 100 for r in doc["results"])


def test_compare_gate_on_postgres(pg_store, capsys, tmp_path):
    md = tmp_path / "pr.md"
    code, out, err = invoke("compare", "base", "head-slow", "--store", pg_store, "--markdown", str(md),
                            capsys=capsys)
    assert code == 1, err  # the 10% regression fails the gate
    assert "regression" in out and "resnet50" in out
    assert "regression" in md.read_text()
    code, out, err = invoke("compare", "base", "feature/[wip]", "--store", pg_store, "--json", capsys=capsys)
    assert code == 0, err
    assert json.loads(out)["head"]["tag"] == "feature/[wip]"


def test_report_from_postgres(pg_store, capsys, tmp_path):
    code, out, err = invoke("report", "--store", pg_store, "--out", str(tmp_path / "site"), "--json", capsys=capsys)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["runs"] == 3
    assert (tmp_path / "site" / "index.html").read_text().count("feature/[wip]") >= 1
