"""Run files on disk: the JSON document of one run (format 'pfdeploy-run', the model
pfdeploy.runfile.RunFile) written atomically through pfdeploy.outputs and read back with every
problem named in one line."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .. import runfile
from ..errors import UserError
from ..outputs import atomic_write_bytes
from .values import _clean_json


def write_run_file(doc: dict, path: str | os.PathLike) -> Path:
    """Write a run-file document atomically: a temporary file in the same directory, flushed to
    disk, then renamed over `path`. A crash leaves either the old file or the new one."""
    path = Path(path).expanduser()
    if not path.parent.exists():
        raise UserError(f"cannot write {path}: directory {path.parent} does not exist")
    text = json.dumps(_clean_json(doc), indent=1, allow_nan=False) + "\n"
    atomic_write_bytes(path, text.encode("utf-8"))
    return path


def validate_run_doc(doc: Any, where: str = "run file") -> dict:
    """Check a run-file document against the model pfdeploy.runfile.RunFile; returns it as a plain
    dict with every known field present. Raises UserError naming the first problem."""
    return runfile.parse_run_doc(doc, where)


def read_run_file(path: str | os.PathLike, typed: bool = False) -> dict:
    """Read and validate a JSON run file (format 'pfdeploy-run', versions 1 to
    runfile.RUN_FILE_VERSION). A missing file, bad JSON or a wrong structure is a UserError naming
    the file and the problem. `typed`: its results as `Result`s (runfile.parse_run_json)."""
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"run file {p} does not exist") from None
    except IsADirectoryError:
        raise UserError(f"run file {p} is a directory") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read run file {p}: {exc}") from None
    if typed:
        return runfile.parse_run_json(text, str(p))
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{p}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    return runfile.parse_run_doc(doc, str(p))
