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


def read_manifest(directory: Path) -> dict:
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise UserError(f"{directory}: not a pfdeploy artifact (no {MANIFEST}); "
                        f"an interrupted export leaves none, re-run `pfdeploy export`")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: corrupt manifest ({exc}); re-export with --force") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UserError(f"{path}: not a pfdeploy artifact manifest (format is not {FORMAT!r})")
    if data.get("version") != VERSION:
        raise UserError(f"{path}: manifest version {data.get('version')!r} is not supported "
                        f"(this pfdeploy reads version {VERSION}); re-export with --force")
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise UserError(f"{path}: incomplete manifest, missing {', '.join(missing)}; re-export with --force")
    if data["status"] not in STATUSES:
        raise UserError(f"{path}: unknown artifact status {data['status']!r}")
    return data
