"""The run documents the claims read (the run-file format of Store.export_run: a "run" record and
its "results" rows): the run record as a small typed object, the rows as typed results.

Run documents are the plain-dict edge (pfdeploy/runfile.py): `results_of` turns their rows into
`Result`s once (a row that already is one passes through), `typed_doc` the whole document, so
every reader above reads by attribute."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..labels import machine_label
from ..result import Result


def results_of(doc: dict) -> list[Result]:
    """The document's rows as typed results (with their raw samples when the document has them)."""
    return [Result.from_row(r) for r in doc.get("results") or []]


def typed_doc(doc: dict) -> dict:
    """The document with its rows as typed results (converted once for all readers)."""
    return {**doc, "results": results_of(doc)}


@dataclass(frozen=True)
class RunInfo:
    """What the claims name of a run: its id, tag, start, machine, suite, status and configuration."""

    id: str | None = None
    tag: str | None = None
    started_at: str = ""
    machine_id: str = "unknown"
    machine: str = ""  # machine_label of the run record
    suite: str | None = None
    status: str | None = None
    git_commit: str | None = None
    config: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, doc: dict) -> "RunInfo":
        run = doc.get("run") or {}
        cfg = run.get("config")
        return cls(id=run.get("id"), tag=run.get("tag"), started_at=str(run.get("started_at") or ""),
                   machine_id=str(run.get("machine_id") or "unknown"), machine=machine_label(run),
                   suite=run.get("suite"), status=run.get("status"), git_commit=run.get("git_commit"),
                   config=cfg if isinstance(cfg, dict) else {})

    @property
    def started(self) -> str | None:
        """The start time as the JSON gives it (None when the record has none)."""
        return self.started_at or None


def started(doc: dict) -> str:
    """The sort key of a document: its start time (ISO text; '' when missing)."""
    return RunInfo.of(doc).started_at
