"""Results store: round trip, run references, run files, migrations, bad input. Every store test
runs against SQLite and, when $PFDEPLOY_TEST_POSTGRES_URL names a server, against PostgreSQL
(each test in its own schema)."""
from __future__ import annotations

import json
import math
import os
import sys

import numpy as np

from pfdeploy.runfile import RUN_FILE_VERSION
import pytest

from pfdeploy.errors import UsageError, UserError

from conftest import pg_schema
from pfdeploy.store import (RESULT_FIELDS, RUN_FIELDS, SCHEMA_VERSION, make_case_key, open_store, read_run_file,
                            write_run_file)

PG_ENV = "PFDEPLOY_TEST_POSTGRES_URL"
PG_URL = os.environ.get(PG_ENV)


def _pg_param():
    return pytest.param("postgres", marks=[
        pytest.mark.postgres,
        pytest.mark.skipif(not PG_URL, reason=f"{PG_ENV} is not set (see docs/store.md: testing against PostgreSQL)"),
    ])


@pytest.fixture(params=["sqlite", _pg_param()])
def store_url(request, tmp_path):
    """A fresh, empty store URL: a SQLite file, or a private schema in the test PostgreSQL DB."""
    if request.param == "sqlite":
        yield str(tmp_path / "store.db")
        return
    with pg_schema(PG_URL) as url:
        yield url


def run_meta(**kw):
    meta = {"tag": "nightly", "git_commit": "0123456789abcdef0123456789abcdef01234567", "suite": "quick",
            "suite_version": "1", "machine_id": "m1", "machine": {"cpu": {"model": "X"}}, "tools": {"torch": "2"},
            "config": {"threads": 2}, "loadavg_before": [0.5, 0.4, 0.3]}
    meta.update(kw)
    return meta


def result_row(model="resnet50", backend="torch", status="ok", **kw):
    row = {"model": model, "family": "resnet", "weights": "synthetic:0", "backend": backend, "device": "cpu",
           "precision": "fp32", "batch": 1, "threads": 2, "scenario": "latency", "status": status,
           "error": None, "n": 700, "min_ms": 9.5, "p50_ms": 10.0, "p50_ci_low_ms": 9.9, "p50_ci_high_ms": 10.1,
           "p90_ms": 10.5, "p95_ms": 10.8, "p99_ms": 12.0, "max_ms": 15.0, "mean_ms": 10.2, "std_ms": 0.3,
           "cv": 0.03, "items_per_s": 100.0, "load_ms": 120.0, "first_ms": 30.0, "peak_rss_mb": 400.0,
           "peak_gpu_mb": None, "clock": "host", "params": 25_557_032, "macs": 4_089_184_256,
           "artifact_sha256": "ab" * 32, "artifact": {"opset": 18, "dynamic_batch": False},
           "device_p50_ms": None, "device_p50_ci_low_ms": None, "device_p50_ci_high_ms": None,
           "parity": {"max_abs": 1e-5, "top1_agree": 1.0}, "warnings": [], "round_size": 25}
    row.update(kw)
    row["case_key"] = make_case_key(row)
    return row


# ----------------------------------------------------------------------------- round trip

def test_round_trip_every_field(store_url):
    with open_store(store_url) as store:
        assert store.schema_version() == SCHEMA_VERSION
        run_id = store.begin_run(run_meta(new_run_field={"a": 1}))
        run = store.get_run(run_id)
        assert run["status"] == "running" and run["finished_at"] is None
        samples = np.random.default_rng(0).integers(9_000_000, 12_000_000, 5000).astype(np.int64)
        rounds = np.repeat(np.arange(200), 25)
        row = result_row(p99_ms=float("nan"), params=np.int64(25_557_032), p50_ms=np.float64(10.0),
                         warnings=["cv above 5%"], future_field=[1, 2])
        rid = store.add_result(run_id, row, samples, rounds)
        store.finish_run(run_id, "finished", loadavg_after=[1.0, 0.9, 0.8])

        (typed,) = store.results(run_id)
        assert typed.warning_texts == ["cv above 5%"] and typed.warnings[0].kind == "other"
        got = typed.to_row()  # the typed result's plain edge
        assert set(RESULT_FIELDS) <= set(got)
        assert got["id"] == rid and got["run_id"] == run_id
        for k in RESULT_FIELDS:
            if k in ("id", "run_id", "created_at", "p99_ms", "params", "p50_ms", "warnings"):
                continue
            assert got[k] == row.get(k), k  # a declared field the row did not give reads back as None
        assert got["p99_ms"] is None  # NaN: a percentile without enough samples is missing
        assert got["params"] == 25_557_032 and isinstance(got["params"], int)
        assert got["p50_ms"] == 10.0 and [w["text"] for w in got["warnings"]] == ["cv above 5%"]
        assert got["future_field"] == [1, 2]  # unknown fields are kept, not dropped
        assert got["created_at"].endswith("+00:00")

        s = store.samples(rid)
        assert s["latency_ns"] == samples.tolist() and s["round"] == rounds.tolist()
        assert all(isinstance(x, int) for x in s["latency_ns"][:5])

        run = store.get_run(run_id)
        assert set(RUN_FIELDS) <= set(run)
        assert run["status"] == "finished" and run["finished_at"] >= run["started_at"]
        assert run["machine"] == {"cpu": {"model": "X"}} and run["loadavg_after"] == [1.0, 0.9, 0.8]
        assert run["new_run_field"] == {"a": 1}
        assert run["pfdeploy_version"]
        (listed,) = store.runs()
        assert listed["n_results"] == 1


def test_failed_and_skipped_results_without_samples(store_url):
    with open_store(store_url) as store:
        run_id = store.begin_run(run_meta())
        r1 = store.add_result(run_id, {"model": "m", "backend": "tensorrt", "device": "cpu", "status": "skipped",
                                       "error": "tensorrt is not installed"})
        r2 = store.add_result(run_id, result_row(status="failed", error="worker killed by SIGSEGV", n=0),
                              samples_ns=[], rounds=[])
        a, b = store.results(run_id)
        assert a["case_key"] == "m||tensorrt|cpu||||" and a["error"] == "tensorrt is not installed"
        assert b["status"] == "failed" and b["error"].endswith("SIGSEGV")
        assert store.samples(r1) == {"latency_ns": [], "round": None, "device_latency_ns": None}
        assert store.samples(r2) == {"latency_ns": [], "round": [], "device_latency_ns": None}


def test_samples_without_rounds_and_bad_samples(store_url):
    with open_store(store_url) as store:
        run_id = store.begin_run(run_meta())
        rid = store.add_result(run_id, result_row(), [3, 1, 2])
        assert store.samples(rid) == {"latency_ns": [3, 1, 2], "round": None, "device_latency_ns": None}
        with pytest.raises(ValueError, match="rounds has 2 entries for 3 samples"):
            store.add_result(run_id, result_row(), [1, 2, 3], [0, 0])
        with pytest.raises(ValueError, match="result status"):
            store.add_result(run_id, result_row(status="great"), [1])
        with pytest.raises(UserError, match="no run"):
            store.add_result("nope", result_row(), [1])
        with pytest.raises(ValueError, match="run status"):
            store.finish_run(run_id, "done")
        with pytest.raises(UserError, match="no run"):
            store.finish_run("nope", "finished")
        assert len(store.results(run_id)) == 1  # the rejected rows left nothing behind


def test_runs_newest_first_and_filters(store_url):
    with open_store(store_url) as store:
        ids = [store.begin_run(run_meta(tag=t, started_at=f"2026-01-0{i + 1}T00:00:00+00:00"))
               for i, t in enumerate(["a", "b", "a"])]
        assert [r["id"] for r in store.runs()] == ids[::-1]
        assert [r["id"] for r in store.runs(tag="a")] == [ids[2], ids[0]]
        assert [r["id"] for r in store.runs(limit=1)] == [ids[2]]
        assert store.runs(status="finished") == []


# ----------------------------------------------------------------------------- resolve_run

def test_resolve_run_references(store_url):
    with open_store(store_url) as store:
        a = store.begin_run(run_meta(id="aaaa1111" + "0" * 24, tag="base", git_commit="c0ffee" + "1" * 34,
                                     started_at="2026-01-01T00:00:00Z"))
        b = store.begin_run(run_meta(id="aaaa2222" + "0" * 24, tag="head", git_commit="c0ffee" + "1" * 34,
                                     started_at="2026-01-02T00:00:00Z"))
        c = store.begin_run(run_meta(id="bbbb3333" + "0" * 24, tag="base", git_commit="deadbeef" + "2" * 32,
                                     started_at="2026-01-03T00:00:00Z"))
        assert store.resolve_run(a)["id"] == a  # exact id
        assert store.resolve_run("latest")["id"] == c
        assert store.resolve_run("base")["id"] == c  # tag: the latest run with it
        assert store.resolve_run("head")["id"] == b
        assert store.resolve_run("aaaa1")["id"] == a  # unique id prefix
        assert store.resolve_run("bbbb")["id"] == c
        assert store.resolve_run("c0ffee")["id"] == b  # commit prefix: the latest run on it
        assert store.resolve_run("DEADBEEF")["id"] == c
        with pytest.raises(UserError, match=r"ambiguous: it starts 2 run ids \(aaaa2222\w*, aaaa1111"):
            store.resolve_run("aaaa")
        with pytest.raises(UserError, match="no run, tag or commit matches 'zzzz9'"):
            store.resolve_run("zzzz9")
        with pytest.raises(UserError, match="at least 4 characters"):
            store.resolve_run("aa")
        with pytest.raises(UsageError):
            store.resolve_run("")


def test_resolve_run_ambiguous_between_id_and_commit(store_url):
    with open_store(store_url) as store:
        store.begin_run(run_meta(id="abcd" + "0" * 28, git_commit="1" * 40, tag=None))
        store.begin_run(run_meta(id="9" * 32, git_commit="abcd" + "2" * 36, tag=None))
        with pytest.raises(UserError, match="ambiguous: it starts run id abcd.* and commit abcd"):
            store.resolve_run("abcd")
        assert store.resolve_run("abcd0")["id"].startswith("abcd0")


def test_latest_on_empty_store(store_url):
    with open_store(store_url) as store:
        with pytest.raises(UserError, match="no runs"):
            store.resolve_run("latest")


# ----------------------------------------------------------------------------- run files

def _filled_run(store):
    run_id = store.begin_run(run_meta())
    rng = np.random.default_rng(1)
    for i, backend in enumerate(["torch", "onnxruntime", "openvino"]):
        samples = rng.integers(1_000_000, 2_000_000, 300)
        store.add_result(run_id, result_row(backend=backend), samples, np.arange(300) // 30)
    store.add_result(run_id, result_row(backend="tensorrt", status="skipped", error="no GPU"))
    store.finish_run(run_id, "finished")
    return run_id


def test_export_read_import_round_trip(store_url, tmp_path):
    with open_store(store_url) as store:
        run_id = _filled_run(store)
        path = tmp_path / "run.json"
        doc = store.export_run(run_id, path)
        assert doc["format"] == "pfdeploy-run" and doc["version"] == RUN_FILE_VERSION
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".run.json")] == []  # no temp left
        back = read_run_file(path)
        assert back["run"]["id"] == run_id and len(back["results"]) == 4
        assert back["results"][0]["samples_ns"] == store.samples(back["results"][0]["id"])["latency_ns"]
        assert back["results"][3]["samples_ns"] == [] and back["results"][3]["sample_rounds"] is None

    with open_store(str(tmp_path / "other.db")) as other:
        assert other.import_run(back) == run_id
        again = other.export_run(run_id)
        strip = lambda rows: [{k: v for k, v in r.items() if k not in ("id",)} for r in rows]  # noqa: E731
        assert strip(again["results"]) == strip(doc["results"])
        assert again["run"] == doc["run"]
        with pytest.raises(UserError, match="already in"):
            other.import_run(back)


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ('["a"]', "top level must be a JSON object"),
    ('{"format": "other", "version": 1}', "'format' must be 'pfdeploy-run'"),
    ('{"format": "pfdeploy-run", "version": 7, "run": {}, "results": []}', "newer pfdeploy"),
    ('{"format": "pfdeploy-run", "version": 1, "run": {"id": "x"}, "results": {}}', "results: Input should be a valid list"),
    ('{"format": "pfdeploy-run", "version": 1, "run": {"id": "x", "status": "meh"}, "results": []}', "run.status: Input should be 'running'"),
    ('{"format": "pfdeploy-run", "version": 1, "run": {"id": "x"}, "results": [{"case_key": "k", "status": "ok", '
     '"samples_ns": [1.5]}]}', r"results\[0\].samples_ns\[0\]: Input should be a valid integer, got 1.5"),
    ('{"format": "pfdeploy-run", "version": 1, "run": {"id": "x"}, "results": [{"case_key": "k", "status": "ok", '
     '"samples_ns": [1, 2], "sample_rounds": [0]}]}', "sample_rounds has 1 entries for 2 samples"),
    ('{"format": "pfdeploy-run", "version": 1, "run": {"id": "x"}, "results": [{"case_key": "k", "status": "ok", '
     '"p50_ms": "fast"}]}', r'results\[0\].p50_ms: Input should be a valid number, got "fast"'),
    ('{"format": "pfdeploy-run", "version": 2, "run": {"id": "x"}, "results": [{"case_key": "k", "status": "ok", '
     '"batch": true}]}', r"results\[0\].batch: Input should be a valid integer, got true"),
    ('{"format": "pfdeploy-run", "version": 2, "run": {"id": "x", "started_at": "yesterday"}, "results": []}',
     "run.started_at: not an ISO-8601 timestamp"),
    ('{"format": "pfdeploy-run", "version": 2, "run": {"id": "x"}, "results": [{"status": "ok"}]}',
     r"results\[0\].case_key: Field required"),
])
def test_read_run_file_rejects_bad_files(tmp_path, content, message):
    p = tmp_path / "bad.json"
    p.write_text(content)
    with pytest.raises(UserError, match=message) as info:
        read_run_file(p)
    assert str(p) in str(info.value)


def test_read_run_file_missing(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        read_run_file(tmp_path / "nope.json")


def test_write_run_file_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "run.json"
    doc = {"format": "pfdeploy-run", "version": 1, "run": {"id": "r1"}, "results": []}
    write_run_file(doc, path)
    before = path.read_bytes()

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(UserError, match="disk full"):  # one line (pfdeploy.outputs), not a traceback
        write_run_file({**doc, "run": {"id": "r2"}}, path)
    assert path.read_bytes() == before  # the old file is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]  # the temp file is gone
    assert json.loads(before)["run"]["id"] == "r1"


# ----------------------------------------------------------------------------- migrations

def test_newer_schema_is_refused(store_url):
    with open_store(store_url) as store:
        with store.engine.begin() as conn:
            conn.exec_driver_sql(f"UPDATE pfdeploy_schema SET version = {SCHEMA_VERSION + 1}")
    with pytest.raises(UserError, match=f"has schema {SCHEMA_VERSION + 1}.*knows schema {SCHEMA_VERSION}"):
        open_store(store_url)


# ----------------------------------------------------------------------------- opening

def test_open_missing_without_create(tmp_path):
    with pytest.raises(UserError, match="no results store at"):
        open_store(tmp_path / "absent.db", create=False)
    assert not (tmp_path / "absent.db").exists()


def test_open_bad_targets(tmp_path):
    with pytest.raises(UserError, match="is a directory"):
        open_store(tmp_path)
    with pytest.raises(UserError, match="does not exist"):
        open_store(tmp_path / "no" / "such" / "dir.db")
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(UserError, match="junk.db"):
        open_store(junk)
    with pytest.raises(UsageError, match="unsupported store URL scheme 'mysql'"):
        open_store("mysql://u@h/db")


def test_default_url_and_sqlite_urls(tmp_path, monkeypatch):
    monkeypatch.setenv("PFDEPLOY_STORE", str(tmp_path / "env.db"))
    with open_store() as store:
        assert store.kind == "sqlite" and store.url == str(tmp_path / "env.db")
    with open_store(f"sqlite:///{tmp_path / 'url.db'}") as store:
        store.begin_run(run_meta())
    assert (tmp_path / "url.db").exists()
    with open_store("sqlite://") as mem:  # in-memory, for experiments
        mem.begin_run(run_meta())
        assert len(mem.runs()) == 1


def test_postgres_url_without_server_is_a_user_error():
    pytest.importorskip("psycopg")
    with pytest.raises(UserError, match="results store postgresql\\+psycopg://u:\\*\\*\\*@127.0.0.1:1/db"):
        open_store("postgresql://u:secret@127.0.0.1:1/db?connect_timeout=2")


def test_sqlite_is_in_wal_mode(tmp_path):
    with open_store(tmp_path / "w.db") as store:
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar().lower() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert store.integrity_check() == "ok"


def test_clean_json_keeps_json_strict(tmp_path):
    with open_store(tmp_path / "j.db") as store:
        run_id = store.begin_run(run_meta(machine={"x": float("inf"), "arr": np.arange(3), "t": (1, 2)}))
        assert store.get_run(run_id)["machine"] == {"x": None, "arr": [0, 1, 2], "t": [1, 2]}
        assert not any(isinstance(v, float) and math.isnan(v) for v in store.get_run(run_id)["machine"].values())


def test_postgres_without_psycopg_names_the_extra(monkeypatch):
    from pfdeploy.errors import MissingDependency

    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg -> ImportError
    with pytest.raises(MissingDependency, match=r"pip install 'pfdeploy\[postgres\]'"):
        open_store("postgresql://u@localhost/db")


def test_created_at_and_started_at_strings_round_trip(store_url):
    with open_store(store_url) as store:
        run_id = store.begin_run(run_meta(started_at="2026-03-01T10:00:00+02:00"))
        assert store.get_run(run_id)["started_at"] == "2026-03-01T08:00:00+00:00"  # stored in UTC
        store.add_result(run_id, result_row(created_at="2026-03-01T08:00:05+00:00"), [1])
        assert store.results(run_id)[0]["created_at"] == "2026-03-01T08:00:05+00:00"
        with pytest.raises(UserError, match="not an ISO-8601 timestamp"):
            store.begin_run(run_meta(started_at="yesterday"))


@pytest.mark.postgres
@pytest.mark.skipif(not PG_URL, reason=f"{PG_ENV} is not set (see docs/store.md: testing against PostgreSQL)")
def test_postgres_foreign_tables_and_read_only_opens_change_nothing():
    """PostgreSQL: another application's `results` table is refused; a reader on a database
    without pfdeploy's tables says so instead of creating them (issue 25)."""
    import sqlalchemy as sa

    def tables(url):
        eng = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
        try:
            with eng.connect() as conn:
                return sorted(sa.inspect(conn).get_table_names())
        finally:
            eng.dispose()

    with pg_schema(PG_URL) as url:
        with pytest.raises(UserError, match="no pfdeploy results store in"):
            open_store(url, create=False, readonly=True)
        assert tables(url) == []
    with pg_schema(PG_URL) as url:
        eng = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
        with eng.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE results (id int, note text)")
        eng.dispose()
        for kw in ({}, {"create": False, "readonly": True}):
            with pytest.raises(UserError, match="results store .*'results' table but no pfdeploy schema version"):
                open_store(url, **kw)
        assert tables(url) == ["results"]
