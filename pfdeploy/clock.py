"""The current time, in UTC, written one way: `utc_now()` (an aware datetime) and `utc_now_iso()`
(ISO 8601 to the second, `2025-01-31T12:00:00+00:00`, as run files and manifests record it).
A leaf module: imports only the standard library."""
from __future__ import annotations

import datetime as _dt


def utc_now() -> _dt.datetime:
    """Now, as a timezone-aware datetime in UTC."""
    return _dt.datetime.now(_dt.timezone.utc)


def utc_now_iso() -> str:
    """Now in UTC as an ISO-8601 string with seconds precision."""
    return utc_now().isoformat(timespec="seconds")
