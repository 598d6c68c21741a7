"""Results store: runs, results and raw samples in SQLite (default) or PostgreSQL (by URL).

    store = open_store(url=None)            # None -> $PFDEPLOY_STORE or ./pfdeploy-results.db
    run_id = store.begin_run(meta)          # committed at once, status 'running'
    rid = store.add_result(run_id, row, samples_ns, rounds)   # committed at once
    store.finish_run(run_id, status, loadavg_after=None)      # finished | interrupted | failed
    store.runs(...), store.resolve_run(ref), store.results(run_id), store.samples(result_id)
    store.export_run(run_id) -> dict; read_run_file(path) -> dict; write_run_file(data, path)

One schema for both databases (SQLAlchemy Core), its columns defined once by the run-file models
(pfdeploy/runfile.py), versioned by Alembic revisions (pfdeploy/migrations) and brought up to date
on open. SQLite runs in WAL mode with a busy timeout, write transactions take the write lock up
front (BEGIN IMMEDIATE) and are retried on "database is locked", so several benches can write to
one file at once. docs/store.md explains the choices.

The package, one concern a module (each imports only those above it in this list):
    values      value cleaning (JSON-safe copies, numbers, timestamps) and the case key
    schema      the tables and the two shared column types
    codec       the binary sample codec
    url         store URLs
    tx          transactions, lock retries, one-line database errors
    sqlite      SQLite: sniffing a file without writing, engine settings, backups
    refs        the run-reference grammar (id, prefix, tag, commit, 'latest')
    rows        rows in and out (typed columns + extra; damaged JSON cells)
    runfile_io  run files on disk
    runs        the Store class
    open        open_store: the open / refuse / upgrade policy
"""
from __future__ import annotations

from ..outputs import atomic_write_bytes  # noqa: F401  the one writer of user-named files (issue 12)
from ..runfile import RESULT_STATUSES, RUN_FILE_FORMAT, RUN_FILE_VERSION, RUN_STATUSES  # noqa: F401
from .codec import SAMPLE_ENCODING
from .open import open_store
from .refs import MIN_PREFIX
from .runfile_io import read_run_file, validate_run_doc, write_run_file
from .runs import FINAL_RUN_STATUSES, Store
from .schema import (RESULT_FIELDS, RESULT_FLOAT, RESULT_INT, RESULT_JSON, RESULT_TEXT, RUN_FIELDS, RUN_JSON,
                     SCHEMA_VERSION, LenientJSON, UTCDateTime, metadata, results_table, runs_table,
                     samples_table, schema_table)
from .sqlite import sniff_sqlite
from .url import parse_store_url
from .values import CASE_FIELDS, make_case_key

__all__ = [
    "CASE_FIELDS", "FINAL_RUN_STATUSES", "MIN_PREFIX", "RESULT_FIELDS", "RESULT_FLOAT", "RESULT_INT", "RESULT_JSON",
    "RESULT_STATUSES", "RESULT_TEXT", "RUN_FIELDS", "RUN_FILE_FORMAT", "RUN_FILE_VERSION", "RUN_JSON", "RUN_STATUSES",
    "SAMPLE_ENCODING", "SCHEMA_VERSION", "LenientJSON", "Store", "UTCDateTime", "atomic_write_bytes",
    "make_case_key", "metadata", "open_store", "parse_store_url", "read_run_file", "results_table", "runs_table",
    "samples_table", "schema_table", "sniff_sqlite", "validate_run_doc", "write_run_file",
]
