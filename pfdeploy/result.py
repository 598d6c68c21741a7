"""The typed result of one measured case: built once by the engine (bench/rows.py), taken and
returned by the store, read by attribute in compare, claims, report, tune, fleet and the CLI.

One definition serves three purposes (torch.utils.benchmark's `Measurement` and pyperf's `Run`
travel the same way, whole, from the timer to the report):

* the object every layer reads (`r.p50_ms`, `r.process_rounds`, `r.tune.status`): frozen, typed;
* the run file's `results[]` entries (pfdeploy/runfile.py embeds it; its JSON Schema is published
  in docs/run-file.schema.json): `Result.from_row(d)` / `r.to_row()` are the one edge between the
  typed object and a plain JSON dict;
* the store's `results` columns (the fields annotated with a `Col`, pfdeploy/store/schema.py).

Fields a plugin adds that pfdeploy does not know travel as extras (`r.model_extra`), in the
store's `extra` column; every field pfdeploy itself writes is declared here.

Warnings are data too (`Warn`: a kind, its text and the values it was made from), so the
renderer groups them one line per kind (pfdeploy/digest.py). Rows written before warnings were
typed hold plain strings; they are read as `Warn(kind=<classified>, text=<the string>)`.
"""
from __future__ import annotations

import datetime as _dt
import json
import re
from typing import Annotated, Any, Literal

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, ValidationError,
                      WithJsonSchema,
                      model_validator)

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
Ints = list[StrictInt]
Nums = list[Annotated[float | None, Field(strict=True)]]


class _Record(BaseModel):
    """A typed JSON record inside a result: known fields declared, anything else kept."""

    model_config = ConfigDict(extra="allow", frozen=True)

    def to_dict(self) -> dict:
        return self.model_dump(mode="json")

    # transitional mapping view (see Result): readers move to attributes
    def __getitem__(self, key: str):
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None

    def get(self, key: str, default=None):
        v = getattr(self, key, None)
        return default if v is None else v

    def __contains__(self, key: str) -> bool:
        return key in type(self).model_fields or key in (self.model_extra or {})

    def keys(self):
        return [*type(self).model_fields, *(self.model_extra or {})]


# ------------------------------------------------------------------------------ warnings
_KINDS = (
    ("noisy", re.compile(r"^noisy: coefficient of variation (?P<cv>[\d.]+)% > (?P<limit>[\d.]+)%")),
    ("max_time", re.compile(r"^stopped at max-time \((?P<max>[\d.eE+-]+) s measured\)")),
    ("max_processes", re.compile(r"^stopped at (?P<processes>\d+) worker processes")),
    ("cpu_contention", re.compile(r"^other processes used (?P<share>\d+)% of the machine's CPU")),
    ("steal", re.compile(r"^the hypervisor gave (?P<share>\d+)% of this VM's CPU")),
    ("parity_failed", re.compile(r"^(timed although its parity check FAILED|parity failed at)")),
    ("flush_denormal", re.compile(r"^flush-to-zero is off")),
    ("oversubscribed", re.compile(r"^\d+ threads on \d+ physical core")),
    ("speed_state", re.compile(r"^the machine changed speed")),
)


def classify_warning(text: str) -> tuple[str, dict]:
    """The kind of a warning written as plain text (rows stored before warnings were typed), with
    the values its text carries."""
    for kind, rx in _KINDS:
        m = rx.match(text)
        if m:
            return kind, {k: v for k, v in m.groupdict().items() if v is not None}
    return "other", {}


class Warn(BaseModel):
    """One warning of a result: `kind` groups it with the same warning of other cases, `text` is
    what a person reads about this case, `values` the figures it was made from."""

    model_config = ConfigDict(frozen=True)

    kind: str
    text: str
    values: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, v):
        if isinstance(v, str):  # rows written before warnings were typed
            kind, values = classify_warning(v)
            return {"kind": kind, "text": v, "values": values}
        return v

    def __str__(self) -> str:
        return self.text

    def __contains__(self, part: str) -> bool:  # "max-time" in warning: a search of its text
        return part in self.text


def warn(kind: str, text: str, **values) -> Warn:
    return Warn(kind=kind, text=text, values=values)


# ------------------------------------------------------------------------------ records
class CpuContention(_Record):
    """CPU that other processes (other_share) and other VMs (steal_share) took from the machine
    while the case's rounds were timed (pfdeploy.devices.cpuload)."""

    other_share: float | None = None
    steal_share: float | None = None
    other_cpu_s: float | None = None
    own_cpu_s: float | None = None
    machine_cpu_s: float | None = None
    source: str | None = None


class Accuracy(_Record):
    """Top-1/top-5 measured for exactly this artifact and for PyTorch fp32 on the same labelled
    images (exporters/accuracy.py)."""

    n: int | None = None
    top1: float | None = None
    top5: float | None = None
    torch_top1: float | None = None
    torch_top5: float | None = None
    top1_delta: float | None = None
    agree_top1: float | None = None
    images: Any = None
    images_sha256: str | None = None
    weights: str | None = None
    artifact_sha256: str | None = None
    measured_at: str | None = None


class Interval(_Record):
    """A ratio with its interval (speedups, eliminations)."""

    ratio: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    confidence: float | None = None


class TuneRecord(_Record):
    """A candidate's fate in `pfdeploy tune` (docs/tune.md, the tune contract)."""

    candidate: str | None = None
    default: bool = False
    note: str | None = None
    status: str | None = None  # racing | eliminated | failed | winner | tied
    runtime_winner: bool = False
    overall_winner: bool = False
    overall_status: str | None = None
    eliminated_by: str | None = None
    eliminated_at: int | None = None
    elimination: dict | None = None
    vs_default: dict | None = None
    vs_overall: dict | None = None
    tied_with: list[str] = Field(default_factory=list)
    reason: str | None = None


class ABRecord(_Record):
    """The A/B pairing of a result (`pfdeploy ab`): which side it is, the other side's run, and
    the block of every worker process (block b's base and head processes ran together)."""

    ab_id: str | None = None
    side: Literal["base", "head"] | None = None
    other_run_id: str | None = None
    blocks: list[int] = Field(default_factory=list)
    order: list[str] = Field(default_factory=list)  # per block: "base-first" | "head-first"
    block_ratios: list[float | None] = Field(default_factory=list)  # head / base per block (median of rounds)
    block_within: list[float | None] = Field(default_factory=list)  # each block value's own sampling variance (log)
    verdict: str | None = None  # regression | improvement | equivalent | inconclusive
    ratio: float | None = None  # head / base, the mean of the block log ratios
    ci_low: float | None = None
    ci_high: float | None = None
    confidence: float | None = None  # of the interval at the deciding look
    detectable: float | None = None  # the change detectable at 80% power at this run's noise
    blocks_needed: int | None = None  # blocks for the threshold to be detectable at this noise
    threshold: float | None = None
    alpha: float | None = None  # family-wise over cases and looks


_WARN_SCHEMA = {"anyOf": [
    {"type": "object", "title": "Warn", "required": ["kind", "text"],
     "description": "A warning: its kind (groups it with the same warning of other cases), its text, the values "
                    "it was made from.",
     "properties": {"kind": {"type": "string"}, "text": {"type": "string"}, "values": {"type": "object"}}},
    {"type": "string", "description": "a warning as run files of versions 1 and 2 wrote it (text only)"}]}


def _none_if_not_dict(v):
    return v if isinstance(v, dict) or v is None else None


def _warnings_list(v):
    if v is None:
        return []
    if isinstance(v, (list, tuple)):
        return list(v)
    return [str(v)]


# ------------------------------------------------------------------------------ the result
class Result(BaseModel):
    """One case of a run: its identity, statistics (milliseconds), provenance and samples."""

    model_config = ConfigDict(extra="allow", frozen=True)

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
    artifact: Annotated[dict | None, BeforeValidator(_none_if_not_dict), Col("json")] = None
    parity: Annotated[dict | None, BeforeValidator(_none_if_not_dict), Col("json")] = None
    warnings: Annotated[list[Annotated[Warn, WithJsonSchema(_WARN_SCHEMA)]], BeforeValidator(_warnings_list),
                        Col("json")] = Field(default_factory=list)
    round_size: Int = None
    created_at: Annotated[Time, Col("time", nullable=False)] = None
    # schema 4 / run-file version 2: the device clock (CUDA events), beside the host figures above
    device_p50_ms: Num = None
    device_p50_ci_low_ms: Num = None
    device_p50_ci_high_ms: Num = None
    # schema 5 / run-file version 3: what travelled undeclared in `extra` before, now declared
    variant: Text = None  # a named runtime setting (`pfdeploy tune`, `bench --tuned`)
    options: Annotated[dict | None, Col("json")] = None  # the runner options it sets
    baselines: Annotated[list[str] | None, Col("json")] = None  # the baselines the model's spec names
    peak_gpu_source: Text = None  # how peak_gpu_mb was measured, or why it is missing
    device_n: Int = None
    host_p50_ms: Num = None  # rows with a device clock: the host median beside it
    cpu_contention: Annotated[CpuContention | None, Col("json")] = None
    accuracy: Annotated[Accuracy | None, Col("json")] = None
    # several worker processes per case (docs/method.md): how many, the rounds each measured, the
    # spread between their medians, each one's load and first-inference time; the CI's method
    processes: Int = None
    process_sd: Num = None
    ci_df: Int = None
    ci_method: Text = None  # processes | rounds | blocks: what the CI's bootstrap resampled
    ci_units: Int = None
    process_rounds: Annotated[list[Ints] | None, Col("json")] = None
    process_load_ms: Annotated[Nums | None, Col("json")] = None
    process_first_ms: Annotated[Nums | None, Col("json")] = None
    tune: Annotated[TuneRecord | None, Col("json")] = None  # `pfdeploy tune`: the candidate's fate
    ab: Annotated[ABRecord | None, Col("json")] = None  # `pfdeploy ab`: the side and its blocks
    # raw samples (not columns of `results`: they live in `samples` as int64 blobs); None: not loaded
    samples_ns: Ints | None = Field(default=None, description="host latency samples, integer ns")
    sample_rounds: Ints | None = Field(
        default=None, description="round id of each sample (same length as samples_ns), or null")
    device_samples_ns: Ints | None = Field(
        default=None, description="device-clock samples, integer ns (GPU backends), or null")

    @model_validator(mode="before")
    @classmethod
    def _plain_numbers(cls, data):
        """NumPy scalars (a batch size or a count computed with numpy) as the Python numbers they
        are; a bool or a numeric string stays refused by the strict fields."""
        if isinstance(data, dict) and any(type(v).__module__ == "numpy" for v in data.values()):
            data = {k: (v.item() if type(v).__module__ == "numpy" and hasattr(v, "item") and getattr(v, "ndim", 1) == 0
                        else v) for k, v in data.items()}
        return data

    @model_validator(mode="after")
    def _rounds_match(self):
        if (self.sample_rounds is not None and self.samples_ns is not None
                and len(self.sample_rounds) != len(self.samples_ns)):
            raise ValueError(f"sample_rounds has {len(self.sample_rounds)} entries for "
                             f"{len(self.samples_ns)} samples")
        return self

    # ------------------------------------------------------------------ the edge
    @classmethod
    def from_row(cls, row: dict, warn=None) -> "Result":
        """A typed result from a plain row (a store row, a run file's entry, a test's dict).

        Strict for what a user hands over (`warn=None`: ValidationError on the first bad field);
        lenient for stored rows (`warn` callable): a declared field of the wrong shape is dropped
        (None) and `warn(field, message)` says so, so one damaged cell never hides the rest."""
        if isinstance(row, cls):
            return row
        try:
            return cls.model_validate(row)
        except ValidationError as exc:
            if warn is None:
                raise
            row = dict(row)
            bad = []
            for err in exc.errors():
                top = err["loc"][0] if err["loc"] else None
                if isinstance(top, str) and top in cls.model_fields and top not in ("case_key", "status") \
                        and top not in bad:
                    bad.append(top)
            for name in bad:
                warn(name, f"{name} is not of the declared type; ignored")
                row[name] = None if name != "warnings" else []
            return cls.model_validate(row)

    def to_row(self, samples: bool = False) -> dict:
        """The plain JSON row (run file, store): declared fields and extras; raw samples only
        with `samples`."""
        d = self.model_dump(mode="json", exclude={"samples_ns", "sample_rounds", "device_samples_ns"})
        if samples:
            d["samples_ns"] = list(self.samples_ns or [])
            d["sample_rounds"] = None if self.sample_rounds is None else list(self.sample_rounds)
            d["device_samples_ns"] = None if self.device_samples_ns is None else list(self.device_samples_ns)
        return d

    def but(self, **changes) -> "Result":
        """A copy with `changes` applied and validated (the result itself is frozen)."""
        return type(self).model_validate({**self.model_dump(), **changes})

    # ------------------------------------------------------------------ derived
    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def warning_texts(self) -> list[str]:
        return [w.text for w in self.warnings]

    @property
    def per_item_ms(self) -> float | None:
        """The median per item (`items_per_step` of a throughput step, else the batch): the one
        definition of "per item" that tune and claims compare by."""
        if self.p50_ms is None:
            return None
        return self.p50_ms / self.items_per_step

    @property
    def items_per_step(self) -> int:
        steps = (self.artifact or {}).get("items_per_step") if isinstance(self.artifact, dict) else None
        return int(steps or self.batch or 1)

    @property
    def ci(self) -> tuple[float | None, float | None, float | None]:
        """(p50, CI low, CI high) in ms: the trio every table shows."""
        return self.p50_ms, self.p50_ci_low_ms, self.p50_ci_high_ms

    @property
    def extras(self) -> dict:
        """Fields a plugin added that pfdeploy does not declare."""
        return dict(self.model_extra or {})

    # ------------------------------------------------------------------ transitional mapping view
    # Readers that still index a row by field name keep working while they move to attributes;
    # product code is checked by tests/test_result.py's count of string reads.
    def __getitem__(self, key: str):
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None

    def get(self, key: str, default=None):
        v = getattr(self, key, None)
        return default if v is None else v

    def __contains__(self, key: str) -> bool:
        return key in type(self).model_fields or key in (self.model_extra or {})

    def keys(self):
        return [*type(self).model_fields, *(self.model_extra or {})]


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


RESULT_FIELDS = tuple(columns(Result))


def first_error(exc: ValidationError) -> str:
    """The first problem of a validation error, as one line naming its place."""
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
