"""Writing a tuned directory: the winner's artifact files copied from the export cache with its
manifest gaining a "tuned" section, and tuned.json; built in a temporary sibling directory and
renamed into place (pfdeploy.publish). An existing path is replaced only when it is a pfdeploy
tuned directory holding nothing but what pfdeploy put there."""
from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

from ...errors import UserError
from ...result import Result, TuneRecord
from .record import CASE_FIELDS, FORMAT, MANIFEST, MEASURED, OWN_EXTRAS, TUNED_JSON, read_tuned


def write_tuned(out_dir, row: "Result", *, run_id, store_url, machine: dict, weights_file=None) -> Path:
    """Write the tuned directory `out_dir` (DIR itself, e.g. tuned/pf_resnet50_max) for a stored
    winner row (a store/build_row dict with "variant", "options" and the contract's "tune"
    extras; row["artifact"]["path"] is the exported artifact's directory in the export cache).
    `machine`: the run's machine metadata (machine_id, cpu); `weights_file`: the checkpoint of a
    torch row (an artifact row records its manifest's). Returns DIR."""
    from ... import __version__
    from ...clock import utc_now_iso
    from ...outputs import check_output_dir, os_reason
    from ...publish import make_temp_dir, publish_dir, target_lock

    final = Path(out_dir).expanduser().absolute()
    try:
        _check_replaceable(final)  # before any copying: a refusal costs nothing
    except UserError:
        # another writer of DIR holds its lock and may be swapping it this moment (a directory seen
        # half-gone): the check under the lock, just before the swap, decides
        if not (final.parent / f".{final.name}.lock").exists():
            raise
    check_output_dir(final.parent, "tuned directory")
    if not isinstance(row, Result):  # a plain row (a run file's, a script's): typed at the edge
        row = Result.from_row(row)
    case = {k: getattr(row, k) for k in CASE_FIELDS}
    missing = [k for k, v in case.items() if v is None]
    if missing:
        raise UserError(f"cannot write a tuned directory from a row without {', '.join(missing)}")
    if not row.ok:
        raise UserError(f"cannot write a tuned directory from a {row.status} row (only measured rows)")
    tune = row.tune or TuneRecord()
    options = dict(row.options or {})
    extras = options.pop("artifact", None) or {}
    art_info = row.artifact or {}
    art = None
    request = _request_of(row, extras)
    if request is not None:
        from ...exporters import load_artifact

        src = art_info.get("path")
        if not src:
            raise UserError(f"{row.model} / {row.backend}: the row records no artifact path "
                            "(artifact.path); its artifact cannot be copied")
        art = load_artifact(src)  # size and sha256 of every file checked against its manifest
        if row.artifact_sha256 and art.sha256 != row.artifact_sha256:
            raise UserError(f"{src}: the artifact's sha256 {art.sha256[:12]} is not the one the row measured "
                            f"({str(row.artifact_sha256)[:12]}): the export cache changed since; re-run the tune")
        weights_file = weights_file or (art.manifest.get("weights") or {}).get("file")
    measured = {k: getattr(row, k) for k in MEASURED}
    cpu = (machine or {}).get("cpu") or {}
    tuned = {
        "format": FORMAT,
        **case,
        "variant": row.variant or tune.candidate or "",
        "options": options,
        "artifact": {"file": art.manifest["model_file"] if art else None, "sha256": art.sha256 if art else None,
                     "manifest": MANIFEST if art else None, "request": request},
        "weights_file": str(weights_file) if weights_file else None,
        "runtime_settings": art_info.get("runner") or {},
        "measured": {**measured, "processes": row.processes, "run_id": _plain(run_id),
                     "store": str(store_url) if store_url is not None else None,
                     "machine_id": (machine or {}).get("machine_id"),
                     "cpu": {"model": cpu.get("model"), "isa": cpu.get("isa")}},
        "vs_default": tune.vs_default,
        "status": tune.status or "winner",
        "tied_with": list(tune.tied_with or []),
        "created_at": utc_now_iso(),
        "pfdeploy_version": __version__,
    }
    tmp = make_temp_dir(final.parent, final.name, what="tuned directory")
    try:
        _build(tmp, art, tuned)
        read_tuned(tmp)  # what is published is what a reader accepts
        with target_lock(final, "tuned directory"):  # concurrent writers of DIR: one at a time
            _check_replaceable(final)  # again, just before: a path that changed meanwhile is refused
            publish_dir(tmp, final, replace=True, what="tuned directory")  # an earlier one: swapped out whole
    except OSError as exc:  # a full disk, a quota, a vanished directory: one line, nothing left
        shutil.rmtree(tmp, ignore_errors=True)
        raise UserError(f"cannot write tuned directory {final}: {os_reason(exc)}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _build(tmp: Path, art, tuned: dict) -> None:
    """The tuned directory's files in `tmp`: the artifact's, its manifest with a "tuned" section,
    tuned.json, each with the mode the umask gives a new file."""
    from ...exporters.manifest_io import write_manifest
    from ...outputs import new_file_mode, publish_tree_mode

    if art is not None:
        for name in art.manifest["files"]:
            dest = tmp / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(art.path / name, dest)
        manifest = dict(art.manifest)
        manifest["tuned"] = {k: v for k, v in tuned.items() if k != "artifact"}
        write_manifest(tmp, manifest)
    _write_json(tmp / TUNED_JSON, tuned)
    for f in tmp.rglob("*"):  # mkstemp's 0600 (the manifest) -> what the umask gives a new file
        if f.is_file():
            os.chmod(f, new_file_mode())
    publish_tree_mode(tmp)


def _request_of(row: "Result", extras: dict) -> dict | None:
    """The exporter request of the row's artifact (None: a torch runner, built from the zoo)."""
    from ...backends import get_backend

    req = get_backend(row.backend).artifact_request(row.precision, int(row.batch))
    if req is None:
        return None
    return {**req, **{k: v for k, v in extras.items() if k not in ("file", "sha256")}}


def _plain(v):
    return v if v is None or isinstance(v, (str, int, float)) else str(v)


def _write_json(path: Path, data: dict) -> None:
    with open(path, "w") as f:
        json.dump(data, f, indent=2, default=str)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())


def check_target(out_dir) -> Path:
    """What `pfdeploy tune --out` checks for each model's DIR before any work: the directory it
    would be written in can be created and written, and what is at DIR (if anything) is an
    earlier tuned directory holding only pfdeploy's files. Returns DIR; UserError otherwise."""
    from ...outputs import check_output_dir

    final = Path(out_dir).expanduser().absolute()
    check_output_dir(final.parent, "tuned directory")
    _check_replaceable(final)
    return final


def _check_replaceable(final: Path) -> None:
    """Nothing at `final`, or a pfdeploy tuned directory holding only what pfdeploy wrote there;
    else a UserError (and nothing is touched)."""
    try:
        st = os.lstat(final)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise UserError(f"tuned directory {final}: {exc.strerror or exc}") from None
    mode = st.st_mode
    if stat.S_ISLNK(mode):
        raise UserError(f"{final} is a symbolic link; pfdeploy writes a tuned directory only to a new path "
                        "or over an earlier tuned directory, never through a link")
    if not stat.S_ISDIR(mode):
        kind = ("a regular file" if stat.S_ISREG(mode) else "a FIFO" if stat.S_ISFIFO(mode)
                else "a socket" if stat.S_ISSOCK(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                else "not a directory")
        raise UserError(f"{final} exists and is {kind}, not a tuned directory; refusing to replace it "
                        "(choose another path or remove it)")
    try:
        data = json.loads((final / TUNED_JSON).read_text())
    except FileNotFoundError:
        if not (final.exists() or final.is_symlink()):
            return  # another writer swapped it away this moment: checked again under the lock
        raise UserError(f"{final} exists and is not a pfdeploy tuned directory (no {TUNED_JSON}); refusing to "
                        "replace it (choose another path or remove it)") from None
    except (OSError, UnicodeDecodeError, ValueError):
        data = None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UserError(f"{final}: its {TUNED_JSON} is not a pfdeploy tuned record ({FORMAT}); refusing to "
                        "replace the directory")
    own = {TUNED_JSON, MANIFEST, *OWN_EXTRAS}
    try:
        man = json.loads((final / MANIFEST).read_text())
        own |= set((man.get("files") or {}) if isinstance(man, dict) else ())
    except (OSError, UnicodeDecodeError, ValueError):
        pass
    try:
        entries = list(final.iterdir())
    except FileNotFoundError:  # swapped away by another writer this moment: checked again under the lock
        return
    foreign = []
    for e in entries:
        try:
            mode = e.lstat().st_mode
        except FileNotFoundError:  # gone with a directory another writer swapped away: not a user's file
            continue
        if e.name not in own or not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            foreign.append(e.name)
    foreign.sort()
    if foreign:
        raise UserError(f"{final} is a tuned directory but also holds {', '.join(foreign[:5])}"
                        f"{' ...' if len(foreign) > 5 else ''}, which pfdeploy did not write; refusing to replace it")
