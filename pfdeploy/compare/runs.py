"""Where BASE and HEAD come from: a run file, or a run of the store by reference; either way a
run document whose `results` are typed (`Result`): the one place compare turns plain rows into
results."""
from __future__ import annotations

from pathlib import Path

from ..errors import UserError, path_problem
from ..result import Result
from ..result.model import MAX_SAMPLE_NS


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


def file_kind(path: Path) -> str | None:
    """What is at `path`: "file", "fifo", "a directory", "a device", "a socket"; "broken" for a
    link that leads nowhere (a loop, a dangling link); None when nothing is there (or the name
    is too long to be a path: a store reference, e.g. a long tag)."""
    import os
    import stat

    try:
        if not os.path.lexists(path):
            return None
        st = os.stat(path)
    except OSError as exc:
        import errno

        return None if exc.errno == errno.ENAMETOOLONG else "broken"
    mode = st.st_mode
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device"


def refuse_impossible_samples(r: Result, where: str) -> None:
    """UserError when a result a user handed over holds a sample outside 1 .. MAX_SAMPLE_NS ns."""
    bad = r.impossible_sample()
    if bad is not None:
        raise UserError(f"{where}: impossible latency sample {bad!r} ns "
                        f"(samples are whole nanoseconds from 1 to {MAX_SAMPLE_NS}, one day)")


def load_run(ref: str, store_url: str | None = None, store=None) -> dict:
    """BASE/HEAD reference -> run document with typed results (`typed_doc`). `ref` is an exported
    JSON run file (a path that exists, or anything ending in .json), else a store reference: run
    id or unique prefix, tag (tags may contain slashes: `feature/x`), git commit prefix, or
    "latest" (Store.resolve_run)."""
    from ..store import read_run_file

    path = Path(ref).expanduser()
    kind = file_kind(path)
    if kind in ("file", "fifo"):  # a FIFO: a run file piped in (`<(pfdeploy results ... --format json)`)
        doc = read_run_file(path, typed=True)
        for i, r in enumerate(doc["results"]):  # what a user hands over: every latency possible (compare, claims)
            refuse_impossible_samples(r, f"{ref}, result {i + 1} ({r.case_key})")
        return doc
    if kind is not None or ref.lower().endswith(".json"):
        why = ("not found" if kind is None else path_problem(path) if kind == "broken"
               else f"is {kind}, not a run file")
        raise UserError(f"run file {ref} {'does not exist' if why == 'not found' else why}")
    if store is None:
        store = existing_store(store_url)
    run = store.resolve_run(ref)
    return typed_doc(store.export_run(run["id"]))  # run["id"]: the run record, not a result

