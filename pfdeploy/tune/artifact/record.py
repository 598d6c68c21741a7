"""tuned.json: its format, read back validated (the artifact present, its sha256 recomputed), and
what it says: the case `pfdeploy bench --tuned DIR` measures, the weights it was measured with."""
from __future__ import annotations

import json
from pathlib import Path

from ...errors import UserError, require_path

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
RETUNE = "run `pfdeploy tune` again to write the directory anew"  # a tuned dir is not re-exported



def read_tuned(directory) -> dict:
    """tuned.json of the tuned directory, validated: its format tag, every required field, and
    (for an artifact) the model file and manifest present, every file's size and the artifact's
    sha256 recomputed from the bytes and equal to the recorded one. One UserError per problem."""
    d = Path(directory).expanduser()
    require_path(d, "tuned directory")  # a link loop is one, not "not found"
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
    problem = _type_problem(t)
    if problem:
        raise UserError(f"{path}: {problem}")
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
    from ...exporters.manifest_io import artifact_sha256, files_digest, read_manifest

    man = read_manifest(d, fix=RETUNE)
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


def _type_problem(t: dict) -> str | None:
    """The first field of a tuned record whose type is not what the readers take (None: all
    fine): counts are whole numbers >= 1, the measured interval positive finite numbers, names
    strings. A hand-edited "batch": "4" is one line here, not a traceback in bench --tuned."""
    import math

    for k in ("batch", "threads"):
        v = t[k]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            return f"{k} must be a whole number >= 1, not {v!r}"
    for k in ("model", "weights", "backend", "device", "precision", "scenario"):
        if not isinstance(t[k], str) or not t[k]:
            return f"{k} must be a non-empty string, not {t[k]!r}"
    if not isinstance(t["variant"], str):
        return f"variant must be a string, not {t['variant']!r}"
    values = [t["measured"][k] for k in MEASURED]
    for k, v in zip(MEASURED, values):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            return f"measured.{k} must be a positive number of milliseconds, not {v!r}"
    _, low, high = values
    if low > high:  # (the median itself may lie outside: the interval is the processes', not the pooled median's)
        return f"measured interval [{low!r}, {high!r}] ms is inverted (low above high)"
    settings = t.get("runtime_settings")
    if settings is not None and not isinstance(settings, dict):
        return f"runtime_settings must be an object or null, not {settings!r}"
    a = t["artifact"]
    if a["file"] is not None and not isinstance(a["file"], str):
        return f"artifact.file must be a file name or null, not {a['file']!r}"
    if a["file"] is not None and not isinstance(a["sha256"], str):
        return f"artifact.sha256 must be a string, not {a['sha256']!r}"
    if a.get("request") is not None and not isinstance(a["request"], dict):
        return f"artifact.request must be an object or null, not {type(a['request']).__name__}"
    if t.get("weights_file") is not None and not isinstance(t["weights_file"], str):
        return f"weights_file must be a path or null, not {t['weights_file']!r}"
    return None


def model_path(directory, tuned: dict | None = None) -> Path | None:
    """The absolute path of the tuned model file (None for a torch winner)."""
    t = tuned or read_tuned(directory)
    f = t["artifact"]["file"]
    return (Path(directory).expanduser().absolute() / f) if f else None


def case_of(tuned: dict, options: dict | None = None):
    """The CaseSpec of a tuned record (its runner options, or `options`)."""
    from ...backends.case import CaseSpec

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
    from ...pretrained import ModelWeights

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
