"""Rows in and out: a run's metadata and a result row as column values (typed columns, unknown keys
kept in `extra`), and table rows back as the plain dicts every reader gets. A JSON cell that is
not JSON (damaged by hand or by a broken disk) is read as {"_unreadable": "<raw text>"} so that
one bad cell does not hide the rest; `damaged` says which fields of a row are, so that the store
can tell the user (one warning line per run and field)."""
from __future__ import annotations

from typing import Any

from ..clock import utc_now
from ..runfile import RESULT_STATUSES
from ..validate import check_text
from .schema import RESULT_FIELDS, RESULT_FLOAT, RESULT_INT, RESULT_JSON, RESULT_TEXT, RUN_FIELDS, RUN_JSON, \
    UNREADABLE
from .values import _clean_json, _coerce_time, _iso, _to_float, _to_int, make_case_key


def run_values(meta: dict) -> dict:
    """Column values of a run's metadata (status, finished_at and n_results are the store's own)."""
    values, extra = {}, {}
    for k, v in meta.items():
        if k in ("status", "finished_at", "n_results"):
            continue
        if k in RUN_JSON:
            values[k] = _clean_json(v)
        elif k in RUN_FIELDS:
            values[k] = None if v is None else check_text(str(v), f"run field {k}")
        else:
            extra[k] = _clean_json(v)
    values["extra"] = extra or None
    if values.get("pfdeploy_version") is None:
        from .. import __version__

        values["pfdeploy_version"] = __version__
    return values


def result_values(run_id: str, row: dict) -> dict:
    """Column values of one result row of run `run_id` (ValueError for a bad status or a
    non-integer count: a bug in the caller, not user input)."""
    row = dict(row or {})
    values: dict[str, Any] = {"run_id": run_id}
    extra = {}
    for k, v in row.items():
        if k in ("id", "run_id"):
            continue
        if k in RESULT_INT:
            values[k] = _to_int(k, v)
        elif k in RESULT_FLOAT:
            values[k] = _to_float(v)
        elif k in RESULT_JSON:
            values[k] = _clean_json(v)
        elif k == "created_at":
            values[k] = _coerce_time(v)
        elif k in RESULT_TEXT:
            values[k] = None if v is None else check_text(str(v), f"result field {k}")
        else:
            extra[k] = _clean_json(v)
    status = values.get("status")
    if status not in RESULT_STATUSES:
        raise ValueError(f"result status must be one of {RESULT_STATUSES}, got {status!r}")
    values.setdefault("case_key", None)
    if not values["case_key"]:
        values["case_key"] = make_case_key(row)
    values["created_at"] = values.get("created_at") or utc_now()
    values["extra"] = extra or None
    return values


def is_damaged(value) -> bool:
    """True for the stand-in of a JSON cell that could not be read."""
    return isinstance(value, dict) and len(value) == 1 and UNREADABLE in value


def damaged(row, fields) -> list[str]:
    """The JSON fields of a table row (its `extra` included) whose cell could not be read."""
    m = row._mapping
    return [k for k in (*fields, "extra") if k in m and is_damaged(m[k])]


def _merge_extra(d: dict, extra, warn=None) -> None:
    if extra and not is_damaged(extra):  # a damaged `extra` is reported, not merged as a field
        if not isinstance(extra, dict):  # valid JSON of the wrong shape (a list, a number)
            if warn is not None:
                warn(f"its extra fields are not a JSON object ({type(extra).__name__})")
            return
        for k, v in extra.items():
            d.setdefault(k, v)


def run_dict(row) -> dict:
    m = row._mapping
    d = {k: m[k] for k in RUN_FIELDS}
    d["started_at"], d["finished_at"] = _iso(d["started_at"]), _iso(d["finished_at"])
    _merge_extra(d, m.get("extra") if isinstance(m.get("extra"), dict) else None)
    if "n_results" in m:
        d["n_results"] = int(m["n_results"] or 0)
    return d


def result_dict(row, warn=None) -> dict:
    """The plain row of a table row (columns, then the fields kept in `extra`); the store turns it
    into a typed Result at once (`Store.results`)."""
    m = row._mapping
    d = {k: m[k] for k in RESULT_FIELDS if k in m}
    d["created_at"] = _iso(d["created_at"])
    _merge_extra(d, m.get("extra"), warn)
    return d
