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
from .model import RESULT_FIELDS, SAMPLE_KEYS, Result, columns, first_error  # noqa: F401
from .records import (RESULT_STATUSES, Accuracy, ABRecord, BigInt, Col, CpuContention, Int, Interval, Json,  # noqa: F401
                      Num, Text, Time, TuneRecord, Warn, classify_warning, warn)
