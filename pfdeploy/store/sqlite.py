"""SQLite: what a file is before anything is written to it (`sniff_sqlite`), the engine's
settings (WAL, synchronous=FULL, foreign keys, busy timeout, BEGIN IMMEDIATE for writes), read-only
access to a store in a place this user cannot write, and the backup taken before an upgrade.
docs/store.md explains the choices."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event

from ..clock import utc_now
from ..errors import UserError
from .tx import user_error
from .values import _json_dumps


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
        raise user_error(exc, str(path)) from None
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


def _sqlite_backup(conn, path: Path, schema: int) -> Path:
    """Copy the SQLite database to `<file>.schema<N>-<UTC time>.bak` beside it, while `conn`
    holds the write lock and has written nothing yet: a second connection reads the last
    committed state (WAL readers are not blocked by the writer; SQLite's backup API refuses a
    source connection that is itself writing) and SQLite's backup API copies it page by page."""
    import sqlite3

    stamp = utc_now().strftime("%Y%m%dT%H%M%S")
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
