"""Where BASE and HEAD come from: a run file, or a run of the store by reference."""
from __future__ import annotations

from pathlib import Path

from ..errors import UserError


def existing_store(url: str | None = None):
    """Open the results store without creating one: a SQLite file that does not exist is a user
    error (a typo in --store would otherwise silently start an empty store)."""
    from ..store import open_store

    return open_store(url, create=False, readonly=True)


def load_run(ref: str, store_url: str | None = None, store=None) -> dict:
    """BASE/HEAD reference -> run document. `ref` is an exported JSON run file (a path that
    exists, or anything ending in .json), else a store reference: run id or unique prefix, tag
    (tags may contain slashes: `feature/x`), git commit prefix, or "latest" (Store.resolve_run)."""
    from ..store import read_run_file

    path = Path(ref).expanduser()
    if path.is_file():
        return read_run_file(path)
    if ref.lower().endswith(".json"):
        raise UserError(f"run file {ref} does not exist")
    if store is None:
        store = existing_store(store_url)
    run = store.resolve_run(ref)
    return store.export_run(run["id"])


