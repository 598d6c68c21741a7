"""The typed result itself (`Result`) and its one edge to plain rows (`from_row` / `to_row`);
the store's columns (`columns`, `RESULT_FIELDS`) come from its annotations."""
from __future__ import annotations

import json
import math
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, WithJsonSchema, model_validator

from .records import (_WARN_SCHEMA, Accuracy, ABRecord, BigInt, Col, CpuContention, Int, Ints, Num, Nums, Text,
                      Time, TuneRecord, Warn, _none_if_not_dict, _warnings_list)


MAX_SAMPLE_NS = 86_400 * 10**9  # one day: no single timed inference takes longer; larger is corrupt input


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
    batch: Annotated[Int, Field(ge=1)] = None
    threads: Annotated[Int, Field(ge=1)] = None
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
    loadgen: Annotated[dict | None, Col("json")] = None  # MLPerf LoadGen's verdict, figures and logs (issue 31)
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
        pr = self.process_rounds
        if pr and len(pr) >= 2 and self.sample_rounds:
            listed = [r for rs in pr for r in rs]
            if len(set(listed)) != len(listed):
                raise ValueError("process_rounds lists a round under more than one process (or twice)")
            missing = set(self.sample_rounds) - set(listed)
            if missing:
                raise ValueError(f"process_rounds does not list round {min(missing)} of the samples "
                                 "(every sample's round belongs to one process)")
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

    def impossible_sample(self) -> int | None:
        """A sample outside 1 .. MAX_SAMPLE_NS ns (None: all possible). Checked where a user hands
        a run file over (compare, claims); a stored result keeps what it measured (a fake
        runtime's step can time 0 ns on a coarse clock)."""
        if not self.samples_ns:
            return None
        lo, hi = min(self.samples_ns), max(self.samples_ns)
        return lo if lo < 1 else hi if hi > MAX_SAMPLE_NS else None

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
    def capacity(self) -> tuple[float, float, float | None] | None:
        """(capacity QPS, bracket low, bracket high) of a `pfdeploy capacity` result: the highest
        target QPS every worker process served VALID, and the bracket [last VALID, first INVALID]
        over processes (high None: no INVALID probe). None for any other result, or when the
        record is damaged (a number that is not a finite non-negative number)."""
        lg = self.loadgen
        if self.scenario != "capacity" or not isinstance(lg, dict):
            return None

        def qps(v):
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
            return float(v) if ok else None

        cap = qps(lg.get("capacity_qps"))
        bracket = lg.get("bracket_qps")
        bracket = bracket if isinstance(bracket, (list, tuple)) and len(bracket) == 2 else [cap, None]
        lo, hi = qps(bracket[0]), qps(bracket[1])
        if cap is None or lo is None or (hi is not None and hi < lo):
            return None
        return cap, lo, hi

    # A read-only mapping view for notebooks and tests (`r["p50_ms"]`, as a pandas row reads).
    # Product code reads attributes: tests/test_result.py counts string reads of result fields in
    # it and fails above the bound.
    def __getitem__(self, key: str):
        if key in type(self).model_fields:
            return getattr(self, key)
        extra = self.model_extra or {}
        if key in extra:
            return extra[key]
        raise KeyError(key)

    def get(self, key: str, default=None):
        try:
            v = self[key]
        except KeyError:
            return default
        return default if v is None else v

    def __contains__(self, key: str) -> bool:
        return key in type(self).model_fields or key in (self.model_extra or {})

    def keys(self):
        return [*type(self).model_fields, *(self.model_extra or {})]

    @property
    def extras(self) -> dict:
        """Fields a plugin added that pfdeploy does not declare."""
        return dict(self.model_extra or {})


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
