"""The run record and the run file as typed models (pydantic): one definition for the JSON run
file (`pfdeploy results --format json`, `bench --json`, what `compare` reads) and for the
store's `runs` / `results` columns (pfdeploy/store/schema.py builds its table objects from these
fields), with its JSON Schema generated into docs/run-file.schema.json.

    doc = RunFile.model_validate(obj)       # or parse_run_doc(obj, where) -> dict (UserError on bad input)
    RunFile.model_json_schema()             # the published schema (`pfdeploy store schema`)

Run-file versions: 1 (pfdeploy 0.1: schema 3 stores) and 2 (adds the device-clock fields of a
result and its device samples). A reader accepts every version up to RUN_FILE_VERSION and refuses a
newer one with a message naming both. Unknown fields are kept (`extra="allow"`): they travel
through the store's `extra` JSON column and come back on read.
"""
from __future__ import annotations

import datetime as _dt
import json
from typing import Annotated, Any, Literal

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, StrictInt, ValidationError,
                      model_validator)

from .errors import UserError

RUN_FILE_FORMAT = "pfdeploy-run"
RUN_FILE_VERSION = 2
RUN_STATUSES = ("running", "finished", "interrupted", "failed")
RESULT_STATUSES = ("ok", "failed", "skipped")


class Col:
    """Column kind of a field in the store ('text', 'int', 'bigint', 'float', 'json', 'time');
    carried in the field's metadata, invisible to the JSON Schema."""

    def __init__(self, kind: str, nullable: bool = True, length: int | None = None):
        self.kind, self.nullable, self.length = kind, nullable, length

    def __repr__(self):
        return f"Col({self.kind!r})"


def _iso(v: str | None) -> str | None:
    if v is None:
        return None
    try:
        _dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not an ISO-8601 timestamp: {v!r}") from None
    return v


# strict: a number field takes int or float, never a bool or a numeric string
Num = Annotated[float | None, Field(strict=True), Col("float")]
Int = Annotated[StrictInt | None, Col("int")]
BigInt = Annotated[StrictInt | None, Col("bigint")]
Text = Annotated[str | None, Col("text")]
Json = Annotated[Any, Col("json")]
Time = Annotated[str | None, AfterValidator(_iso), Col("time"),
                 Field(json_schema_extra={"format": "date-time"})]


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


class Result(BaseModel):
    """One case of a run: its identity, statistics (milliseconds), provenance and samples."""

    model_config = ConfigDict(extra="allow")

    id: Int = None
    run_id: Annotated[str | None, Col("text", length=32)] = None
    case_key: Annotated[str, Field(min_length=1), Col("text", nullable=False)]
    model: Text = None
    family: Text = None
    weights: Text = None
    backend: Text = None
    device: Text = None
    precision: Text = None
    batch: Int = None
    threads: Int = None
    scenario: Text = None
    status: Annotated[Literal["ok", "failed", "skipped"], Col("text", nullable=False)]
    error: Text = None
    n: Int = None
    min_ms: Num = None
    p50_ms: Num = None
    p50_ci_low_ms: Num = None
    p50_ci_high_ms: Num = None
    p90_ms: Num = None
    p95_ms: Num = None
    p99_ms: Num = None
    max_ms: Num = None
    mean_ms: Num = None
    std_ms: Num = None
    cv: Num = None
    items_per_s: Num = None
    load_ms: Num = None
    first_ms: Num = None
    peak_rss_mb: Num = None
    peak_gpu_mb: Num = None
    clock: Text = None
    params: BigInt = None
    macs: BigInt = None
    artifact_sha256: Text = None
    artifact: Json = None
    parity: Json = None
    warnings: Json = None
    round_size: Int = None
    created_at: Annotated[Time, Col("time", nullable=False)] = None
    # schema 4 / run-file version 2: the device clock (CUDA events), beside the host figures above
    device_p50_ms: Num = None
    device_p50_ci_low_ms: Num = None
    device_p50_ci_high_ms: Num = None
    # raw samples (not columns of `results`: they live in `samples` as int64 blobs)
    samples_ns: list[StrictInt] = Field(default_factory=list, description="host latency samples, integer ns")
    sample_rounds: list[StrictInt] | None = Field(
        default=None, description="round id of each sample (same length as samples_ns), or null")
    device_samples_ns: list[StrictInt] | None = Field(
        default=None, description="device-clock samples, integer ns (GPU backends), or null")

    @model_validator(mode="after")
    def _rounds_match(self):
        if self.sample_rounds is not None and len(self.sample_rounds) != len(self.samples_ns):
            raise ValueError(f"sample_rounds has {len(self.sample_rounds)} entries for "
                             f"{len(self.samples_ns)} samples")
        return self


class RunFile(BaseModel):
    """A JSON run file: {"format": "pfdeploy-run", "version": N, "run": {...}, "results": [...]}."""

    model_config = ConfigDict(extra="allow", title="pfdeploy run file")

    format: Literal["pfdeploy-run"]
    version: Annotated[StrictInt, Field(ge=1, le=RUN_FILE_VERSION)]
    run: Run
    results: list[Result]


SAMPLE_KEYS = ("samples_ns", "sample_rounds", "device_samples_ns")


def columns(model: type[BaseModel]) -> dict[str, Col]:
    """{field: Col} of the fields of `model` that are columns of its table, in order."""
    out = {}
    for name, info in model.model_fields.items():
        cols = [m for m in info.metadata if isinstance(m, Col)]
        col = cols[-1] if cols else None  # the outermost annotation wins
        if col is not None:
            out[name] = col
    return out


RUN_FIELDS = tuple(columns(Run))
RESULT_FIELDS = tuple(columns(Result))


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ""
    for part in err["loc"]:
        loc += f"[{part}]" if isinstance(part, int) else (f".{part}" if loc else str(part))
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    got = err.get("input")
    shown = "" if isinstance(got, (dict, list)) or err["type"] == "missing" else f", got {json.dumps(got, default=str)[:60]}"
    more = f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
    return f"{loc or 'top level'}: {msg}{shown}{more}"


def parse_run_doc(doc: Any, where: str = "run file") -> dict:
    """Validate a run-file document; returns it as a plain dict with every known field present
    (defaults filled, unknown fields kept). Raises UserError naming the first problem; a file of a
    newer version is refused with a message naming both versions."""
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
    out = model.model_dump(mode="json")
    return out


def json_schema() -> dict:
    """The run file's JSON Schema (draft 2020-12), as published in docs/run-file.schema.json."""
    schema = RunFile.model_json_schema()
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
    schema["description"] = (f"A pfdeploy run file (versions 1 to {RUN_FILE_VERSION}): one benchmark run, its "
                             "results and raw samples. Unknown fields are allowed and kept.")
    return schema
