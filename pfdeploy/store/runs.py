"""The Store: one open results store, its runs, results and samples read and written each in one
transaction (pfdeploy.store.tx), the run-file export and import, and the schema upgrade under the
write lock. Open one with `pfdeploy.store.open_store`."""
from __future__ import annotations

import os
import sys
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Callable, Sequence

import sqlalchemy as sa

from .. import migrations, runfile
from ..clock import utc_now
from ..errors import UserError
from ..result import RESULT_STATUSES, Result
from ..runfile import RUN_FILE_FORMAT, RUN_FILE_VERSION
from .codec import _decode_samples, _encode_samples
from .refs import clean_ref, find_run
from .rows import damaged, result_dict, result_values, run_dict, run_values
from .runfile_io import write_run_file
from .schema import RESULT_JSON, RUN_JSON, SCHEMA_VERSION, results_table, runs_table, samples_table
from .sqlite import _sqlite_backup
from .tx import run_tx
from .values import _clean_json, _coerce_time, make_case_key

FINAL_RUN_STATUSES = ("finished", "interrupted", "failed")


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


class Store:
    """A results store. Open with `open_store`; one Store per process (it reconnects after a
    fork). Every write is its own transaction, committed before the method returns. `warn` takes
    the warning lines of a read (a damaged cell); by default they go to stderr."""

    def __init__(self, engine: sa.engine.Engine, kind: str, description: str, path: Path | None,
                 lock_timeout_s: float = 120.0, readonly: bool = False):
        self.engine = engine
        self.readonly = readonly  # set when opened read-only (a newer compatible schema, or asked for)
        self.readonly_reason: str | None = None
        self.last_backup: Path | None = None  # the backup copy made by the last upgrade (SQLite)
        self.kind = kind
        self.url = description  # password hidden
        self.path = path
        self.lock_timeout_s = lock_timeout_s
        self.warn: Callable[[str], None] = _stderr
        self._reported: set[tuple[str, str]] = set()  # (run id, field) already warned about
        self._pid = os.getpid()

    # -- plumbing

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        self.engine.dispose()

    def __repr__(self):
        return f"<Store {self.url}>"

    def _conn(self):
        if os.getpid() != self._pid:  # forked: never share the parent's connections
            self.engine.dispose(close=False)
            self._pid = os.getpid()
        return self.engine.connect()

    def _tx(self, fn: Callable, write: bool = True):
        """Run fn(conn) in one transaction (pfdeploy.store.tx.run_tx: lock, retries, one-line errors)."""
        return run_tx(self, fn, write)

    def _check_damage(self, rows, fields, is_result: bool) -> None:
        """One warning line per run and field whose JSON cell could not be read (the rows are
        still returned, the damaged value as {"_unreadable": ...}); each is said once per Store."""
        found: dict[tuple[str, str], list[int]] = defaultdict(list)
        for row in rows:
            for field in damaged(row, fields):
                run_id = row.run_id if is_result else row.id
                found[(run_id, field)].append(int(row.id) if is_result else 0)
        for key, ids in found.items():
            if key in self._reported:
                continue
            self._reported.add(key)
            run_id, field = key
            what = (f"field {field!r} of result {ids[0]}" if len(ids) == 1 else
                    f"field {field!r} of {len(ids)} results (ids {', '.join(map(str, ids[:5]))}"
                    f"{', ...' if len(ids) > 5 else ''})") if is_result else f"run field {field!r}"
            self.warn(f"pfdeploy: warning: results store {self.url}: run {run_id}: {what} is damaged "
                      "(not readable JSON); shown as unreadable, everything else is intact")

    def schema_version(self) -> int:
        """The store's schema number (pfdeploy_schema.version)."""
        return self._tx(migrations.state, write=False).schema

    def schema_state(self) -> "migrations.StoreState":
        """Schema number, Alembic revision, read_compat and the pfdeploy version that last upgraded it."""
        return self._tx(migrations.state, write=False)

    def upgrade_plan(self) -> "migrations.Plan":
        """What an upgrade would change (revisions and SQL), changing nothing."""
        return self._tx(migrations.plan, write=False)

    def _upgrade(self, before: "migrations.StoreState") -> list[str]:
        """Upgrade to the head revision in one transaction holding the write lock: SQLite
        BEGIN IMMEDIATE (the file is first copied, consistently, to a backup beside it);
        PostgreSQL under an advisory lock, so two CI jobs opening one store migrate once."""
        backup: list[Path] = []

        def tx(conn):
            if self.kind == "postgresql":
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7204151)")  # released at commit
            st = migrations.state(conn)  # again, under the lock: another opener may have done it
            if not migrations.needs_upgrade(st):
                return []
            if self.kind == "sqlite" and self.path is not None and st.schema > 0:
                backup.append(_sqlite_backup(conn, self.path, st.schema))
            return migrations.upgrade(conn)

        applied = self._tx(tx)
        if applied and before.schema > 0:
            where = f" (backup: {backup[0]})" if backup else ""
            print(f"pfdeploy: upgraded results store {self.url} from schema {before.schema} to "
                  f"{SCHEMA_VERSION}{where}", file=sys.stderr)
        self.last_backup = backup[0] if backup else None
        return applied

    # -- runs

    def begin_run(self, meta: dict) -> str:
        """Record a new run with status 'running' and return its id (32 hex chars). meta: tag,
        git_commit, suite, suite_version, machine_id, machine, tools, config, pfdeploy_version,
        loadavg_before (unknown keys are kept in `extra`); optional id/started_at (imports)."""
        meta = dict(meta or {})
        run_id = str(meta.pop("id", None) or uuid.uuid4().hex)
        started = _coerce_time(meta.pop("started_at", None)) or utc_now()
        values = {"id": run_id, "started_at": started, "status": "running"}
        values.update(run_values(meta))
        self._tx(lambda c: c.execute(runs_table.insert().values(**values)))
        return run_id

    def finish_run(self, run_id: str, status: str, loadavg_after=None) -> None:
        """Close a run: status is finished | interrupted | failed."""
        if status not in FINAL_RUN_STATUSES:
            raise ValueError(f"run status must be one of {FINAL_RUN_STATUSES}, got {status!r}")

        def tx(conn):
            res = conn.execute(runs_table.update().where(runs_table.c.id == run_id).values(
                status=status, finished_at=utc_now(), loadavg_after=_clean_json(loadavg_after)))
            if res.rowcount == 0:
                raise UserError(f"no run {run_id!r} in {self.url}")

        self._tx(tx)

    def runs(self, limit: int | None = None, tag: str | None = None, machine_id: str | None = None,
             status: str | None = None, suite: str | None = None, git_commit: str | None = None) -> list[dict]:
        """Runs, newest first, each with `n_results`; optional filters (git_commit is a prefix)."""
        r = runs_table
        counts = (sa.select(results_table.c.run_id, sa.func.count().label("n_results"))
                  .group_by(results_table.c.run_id).subquery())
        q = sa.select(r, counts.c.n_results).outerjoin(counts, counts.c.run_id == r.c.id)
        for col, val in (("tag", tag), ("machine_id", machine_id), ("status", status), ("suite", suite)):
            if val is not None:
                q = q.where(r.c[col] == val)
        if git_commit:
            q = q.where(r.c.git_commit.startswith(git_commit.lower(), autoescape=True))
        q = q.order_by(r.c.started_at.desc(), r.c.id.desc())
        if limit:
            q = q.limit(limit)
        rows = self._tx(lambda c: c.execute(q).all(), write=False)
        self._check_damage(rows, RUN_JSON, is_result=False)
        return [run_dict(row) for row in rows]

    def get_run(self, run_id: str) -> dict:
        """The run with exactly this id (UserError when there is none)."""
        q = sa.select(runs_table).where(runs_table.c.id == run_id)
        row = self._tx(lambda c: c.execute(q).first(), write=False)
        if row is None:
            raise UserError(f"no run {run_id!r} in {self.url}")
        self._check_damage([row], RUN_JSON, is_result=False)
        return run_dict(row)

    def resolve_run(self, ref: str) -> dict:
        """Find one run from a reference, in this order: an exact run id; 'latest'; a tag (the
        latest run with it); a run id prefix (unique, at least 4 characters); a git commit prefix
        (at least 4 characters; the latest run on that commit). Unknown or ambiguous references
        raise UserError saying which runs matched (pfdeploy.store.refs)."""
        ref = clean_ref(ref)
        row = self._tx(lambda conn: find_run(conn, ref, self.url), write=False)
        self._check_damage([row], RUN_JSON, is_result=False)
        return run_dict(row)

    # -- results

    def add_result(self, run_id: str, result: "Result | dict", samples_ns: Sequence[int] | None = None,
                   rounds: Sequence[int] | None = None, device_samples_ns: Sequence[int] | None = None) -> int:
        """Store one case's typed result (pfdeploy.result.Result; a plain row dict is validated
        into one first) with its raw samples (integer nanoseconds; by default the result's own
        `samples_ns`, `sample_rounds`, `device_samples_ns`), the round of each sample (or None) and
        the device-clock samples of a GPU backend (or None). Fields a plugin adds are kept in
        `extra`. Committed before returning; returns the result id."""
        if not isinstance(result, Result):
            row = {k: v for k, v in dict(result).items() if k not in ("id", "run_id")}
            row["case_key"] = row.get("case_key") or make_case_key(row)
            if row.get("status") not in RESULT_STATUSES:  # a caller's bug, said as the store always said it
                raise ValueError(f"result status must be one of {RESULT_STATUSES}, got {row.get('status')!r}")
            result = Result.from_row(row | {"run_id": run_id})
        if samples_ns is None:
            samples_ns, rounds = result.samples_ns, result.sample_rounds
            device_samples_ns = device_samples_ns if device_samples_ns is not None else result.device_samples_ns
        values = result_values(run_id, result.to_row())
        enc = _encode_samples(samples_ns, rounds, device_samples_ns)

        def tx(conn):
            if conn.execute(sa.select(runs_table.c.id).where(runs_table.c.id == run_id)).first() is None:
                raise UserError(f"no run {run_id!r} in {self.url}")
            rid = conn.execute(results_table.insert().values(**values)).inserted_primary_key[0]
            if enc is not None:
                conn.execute(samples_table.insert().values(result_id=rid, **enc))
            return int(rid)

        return self._tx(tx)

    def results(self, run_id: str, samples: bool = False) -> list[Result]:
        """The typed results of one run, in the order they were added (with their raw samples
        when `samples`; otherwise `samples_ns` is None: not loaded)."""
        out = self._results_where(results_table.c.run_id == run_id)
        if samples:
            by_id = self.samples_for_run(run_id)
            out = [r.but(**_sample_fields(by_id.get(r.id))) for r in out]
        return out

    def _results_where(self, cond) -> list[Result]:
        q = sa.select(results_table)
        if cond is not None:
            q = q.where(cond)
        q = q.order_by(results_table.c.id)
        rows = self._tx(lambda c: c.execute(q).all(), write=False)
        self._check_damage(rows, RESULT_JSON, is_result=True)
        out = []
        for row in rows:
            d = result_dict(row, warn=lambda what, rid=row.id, run=row.run_id: self._warn_once(run, rid, what))
            out.append(Result.from_row(d, warn=lambda field, msg, rid=row.id, run=row.run_id:
                                       self._warn_once(run, rid, f"field {field!r} of result {rid} is not of "
                                                                 "its declared type")))
        return out

    def _warn_once(self, run_id: str, result_id, what: str) -> None:
        key = (run_id, what)
        if key in self._reported:
            return
        self._reported.add(key)
        self.warn(f"pfdeploy: warning: results store {self.url}: run {run_id}: {what}; ignored, everything else "
                  "is intact")

    def all_results(self) -> list[Result]:
        """Every result row in the store, oldest first."""
        return self._results_where(None)

    def samples(self, result_id: int) -> dict:
        """{"latency_ns": [int, ...], "round": [int, ...] or None} of one result ([] and None
        when the result has no samples, e.g. a failed case)."""
        q = sa.select(samples_table).where(samples_table.c.result_id == int(result_id))
        return _decode_samples(self._tx(lambda c: c.execute(q).first(), write=False))

    def samples_for_run(self, run_id: str) -> dict[int, dict]:
        """{result_id: samples()} for every result of a run with samples, in one query."""
        q = (sa.select(samples_table).join(results_table, results_table.c.id == samples_table.c.result_id)
             .where(results_table.c.run_id == run_id))
        rows = self._tx(lambda c: c.execute(q).all(), write=False)
        return {int(rec.result_id): _decode_samples(rec, warn=lambda what, rid=rec.result_id:
                                                    self._warn_once(run_id, rid, what)) for rec in rows}

    # -- run files

    def export_run(self, run_id: str, path: str | os.PathLike | None = None) -> dict:
        """The run as a JSON run-file document ({"format": "pfdeploy-run", "version": 2, "run",
        "results": [{...row, "samples_ns", "sample_rounds", "device_samples_ns"}]}: the model
        pfdeploy.runfile.RunFile); written atomically to `path` when given."""
        run = self.get_run(run_id)
        run.pop("n_results", None)
        samples = self.samples_for_run(run_id)
        results = [r.but(**_sample_fields(samples.get(r.id))).to_row(samples=True) for r in self.results(run_id)]
        doc = {"format": RUN_FILE_FORMAT, "version": RUN_FILE_VERSION, "run": run, "results": results}
        if path is not None:
            write_run_file(doc, path)
        return doc

    def import_run(self, doc: dict) -> str:
        """Insert a run-file document (from `read_run_file`) with its original run id, all in one
        transaction. A run id already in the store is a UserError (nothing is overwritten)."""
        doc = runfile.parse_run_doc(doc)
        run = dict(doc["run"])
        run_id = run["id"]
        values = {"id": run_id, "started_at": _coerce_time(run.get("started_at")) or utc_now(),
                  "finished_at": _coerce_time(run.get("finished_at")), "status": run.get("status", "finished")}
        values.update(run_values({k: v for k, v in run.items()
                                        if k not in ("id", "started_at", "finished_at", "status")}))
        prepared = []
        for res in doc["results"]:
            row = {k: v for k, v in res.items() if k not in runfile.SAMPLE_KEYS}
            enc = _encode_samples(res.get("samples_ns") or None, res.get("sample_rounds"),
                                  res.get("device_samples_ns"))
            prepared.append((result_values(run_id, row), enc))

        def tx(conn):
            if conn.execute(sa.select(runs_table.c.id).where(runs_table.c.id == run_id)).first():
                raise UserError(f"run {run_id} is already in {self.url}")
            conn.execute(runs_table.insert().values(**values))
            for vals, enc in prepared:
                rid = conn.execute(results_table.insert().values(**vals)).inserted_primary_key[0]
                if enc is not None:
                    conn.execute(samples_table.insert().values(result_id=rid, **enc))

        self._tx(tx)
        return run_id

    def integrity_check(self) -> str:
        """SQLite's `PRAGMA integrity_check` ('ok' when sound); 'ok' on PostgreSQL."""
        if self.kind != "sqlite":
            return "ok"
        rows = self._tx(lambda c: c.exec_driver_sql("PRAGMA integrity_check").all(), write=False)
        return "; ".join(str(r[0]) for r in rows)


def _sample_fields(s: dict | None) -> dict:
    """A result's sample fields from `samples()`' record (none stored: no samples)."""
    s = s or {"latency_ns": [], "round": None, "device_latency_ns": None}
    return {"samples_ns": s["latency_ns"], "sample_rounds": s["round"], "device_samples_ns": s["device_latency_ns"]}
