"""manifest.json on disk: its format, written atomically, read back validated; the digests of the
files it lists. What a manifest holds is built by exporters/manifest.py; an artifact directory is
opened by exporters/artifact.py."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from ..errors import UserError

MANIFEST = "manifest.json"
FORMAT = "pfdeploy-artifact"
VERSION = 1
STATUSES = ("ok", "failed", "unverified", "inconclusive")
REQUIRED = ("format", "version", "status", "key", "model", "weights", "target", "precision",
            "exporter", "tools", "files", "model_file", "sha256", "created_at", "pfdeploy_version")


def files_digest(directory: Path, names: list[str]) -> dict:
    from ..weights import sha256_file

    return {n: {"sha256": sha256_file(directory / n), "bytes": (directory / n).stat().st_size} for n in names}


def artifact_sha256(files: dict) -> str:
    """One file: its sha256 (what `sha256sum` prints). Several (OpenVINO .xml + .bin): the sha256
    of the sorted 'name sha256' lines."""
    if len(files) == 1:
        return next(iter(files.values()))["sha256"]
    import hashlib

    lines = "".join(f"{n} {f['sha256']}\n" for n, f in sorted(files.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


def write_manifest(directory: Path, manifest: dict) -> None:
    """Write manifest.json atomically (temporary file in the same directory, fsync, replace)."""
    directory = Path(directory)
    fd, tmp = tempfile.mkstemp(prefix=".manifest-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(manifest, f, indent=2, sort_keys=False, default=_json_default)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, directory / MANIFEST)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _json_default(obj):
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


REEXPORT = "re-export with --force"


def read_manifest(directory: Path, fix: str = REEXPORT) -> dict:
    """manifest.json of `directory`, validated: its format, version, required fields, and the
    types of what readers use (`files`: name -> {"sha256": hex, "bytes": int}; `model_file`: one
    of them). One UserError line per problem, ending with `fix` (what to do: re-export for the
    export cache, re-run the tune for a tuned directory)."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise UserError(f"{directory}: not a pfdeploy artifact (no {MANIFEST}); "
                        f"an interrupted export leaves none, re-run `pfdeploy export`")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: corrupt manifest ({exc}); {fix}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UserError(f"{path}: not a pfdeploy artifact manifest (format is not {FORMAT!r})")
    if data.get("version") != VERSION:
        raise UserError(f"{path}: manifest version {data.get('version')!r} is not supported "
                        f"(this pfdeploy reads version {VERSION}); {fix}")
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise UserError(f"{path}: incomplete manifest, missing {', '.join(missing)}; {fix}")
    if data["status"] not in STATUSES:
        raise UserError(f"{path}: unknown artifact status {data['status']!r}")
    problem = _files_problem(data["files"], data["model_file"])
    if problem:
        raise UserError(f"{path}: damaged manifest: {problem}; {fix}")
    return data


def _files_problem(files, model_file) -> str | None:
    """What is wrong with a manifest's `files` / `model_file` types (None: nothing)."""
    if not isinstance(files, dict) or not files:
        return f"files must be an object of file name -> {{sha256, bytes}}, not {type(files).__name__}"
    for name, info in files.items():
        if not isinstance(info, dict):
            return f"files[{name!r}] must be an object with sha256 and bytes, not {type(info).__name__}"
        sha, size = info.get("sha256"), info.get("bytes")
        if not isinstance(sha, str):
            return f"files[{name!r}].sha256 must be a string, not {type(sha).__name__}"
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            return f"files[{name!r}].bytes must be a whole number of bytes, not {size!r}"
    if not isinstance(model_file, str):
        return f"model_file must be a file name, not {type(model_file).__name__}"
    return None
