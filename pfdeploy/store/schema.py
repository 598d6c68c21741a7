"""The store's tables in their current shape (SQLAlchemy Core), built from the run-file models
(pfdeploy/runfile.py: one definition for the run file and the store), and the two column types
both databases share. Migrations (pfdeploy/migrations/versions) create the tables step by step
from their own frozen definitions; tests/test_store_upgrade.py checks that the two agree column
for column."""
from __future__ import annotations

import datetime as _dt
import json

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from .. import migrations, runfile
from ..runfile import Col, columns as runfile_columns
from .values import _parse_time

UNREADABLE = "_unreadable"  # the key a damaged JSON cell is read back under (rows.py reports it)


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
                return {UNREADABLE: value[:200]}

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
SCHEMA_VERSION = migrations.head_schema()
