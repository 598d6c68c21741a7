"""What a result is made of besides its numbers: the column kinds of the store, the field types,
typed warnings (`Warn`: a kind, its text, its values) and the typed records a result carries
(CPU contention, accuracy, the tune and A/B records). pfdeploy/result/model.py builds the
`Result` from them."""
from __future__ import annotations

import datetime as _dt
import re
from typing import Annotated, Any, Literal

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, StrictInt,
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

    def __getitem__(self, key: str):  # read-only view for notebooks and tests, as Result's
        if key in type(self).model_fields or key in (self.model_extra or {}):
            return getattr(self, key)
        raise KeyError(key)

    def get(self, key: str, default=None):
        v = getattr(self, key, None)
        return default if v is None else v


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


