"""The run record and the run file as typed models (pydantic): one definition for the JSON run
file (`pfdeploy results --format json`, `bench --json`, what `compare` reads) and for the
store's `runs` / `results` columns (pfdeploy/store/schema.py builds its table objects from these
fields), with its JSON Schema generated into docs/run-file.schema.json.

    doc = RunFile.model_validate(obj)       # or parse_run_doc(obj, where) -> dict (UserError on bad input)
    RunFile.model_json_schema()             # the published schema (`pfdeploy store schema`)

Run-file versions: 1 (pfdeploy 0.1: schema 3 stores), 2 (adds the device-clock fields of a
result and its device samples) and 3 (declares every field pfdeploy writes: the per-process
fields, the tune and A/B records, accuracy, typed warnings; pfdeploy/result.py). A reader accepts every version up to RUN_FILE_VERSION and refuses a
newer one with a message naming both. Unknown fields are kept (`extra="allow"`): they travel
through the store's `extra` JSON column and come back on read.
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from .errors import UserError

RUN_FILE_FORMAT = "pfdeploy-run"
RUN_FILE_VERSION = 3

from .result import (RESULT_FIELDS, RESULT_STATUSES, SAMPLE_KEYS, BigInt, Col, Int, Json, Num, Result, Text,  # noqa: F401
                     Time, columns, first_error as _first_error)

RUN_STATUSES = ("running", "finished", "interrupted", "failed")


class Run(BaseModel):
    """One `pfdeploy bench` invocation: who, where, with what."""

    model_config = ConfigDict(extra="allow")

    id: Annotated[str, Field(min_length=1, max_length=32), Col("text", nullable=False, length=32)]
    started_at: Annotated[Time, Col("time", nullable=False)] = None
    finished_at: Time = None
    status: Annotated[Literal["running", "finished", "interrupted", "failed"],
                      Col("text", nullable=False, length=16)] = "finished"
    tag: Text = None
    git_commit: Annotated[str | None, Col("text", length=64)] = None
    suite: Text = None
    suite_version: Text = None
    machine_id: Annotated[str | None, Col("text", length=64)] = None
    machine: Annotated[dict | None, Col("json")] = None
    tools: Annotated[dict | None, Col("json")] = None
    config: Annotated[dict | None, Col("json")] = None
    pfdeploy_version: Annotated[str | None, Col("text", length=32)] = None
    loadavg_before: Json = None
    loadavg_after: Json = None


class RunFile(BaseModel):
    """A JSON run file: {"format": "pfdeploy-run", "version": N, "run": {...}, "results": [...]}."""

    model_config = ConfigDict(extra="allow", title="pfdeploy run file")

    format: Literal["pfdeploy-run"]
    version: Annotated[StrictInt, Field(ge=1, le=RUN_FILE_VERSION)]
    run: Run
    results: list[Result]


RUN_FIELDS = tuple(columns(Run))


def parse_run_doc(doc: Any, where: str = "run file", typed: bool = False) -> dict:
    """Validate a run-file document; returns it as a plain dict with every known field present
    (defaults filled, unknown fields kept). Raises UserError naming the first problem; a file of a
    newer version is refused with a message naming both versions. `typed`: the results stay the
    validated `Result`s (what compare reads) instead of plain dicts."""
    if not isinstance(doc, dict):
        raise UserError(f"{where}: not a valid pfdeploy run file: the top level must be a JSON object")
    if doc.get("format") != RUN_FILE_FORMAT:
        raise UserError(f"{where}: not a valid pfdeploy run file: 'format' must be {RUN_FILE_FORMAT!r}, "
                        f"got {doc.get('format')!r}")
    version = doc.get("version")
    if isinstance(version, int) and not isinstance(version, bool) and version > RUN_FILE_VERSION:
        from . import __version__

        raise UserError(f"{where}: run-file version {version} was written by a newer pfdeploy; this "
                        f"pfdeploy {__version__} reads versions 1 to {RUN_FILE_VERSION}: upgrade pfdeploy")
    try:
        model = RunFile.model_validate(doc)
    except ValidationError as exc:
        raise UserError(f"{where}: not a valid pfdeploy run file: {_first_error(exc)}") from None
    return _plain(model) if not typed else _typed(model)


def parse_run_json(text: str | bytes, where: str = "run file") -> dict:
    """`parse_run_doc(json.loads(text), where, typed=True)`, parsed and validated in one pass by
    pydantic's JSON parser (a 10,000-case run file: ~4x faster than json.loads, then validating the
    objects, then re-typing them). Any problem takes the slow path, whose message names it."""
    try:
        return _typed(RunFile.model_validate_json(text))
    except ValidationError:
        pass
    import json

    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{where}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    return parse_run_doc(doc, where, typed=True)


def _plain(model: RunFile) -> dict:
    out = model.model_dump(mode="json")
    for res in out["results"]:  # a run file always carries its samples (possibly none)
        if res.get("samples_ns") is None:
            res["samples_ns"] = []
    return out


def _typed(model: RunFile) -> dict:
    out = {k: v for k, v in model.model_dump(mode="json", exclude={"results"}).items()}
    out["results"] = [r if r.samples_ns is not None else r.but(samples_ns=[]) for r in model.results]
    return out


def json_schema() -> dict:
    """The run file's JSON Schema (draft 2020-12), as published in docs/run-file.schema.json."""
    schema = RunFile.model_json_schema()
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
    schema["description"] = (f"A pfdeploy run file (versions 1 to {RUN_FILE_VERSION}): one benchmark run, its "
                             "results and raw samples. Unknown fields are allowed and kept.")
    return schema
