"""Schema 5: every field pfdeploy writes is a column (pfdeploy/result.py declares them).

Before this revision, the fields below travelled in `results.extra` (the JSON column meant for what
a plugin adds) while the statistics read them. This revision adds one column each and moves every
stored row's values out of `extra` into them (whatever else `extra` holds stays there):

- text: variant, peak_gpu_source, ci_method; int: device_n, processes, ci_df, ci_units;
  float: host_p50_ms, process_sd;
- JSON: options, baselines, cpu_contention, accuracy, process_rounds, process_load_ms,
  process_first_ms, tune, ab (the A/B pairing of `pfdeploy ab`, new), loadgen (MLPerf LoadGen's
  record of `bench --scenario server|...` and `pfdeploy capacity`, new).

Values move out of `extra`, so a pfdeploy that knows only schema 4 would read these rows without
their per-process fields and compute other intervals: read_compat is 5 (it refuses the store).

Revision ID: schema5
Revises: schema4
Create Date: 2026-12-06

Frozen once released: never edit it, add a new revision instead (docs/store.md).
"""
import json

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import postgresql

revision = "schema5"
down_revision = "schema4"
branch_labels = None
depends_on = None

SCHEMA = 5
READ_COMPAT = 5

TEXT = ("variant", "peak_gpu_source", "ci_method")
INT = ("device_n", "processes", "ci_df", "ci_units")
FLOAT = ("host_p50_ms", "process_sd")
JSON = ("options", "baselines", "cpu_contention", "accuracy", "process_rounds", "process_load_ms",
        "process_first_ms", "tune", "ab", "loadgen")


def _json(dialect):
    return postgresql.JSONB(none_as_null=True) if dialect == "postgresql" else sa.JSON(none_as_null=True)


def upgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    for name in TEXT:
        op.add_column("results", sa.Column(name, sa.Text))
    for name in INT:
        op.add_column("results", sa.Column(name, sa.Integer))
    for name in FLOAT:
        op.add_column("results", sa.Column(name, sa.Float))
    for name in JSON:
        op.add_column("results", sa.Column(name, _json(dialect)))
    moved = (*TEXT, *INT, *FLOAT, *JSON)
    if context.is_offline_mode():  # `pfdeploy store upgrade --dry-run`: the SQL plan only
        return  # the values move out of `extra` row by row (in Python) when the upgrade runs
    results = sa.table("results", sa.column("id", sa.Integer), sa.column("extra", _json(dialect)),
                       *[sa.column(n, sa.Text) for n in TEXT], *[sa.column(n, sa.Integer) for n in INT],
                       *[sa.column(n, sa.Float) for n in FLOAT], *[sa.column(n, _json(dialect)) for n in JSON])
    raw = sa.table("results", sa.column("id", sa.Integer), sa.column("extra", sa.Text))
    rows = bind.execute(sa.select(raw.c.id, sa.cast(raw.c.extra, sa.Text)).where(raw.c.extra.isnot(None))).all()
    for rid, text in rows:
        try:
            extra = json.loads(text) if isinstance(text, str) else text
        except ValueError:
            continue  # a damaged cell stays as it is (the store reports it when read)
        if not isinstance(extra, dict):
            continue
        values = {}
        for name in moved:
            if name in extra:
                v = extra.pop(name)
                if name in INT and not (isinstance(v, int) and not isinstance(v, bool)):
                    v = int(v) if isinstance(v, float) and v.is_integer() else None
                elif name in FLOAT and not (isinstance(v, (int, float)) and not isinstance(v, bool)):
                    v = None
                elif name in TEXT and v is not None and not isinstance(v, str):
                    v = str(v)
                values[name] = v
        if values:
            values["extra"] = extra or None
            bind.execute(results.update().where(results.c.id == rid).values(**values))


def downgrade() -> None:
    if context.is_offline_mode():
        raise NotImplementedError("schema5's downgrade moves values row by row: run it online")
    bind = op.get_bind()
    dialect = bind.dialect.name
    moved = (*TEXT, *INT, *FLOAT, *JSON)
    results = sa.table("results", sa.column("id", sa.Integer), sa.column("extra", _json(dialect)),
                       *[sa.column(n, _json(dialect) if n in JSON else sa.Text) for n in moved])
    cols = [sa.cast(sa.column(n), sa.Text) if n in JSON else sa.column(n) for n in moved]
    rows = bind.execute(sa.select(sa.column("id"), sa.cast(sa.column("extra"), sa.Text), *cols)
                        .select_from(sa.table("results"))).all()
    for rid, text, *vals in rows:
        extra = {}
        if isinstance(text, str):
            try:
                extra = json.loads(text) or {}
            except ValueError:
                continue
        for name, v in zip(moved, vals):
            if v is not None:
                extra[name] = json.loads(v) if name in JSON and isinstance(v, str) else v
        if extra:
            bind.execute(results.update().where(results.c.id == rid).values(extra=extra))
    with op.batch_alter_table("results") as batch:
        for name in reversed(moved):
            batch.drop_column(name)
