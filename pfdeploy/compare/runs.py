"""Where BASE and HEAD come from: a run file, or a run of the store by reference; either way a
run document whose `results` are typed (`Result`): the one place compare turns plain rows into
results."""
from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from ..result import Result


def existing_store(url: str | None = None):
    """Open the results store without creating one: a SQLite file that does not exist is a user
    error (a typo in --store would otherwise silently start an empty store)."""
    from ..store import open_store

    return open_store(url, create=False, readonly=True)


def typed_rows(doc: dict) -> list[Result]:
    """The results of a run document as `Result`s (plain rows of a run file are validated here;
    results already typed pass through)."""
    return [Result.from_row(row) for row in doc.get("results") or []]


def typed_doc(doc: dict) -> dict:
    """The run document with its results typed: {"format", "version", "run": {...}, "results":
    [Result, ...]} (the `run` record stays a plain dict: it is not a result)."""
    return {**doc, "results": typed_rows(doc)}


def load_run(ref: str, store_url: str | None = None, store=None) -> dict:
    """BASE/HEAD reference -> run document with typed results (`typed_doc`). `ref` is an exported
    JSON run file (a path that exists, or anything ending in .json), else a store reference: run
    id or unique prefix, tag (tags may contain slashes: `feature/x`), git commit prefix, or
    "latest" (Store.resolve_run)."""
    from ..store import read_run_file

    path = Path(ref).expanduser()
    try:
        is_file = path.is_file()
    except OSError:  # too long to be a file name (a 10,000-character tag): a store reference
        is_file = False
    if is_file:
        return read_run_file(path, typed=True)
    if ref.lower().endswith(".json"):
        raise UserError(f"run file {ref} does not exist")
    if store is None:
        store = existing_store(store_url)
    run = store.resolve_run(ref)
    return typed_doc(store.export_run(run["id"]))  # run["id"]: the run record, not a result

