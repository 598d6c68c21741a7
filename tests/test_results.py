"""`pfdeploy.results.load` (pandas) and the `pfdeploy results` verb in every format."""
from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest

from conftest import invoke_cli, run_cli
from pfdeploy.errors import UserError
from pfdeploy.results import load
from pfdeploy.store import RESULT_FIELDS, open_store, read_run_file
from test_store import result_row, run_meta


def cli(capsys, *args):
    """Run the CLI in this process (pfdeploy.cli.main: real exit codes and error lines)."""
    from pfdeploy.cli import main

    capsys.readouterr()
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def filled(tmp_path):
    """A store with two runs: 'base' (3 results) then 'head' (2 ok results and a failed one)."""
    url = str(tmp_path / "r.db")
    ids = {}
    with open_store(url) as store:
        for tag, backends in (("base", ["torch", "onnxruntime", "openvino"]), ("head", ["torch", "onnxruntime"])):
            run_id = store.begin_run(run_meta(tag=tag))
            for i, b in enumerate(backends):
                store.add_result(run_id, result_row(backend=b, p50_ms=10.0 + i, cv=0.08 if i else 0.01,
                                                    artifact={"opset": 18, "nested": {"a": [1]}}),
                                 np.arange(100, dtype=np.int64) + i, np.arange(100) // 10)
            if tag == "head":
                store.add_result(run_id, result_row(backend="openvino", status="failed",
                                                    error="worker killed by signal 11 (SIGSEGV)", p50_ms=None))
            store.finish_run(run_id, "finished")
            ids[tag] = run_id
    return url, ids


def test_load_all_and_one_run(filled):
    url, ids = filled
    df = load(url)
    assert len(df) == 6
    assert list(df.columns[:len(RESULT_FIELDS)]) == list(RESULT_FIELDS)
    assert {"tag", "git_commit", "machine_id", "run_started_at", "run_status"} <= set(df.columns)
    assert str(df["created_at"].dt.tz) == "UTC" and str(df["run_started_at"].dt.tz) == "UTC"
    assert df["p50_ms"].dtype == np.float64 and pd.isna(df["p50_ms"].iloc[-1])
    head = load(url, run="head")
    assert list(head["backend"]) == ["torch", "onnxruntime", "openvino"]
    assert set(head["run_id"]) == {ids["head"]}
    assert "samples_ns" not in head.columns


def test_load_with_samples(filled):
    url, ids = filled
    df = load(url, run=ids["base"][:8], samples=True)
    assert df["samples_ns"].iloc[1].tolist() == list(range(1, 101))
    assert df["samples_ns"].iloc[0].dtype == np.int64
    assert df["sample_rounds"].iloc[0].tolist() == [i // 10 for i in range(100)]
    long = df.explode(["samples_ns", "sample_rounds"])
    assert len(long) == 300


def test_load_errors(tmp_path, filled):
    with pytest.raises(UserError, match="no results store at"):
        load(str(tmp_path / "none.db"))
    with pytest.raises(UserError, match="no run, tag or commit matches"):
        load(filled[0], run="nosuchtag")


def test_load_empty_store(tmp_path):
    url = str(tmp_path / "empty.db")
    open_store(url).close()
    df = load(url)
    assert len(df) == 0 and "p50_ms" in df.columns


@pytest.mark.subprocess
def test_cli_table_defaults_to_latest(filled):
    url, ids = filled
    proc = run_cli("results", "--store", url)  # one real subprocess: the installed entry point
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert f"run {ids['head'][:12]}" in out and ids["base"][:12] not in out
    assert "10.000 [9.900, 10.100]" in out
    assert "8.0% !" in out  # CV above 5% is flagged
    assert "worker killed by signal 11 (SIGSEGV)" in out


def test_cli_list_and_all(filled, capsys):
    url, ids = filled
    code, out, err = cli(capsys, "results", "--store", url, "--list")
    assert code == 0, err
    assert out.index(ids["head"][:12]) < out.index(ids["base"][:12])  # newest first
    code, out, err = cli(capsys, "results", "--store", url, "--list", "--format", "json")
    assert [r["tag"] for r in json.loads(out)] == ["head", "base"]
    code, out, err = cli(capsys, "results", "--store", url, "--all")
    assert code == 0 and ids["head"][:12] in out and ids["base"][:12] in out


def test_cli_csv_json_parquet(filled, tmp_path, capsys):
    url, ids = filled
    code, out, err = cli(capsys, "results", "--store", url, "--run", "base", "--format", "csv", "--samples")
    assert code == 0, err
    df = pd.read_csv(io.StringIO(out))
    assert len(df) == 3 and json.loads(df["samples_ns"].iloc[0])[:3] == [0, 1, 2]
    assert json.loads(df["artifact"].iloc[0]) == {"opset": 18, "nested": {"a": [1]}}

    out = tmp_path / "run.json"
    code, _, err = cli(capsys, "results", "--store", url, "--run", "base", "--format", "json", "--out", str(out))
    assert code == 0, err
    doc = read_run_file(out)  # the run-file format that `pfdeploy compare` reads
    assert doc["run"]["id"] == ids["base"] and len(doc["results"][0]["samples_ns"]) == 100

    pq = tmp_path / "all.parquet"
    code, _, err = cli(capsys, "results", "--store", url, "--all", "--format", "parquet", "--samples", "--out", str(pq))
    assert code == 0, err
    assert f"wrote {pq}" in err
    back = pd.read_parquet(pq)
    assert len(back) == 6 and list(back["samples_ns"].iloc[0][:2]) == [0, 1]


@pytest.mark.parametrize("args, code, message", [
    (["--format", "parquet"], 2, "give --out FILE"),
    (["--format", "table", "--out", "x.txt"], 2, "--format table prints to the terminal"),
    (["--all", "--run", "base"], 2, "exclude each other"),
    (["--all", "--format", "json"], 2, "exports one run"),
    (["--run", "nosuch"], 1, "no run, tag or commit matches 'nosuch'"),
    (["--format", "xml"], 2, "xml"),
])
def test_cli_usage_errors(filled, args, code, message, capsys):
    got, out, err = cli(capsys, "results", "--store", filled[0], *args)
    assert got == code, err
    assert message in err and "Traceback" not in err


def test_cli_missing_store(tmp_path):
    proc = invoke_cli("results", "--store", str(tmp_path / "nothing.db"))
    assert proc.returncode == 1
    assert "no results store at" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "nothing.db").exists()


# ----------------------------------------------------------------------------- damaged cells (issue 22, item 7)

def _damage(path, sql: str) -> None:
    import sqlite3

    con = sqlite3.connect(path)
    con.execute(sql)
    con.commit()
    con.close()


def _warnings(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if "warning:" in ln and "damaged" in ln]


def test_damaged_cell_is_shown_and_reported_once(filled, capsys):
    """A JSON cell that is not JSON (written by hand, a broken disk): every reader still shows
    the results, and says in one stderr line which run and which field."""
    path, ids = filled
    head = ids["head"]
    _damage(path, f"UPDATE results SET parity = '{{broken' WHERE run_id = '{head}'")  # all 3 results
    _damage(path, f"UPDATE runs SET machine = 'not json' WHERE id = '{head}'")
    code, out, err = cli(capsys, "results", "--store", str(path), "--run", "head")
    assert code == 0, err
    assert "resnet50" in out  # the table is still there
    lines = _warnings(err)
    assert len(lines) == 2, err
    parity = next(ln for ln in lines if "parity" in ln)
    assert head in parity and "field 'parity' of 3 results" in parity
    machine = next(ln for ln in lines if "machine" in ln)
    assert head in machine and "run field 'machine'" in machine
    # the other readers say the same, once per run and field
    code, out, err = cli(capsys, "results", "--store", str(path), "--run", "head", "--format", "json")
    assert code == 0 and json.loads(out)["results"][0]["parity"] == {"_unreadable": "{broken"}
    assert len(_warnings(err)) == 2, err
    df = load(str(path), run="head")  # the pandas reader
    assert len(df) == 3 and df["parity"].iloc[0] == {"_unreadable": "{broken"}
    err = capsys.readouterr().err
    assert [head in ln for ln in _warnings(err)] == [True, True], err
    code, out, err = cli(capsys, "results", "--store", str(path), "--run", "base")
    assert code == 0 and _warnings(err) == []  # an intact run: no word
    with open_store(path, create=False, readonly=True) as store:
        seen = []
        store.warn = seen.append
        store.results(head)
        store.results(head)
        assert len(seen) == 1 and "parity" in seen[0]


def test_damaged_extra_is_reported_not_merged(filled, capsys):
    path, ids = filled
    _damage(path, f"UPDATE results SET extra = '[1, 2' WHERE run_id = '{ids['base']}'")
    code, out, err = cli(capsys, "results", "--store", str(path), "--run", "base", "--format", "json")
    assert code == 0, err
    rows = json.loads(out)["results"]
    assert all("_unreadable" not in r for r in rows)
    (line,) = _warnings(err)
    assert ids["base"] in line and "field 'extra'" in line


# ----------------------------------------------------------------------------- every verb takes a run the same way

def test_cli_takes_the_run_positionally_like_compare_and_claims(filled, capsys):
    """`pfdeploy results RUN` (id, unique prefix, tag, "latest"): the resolution compare and
    claims use (Store.resolve_run); --run still works and names the same run."""
    url, ids = filled
    for ref, want in (("latest", "head"), ("base", "base"), (ids["base"], "base"), (ids["base"][:8], "base")):
        code, out, err = cli(capsys, "results", ref, "--store", url)
        assert code == 0, err
        other = "head" if want == "base" else "base"
        assert f"run {ids[want][:12]}" in out and ids[other][:12] not in out, (ref, out)
    code, out, err = cli(capsys, "results", "base", "--store", url, "--format", "json")
    assert code == 0 and json.loads(out)["run"]["id"] == ids["base"]
    code, via_option, err = cli(capsys, "results", "--run", "base", "--store", url, "--format", "json")
    assert via_option == out
    code, out, err = cli(capsys, "results", "base", "--store", url, "--format", "csv")
    assert code == 0 and len(pd.read_csv(io.StringIO(out))) == 3
    code, out, err = cli(capsys, "results", "base", "--run", "base", "--store", url)  # the same run twice: fine
    assert code == 0, err


@pytest.mark.parametrize("args, code, message", [
    (["base", "--run", "head"], 2, "two runs given"),
    (["base", "--all"], 2, "exclude each other"),
    (["nosuch"], 1, "no run, tag or commit matches 'nosuch'"),
    (["base", "head"], 2, "unexpected extra argument"),
])
def test_cli_positional_run_refusals(filled, args, code, message, capsys):
    got, out, err = cli(capsys, "results", "--store", filled[0], *args)
    assert got == code, err
    assert message in err and "Traceback" not in err


# ----------------------------------------------------------------------------- no two rows look the same

def _tune_run(url: str) -> tuple[str, list[dict]]:
    """A tune race run: three openvino bf16 candidates of one model (variants, fates) and the
    default at fp32, as `pfdeploy tune` stores them."""
    fates = [("ov-default", "fp32", "eliminated"), ("ov-latency", "bf16", "winner"),
             ("ov-throughput", "bf16", "eliminated"), ("ov-streams2", "bf16", "failed")]
    rows = []
    with open_store(url) as store:
        run_id = store.begin_run(run_meta(tag="tune"))
        for i, (variant, precision, fate) in enumerate(fates):
            status = "failed" if fate == "failed" else "ok"
            row = result_row(model="pf_resnet50_max", backend="openvino", precision=precision, variant=variant,
                             options={"hint": variant}, status=status, p50_ms=None if status == "failed" else 5.0 + i,
                             error="worker killed" if status == "failed" else None,
                             tune={"candidate": variant, "status": fate, "runtime_winner": fate == "winner",
                                   "overall_winner": fate == "winner", "overall_status": "winner" if fate == "winner"
                                   else None})
            row["case_key"] = f"{row['case_key']}|{variant}"
            store.add_result(run_id, row, np.arange(100, dtype=np.int64), np.arange(100) // 10)
            rows.append(row)
        store.finish_run(run_id, "finished")
    return run_id, rows


def _table_lines(out: str) -> list[str]:
    return [ln for ln in out.splitlines() if ln.startswith("│") and "pf_resnet50_max" in ln]


@pytest.mark.parametrize("wide", [False, True])
def test_tune_run_rows_show_variant_and_fate(tmp_path, wide):
    """`pfdeploy results --run <a tune run>`: every row names its variant and its fate, so no two
    rows of the table look the same (terminal and --wide)."""
    from pfdeploy.cli.results import print_run_table
    from test_output_width import term, text_of

    url = str(tmp_path / "t.db")
    run_id, rows = _tune_run(url)
    with open_store(url, create=False) as store:
        run, stored = store.resolve_run(run_id), store.results(run_id)
    c = term(100)
    print_run_table(c, run, stored, wide=wide)
    out = text_of(c)
    lines = _table_lines(out)
    assert len(lines) == 4 and len(set(lines)) == 4, out
    header = next(ln for ln in out.splitlines() if "model" in ln and "backend" in ln)
    assert "variant" in header and "tune" in header
    assert len([ln for ln in out.splitlines() if ln.startswith("│")]) == 4, out  # one line a row: nothing wrapped
    for variant, fate in (("ov-latency", "fastest"), ("ov-throughput", "eliminated"),
                          ("ov-streams2", "failed"), ("ov-default", "eliminated")):
        assert any(variant in ln and fate in ln for ln in lines), (variant, out)
    assert all(len(ln) <= 100 for ln in out.splitlines()) or wide


def test_results_without_variants_have_no_variant_column(filled, capsys):
    url, ids = filled
    code, out, err = cli(capsys, "results", "base", "--store", url)
    assert code == 0
    header = next(ln for ln in out.splitlines() if "model" in ln and "backend" in ln)
    assert "variant" not in header and "tune" not in header
