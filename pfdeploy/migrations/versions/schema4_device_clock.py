"""Schema 4: the device clock beside the host clock, and who wrote the store.

- results: device_p50_ms, device_p50_ci_low_ms, device_p50_ci_high_ms (CUDA-event medians of GPU
  backends; NULL for host-only rows and for every row written before this revision);
- samples: device_latency_ns (int64 little-endian blob of device-clock samples, or NULL);
- pfdeploy_schema: read_compat (the oldest schema a reader may know and still read this store
  read-only: additive revisions keep it) and written_by (the pfdeploy version that last upgraded).

Only columns are added: a pfdeploy that knows schema 3 may still read a schema-4 store read-only.

Revision ID: schema4
Revises: schema3
Create Date: 2026-11-27

Frozen once released: never edit it, add a new revision instead (docs/store.md).
"""
import sqlalchemy as sa
from alembic import op

revision = "schema4"
down_revision = "schema3"
branch_labels = None
depends_on = None

SCHEMA = 4
READ_COMPAT = 3


def upgrade() -> None:
    for name in ("device_p50_ms", "device_p50_ci_low_ms", "device_p50_ci_high_ms"):
        op.add_column("results", sa.Column(name, sa.Float))
    op.add_column("samples", sa.Column("device_latency_ns", sa.LargeBinary))
    op.add_column("pfdeploy_schema", sa.Column("read_compat", sa.Integer))
    op.add_column("pfdeploy_schema", sa.Column("written_by", sa.String(32)))


def downgrade() -> None:
    with op.batch_alter_table("pfdeploy_schema") as batch:
        batch.drop_column("written_by")
        batch.drop_column("read_compat")
    with op.batch_alter_table("samples") as batch:
        batch.drop_column("device_latency_ns")
    with op.batch_alter_table("results") as batch:
        for name in ("device_p50_ms", "device_p50_ci_low_ms", "device_p50_ci_high_ms"):
            batch.drop_column(name)
