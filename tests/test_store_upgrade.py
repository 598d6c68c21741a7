"""Stores written by earlier releases keep every run, result and sample across upgrades.

tests/data/store-schema3.db was written by pfdeploy 0.1 (schema 3, the last release before the
move to Alembic): two real `pfdeploy bench --suite quick` runs, one interleaved and one not.
tests/data/store-schema3.runs.json is what pfdeploy 0.1's own `export_run` gave for each of its
runs, taken before any upgrade: the reference every upgraded store is checked against.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import uuid
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from conftest import invoke_cli
from pfdeploy import migrations
from pfdeploy.errors import UserError
from pfdeploy.runfile import RUN_FILE_VERSION, json_schema
from pfdeploy.store import SCHEMA_VERSION, metadata, open_store, read_run_file

DATA = Path(__file__).parent / "data"
FIXTURE = DATA / "store-schema3.db"
REFERENCE = DATA / "store-schema3.runs.json"
SCHEMA_FILE = Path(__file__).parent.parent / "docs" / "run-file.schema.json"
PG_URL = os.environ.get("PFDEPLOY_TEST_POSTGRES_URL")


def _raw_rows(path: Path) -> dict[str, list[tuple]]:
    """Every row of the schema-3 tables, in the schema-3 columns, read with plain sqlite3."""
    cols = {"runs": None, "results": None, "samples": None}
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        ref = sqlite3.connect(f"file:{FIXTURE}?mode=ro", uri=True)
        for t in cols:
            cols[t] = [r[1] for r in ref.execute(f"PRAGMA table_info({t})")]
        ref.close()
        return {t: con.execute(f"SELECT {', '.join(c)} FROM {t} ORDER BY 1").fetchall() for t, c in cols.items()}
    finally:
        con.close()


@pytest.fixture
def old_store(tmp_path) -> Path:
    dest = tmp_path / "results.db"
    shutil.copyfile(FIXTURE, dest)
    return dest


def _reference() -> list[dict]:
    return json.loads(REFERENCE.read_text())["runs"]


def _same_as_reference(store) -> None:
    """Every run and result of the reference, field for field, samples included."""
    ref = _reference()
    assert len(ref) == 2 and sum(len(d["results"]) for d in ref) >= 6
    for old in ref:
        new = store.export_run(old["run"]["id"])
        assert new["version"] == RUN_FILE_VERSION
        assert {k: new["run"].get(k) for k in old["run"]} == old["run"]
        assert len(new["results"]) == len(old["results"])
        for a, b in zip(old["results"], new["results"]):
            # warnings written as plain text come back typed (kind, text, values), the text unchanged
            assert [w["text"] for w in b["warnings"]] == list(a["warnings"] or [])
            assert all(w["kind"] != "other" for w in b["warnings"] if "stopped at" in w["text"])
            a = {k: v for k, v in a.items() if k != "warnings"}
            assert {k: b.get(k) for k in a} == a  # samples_ns and sample_rounds included
            assert b["device_p50_ms"] is None and b["device_samples_ns"] is None


def test_revision_constants_match_alembic():
    """migrations.REVISIONS / HEAD_SCHEMA (read without importing Alembic) are Alembic's chain."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(migrations.HERE))
    chain = [r.revision for r in reversed(list(script.walk_revisions()))]
    assert tuple(chain) == migrations.REVISIONS and script.get_current_head() == migrations.head()
    assert int(script.get_revision(script.get_current_head()).module.SCHEMA) == migrations.HEAD_SCHEMA == SCHEMA_VERSION
    assert [s for s, _, _ in migrations.revisions()] == list(range(3, SCHEMA_VERSION + 1))


def test_fixture_is_a_release_0_1_store():
    con = sqlite3.connect(f"file:{FIXTURE}?mode=ro", uri=True)
    assert con.execute("SELECT version FROM pfdeploy_schema").fetchone() == (3,)
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert migrations.VERSION_TABLE not in tables
    versions = {r[0] for r in con.execute("SELECT pfdeploy_version FROM runs")}
    assert versions == {"0.1.0"}
    con.close()


def test_release_store_upgrades_in_place_bit_for_bit(old_store, capsys):
    before = _raw_rows(old_store)
    original = old_store.read_bytes()
    with open_store(old_store) as store:
        st = store.schema_state()
        assert (st.schema, st.revision, st.read_compat) == (SCHEMA_VERSION, migrations.head(), 5)  # schema 5 moved fields out of extra
        backup = store.last_backup
    assert "upgraded results store" in capsys.readouterr().err
    # the schema-3 columns of every row are byte for byte what release 0.1 wrote
    assert _raw_rows(old_store) == before
    # the backup is a faithful copy of the store as it was
    assert backup is not None and backup.name.startswith("results.db.schema3-") and backup.suffix == ".bak"
    assert _raw_rows(backup) == before
    assert hashlib.sha256(original).hexdigest() != hashlib.sha256(old_store.read_bytes()).hexdigest()
    with open_store(old_store) as store:  # a second open changes nothing and backs up nothing
        assert store.last_backup is None
        _same_as_reference(store)


def test_upgraded_store_takes_new_runs_and_compares_across(old_store):
    from pfdeploy.compare import compare_runs

    with open_store(old_store) as store:
        old_run = store.resolve_run("release-0.1-a")
        base = store.export_run(old_run["id"])
        new_id = store.begin_run({**{k: old_run[k] for k in ("suite", "suite_version", "machine_id", "machine",
                                                              "tools", "config")}, "tag": "release-0.2"})
        rng = np.random.default_rng(0)
        for res in base["results"]:
            if res["status"] != "ok":
                continue
            samples = np.asarray(res["samples_ns"], dtype=np.int64)
            shuffled = rng.permutation(samples)  # the same distribution: an A/A comparison
            row = {k: v for k, v in res.items() if k not in ("id", "run_id", "created_at", "samples_ns",
                                                                 "sample_rounds", "device_samples_ns")}
            row["device_p50_ms"] = res["p50_ms"] * 0.9
            store.add_result(new_id, row, shuffled, res["sample_rounds"], device_samples_ns=shuffled // 2)
        store.finish_run(new_id, "finished")
        head = store.export_run(new_id)
        assert head["results"][0]["device_samples_ns"] is not None
        assert head["results"][0]["device_p50_ms"] == pytest.approx(base["results"][0]["p50_ms"] * 0.9)
    cmp = compare_runs(base, head)
    assert len(cmp.cases) == len(base["results"]) >= 3
    assert all(c.verdict in ("unchanged", "inconclusive") for c in cmp.cases), [c.verdict for c in cmp.cases]


def test_compare_cli_across_release_and_new_runs(old_store):
    env = {"PFDEPLOY_STORE": str(old_store)}
    r = invoke_cli("compare", "release-0.1-a", "release-0.1-b", "--fail-on", "never", "--json", env=env)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert len(data["cases"]) >= 3
    assert "upgraded results store" in r.stderr  # the read opened and upgraded the old store once


def test_model_tables_match_the_migrated_database(tmp_path):
    """The tables pfdeploy queries (built from the run-file models) and the tables the frozen
    migrations build are the same, column for column and index for index."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    for url in [str(tmp_path / "new.db")] + ([PG_URL] if PG_URL else []):
        with _fresh(url) as store:
            with store.engine.connect() as conn:
                ctx = MigrationContext.configure(conn, opts={"compare_type": True})
                diff = [d for d in compare_metadata(ctx, metadata)
                        if not (d[0] == "remove_table" and d[1].name == migrations.VERSION_TABLE)]
        assert diff == [], diff


class _fresh:
    """A new empty store at `url` (a private schema on PostgreSQL)."""

    def __init__(self, url):
        self.url, self.schema = url, None

    def __enter__(self):
        if self.url.startswith("postgresql"):
            self.schema = "pft_" + uuid.uuid4().hex[:12]
            self.admin = sa.create_engine(self.url.replace("postgresql://", "postgresql+psycopg://", 1))
            with self.admin.begin() as conn:
                conn.exec_driver_sql(f"CREATE SCHEMA {self.schema}")
            sep = "&" if "?" in self.url else "?"
            self.store = open_store(f"{self.url}{sep}options=-csearch_path%3D{self.schema}")
        else:
            self.store = open_store(self.url)
        return self.store

    def __exit__(self, *exc):
        self.store.close()
        if self.schema:
            with self.admin.begin() as conn:
                conn.exec_driver_sql(f"DROP SCHEMA {self.schema} CASCADE")
            self.admin.dispose()


@pytest.mark.postgres
@pytest.mark.skipif(not PG_URL, reason="PFDEPLOY_TEST_POSTGRES_URL is not set (see docs/store.md)")
def test_release_store_upgrades_on_postgresql():
    """A PostgreSQL store as release 0.1 left it (the frozen schema-3 tables, no revision table,
    the fixture's rows) is stamped, upgraded and keeps every row."""
    pytest.importorskip("psycopg")
    from alembic import command

    with _fresh(PG_URL) as store:
        with store.engine.begin() as conn:  # back to schema 3 exactly as 0.1 had it
            conn.exec_driver_sql(f"DROP TABLE {migrations.VERSION_TABLE}")
            for t in ("samples", "results", "runs", "pfdeploy_schema"):
                conn.exec_driver_sql(f"DROP TABLE {t}")
            command.upgrade(migrations._config(conn), migrations.BASELINE)
            conn.exec_driver_sql(f"DROP TABLE {migrations.VERSION_TABLE}")
            src = sqlite3.connect(f"file:{FIXTURE}?mode=ro", uri=True)
            for t in ("runs", "results", "samples"):
                cur = src.execute(f"SELECT * FROM {t}")
                names = [d[0] for d in cur.description]
                table = sa.Table(t, sa.MetaData(), autoload_with=conn)
                rows = []
                for rec in cur.fetchall():
                    row = dict(zip(names, rec))
                    for k, v in row.items():
                        if isinstance(table.c[k].type, (sa.JSON,)) or table.c[k].type.__class__.__name__ == "JSONB":
                            row[k] = json.loads(v) if v is not None else None
                    rows.append(row)
                conn.execute(table.insert(), rows)
            src.close()
        url = store.engine.url.render_as_string(hide_password=False).replace("+psycopg", "")
        assert store._tx(migrations.state, write=False).schema == 3
        with open_store(url) as upgraded:
            assert upgraded.schema_state().revision == migrations.head()
            _same_as_reference(upgraded)


def test_failed_upgrade_leaves_the_store_as_it_was(old_store, monkeypatch):
    before = _raw_rows(old_store)
    real = migrations.upgrade

    def broken(conn):
        real(conn)
        raise RuntimeError("power cut in the middle of the upgrade")

    monkeypatch.setattr(migrations, "upgrade", broken)
    with pytest.raises(RuntimeError, match="power cut"):
        open_store(old_store)
    monkeypatch.setattr(migrations, "upgrade", real)
    con = sqlite3.connect(f"file:{old_store}?mode=ro", uri=True)
    assert con.execute("SELECT version FROM pfdeploy_schema").fetchone() == (3,)
    cols = [r[1] for r in con.execute("PRAGMA table_info(results)")]
    assert "device_p50_ms" not in cols
    con.close()
    assert _raw_rows(old_store) == before
    with open_store(old_store) as store:  # and the next open upgrades it properly
        _same_as_reference(store)


def test_dry_run_shows_the_plan_and_changes_nothing(old_store):
    digest = hashlib.sha256(old_store.read_bytes()).hexdigest()
    env = {"PFDEPLOY_STORE": str(old_store)}
    r = invoke_cli("store", "upgrade", "--dry-run", env=env)
    assert r.returncode == 0, r.stderr
    assert f"schema 3 -> {SCHEMA_VERSION}" in r.stdout and "schema4" in r.stdout
    assert "ALTER TABLE results ADD COLUMN device_p50_ms FLOAT" in r.stdout
    assert hashlib.sha256(old_store.read_bytes()).hexdigest() == digest
    assert sorted(p.name for p in old_store.parent.iterdir()) == ["results.db"]

    r = invoke_cli("store", "upgrade", env=env)
    assert r.returncode == 0, r.stderr
    assert f"upgraded to schema {SCHEMA_VERSION}" in r.stdout and ".bak" in r.stdout
    r = invoke_cli("store", "upgrade", env=env)
    assert r.returncode == 0 and "up to date" in r.stdout


def _pretend_newer(path: Path, read_compat: int) -> None:
    with open_store(path):
        pass
    con = sqlite3.connect(path)
    con.execute("ALTER TABLE results ADD COLUMN from_the_future TEXT")
    con.execute(f"UPDATE pfdeploy_schema SET version = {SCHEMA_VERSION + 1}, read_compat = {read_compat}, "
                "written_by = '9.0.0'")
    con.execute(f"UPDATE {migrations.VERSION_TABLE} SET version_num = 'schema{SCHEMA_VERSION + 1}'")
    con.commit()
    con.close()


def test_newer_store_is_refused_for_writing_but_readable(old_store):
    _pretend_newer(old_store, read_compat=SCHEMA_VERSION)
    with pytest.raises(UserError, match=rf"has schema {SCHEMA_VERSION + 1}, written by pfdeploy 9.0.0; this "
                                        rf"pfdeploy \S+ knows schema {SCHEMA_VERSION} and cannot write to it"):
        open_store(old_store)
    with open_store(old_store, create=False, readonly=True) as store:
        assert store.readonly
        _same_as_reference(store)
        with pytest.raises(UserError, match="open read-only: its schema"):
            store.begin_run({"tag": "x"})
    env = {"PFDEPLOY_STORE": str(old_store)}
    r = invoke_cli("bench", "--suite", "quick", env=env)
    assert r.returncode == 1 and "cannot write to it: upgrade pfdeploy" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = invoke_cli("results", "--run", "release-0.1-a", env=env)
    assert r.returncode == 0, r.stderr


def test_newer_incompatible_store_is_refused_even_for_reading(old_store):
    _pretend_newer(old_store, read_compat=SCHEMA_VERSION + 1)
    with pytest.raises(UserError, match="cannot read it: upgrade pfdeploy"):
        open_store(old_store, create=False, readonly=True)


def test_unknown_old_schema_is_refused(tmp_path):
    path = tmp_path / "v1.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE pfdeploy_schema (id INTEGER PRIMARY KEY, version INTEGER, updated_at TEXT)")
    con.execute("INSERT INTO pfdeploy_schema VALUES (1, 1, '2025-01-01')")
    con.commit()
    con.close()
    with pytest.raises(UserError, match="has schema 1, which no pfdeploy release wrote"):
        open_store(path)


def test_damaged_json_cell_does_not_hide_the_store(old_store):
    with open_store(old_store):
        pass
    con = sqlite3.connect(old_store)
    con.execute("UPDATE results SET parity = '{broken' WHERE id = (SELECT min(id) FROM results)")
    con.commit()
    con.close()
    with open_store(old_store, create=False, readonly=True) as store:
        rows = store.results(store.resolve_run("release-0.1-a")["id"])
        assert rows[0]["parity"] == {"_unreadable": "{broken"}
    env = {"PFDEPLOY_STORE": str(old_store)}
    r = invoke_cli("results", "--run", "release-0.1-a", env=env)
    assert r.returncode == 0 and "Traceback" not in r.stderr


def _read_only_mount(src: Path, dest: Path) -> bool:
    dest.mkdir()
    ok = subprocess.run(["mount", "--bind", str(src), str(dest)], capture_output=True).returncode == 0
    if ok and subprocess.run(["mount", "-o", "remount,bind,ro", str(dest)], capture_output=True).returncode != 0:
        subprocess.run(["umount", str(dest)], capture_output=True)
        ok = False
    return ok


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("mount"), reason="needs root for a read-only bind mount")
def test_store_on_a_read_only_file_system_is_readable(old_store, tmp_path):
    """A store where nobody may write (a CI artifact on a read-only mount): results, compare and
    report read it; bench says it cannot write; nothing is left behind."""
    with open_store(old_store):
        pass
    src = tmp_path / "src"
    src.mkdir()
    shutil.copyfile(old_store, src / "results.db")
    ro = tmp_path / "ro"
    if not _read_only_mount(src, ro):
        pytest.skip("this sandbox does not allow a read-only bind mount")
    try:
        env = {"PFDEPLOY_STORE": str(ro / "results.db")}
        r = invoke_cli("results", "--run", "release-0.1-a", "--format", "json", env=env)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["run"]["tag"] == "release-0.1-a"
        r = invoke_cli("compare", "release-0.1-a", "release-0.1-b", "--fail-on", "never", env=env)
        assert r.returncode == 0, r.stderr
        r = invoke_cli("store", "info", env=env)
        assert r.returncode == 0 and "not writable" in r.stdout, r.stdout + r.stderr
        r = invoke_cli("bench", "--suite", "quick", env=env)
        assert r.returncode == 1 and "is not writable" in r.stderr and "Traceback" not in r.stderr
    finally:
        subprocess.run(["umount", "-l", str(ro)], capture_output=True)  # lazy: an in-process reader may still hold it
    assert sorted(p.name for p in src.iterdir()) == ["results.db"]


def test_old_store_in_a_read_only_place_asks_for_one_upgrade(old_store, tmp_path):
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("needs root for a read-only bind mount")
    ro = tmp_path / "ro"
    if not _read_only_mount(old_store.parent, ro):
        pytest.skip("this sandbox does not allow a read-only bind mount")
    try:
        with pytest.raises(UserError, match="needs a one-time upgrade to schema .* run `pfdeploy store upgrade`"):
            open_store(ro / "results.db", create=False, readonly=True)
    finally:
        subprocess.run(["umount", "-l", str(ro)], capture_output=True)  # lazy: an in-process reader may still hold it


# ----------------------------------------------------------------------------- the run file's schema

def test_published_schema_is_current():
    """docs/run-file.schema.json is generated from the model (`pfdeploy store schema --out ...`)."""
    assert json.loads(SCHEMA_FILE.read_text()) == json_schema()


def test_run_files_validate_against_the_published_schema(old_store, tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for doc in _reference():  # version 1, as release 0.1 wrote them
        validator.validate(doc)
    env = {"PFDEPLOY_STORE": str(old_store)}
    out = tmp_path / "run.json"
    r = invoke_cli("results", "--run", "release-0.1-b", "--format", "json", "--out", str(out), env=env)
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    assert doc["version"] == RUN_FILE_VERSION
    validator.validate(doc)
    assert read_run_file(out)["run"]["tag"] == "release-0.1-b"
    bad = {**doc, "results": [{**doc["results"][0], "p50_ms": "fast"}]}
    assert not validator.is_valid(bad)


def test_run_file_from_a_newer_pfdeploy_is_refused(tmp_path):
    doc = _reference()[0]
    p = tmp_path / "future.json"
    p.write_text(json.dumps({**doc, "version": RUN_FILE_VERSION + 1}))
    with pytest.raises(UserError, match=rf"run-file version {RUN_FILE_VERSION + 1} was written by a newer "
                                        rf"pfdeploy; this pfdeploy \S+ reads versions 1 to {RUN_FILE_VERSION}"):
        read_run_file(p)
    p.write_text(json.dumps(doc))
    assert read_run_file(p)["run"]["id"] == doc["run"]["id"]  # version 1 is still read
