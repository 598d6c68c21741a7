"""Schema migrations of the results store, on Alembic.

One Alembic revision per schema change in `versions/`, each frozen once released (literal table
definitions, never built from today's models). Each revision module names the integer schema it
brings the store to (`SCHEMA`) and the oldest schema a reader may know and still read the store
read-only (`READ_COMPAT`). The integer lives on in `pfdeploy_schema.version` (pfdeploy 0.1 reads
it and refuses a newer store), the Alembic revision in the `pfdeploy_revision` table.

    state(conn) -> StoreState               # schema, revision, read_compat, written_by
    upgrade(conn) -> list[str]              # inside the caller's transaction (which holds the write lock)
    plan(conn) -> Plan                      # what upgrade would do, and its SQL (`store upgrade --dry-run`)

A store that pfdeploy 0.1 wrote (schema 3, no revision table) is stamped at the baseline revision
`schema3` (nothing changes) and then upgraded.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import sqlalchemy as sa

from ..clock import utc_now
from ..errors import UserError

VERSION_TABLE = "pfdeploy_revision"
BASELINE = "schema3"
HERE = Path(__file__).resolve().parent
# The revision chain, oldest first, and the head's schema number, spelled out so that opening a
# current store does not import Alembic (it is imported only to upgrade); a test checks both
# against Alembic's view of versions/.
REVISIONS = ("schema3", "schema4", "schema5")
HEAD_SCHEMA = 5


@dataclass(frozen=True)
class StoreState:
    schema: int  # 0: an empty database
    revision: str | None  # None: no revision table (empty, or written by pfdeploy 0.1)
    read_compat: int | None = None
    written_by: str | None = None


@dataclass
class Plan:
    current: StoreState
    steps: list[tuple[int, str, str]] = field(default_factory=list)  # (schema, revision, summary)
    sql: str = ""


def _config(conn=None, buffer: io.StringIO | None = None, dialect_name: str | None = None):
    from alembic.config import Config

    cfg = Config(output_buffer=buffer)
    cfg.set_main_option("script_location", str(HERE))
    cfg.attributes["connection"] = conn
    if dialect_name:
        cfg.attributes["dialect_name"] = dialect_name
    return cfg


@lru_cache(maxsize=1)
def _script():
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(HERE))


def head() -> str:
    return REVISIONS[-1]


def _module(rev: str):
    return _script().get_revision(rev).module


def head_schema() -> int:
    """The schema number this pfdeploy writes."""
    return HEAD_SCHEMA


def revisions() -> list[tuple[int, str, str]]:
    """Every revision, oldest first: (schema, revision id, one-line summary)."""
    out = []
    for rev in reversed(list(_script().walk_revisions())):
        doc = (rev.module.__doc__ or "").strip().splitlines()
        out.append((int(rev.module.SCHEMA), rev.revision, doc[0] if doc else ""))
    return out


def state(conn) -> StoreState:
    """Read what schema the database holds. A database with a `runs` table but no
    pfdeploy_schema is not a pfdeploy store (UserError)."""
    insp = sa.inspect(conn)
    if not insp.has_table("pfdeploy_schema"):
        ours = [t for t in ("runs", "results", "samples", VERSION_TABLE) if insp.has_table(t)]
        if ours:
            raise UserError(f"this database has a {ours[0]!r} table but no pfdeploy schema version; "
                            "it is not a pfdeploy results store (pfdeploy leaves it unchanged)")
        return StoreState(0, None)
    cols = {c["name"] for c in insp.get_columns("pfdeploy_schema")}
    names = ["version"] + [c for c in ("read_compat", "written_by") if c in cols]
    row = conn.execute(sa.text(f"SELECT {', '.join(names)} FROM pfdeploy_schema WHERE id = 1")).first()
    rec = dict(zip(names, row)) if row is not None else {}
    revision = None
    if insp.has_table(VERSION_TABLE):
        revision = conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
    return StoreState(int(rec.get("version") or 0), revision, rec.get("read_compat"), rec.get("written_by"))


def is_known(st: StoreState) -> bool:
    if st.revision is None:
        return st.schema in (0, 3)
    return st.revision in REVISIONS


def needs_upgrade(st: StoreState) -> bool:
    return st.revision != head()


def _check_upgradable(st: StoreState) -> None:
    if st.revision is None and st.schema not in (0, 3):
        raise UserError(f"results store schema {st.schema} was never released (pfdeploy 0.1 wrote schema 3); "
                        "it cannot be upgraded")
    if st.schema > head_schema() or not is_known(st):
        raise UserError(f"results store schema {st.schema} (revision {st.revision}) is newer than this "
                        f"pfdeploy knows (schema {head_schema()}); upgrade pfdeploy")


def upgrade(conn) -> list[str]:
    """Bring the store to the head revision inside the caller's transaction; returns the
    revisions applied (empty when already current). Stamps a pfdeploy 0.1 store at the baseline
    first. Records the schema number, read_compat and the writing pfdeploy version."""
    from alembic import command

    from .. import __version__

    st = state(conn)
    _check_upgradable(st)
    if not needs_upgrade(st):
        return []
    cfg = _config(conn)
    before = st.revision
    if st.schema == 3 and st.revision is None:
        command.stamp(cfg, BASELINE)
        before = BASELINE
    command.upgrade(cfg, "head")
    h = _module(head())
    conn.execute(sa.text("UPDATE pfdeploy_schema SET version = :v, read_compat = :rc, written_by = :w, "
                         "updated_at = :t WHERE id = 1"),
                 {"v": int(h.SCHEMA), "rc": int(h.READ_COMPAT), "w": __version__,
                  "t": utc_now().replace(tzinfo=None) if conn.dialect.name == "sqlite" else utc_now()})
    applied = [rev for _, rev, _ in revisions()]
    if before is not None:
        applied = applied[applied.index(before) + 1:]
    return applied


def plan(conn) -> Plan:
    """What `upgrade` would do to this store: the revisions and the SQL (Alembic's offline mode),
    without changing anything."""
    from alembic import command

    st = state(conn)
    _check_upgradable(st)
    p = Plan(st)
    if not needs_upgrade(st):
        return p
    buf = io.StringIO()
    cfg = _config(None, buf, conn.dialect.name)
    start = st.revision
    if st.schema == 3 and st.revision is None:
        buf.write(f"-- stamp the pfdeploy 0.1 store (schema 3) at the baseline revision {BASELINE}\n")
        command.stamp(cfg, BASELINE, sql=True)
        start = BASELINE
    command.upgrade(cfg, f"{start}:head" if start else "head", sql=True)
    p.sql = buf.getvalue()
    revs = revisions()
    names = [rev for _, rev, _ in revs]
    p.steps = revs[names.index(start) + 1:] if start else revs
    return p
