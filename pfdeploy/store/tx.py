"""Transactions: every read and write of the store is one transaction; SQLite writes take the
write lock at BEGIN and the whole transaction is retried, with jittered back-off, while another
process holds the lock. Database errors become one UserError line naming the store."""
from __future__ import annotations

import random
import time
from typing import Callable

from sqlalchemy.exc import OperationalError

from ..errors import UserError


def _is_locked(exc: BaseException) -> bool:
    msg = str(getattr(exc, "orig", exc)).lower()
    return "database is locked" in msg or "database is busy" in msg or "database table is locked" in msg


def user_error(exc: BaseException, where: str) -> UserError:
    first = str(getattr(exc, "orig", exc)).strip().splitlines()
    return UserError(f"results store {where}: {first[0] if first else type(exc).__name__}")



def run_tx(store, fn: Callable, write: bool = True):
    """Run fn(conn) in one transaction of `store` (a pfdeploy.store.Store). SQLite writes take the
    write lock at BEGIN and the whole transaction is retried (with jittered back-off) on 'database
    is locked' beyond the busy timeout, for up to store.lock_timeout_s; nothing is committed by a
    failed attempt, so a retry cannot duplicate."""
    if write and store.readonly:
        raise UserError(f"results store {store.url} is open read-only"
                        + (f": {store.readonly_reason}" if store.readonly_reason else ""))
    deadline = time.monotonic() + store.lock_timeout_s
    delay = 0.02
    while True:
        try:
            with store._conn() as conn:
                if write:
                    conn = conn.execution_options(pfdeploy_write=True)
                with conn.begin():
                    return fn(conn)
        except OperationalError as exc:
            if store.kind == "sqlite" and _is_locked(exc):
                if time.monotonic() < deadline:
                    time.sleep(delay * (0.5 + random.random()))
                    delay = min(delay * 2, 1.0)
                    continue
                raise UserError(f"results store {store.url} stayed locked for "
                                f"{store.lock_timeout_s:.0f} s by another process") from None
            raise user_error(exc, store.url) from None
