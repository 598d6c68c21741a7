"""Artifact directories: one directory holding the model file(s) and `manifest.json`, opened and
checked (every listed file's size and sha256 against the manifest).

A directory only gets its final name once everything in it is written (pfdeploy.publish: a
temporary directory, then a rename), and the manifest is rewritten through a temporary file and
`os.replace` (exporters/manifest_io.py), so an interrupted export never leaves something that
looks complete.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError, require_path
from .manifest_io import read_manifest
from .parity import parity_verdict  # noqa: F401 (re-exported: bench/rows.py and bench/rotation.py import it here)


@dataclass
class Artifact:
    """A validated artifact directory. `manifest` is the parsed manifest.json."""

    path: Path
    manifest: dict

    @property
    def model_file(self) -> Path:
        return self.path / self.manifest["model_file"]

    @property
    def target(self) -> str:
        return self.manifest["target"]

    @property
    def precision(self) -> str:
        return self.manifest["precision"]

    @property
    def model_name(self) -> str:
        return self.manifest["model"]["name"]

    @property
    def status(self) -> str:
        return self.manifest["status"]

    @property
    def sha256(self) -> str:
        return self.manifest["sha256"]

    @property
    def parity(self) -> dict | None:
        return self.manifest.get("parity")

    def __repr__(self) -> str:
        return f"Artifact({self.model_name} {self.target} {self.precision} {self.status} at {self.path})"


def load_artifact(path, check_hash: bool = True) -> Artifact:
    """Open an artifact from its directory, its manifest.json or its model file. Validates the
    manifest and every listed file's size (and sha256 unless `check_hash=False`): a truncated or
    corrupt artifact raises a UserError naming the file, never a runtime crash later."""
    p = Path(path).expanduser()
    require_path(p, "artifact")
    directory = p if p.is_dir() else p.parent
    manifest = read_manifest(directory)
    files = manifest["files"]
    if not isinstance(files, dict) or manifest["model_file"] not in files:
        raise UserError(f"{directory}: manifest does not list its model file; re-export with --force")
    from ..weights import sha256_file

    for name, info in files.items():
        f = directory / name
        if not f.is_file():
            raise UserError(f"{directory}: {name} is missing; the artifact is incomplete, re-export with --force")
        size = f.stat().st_size
        if size != info.get("bytes"):
            raise UserError(f"{f}: {size} bytes, the manifest says {info.get('bytes')}: truncated or "
                            f"modified; re-export with --force")
        if check_hash and sha256_file(f) != info.get("sha256"):
            raise UserError(f"{f}: sha256 does not match the manifest: corrupt or modified; re-export with --force")
    return Artifact(directory, manifest)
