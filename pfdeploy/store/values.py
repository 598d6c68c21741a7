"""Value cleaning on the way into the store: JSON-safe copies (NaN/inf -> None, numpy -> Python),
integers and floats from whatever a result row carries, ISO-8601 timestamps, and the case key.
Imports no database code."""
from __future__ import annotations

import datetime as _dt
import json
import math
from pathlib import Path

from ..errors import UserError

from ..backends.case import CASE_FIELDS, case_key_of  # noqa: E402,F401 (the one case key)


def _parse_time(s: str) -> _dt.datetime:
    try:
        t = _dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        raise UserError(f"not an ISO-8601 timestamp: {s!r}") from None
    return t if t.tzinfo else t.replace(tzinfo=_dt.timezone.utc)


def _coerce_time(v) -> _dt.datetime | None:
    """None, an aware/naive (UTC) datetime or an ISO-8601 string -> aware datetime; a bad string
    is a UserError here, before SQLAlchemy would wrap it into a StatementError."""
    if v is None or v == "":
        return None
    if isinstance(v, str):
        return _parse_time(v)
    if isinstance(v, _dt.datetime):
        return v if v.tzinfo else v.replace(tzinfo=_dt.timezone.utc)
    raise UserError(f"not a timestamp: {v!r}")


def _iso(t: _dt.datetime | None) -> str | None:
    return t.isoformat() if t is not None else None


def _clean_json(x):
    """JSON-safe copy: NaN/inf -> None, numpy scalars/arrays -> Python, tuples -> lists."""
    if x is None or isinstance(x, (str, bool, int)):
        return x
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): _clean_json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, set)):
        return [_clean_json(v) for v in x]
    if hasattr(x, "tolist"):  # numpy arrays and scalars
        return _clean_json(x.tolist())
    if isinstance(x, _dt.datetime):
        return x.isoformat()
    if isinstance(x, Path):
        return str(x)
    return str(x)


def _json_dumps(x) -> str:
    return json.dumps(_clean_json(x), allow_nan=False)


def _to_int(name, v):
    if v is None:
        return None
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float):
        if not math.isfinite(v):
            return None
        if v != int(v):
            raise ValueError(f"result field {name} must be an integer, got {v!r}")
    return int(v)


def _to_float(v):
    if v is None:
        return None
    v = float(v.item() if hasattr(v, "item") else v)
    return v if math.isfinite(v) else None


def make_case_key(row: dict) -> str:
    """The case key 'model|weights|backend|device|precision|batch|threads|scenario' (missing
    fields are empty)."""
    return case_key_of(row)
