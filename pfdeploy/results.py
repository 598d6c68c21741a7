"""pandas entry point to the results store, for notebooks.

    import pfdeploy.results
    df = pfdeploy.results.load()                        # every result in $PFDEPLOY_STORE
    df = pfdeploy.results.load(run="latest")            # one run (id, prefix, tag, commit, latest)
    df = pfdeploy.results.load(run="nightly", samples=True)
    long = df.explode(["samples_ns", "sample_rounds"])  # one row per latency sample
"""
from __future__ import annotations

import json

RUN_COLUMNS = ("tag", "git_commit", "suite", "suite_version", "machine_id", "pfdeploy_version")


def load(url: str | None = None, run: str | None = None, samples: bool = False):
    """Results as a pandas DataFrame, one row per result (all the result-row fields of
    docs/architecture.md), joined with its run's tag, git_commit, suite, suite_version,
    machine_id, pfdeploy_version, run_started_at and run_status.

    url: the store (None -> $PFDEPLOY_STORE or ./pfdeploy-results.db); run: a run reference as
    `Store.resolve_run` takes it, None for every run; samples: add `samples_ns` (numpy int64
    array of nanoseconds) and `sample_rounds` (numpy int32 array, or None) columns.
    `created_at` and `run_started_at` are UTC timestamps. A missing store is a UserError."""
    import numpy as np
    import pandas as pd

    from .store import RESULT_FIELDS, open_store

    with open_store(url, create=False, readonly=True) as store:
        if run is not None:
            runs = [store.resolve_run(run)]
            results = store.results(runs[0]["id"], samples=samples)
        else:
            results = store.all_results()
            runs = store.runs()  # read second: every run a result points to is in it
            if samples:
                results = [r for run_ in runs for r in store.results(run_["id"], samples=True)]
                results.sort(key=lambda r: r.id)
        by_id = {r["id"]: r for r in runs}
    rows = [r.to_row(samples=samples) for r in results]  # the DataFrame is an edge: plain values

    columns = list(RESULT_FIELDS)
    extra_cols = sorted({k for row in rows for k in row} - set(columns) - {"samples_ns", "sample_rounds",
                                                                          "device_samples_ns"})
    run_cols = list(RUN_COLUMNS) + ["run_started_at", "run_status"]
    records = []
    for row in rows:
        rec = {k: row.get(k) for k in columns + extra_cols}
        r = by_id.get(row["run_id"], {})
        for k in RUN_COLUMNS:
            rec[k] = r.get(k)
        rec["run_started_at"] = r.get("started_at")
        rec["run_status"] = r.get("status")
        if samples:
            rec["samples_ns"] = np.asarray(row["samples_ns"], dtype=np.int64)
            rec["sample_rounds"] = (None if row["sample_rounds"] is None
                                    else np.asarray(row["sample_rounds"], dtype=np.int32))
        records.append(rec)
    all_cols = columns + extra_cols + run_cols + (["samples_ns", "sample_rounds"] if samples else [])
    df = pd.DataFrame.from_records(records, columns=all_cols)
    for col in ("created_at", "run_started_at"):
        df[col] = pd.to_datetime(df[col], utc=True, format="ISO8601")
    return df


def flatten_for_files(df, arrays_as_json: bool = False):
    """A copy of `df` whose dict/list columns are JSON text, so that CSV and Parquet writers take
    it (Parquet cannot store the ragged, heterogeneous dicts that `artifact` or `parity` hold).
    Sample arrays stay arrays (Parquet stores them as list<int64>) unless `arrays_as_json`
    (for CSV, where they become JSON lists)."""
    out = df.copy()
    for col in out.columns:
        if col in ("samples_ns", "sample_rounds"):
            if arrays_as_json:
                out[col] = out[col].map(lambda v: None if v is None else json.dumps(v.tolist()))
            continue
        if out[col].map(lambda v: isinstance(v, (dict, list, tuple))).any():
            out[col] = out[col].map(lambda v: json.dumps(v) if isinstance(v, (dict, list, tuple)) else v)
    return out
