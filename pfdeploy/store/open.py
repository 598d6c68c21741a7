"""Opening a results store: which database a URL names, what a SQLite file is before anything is
written to it, whether this pfdeploy may read or write its schema, and the upgrade on open.
The policy (docs/store.md, docs/reliability.md): nothing is written to a file before it is known
to be a pfdeploy store, or a new or empty file that a writing verb may create a store in;
verbs that only read never create a store or change a file's journal mode; another program's
database is refused in one line, byte for byte unchanged."""
from __future__ import annotations

import os

import sqlalchemy as sa
from sqlalchemy.exc import DatabaseError

from .. import migrations
from ..errors import UserError, optional_import
from .runs import Store
from .schema import SCHEMA_VERSION
from .sqlite import _sqlite_engine, sniff_sqlite
from .tx import user_error
from .url import _describe, parse_store_url
from .values import _json_dumps


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
                raise UserError(f"{path} is empty (zero bytes or no tables), not a pfdeploy results store "
                                "(run `pfdeploy bench --store` to create one there); pfdeploy left it unchanged")
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
        try:
            st = store._tx(migrations.state, write=False)
        except UserError as exc:  # another application's tables (a message of the store's own: as it is)
            text = str(exc)
            raise UserError(text if text.startswith("results store ") else f"results store {store.url}: {text}") from None
        ours = SCHEMA_VERSION
        if st.schema == 0 and not create and kind == "postgresql":
            raise UserError(f"no pfdeploy results store in {store.url} (run `pfdeploy bench --store URL` first)")
        if st.revision is None and st.schema not in (0, 3) and st.schema < ours:
            raise UserError(f"results store {store.url} has schema {st.schema}, which no pfdeploy release "
                            "wrote (release 0.1 wrote schema 3); it cannot be upgraded")
        if st.schema > ours or not migrations.is_known(st):
            from .. import __version__

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
        raise user_error(exc, store.url) from None
    except BaseException:
        engine.dispose()
        raise
    return store
