"""`--out DIR`: a copy of a finished artifact in a directory the user names.

The directory must be new or empty; with --force it may hold a previous pfdeploy artifact and
nothing else (replaced as a whole). A directory with anything else in it is refused, --force or
not: pfdeploy never deletes a user's files. The copy is made in a temporary directory beside it
and renamed into place.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..errors import UserError
from ..outputs import check_output_dir, os_reason, publish_tree_mode
from ..publish import make_temp_dir, publish_dir, target_lock
from .artifact import Artifact, load_artifact
from .manifest_io import FORMAT, MANIFEST


def holds_only_an_artifact(p: Path) -> bool:
    """True when directory `p` holds a previous pfdeploy artifact and nothing else (its
    manifest.json and exactly the files that manifest lists)."""
    try:
        manifest = json.loads((p / MANIFEST).read_text())
        names = {e.name for e in p.iterdir()}
    except (OSError, ValueError):
        return False
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or not isinstance(manifest.get("files"), dict):
        return False
    return names <= {MANIFEST, *manifest["files"]}


def check_out(out, force: bool) -> Path:
    """--out DIR: new or empty; or, with --force, holding only a previous pfdeploy artifact
    (replaced as a whole). A directory with anything else in it is refused, --force or not:
    pfdeploy never deletes a user's files."""
    p = Path(out).expanduser()
    check_output_dir(p, "--out")
    if p.exists():
        if not p.is_dir():
            raise UserError(f"--out {p} exists and is not a directory")
        if any(p.iterdir()):
            if not holds_only_an_artifact(p):
                raise UserError(f"--out {p} is not empty and holds more than a pfdeploy artifact; choose a new or "
                                f"empty directory (pfdeploy never deletes other files, --force or not)")
            if not force:
                raise UserError(f"--out {p} is not empty (it holds a pfdeploy artifact); choose a new directory "
                                f"or add --force to replace that artifact")
    return p


def copy_out(art: Artifact, out: Path) -> Artifact:
    tmp = make_temp_dir(out.parent, out.name, what="--out")
    try:
        for name in [*art.manifest["files"], MANIFEST]:
            shutil.copy2(art.path / name, tmp / name)
        publish_tree_mode(tmp)  # a directory the user named gets the umask's mode, not mkdtemp's 0700
        with target_lock(out, "--out"):  # two exports into one --out: one at a time
            check_out(out, True)  # again: files may have appeared there while copying
            if out.exists() and not any(out.iterdir()):
                out.rmdir()
            publish_dir(tmp, out, replace=True, what="--out")
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):  # full disk, permissions
            raise UserError(f"cannot write --out {out}: {os_reason(exc)}") from None
        raise
    return load_artifact(out, check_hash=False)
