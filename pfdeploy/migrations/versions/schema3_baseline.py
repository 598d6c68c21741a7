"""Schema 3, the baseline: the store as pfdeploy 0.1 wrote it (runs, results, samples, indexes,
`extra` JSON columns), frozen here as literal table definitions.

A store that pfdeploy 0.1 created (pfdeploy_schema.version 3, no revision table) is *stamped* at
this revision without change; an empty database gets these tables.

Revision ID: schema3
Revises:
Create Date: 2026-11-27

Frozen once released: never edit it, add a new revision instead (docs/store.md).
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "schema3"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = 3
READ_COMPAT = 3


def _json():
    return sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def _time():
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "pfdeploy_schema",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", _time(), nullable=False),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("started_at", _time(), nullable=False),
        sa.Column("finished_at", _time()),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("tag", sa.Text),
        sa.Column("git_commit", sa.String(64)),
        sa.Column("suite", sa.Text),
        sa.Column("suite_version", sa.Text),
        sa.Column("machine_id", sa.String(64)),
        sa.Column("machine", _json()),
        sa.Column("tools", _json()),
        sa.Column("config", _json()),
        sa.Column("pfdeploy_version", sa.String(32)),
        sa.Column("loadavg_before", _json()),
        sa.Column("loadavg_after", _json()),
        sa.Column("extra", _json()),
    )
    op.create_table(
        "results",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("case_key", sa.Text, nullable=False),
        *[sa.Column(name, sa.Text) for name in ("model", "family", "weights", "backend", "device", "precision")],
        sa.Column("batch", sa.Integer),
        sa.Column("threads", sa.Integer),
        sa.Column("scenario", sa.Text),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("n", sa.Integer),
        *[sa.Column(name, sa.Float) for name in (
            "min_ms", "p50_ms", "p50_ci_low_ms", "p50_ci_high_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms",
            "mean_ms", "std_ms", "cv", "items_per_s", "load_ms", "first_ms", "peak_rss_mb", "peak_gpu_mb")],
        sa.Column("clock", sa.Text),
        sa.Column("params", sa.BigInteger),
        sa.Column("macs", sa.BigInteger),
        sa.Column("artifact_sha256", sa.Text),
        sa.Column("artifact", _json()),
        sa.Column("parity", _json()),
        sa.Column("warnings", _json()),
        sa.Column("round_size", sa.Integer),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("extra", _json()),
    )
    op.create_table(
        "samples",
        sa.Column("result_id", sa.Integer, sa.ForeignKey("results.id"), primary_key=True, autoincrement=False),
        sa.Column("n", sa.Integer, nullable=False),
        sa.Column("encoding", sa.String(16), nullable=False),
        sa.Column("latency_ns", sa.LargeBinary, nullable=False),
        sa.Column("rounds", sa.LargeBinary),
    )
    for name, table, col in (("ix_runs_started_at", "runs", "started_at"), ("ix_runs_tag", "runs", "tag"),
                             ("ix_runs_git_commit", "runs", "git_commit"),
                             ("ix_runs_machine_id", "runs", "machine_id"),
                             ("ix_results_run_id", "results", "run_id"),
                             ("ix_results_case_key", "results", "case_key")):
        op.create_index(name, table, [col])
    op.execute(sa.table("pfdeploy_schema", sa.column("id"), sa.column("version"), sa.column("updated_at"))
               .insert().values(id=1, version=3, updated_at=sa.func.current_timestamp()))


def downgrade() -> None:
    for table in ("samples", "results", "runs", "pfdeploy_schema"):
        op.drop_table(table)
