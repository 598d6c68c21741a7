"""The winner of `pfdeploy tune` as a deployable directory (issue 23 item 4; docs/tune.md).

    write_tuned(out_dir, row, *, run_id, store_url, machine, weights_file=None) -> Path
    read_tuned(dir) -> dict            # tuned.json, validated (artifact present, sha256 matches)
    load(dir, inputs=None) -> Runner   # the tuned runtime settings, loaded and ready
    bench_case(dir, tuned=None) -> CaseSpec  # what `pfdeploy bench --tuned DIR` measures

A tuned directory DIR holds the exported artifact's files copied from the export cache (the model
file(s) and manifest.json, the manifest gaining a "tuned" section) and tuned.json (format
"pfdeploy.tuned/1": every runtime setting of the winner and what was measured). A torch winner
has no artifact file (artifact.file null): its weights are the seeded synthetic ones or a
checkpoint (recorded in "weights" and "weights_file").

DIR is written to a temporary sibling directory and then renamed into place: it is never
half-written. An existing DIR is replaced (as a whole, by rename) only when it is a pfdeploy
tuned directory holding nothing but what pfdeploy put there; anything else at that path (a
file, a symbolic link, a FIFO, any other directory) is refused and left untouched.
"""
from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

from ..errors import UserError
from ..result import Result, TuneRecord

FORMAT = "pfdeploy.tuned/1"
TUNED_JSON = "tuned.json"
MANIFEST = "manifest.json"
# files pfdeploy itself may leave in a tuned directory besides the artifact's (accuracy on --images)
OWN_EXTRAS = ("accuracy.json",)
REQUIRED = ("format", "model", "weights", "backend", "device", "precision", "batch", "threads", "scenario",
            "variant", "options", "artifact", "runtime_settings", "measured", "status", "created_at",
            "pfdeploy_version")
MEASURED = ("p50_ms", "p50_ci_low_ms", "p50_ci_high_ms")
CASE_FIELDS = ("model", "weights", "backend", "device", "precision", "batch", "threads", "scenario")


# ----------------------------------------------------------------------------------- writing
def write_tuned(out_dir, row: Result, *, run_id, store_url, machine: dict, weights_file=None) -> Path:
    """Write the tuned directory `out_dir` (DIR itself, e.g. tuned/pf_resnet50_max) for a stored
    winner result (its variant, options and tune record; row.artifact["path"] is the exported
    artifact's directory in the export cache).
    `machine`: the run's machine metadata (machine_id, cpu); `weights_file`: the checkpoint of a
    torch row (an artifact row records its manifest's). Returns DIR."""
    from .. import __version__
    from ..clock import utc_now_iso
    from ..exporters.artifact import make_temp_dir, write_manifest
    from ..outputs import check_output_dir, new_file_mode, publish_tree_mode

    final = Path(out_dir).expanduser().absolute()
    _check_replaceable(final)  # before any copying: a refusal costs nothing
    check_output_dir(final.parent, "tuned directory")
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
        from ..exporters import load_artifact

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
    tmp = make_temp_dir(final.parent, final.name)
    try:
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
        read_tuned(tmp)  # what is published is what a reader accepts
        _publish(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _request_of(row: Result, extras: dict) -> dict | None:
    """The exporter request of the row's artifact (None: a torch runner, built from the zoo)."""
    from ..backends import get_backend

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
    foreign = sorted(e.name for e in final.iterdir() if e.name not in own or e.is_symlink() or
                     not (e.is_file() or e.is_dir()))
    if foreign:
        raise UserError(f"{final} is a tuned directory but also holds {', '.join(foreign[:5])}"
                        f"{' ...' if len(foreign) > 5 else ''}, which pfdeploy did not write; refusing to replace it")


def _publish(tmp: Path, final: Path) -> None:
    """Rename `tmp` to `final`; an earlier tuned directory there is moved aside first and deleted
    after the swap (checked again just before, so a path that changed meanwhile is refused)."""
    import time

    from ..exporters.artifact import _owner_tag

    _check_replaceable(final)
    if os.path.lexists(final):
        old = final.with_name(f".old-{final.name}-{_owner_tag()}-{int(time.time() * 1000)}")
        os.rename(final, old)
        try:
            os.rename(tmp, final)
        except OSError:
            os.rename(old, final)
            raise
        shutil.rmtree(old, ignore_errors=True)
        return
    try:
        os.rename(tmp, final)  # a directory appearing here meanwhile: ENOTEMPTY / EEXIST
    except OSError as exc:
        raise UserError(f"cannot write tuned directory {final}: {exc.strerror or exc}") from None


# ----------------------------------------------------------------------------------- reading
def read_tuned(directory) -> dict:
    """tuned.json of the tuned directory, validated: its format tag, every required field, and
    (for an artifact) the model file and manifest present, every file's size and the artifact's
    sha256 recomputed from the bytes and equal to the recorded one. One UserError per problem."""
    d = Path(directory).expanduser()
    if not d.exists():
        raise UserError(f"tuned directory not found: {d}")
    if not d.is_dir():
        raise UserError(f"{d} is not a directory (a tuned directory holds {TUNED_JSON} and the artifact)")
    path = d / TUNED_JSON
    if not path.is_file():
        raise UserError(f"{d}: not a pfdeploy tuned directory (no {TUNED_JSON}); `pfdeploy tune` writes one")
    try:
        t = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"{path}: corrupt ({exc})") from None
    if not isinstance(t, dict) or t.get("format") != FORMAT:
        got = t.get("format") if isinstance(t, dict) else type(t).__name__
        raise UserError(f"{path}: not a pfdeploy tuned record (format {got!r}, expected {FORMAT!r})")
    missing = [k for k in REQUIRED if k not in t]
    if missing:
        raise UserError(f"{path}: incomplete, missing {', '.join(missing)}")
    a = t["artifact"]
    if not isinstance(a, dict) or not {"file", "sha256"} <= set(a):
        raise UserError(f"{path}: artifact must record file and sha256")
    m = t["measured"]
    if not isinstance(m, dict) or any(m.get(k) is None for k in MEASURED):
        raise UserError(f"{path}: measured must record {', '.join(MEASURED)}")
    if not isinstance(t["options"], dict):
        raise UserError(f"{path}: options must be an object")
    if a["file"] is None:
        if t["backend"] != "torch" and (t.get("artifact") or {}).get("request"):
            raise UserError(f"{path}: the {t['backend']} runner needs an artifact file, none is recorded")
        return t
    name = str(a["file"])
    if Path(name).is_absolute() or ".." in Path(name).parts:
        raise UserError(f"{path}: artifact file {name!r} must be a name inside the directory")
    if not (d / name).is_file():
        raise UserError(f"{d}: the artifact file {name} is missing; the tuned directory is incomplete")
    if not (d / MANIFEST).is_file():
        raise UserError(f"{d}: {MANIFEST} is missing; the tuned directory is incomplete")
    from ..exporters.artifact import artifact_sha256, files_digest, read_manifest

    man = read_manifest(d)
    files = man.get("files") or {}
    if man.get("model_file") != name or name not in files:
        raise UserError(f"{d}: {MANIFEST} names model file {man.get('model_file')!r}, {TUNED_JSON} {name!r}")
    for f in files:
        if not (d / f).is_file():
            raise UserError(f"{d}: {f} is missing; the tuned directory is incomplete")
    digest = files_digest(d, list(files))
    for f, info in files.items():
        if digest[f]["bytes"] != info.get("bytes"):
            raise UserError(f"{d / f}: {digest[f]['bytes']} bytes, the manifest says {info.get('bytes')}: "
                            "truncated or modified")
    sha = artifact_sha256(digest)
    if sha != a["sha256"]:
        raise UserError(f"{d}: the artifact's sha256 is {sha[:16]}..., {TUNED_JSON} records "
                        f"{str(a['sha256'])[:16]}...: the files were modified; not the tuned artifact")
    return t


def model_path(directory, tuned: dict | None = None) -> Path | None:
    """The absolute path of the tuned model file (None for a torch winner)."""
    t = tuned or read_tuned(directory)
    f = t["artifact"]["file"]
    return (Path(directory).expanduser().absolute() / f) if f else None


def case_of(tuned: dict, options: dict | None = None):
    """The CaseSpec of a tuned record (its runner options, or `options`)."""
    from ..backends.case import CaseSpec

    return CaseSpec(model=tuned["model"], backend=tuned["backend"], device=str(tuned["device"]),
                    precision=tuned["precision"], batch=int(tuned["batch"]), threads=int(tuned["threads"]),
                    scenario=tuned["scenario"], weights=tuned["weights"],
                    options=dict(tuned["options"] if options is None else options), variant=tuned["variant"] or "")


def bench_case(directory, tuned: dict | None = None):
    """The case `pfdeploy bench --tuned DIR` measures: the tuned settings, its artifact request
    pointing at the model file in DIR (with the sha256 the preparer checks; nothing exported)."""
    t = tuned or read_tuned(directory)
    opts = dict(t["options"])
    f = model_path(directory, t)
    if f is not None:
        extras = {k: v for k, v in (t["artifact"].get("request") or {}).items() if k not in ("target", "precision")}
        opts["artifact"] = {**extras, "file": str(f), "sha256": t["artifact"]["sha256"]}
    return case_of(t, opts)


def model_weights(tuned: dict):
    """The pfdeploy.pretrained.ModelWeights the tuned row was measured with (the PyTorch reference
    of `bench --tuned`'s parity check, the torch runner's model)."""
    from ..pretrained import ModelWeights

    src = str(tuned["weights"])
    if src.startswith("synthetic:"):
        return ModelWeights(None, src)
    if src.startswith("pretrained"):
        return ModelWeights("pretrained", src)
    if src.startswith("release:"):
        return ModelWeights(src.split("@", 1)[0], src)
    wf = tuned.get("weights_file")
    if not wf or not Path(wf).expanduser().is_file():
        raise UserError(f"the tuned row was measured with weights {src}, whose checkpoint "
                        f"{wf or '(not recorded)'} is not on this machine")
    return ModelWeights(str(wf), src)


def seed_of(tuned: dict) -> int:
    src = str(tuned["weights"])
    return int(src.split(":", 1)[1]) if src.startswith("synthetic:") else 0


# ----------------------------------------------------------------------------------- loading
def load(directory, inputs=None):
    """A loaded Runner with the tuned settings of `directory`:

        from pfdeploy.tune import load
        runner = load("tuned/pf_resnet50_max")
        y = runner.outputs(x)        # x: float32 (batch, 3, H, W), the tuned batch

    `inputs`: the batch the runner is prepared with (default zeros of the model's input shape at
    the tuned batch); later calls take any batch of that shape. Close it with runner.close() (or
    use it in a `with` block)."""
    import numpy as np

    from ..backends import get_backend
    from ..zoo import get_spec

    t = read_tuned(directory)
    spec = case_of(t)
    if inputs is None:
        inputs = np.zeros((spec.batch, *get_spec(spec.model).input_size), dtype=np.float32)
    else:
        inputs = np.ascontiguousarray(inputs, dtype=np.float32)
    f = model_path(directory, t)
    weights_file = None
    if f is None:  # torch: the tuned weights (a checkpoint's state dict, else the seeded synthetic model)
        w = model_weights(t)
        if w.choice is not None:
            weights_file = _torch_state_dict(spec.model, w.choice)
    try:
        return get_backend(spec.backend).load(spec, inputs, model_file=str(f) if f else None,
                                               weights_file=weights_file)
    finally:
        if weights_file:  # loaded into the runner's model by now
            Path(weights_file).unlink(missing_ok=True)


def _torch_state_dict(model: str, choice: str) -> str:
    """A state-dict file of `model` with the weights `choice` (a checkpoint, release or
    pretrained), for the torch runner (which loads a state dict)."""
    import tempfile

    import torch

    from ..zoo import create_model

    net = create_model(model, weights=choice)
    fd, path = tempfile.mkstemp(prefix="pfdeploy-tuned-", suffix=".pt")
    os.close(fd)
    torch.save(net.state_dict(), path)
    return path
