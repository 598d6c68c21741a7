"""Results store: runs, results and raw samples in SQLite (default) or PostgreSQL (by URL).

    store = open_store(url=None)            # None -> $PFDEPLOY_STORE or ./pfdeploy-results.db
    run_id = store.begin_run(meta)          # committed at once, status 'running'
    rid = store.add_result(run_id, row, samples_ns, rounds)   # committed at once
    store.finish_run(run_id, status, loadavg_after=None)      # finished | interrupted | failed
    store.runs(...), store.resolve_run(ref), store.results(run_id), store.samples(result_id)
    store.export_run(run_id) -> dict; read_run_file(path) -> dict; write_run_file(data, path)

One schema for both databases (SQLAlchemy Core), its columns defined once by the run-file models
(pfdeploy/runfile.py), versioned by Alembic revisions (pfdeploy/migrations) and brought up to date
on open. SQLite runs in WAL mode with a busy timeout, write
transactions take the write lock up front (BEGIN IMMEDIATE) and are retried on "database is
locked", so several benches can write to one file at once. docs/store.md explains the choices.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
import random
import stat
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Sequence

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DatabaseError, OperationalError

from . import migrations, runfile
from .config import default_store_url
from .errors import UsageError, UserError, optional_import
from .validate import check_text
from .runfile import (RESULT_STATUSES, RUN_FILE_FORMAT, RUN_FILE_VERSION, RUN_STATUSES, Col,
                      columns as runfile_columns)

FINAL_RUN_STATUSES = ("finished", "interrupted", "failed")
CASE_FIELDS = ("model", "weights", "backend", "device", "precision", "batch", "threads", "scenario")
MIN_PREFIX = 4  # shortest run-id or commit prefix resolve_run accepts

# ----------------------------------------------------------------------------- column types


class UTCDateTime(sa.types.TypeDecorator):
    """Timezone-aware UTC timestamps on both databases: timestamptz on PostgreSQL; on SQLite
    (which has no time zones) naive UTC text, read back as UTC."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if isinstance(value, str):
            value = _parse_time(value)
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.timezone.utc)
        value = value.astimezone(_dt.timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=_dt.timezone.utc)
        return value.astimezone(_dt.timezone.utc)


def _parse_time(s: str) -> _dt.datetime:
    try:
        t = _dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        raise UserError(f"not an ISO-8601 timestamp: {s!r}") from None
    return t if t.tzinfo else t.replace(tzinfo=_dt.timezone.utc)


def _coerce_time(v) -> _dt.datetime | None:
    """None, an aware/naive (UTC) datetime or an ISO-8601 string -> aware datetime; a bad string
    is a UserError here, before SQLAlchemy would wrap it into a StatementError."""
    if v is None or v == "":
        return None
    if isinstance(v, str):
        return _parse_time(v)
    if isinstance(v, _dt.datetime):
        return v if v.tzinfo else v.replace(tzinfo=_dt.timezone.utc)
    raise UserError(f"not a timestamp: {v!r}")


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def _iso(t: _dt.datetime | None) -> str | None:
    return t.isoformat() if t is not None else None


# ----------------------------------------------------------------------------- schema (latest)
# The current shape of the tables, used by queries, built from the run-file models
# (pfdeploy/runfile.py: one definition for the run file and the store). Migrations
# (pfdeploy/migrations/versions) create it step by step from their own frozen definitions;
# tests/test_store_upgrade.py checks that the two agree column for column.


class LenientJSON(sa.types.TypeDecorator):
    """JSON (JSONB on PostgreSQL) that reads a damaged value (text that is not JSON, e.g. written
    by hand into a SQLite file) as {"_unreadable": "<the raw text>"} instead of failing the whole
    query: one bad cell must not hide every other result."""

    impl = sa.JSON(none_as_null=True)
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.JSONB(none_as_null=True))
        return dialect.type_descriptor(sa.JSON(none_as_null=True))

    def result_processor(self, dialect, coltype):
        if dialect.name == "postgresql":
            return super().result_processor(dialect, coltype)

        def process(value):
            if value is None:
                return None
            if isinstance(value, (bytes, bytearray)):
                value = value.decode("utf-8", "replace")
            if not isinstance(value, str):
                return value
            try:
                return json.loads(value)
            except ValueError:
                return {"_unreadable": value[:200]}

        return process


def _json_type():
    return LenientJSON()


def _sa_type(col: Col):
    return {"text": (lambda: sa.String(col.length) if col.length else sa.Text()), "int": sa.Integer,
            "bigint": sa.BigInteger, "float": sa.Float, "json": _json_type, "time": UTCDateTime}[col.kind]()


def _model_columns(model, skip=()) -> list[sa.Column]:
    return [sa.Column(name, _sa_type(col), nullable=col.nullable)
            for name, col in runfile_columns(model).items() if name not in skip]


metadata = sa.MetaData()

schema_table = sa.Table(
    "pfdeploy_schema", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("read_compat", sa.Integer),
    sa.Column("written_by", sa.String(32)),
)

RUN_FIELDS = runfile.RUN_FIELDS
RUN_JSON = tuple(k for k, c in runfile_columns(runfile.Run).items() if c.kind == "json")
runs_table = sa.Table(
    "runs", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    *_model_columns(runfile.Run, skip=("id",)),
    sa.Column("extra", _json_type()),  # fields not in the schema, kept rather than dropped
    sa.Index("ix_runs_started_at", "started_at"), sa.Index("ix_runs_tag", "tag"),
    sa.Index("ix_runs_git_commit", "git_commit"), sa.Index("ix_runs_machine_id", "machine_id"),
)

RESULT_FIELDS = runfile.RESULT_FIELDS
_RESULT_COLS = runfile_columns(runfile.Result)
RESULT_TEXT = tuple(k for k, c in _RESULT_COLS.items() if c.kind == "text" and k != "run_id")
RESULT_INT = tuple(k for k, c in _RESULT_COLS.items() if c.kind in ("int", "bigint") and k != "id")
RESULT_FLOAT = tuple(k for k, c in _RESULT_COLS.items() if c.kind == "float")
RESULT_JSON = tuple(k for k, c in _RESULT_COLS.items() if c.kind == "json")
results_table = sa.Table(
    "results", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), nullable=False),
    *_model_columns(runfile.Result, skip=("id", "run_id")),
    sa.Column("extra", _json_type()),
    sa.Index("ix_results_run_id", "run_id"), sa.Index("ix_results_case_key", "case_key"),
)

# Raw samples: one row per result, latencies as little-endian int64 nanoseconds and the round of
# each sample as little-endian int32 (NULL when samples were not taken in rounds); since schema 4
# the device-clock samples of GPU backends as int64 (NULL for host-only rows).
samples_table = sa.Table(
    "samples", metadata,
    sa.Column("result_id", sa.Integer, sa.ForeignKey("results.id"), primary_key=True, autoincrement=False),
    sa.Column("n", sa.Integer, nullable=False),
    sa.Column("encoding", sa.String(16), nullable=False),
    sa.Column("latency_ns", sa.LargeBinary, nullable=False),
    sa.Column("rounds", sa.LargeBinary),
    sa.Column("device_latency_ns", sa.LargeBinary),
)
SAMPLE_ENCODING = "i8le+i4le"
SCHEMA_VERSION = migrations.head_schema()

# ----------------------------------------------------------------------------- value cleaning


def _clean_json(x):
    """JSON-safe copy: NaN/inf -> None, numpy scalars/arrays -> Python, tuples -> lists."""
    if x is None or isinstance(x, (str, bool, int)):
        return x
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): _clean_json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, set)):
        return [_clean_json(v) for v in x]
    if hasattr(x, "tolist"):  # numpy arrays and scalars
        return _clean_json(x.tolist())
    if isinstance(x, _dt.datetime):
        return x.isoformat()
    if isinstance(x, Path):
        return str(x)
    return str(x)


def _json_dumps(x) -> str:
    return json.dumps(_clean_json(x), allow_nan=False)


def _to_int(name, v):
    if v is None:
        return None
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float):
        if not math.isfinite(v):
            return None
        if v != int(v):
            raise ValueError(f"result field {name} must be an integer, got {v!r}")
    return int(v)


def _to_float(v):
    if v is None:
        return None
    v = float(v.item() if hasattr(v, "item") else v)
    return v if math.isfinite(v) else None


def make_case_key(row: dict) -> str:
    """The case key 'model|weights|backend|device|precision|batch|threads|scenario' (missing
    fields are empty)."""
    return "|".join("" if row.get(k) is None else str(row.get(k)) for k in CASE_FIELDS)


def _int_samples(samples, what: str):
    import numpy as np

    arr = np.asarray(samples)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be one-dimensional, got shape {arr.shape}")
    if arr.size and arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{what} contains NaN or inf")
        arr = np.rint(arr)
    elif arr.size and arr.dtype.kind not in "iu":
        raise ValueError(f"{what} must be integers (nanoseconds), got dtype {arr.dtype}")
    return arr.astype("<i8")


def _encode_samples(samples_ns, rounds, device_samples_ns=None) -> dict | None:
    import numpy as np

    if samples_ns is None:
        if device_samples_ns is not None and len(device_samples_ns):
            raise ValueError("device samples given without host samples")
        if rounds is not None and len(rounds):
            raise ValueError("rounds given without samples")
        return None
    arr = np.asarray(samples_ns)
    if arr.ndim != 1:
        raise ValueError(f"samples_ns must be one-dimensional, got shape {arr.shape}")
    if arr.size and arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)):
            raise ValueError("samples_ns contains NaN or inf")
        arr = np.rint(arr)
    elif arr.size and arr.dtype.kind not in "iu":
        raise ValueError(f"samples_ns must be integers (nanoseconds), got dtype {arr.dtype}")
    lat = arr.astype("<i8")
    rnd = None
    if rounds is not None:
        r = np.asarray(rounds)
        if r.shape != arr.shape:
            raise ValueError(f"rounds has {r.size} entries for {arr.size} samples")
        if r.size and r.dtype.kind not in "iu":
            raise ValueError(f"rounds must be integers, got dtype {r.dtype}")
        rnd = r.astype("<i4").tobytes()
    dev = None
    if device_samples_ns is not None:
        dev = _int_samples(device_samples_ns, "device_samples_ns").tobytes()
    return {"n": int(lat.size), "encoding": SAMPLE_ENCODING, "latency_ns": lat.tobytes(), "rounds": rnd,
            "device_latency_ns": dev}


def _decode_samples(rec) -> dict:
    import numpy as np

    if rec is None:
        return {"latency_ns": [], "round": None, "device_latency_ns": None}
    if rec.encoding != SAMPLE_ENCODING:
        raise UserError(f"samples of result {rec.result_id} use an unknown encoding {rec.encoding!r}; "
                        "upgrade pfdeploy")
    lat = np.frombuffer(rec.latency_ns, dtype="<i8")
    rnd = np.frombuffer(rec.rounds, dtype="<i4") if rec.rounds is not None else None
    dev = getattr(rec, "device_latency_ns", None)
    dev = np.frombuffer(dev, dtype="<i8").tolist() if dev is not None else None
    return {"latency_ns": lat.tolist(), "round": rnd.tolist() if rnd is not None else None,
            "device_latency_ns": dev}


# ----------------------------------------------------------------------------- URLs


def _describe(url: sa.engine.URL) -> str:
    return url.render_as_string(hide_password=True)


def parse_store_url(url: str | os.PathLike | None) -> tuple[str, sa.engine.URL | None, Path | None]:
    """-> (kind 'sqlite'|'postgresql', SQLAlchemy URL, SQLite path or None). A plain path or
    `sqlite:///path` is SQLite; `postgresql://` / `postgres://` use psycopg 3."""
    raw = check_text(str(default_store_url(None) if url is None else url).strip(), "store URL")
    if not raw:
        raise UsageError("empty store URL; give a path, sqlite:///path or postgresql://user@host/db")
    if "://" not in raw:
        path = Path(raw).expanduser().absolute()
        return "sqlite", sa.engine.make_url("sqlite:///" + str(path)), path
    scheme = raw.split("://", 1)[0].lower()
    if scheme in ("sqlite", "sqlite+pysqlite"):
        try:
            u = sa.engine.make_url(raw)
        except sa.exc.ArgumentError as exc:
            raise UsageError(f"bad store URL {raw!r}: {exc}") from None
        if not u.database or u.database == ":memory:":
            return "sqlite", sa.engine.make_url("sqlite://"), None
        path = Path(u.database).expanduser().absolute()
        return "sqlite", u.set(drivername="sqlite", database=str(path)), path
    if scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        rest = raw.split("://", 1)[1]
        try:
            u = sa.engine.make_url("postgresql+psycopg://" + rest)
        except sa.exc.ArgumentError as exc:
            raise UsageError(f"bad store URL: {exc}") from None
        return "postgresql", u, None
    raise UsageError(f"unsupported store URL scheme {scheme!r}: use a file path, sqlite:///path or "
                     "postgresql://user:password@host:port/dbname")


def _is_locked(exc: BaseException) -> bool:
    msg = str(getattr(exc, "orig", exc)).lower()
    return "database is locked" in msg or "database is busy" in msg or "database table is locked" in msg


# ----------------------------------------------------------------------------- the store


class Store:
    """A results store. Open with `open_store`; one Store per process (it reconnects after a
    fork). Every write is its own transaction, committed before the method returns."""

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
        """Run fn(conn) in one transaction. SQLite writes take the write lock at BEGIN and the
        whole transaction is retried (with jittered back-off) on 'database is locked' beyond the
        busy timeout; nothing is committed by a failed attempt, so a retry cannot duplicate."""
        if write and self.readonly:
            raise UserError(f"results store {self.url} is open read-only"
                            + (f": {self.readonly_reason}" if self.readonly_reason else ""))
        deadline = time.monotonic() + self.lock_timeout_s
        delay = 0.02
        while True:
            try:
                with self._conn() as conn:
                    if write:
                        conn = conn.execution_options(pfdeploy_write=True)
                    with conn.begin():
                        return fn(conn)
            except OperationalError as exc:
                if self.kind == "sqlite" and _is_locked(exc):
                    if time.monotonic() < deadline:
                        time.sleep(delay * (0.5 + random.random()))
                        delay = min(delay * 2, 1.0)
                        continue
                    raise UserError(f"results store {self.url} stayed locked for "
                                    f"{self.lock_timeout_s:.0f} s by another process") from None
                raise _user_error(exc, self.url) from None

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
            import sys

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
        started = _coerce_time(meta.pop("started_at", None)) or _now()
        values = {"id": run_id, "started_at": started, "status": "running"}
        values.update(self._run_values(meta))
        self._tx(lambda c: c.execute(runs_table.insert().values(**values)))
        return run_id

    def _run_values(self, meta: dict) -> dict:
        values, extra = {}, {}
        for k, v in meta.items():
            if k in ("status", "finished_at", "n_results"):
                continue
            if k in RUN_JSON:
                values[k] = _clean_json(v)
            elif k in RUN_FIELDS:
                values[k] = None if v is None else check_text(str(v), f"run field {k}")
            else:
                extra[k] = _clean_json(v)
        values["extra"] = extra or None
        if values.get("pfdeploy_version") is None:
            from . import __version__

            values["pfdeploy_version"] = __version__
        return values

    def finish_run(self, run_id: str, status: str, loadavg_after=None) -> None:
        """Close a run: status is finished | interrupted | failed."""
        if status not in FINAL_RUN_STATUSES:
            raise ValueError(f"run status must be one of {FINAL_RUN_STATUSES}, got {status!r}")

        def tx(conn):
            res = conn.execute(runs_table.update().where(runs_table.c.id == run_id).values(
                status=status, finished_at=_now(), loadavg_after=_clean_json(loadavg_after)))
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
        return [_run_dict(row) for row in rows]

    def get_run(self, run_id: str) -> dict:
        """The run with exactly this id (UserError when there is none)."""
        q = sa.select(runs_table).where(runs_table.c.id == run_id)
        row = self._tx(lambda c: c.execute(q).first(), write=False)
        if row is None:
            raise UserError(f"no run {run_id!r} in {self.url}")
        return _run_dict(row)

    def resolve_run(self, ref: str) -> dict:
        """Find one run from a reference, in this order: an exact run id; 'latest'; a tag (the
        latest run with it); a run id prefix (unique, at least 4 characters); a git commit prefix
        (at least 4 characters; the latest run on that commit). Unknown or ambiguous references
        raise UserError saying which runs matched."""
        ref = check_text(str(ref or "").strip(), "run reference")
        if not ref:
            raise UsageError("empty run reference; give a run id (or prefix), a tag, a git commit or 'latest'")
        r = runs_table
        order = (r.c.started_at.desc(), r.c.id.desc())

        def tx(conn):
            exact = conn.execute(sa.select(r).where(r.c.id == ref)).first()
            if exact is not None:
                return exact
            if ref.lower() == "latest":
                row = conn.execute(sa.select(r).order_by(*order).limit(1)).first()
                if row is None:
                    raise UserError(f"no runs in {self.url} yet; run `pfdeploy bench` first")
                return row
            row = conn.execute(sa.select(r).where(r.c.tag == ref).order_by(*order).limit(1)).first()
            if row is not None:
                return row
            if len(ref) < MIN_PREFIX:
                raise UserError(f"no run, tag or commit matches {ref!r} in {self.url} "
                                f"(id and commit prefixes need at least {MIN_PREFIX} characters)")
            low = ref.lower()
            by_id = conn.execute(sa.select(r).where(r.c.id.startswith(low, autoescape=True))
                                 .order_by(*order).limit(6)).all()
            by_commit = conn.execute(sa.select(r).where(r.c.git_commit.startswith(low, autoescape=True))
                                     .order_by(*order)).all()
            commits = sorted({row.git_commit for row in by_commit})
            if len(by_id) > 1:
                ids = ", ".join(row.id[:12] for row in by_id[:5])
                raise UserError(f"run reference {ref!r} is ambiguous: it starts {len(by_id)}"
                                f"{'+' if len(by_id) > 5 else ''} run ids ({ids}); give more characters")
            if len(commits) > 1:
                raise UserError(f"run reference {ref!r} is ambiguous: it starts commits "
                                f"{', '.join(c[:12] for c in commits[:5])}; give more characters")
            if by_id and by_commit and by_id[0].id != by_commit[0].id:
                raise UserError(f"run reference {ref!r} is ambiguous: it starts run id {by_id[0].id[:12]} "
                                f"and commit {commits[0][:12]}; give more characters")
            if by_id:
                return by_id[0]
            if by_commit:
                return by_commit[0]
            raise UserError(f"no run, tag or commit matches {ref!r} in {self.url}")

        return _run_dict(self._tx(tx, write=False))

    # -- results

    def add_result(self, run_id: str, row: dict, samples_ns: Sequence[int] | None = None,
                   rounds: Sequence[int] | None = None, device_samples_ns: Sequence[int] | None = None) -> int:
        """Store one case's result row (fields: see RESULT_FIELDS; unknown keys are kept in
        `extra`) with its raw samples (integer nanoseconds), the round of each sample (or None) and
        the device-clock samples of a GPU backend (or None). Committed before returning; returns
        the result id."""
        values = self._result_values(run_id, row)
        enc = _encode_samples(samples_ns, rounds, device_samples_ns)

        def tx(conn):
            if conn.execute(sa.select(runs_table.c.id).where(runs_table.c.id == run_id)).first() is None:
                raise UserError(f"no run {run_id!r} in {self.url}")
            rid = conn.execute(results_table.insert().values(**values)).inserted_primary_key[0]
            if enc is not None:
                conn.execute(samples_table.insert().values(result_id=rid, **enc))
            return int(rid)

        return self._tx(tx)

    @staticmethod
    def _result_values(run_id: str, row: dict) -> dict:
        row = dict(row or {})
        values: dict[str, Any] = {"run_id": run_id}
        extra = {}
        for k, v in row.items():
            if k in ("id", "run_id"):
                continue
            if k in RESULT_INT:
                values[k] = _to_int(k, v)
            elif k in RESULT_FLOAT:
                values[k] = _to_float(v)
            elif k in RESULT_JSON:
                values[k] = _clean_json(v)
            elif k == "created_at":
                values[k] = _coerce_time(v)
            elif k in RESULT_TEXT:
                values[k] = None if v is None else check_text(str(v), f"result field {k}")
            else:
                extra[k] = _clean_json(v)
        status = values.get("status")
        if status not in RESULT_STATUSES:
            raise ValueError(f"result status must be one of {RESULT_STATUSES}, got {status!r}")
        values.setdefault("case_key", None)
        if not values["case_key"]:
            values["case_key"] = make_case_key(row)
        values["created_at"] = values.get("created_at") or _now()
        values["extra"] = extra or None
        return values

    def results(self, run_id: str) -> list[dict]:
        """The result rows of one run, in the order they were added."""
        return self._results_where(results_table.c.run_id == run_id)

    def _results_where(self, cond) -> list[dict]:
        q = sa.select(results_table)
        if cond is not None:
            q = q.where(cond)
        q = q.order_by(results_table.c.id)
        rows = self._tx(lambda c: c.execute(q).all(), write=False)
        return [_result_dict(row) for row in rows]

    def all_results(self) -> list[dict]:
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
        return {int(rec.result_id): _decode_samples(rec) for rec in rows}

    # -- run files

    def export_run(self, run_id: str, path: str | os.PathLike | None = None) -> dict:
        """The run as a JSON run-file document ({"format": "pfdeploy-run", "version": 2, "run",
        "results": [{...row, "samples_ns", "sample_rounds", "device_samples_ns"}]}: the model
        pfdeploy.runfile.RunFile); written atomically to `path` when given."""
        run = self.get_run(run_id)
        run.pop("n_results", None)
        samples = self.samples_for_run(run_id)
        results = []
        for row in self.results(run_id):
            s = samples.get(row["id"], {"latency_ns": [], "round": None, "device_latency_ns": None})
            results.append({**row, "samples_ns": s["latency_ns"], "sample_rounds": s["round"],
                            "device_samples_ns": s["device_latency_ns"]})
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
        values = {"id": run_id, "started_at": _coerce_time(run.get("started_at")) or _now(),
                  "finished_at": _coerce_time(run.get("finished_at")), "status": run.get("status", "finished")}
        values.update(self._run_values({k: v for k, v in run.items()
                                        if k not in ("id", "started_at", "finished_at", "status")}))
        prepared = []
        for res in doc["results"]:
            row = {k: v for k, v in res.items() if k not in runfile.SAMPLE_KEYS}
            enc = _encode_samples(res.get("samples_ns") or None, res.get("sample_rounds"),
                                  res.get("device_samples_ns"))
            prepared.append((self._result_values(run_id, row), enc))

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


def _run_dict(row) -> dict:
    m = row._mapping
    d = {k: m[k] for k in RUN_FIELDS}
    d["started_at"], d["finished_at"] = _iso(d["started_at"]), _iso(d["finished_at"])
    extra = m.get("extra") or {}
    for k, v in extra.items():
        d.setdefault(k, v)
    if "n_results" in m:
        d["n_results"] = int(m["n_results"] or 0)
    return d


def _result_dict(row) -> dict:
    m = row._mapping
    d = {k: m[k] for k in RESULT_FIELDS}
    d["created_at"] = _iso(d["created_at"])
    for k, v in (m.get("extra") or {}).items():
        d.setdefault(k, v)
    return d


def _sqlite_backup(conn, path: Path, schema: int) -> Path:
    """Copy the SQLite database to `<file>.schema<N>-<UTC time>.bak` beside it, while `conn`
    holds the write lock and has written nothing yet: a second connection reads the last
    committed state (WAL readers are not blocked by the writer; SQLite's backup API refuses a
    source connection that is itself writing) and SQLite's backup API copies it page by page."""
    import sqlite3

    stamp = _now().strftime("%Y%m%dT%H%M%S")
    dest = path.with_name(f"{path.name}.schema{schema}-{stamp}.bak")
    tmp = dest.with_name(dest.name + ".tmp")
    try:
        source = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        target = sqlite3.connect(str(tmp))
        try:
            source.backup(target)
        finally:
            target.close()
            source.close()
        os.replace(tmp, dest)
    except (OSError, sqlite3.Error) as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise UserError(f"results store {path}: cannot write the backup {dest} before upgrading "
                        f"(nothing was changed): {exc}") from None
    return dest


def _user_error(exc: BaseException, where: str) -> UserError:
    first = str(getattr(exc, "orig", exc)).strip().splitlines()
    return UserError(f"results store {where}: {first[0] if first else type(exc).__name__}")


def _sqlite_ro_uri(path: str) -> str:
    """A read-only SQLite URI for `path`. SQLite can read a WAL database read-only only while its
    -wal and -shm files exist or can be made; in a place this user cannot write, after a clean
    close (no -wal), the file is opened as immutable (nobody can be writing it there)."""
    from urllib.parse import quote

    writable = os.access(os.path.dirname(path) or ".", os.W_OK) and os.access(path, os.W_OK)
    live = os.path.exists(path + "-wal") and os.path.exists(path + "-shm")
    return f"file:{quote(path)}?{'mode=ro' if writable or live else 'immutable=1'}"


SQLITE_MAGIC = b"SQLite format 3\x00"


def sniff_sqlite(path: Path, busy_timeout_ms: int = 30_000) -> str:
    """What the file at `path` is, read without writing a byte to it (a read-only connection, no
    pragma): 'new' (no file), 'empty' (zero bytes, or a SQLite database without a single table),
    'pfdeploy' (it has pfdeploy's schema table). Anything else (not SQLite, another program's
    database) is a UserError naming it: pfdeploy leaves it as it is."""
    import sqlite3

    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):  # a device, a FIFO: never opened (a FIFO would block)
            raise UserError(f"results store {path} is not a regular file; pfdeploy leaves it unchanged")
        with open(path, "rb") as f:
            head = f.read(len(SQLITE_MAGIC))
    except FileNotFoundError:
        return "new"
    except OSError as exc:
        raise UserError(f"results store {path}: {exc.strerror or exc}") from None
    size = st.st_size
    wal = Path(f"{path}-wal")
    if size == 0 and not (wal.is_file() and wal.stat().st_size):
        return "empty"
    if size and head != SQLITE_MAGIC:
        raise UserError(f"results store {path}: file is not a database (not SQLite; pfdeploy left it unchanged)")
    try:
        con = sqlite3.connect(_sqlite_ro_uri(str(path)), uri=True, timeout=busy_timeout_ms / 1000)
        try:
            names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        finally:
            con.close()
    except sqlite3.Error as exc:
        raise _user_error(exc, str(path)) from None
    if "pfdeploy_schema" in names:
        return "pfdeploy"
    if not names:
        return "empty"
    shown = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
    raise UserError(f"{path} is not a pfdeploy results store: it is another program's SQLite database "
                    f"(tables: {shown}); pfdeploy leaves it unchanged")


def _sqlite_engine(url: sa.engine.URL, busy_timeout_ms: int, readonly: bool = False,
                   wal: bool = True) -> sa.engine.Engine:
    """readonly: the file or its directory is not writable (open it read-only); wal: put the
    file in WAL mode (only for a file known to be a pfdeploy store, or one being created, and
    never for a verb that only reads)."""
    kw = {}
    if url.database in (None, "", ":memory:"):
        kw["poolclass"] = sa.pool.StaticPool
    elif readonly:
        # A store in a place this user cannot write (a shared CI artifact, a read-only mount).
        url = sa.engine.make_url(f"sqlite:///{_sqlite_ro_uri(url.database)}&uri=true")
    engine = sa.create_engine(url, json_serializer=_json_dumps,
                              connect_args={"timeout": busy_timeout_ms / 1000, "check_same_thread": False},
                              **kw)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        # Driver autocommit: transactions are begun below, so the lock mode is ours to choose.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        if readonly:
            cur.close()
            return
        if wal:  # persistent in the file: the one pragma here that changes it
            cur.execute("PRAGMA journal_mode = WAL")
        # FULL: a commit is on disk when add_result returns (a crash or power cut keeps it).
        cur.execute("PRAGMA synchronous = FULL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        write = conn.get_execution_options().get("pfdeploy_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write and not readonly else "BEGIN")

    return engine


def open_store(url: str | os.PathLike | None = None, create: bool = True, readonly: bool = False,
               busy_timeout_ms: int = 30_000, lock_timeout_s: float = 120.0, migrate: bool = True) -> Store:
    """Open (and with `create`, create) a results store and upgrade it to the current schema.

    url: None -> $PFDEPLOY_STORE or ./pfdeploy-results.db; a path or sqlite:///path -> SQLite;
    postgresql://user:pw@host/db -> PostgreSQL through psycopg 3 (`pip install 'pfdeploy[postgres]'`).
    Nothing is written to a SQLite file before it is known to be a pfdeploy store (or a new or
    empty file that the caller may create a store in): another program's database is refused
    with its bytes unchanged (`sniff_sqlite`).
    create=False: a missing or empty SQLite file (or a PostgreSQL database without pfdeploy's
    tables) is a UserError instead of a new empty store.
    readonly=True: the caller only reads (results, compare, report): the file's journal mode is
    left as it is; a store written by a newer pfdeploy is opened read-only when its schema says
    this pfdeploy can still read it, and a SQLite file whose directory is not writable is opened
    read-only. A store with an older schema is upgraded (a SQLite file first copied to
    `<file>.schema<N>-<time>.bak`), in one transaction holding the write lock (SQLite BEGIN
    IMMEDIATE; PostgreSQL advisory lock).
    busy_timeout_ms: SQLite's wait for a lock per statement; lock_timeout_s: how long a write
    keeps retrying before giving up with a UserError. migrate=False: open as is (Alembic's CLI)."""
    kind, sa_url, path = parse_store_url(url)
    ro_file = False
    if kind == "sqlite":
        if path is not None:
            if path.is_dir():
                raise UserError(f"results store {path} is a directory, not a database file")
            what = sniff_sqlite(path, busy_timeout_ms)
            if what == "new":
                if not create:
                    raise UserError(f"no results store at {path} (run `pfdeploy bench` first, or pass --store)")
                if not path.parent.exists():
                    raise UserError(f"cannot create results store {path}: directory {path.parent} does not exist")
            elif what == "empty" and not create:
                raise UserError(f"{path} is empty (zero bytes or no tables), not a pfdeploy results store (run `pfdeploy bench "
                                "--store` to create one there); pfdeploy left it unchanged")
            if what != "new" and (not os.access(path.parent, os.W_OK) or not os.access(path, os.W_OK)):
                if not readonly:
                    raise UserError(f"results store {path} is not writable (no write permission on the file "
                                    "or its directory)")
                ro_file = True
        engine = _sqlite_engine(sa_url, busy_timeout_ms, readonly=ro_file, wal=not readonly)
    else:
        optional_import("psycopg", "a PostgreSQL results store")
        engine = sa.create_engine(sa_url, json_serializer=_json_dumps, pool_pre_ping=True)
    store = Store(engine, kind, str(path) if path is not None else _describe(sa_url), path, lock_timeout_s)

    try:
        st = store._tx(migrations.state, write=False)
        ours = SCHEMA_VERSION
        if st.schema == 0 and not create and kind == "postgresql":
            raise UserError(f"no pfdeploy results store in {store.url} (run `pfdeploy bench --store URL` first)")
        if st.revision is None and st.schema not in (0, 3) and st.schema < ours:
            raise UserError(f"results store {store.url} has schema {st.schema}, which no pfdeploy release "
                            "wrote (release 0.1 wrote schema 3); it cannot be upgraded")
        if st.schema > ours or not migrations.is_known(st):
            from . import __version__

            who = f", written by pfdeploy {st.written_by}" if st.written_by else ""
            if readonly and st.read_compat is not None and st.read_compat <= ours:
                store.readonly = True
                store.readonly_reason = (f"its schema {st.schema}{who} is newer than this pfdeploy "
                                         f"{__version__} writes (schema {ours}); upgrade pfdeploy to write to it")
            else:
                raise UserError(f"results store {store.url} has schema {st.schema}{who}; this pfdeploy "
                                f"{__version__} knows schema {ours} and cannot "
                                f"{'read' if readonly else 'write to'} it: upgrade pfdeploy")
        elif migrate and migrations.needs_upgrade(st):
            if ro_file:
                raise UserError(f"results store {store.url} has schema {st.schema} and needs a one-time "
                                f"upgrade to schema {ours}, but it is read-only here: run `pfdeploy store "
                                "upgrade` once with write access")
            store._upgrade(st)
        if ro_file:
            store.readonly = True
            store.readonly_reason = "the file or its directory is not writable"
    except DatabaseError as exc:  # "file is not a database", connection refused, ...
        engine.dispose()
        raise _user_error(exc, store.url) from None
    except BaseException:
        engine.dispose()
        raise
    return store


# ----------------------------------------------------------------------------- run files


def write_run_file(doc: dict, path: str | os.PathLike) -> Path:
    """Write a run-file document atomically: a temporary file in the same directory, flushed to
    disk, then renamed over `path`. A crash leaves either the old file or the new one."""
    path = Path(path).expanduser()
    if not path.parent.exists():
        raise UserError(f"cannot write {path}: directory {path.parent} does not exist")
    text = json.dumps(_clean_json(doc), indent=1, allow_nan=False) + "\n"
    atomic_write_bytes(path, text.encode("utf-8"))
    return path


from .outputs import atomic_write_bytes  # noqa: E402  the one writer of user-named files (issue 12)


def validate_run_doc(doc: Any, where: str = "run file") -> dict:
    """Check a run-file document against the model pfdeploy.runfile.RunFile; returns it as a plain
    dict with every known field present. Raises UserError naming the first problem."""
    return runfile.parse_run_doc(doc, where)


def read_run_file(path: str | os.PathLike) -> dict:
    """Read and validate a JSON run file (format 'pfdeploy-run', versions 1 and 2). A missing file,
    bad JSON or a wrong structure is a UserError naming the file and the problem."""
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"run file {p} does not exist") from None
    except IsADirectoryError:
        raise UserError(f"run file {p} is a directory") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read run file {p}: {exc}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{p}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    return runfile.parse_run_doc(doc, str(p))
