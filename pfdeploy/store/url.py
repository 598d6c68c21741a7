"""Store URLs: a path or sqlite:///path (SQLite), postgresql://... (psycopg 3); passwords hidden
whenever a URL is shown."""
from __future__ import annotations

import os
from pathlib import Path

import sqlalchemy as sa

from ..config import default_store_url
from ..errors import UsageError
from ..validate import check_text


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
