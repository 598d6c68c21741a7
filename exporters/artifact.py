"""Artifact directories and their manifest.json: reading, validating, atomic writing.

An artifact is one directory holding the model file(s) and `manifest.json`. A directory only
gets its final name once everything in it is written (temporary directory, then rename), and the
manifest is rewritten through a temporary file and `os.replace`, so an interrupted export never
leaves something that looks complete.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from ..clock import utc_now_iso  # noqa: E402 (the one clock)
from importlib import metadata
from pathlib import Path

from ..errors import UserError

MANIFEST = "manifest.json"
FORMAT = "pfdeploy-artifact"
VERSION = 1
STATUSES = ("ok", "failed", "unverified", "inconclusive")
REQUIRED = ("format", "version", "status", "key", "model", "weights", "target", "precision",
            "exporter", "tools", "files", "model_file", "sha256", "created_at", "pfdeploy_version")


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


def parity_verdict(parity: dict | None) -> str:
    """One word for a parity record (the manifest's `parity`, carried into every result row):
    passed | failed | inconclusive | unverified (no record) | reference (PyTorch itself, the
    reference everything is checked against)."""
    if not parity:
        return "unverified"
    if parity.get("status") == "reference":
        return "reference"
    if parity.get("verdict") == "inconclusive" and parity.get("overall"):
        # re-judged by the current rule: a record written by an older, laxer rule (every miss
        # of a model whose rounded-weights baseline also missed) may be a failure today
        from .parity import classify

        return classify(parity)[0]
    if parity.get("verdict") in ("passed", "failed", "inconclusive"):
        return parity["verdict"]
    if isinstance(parity.get("passed"), bool):
        return "passed" if parity["passed"] else "failed"
    return "unverified"


def utc_now() -> str:
    """Now, UTC, ISO 8601 to the second (pfdeploy.clock: the one clock)."""
    return utc_now_iso()


def tool_versions(*modules: str) -> dict:
    """Installed distribution versions (None where not installed), without importing them."""
    dists = {"torch": "torch", "onnx": "onnx", "onnxscript": "onnxscript", "onnxruntime": None,
             "openvino": "openvino", "nncf": "nncf", "tensorrt": None, "timm": "timm"}
    out = {}
    for m in modules:
        names = [dists[m]] if dists.get(m) else {
            "onnxruntime": ["onnxruntime", "onnxruntime-gpu"],
            "tensorrt": ["tensorrt", "tensorrt-cu12", "tensorrt-cu13", "tensorrt-cu11"]}.get(m, [m])
        out[m] = None
        for n in names:
            try:
                out[m] = metadata.version(n)
                break
            except metadata.PackageNotFoundError:
                continue
    return out


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


def load_artifact(path, check_hash: bool = True) -> Artifact:
    """Open an artifact from its directory, its manifest.json or its model file. Validates the
    manifest and every listed file's size (and sha256 unless `check_hash=False`): a truncated or
    corrupt artifact raises a UserError naming the file, never a runtime crash later."""
    p = Path(path).expanduser()
    if not p.exists():
        raise UserError(f"artifact not found: {p}")
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


# --- atomic directories ----------------------------------------------------------------------

_OWNER_RE = None
STALE_UNOWNED_S = 6 * 3600  # a temp dir whose owner cannot be checked is removed after this long
STALE_FOREIGN_S = 24 * 3600  # ... and one made on another host (a shared cache) after this long


def _host() -> str:
    import re
    import socket

    return re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32] or "host"


def _owner_tag() -> str:
    """'pid<PID>@<host>': who made a temporary directory, so a later run can tell a dead
    export's leftovers (removed) from a live one's (kept)."""
    return f"pid{os.getpid()}@{_host()}"


def make_temp_dir(parent: Path, name: str) -> Path:
    """A private temporary directory beside the final location (same filesystem, so the final
    rename is atomic). Its name starts with '.tmp-' so nothing treats it as an artifact, and
    names its owner (pid and host) for `sweep_stale_temp`."""
    parent = Path(parent)
    try:
        parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".tmp-{name}-{_owner_tag()}-", dir=parent))
    except OSError as exc:
        raise UserError(f"cannot write to {parent}: {exc.strerror or exc}") from None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale_temp(root: Path, now: float | None = None) -> list[Path]:
    """Remove what killed exports left in the cache: '.tmp-*' and '.old-*' directories (one
    level below `root`, and in `root`) whose owner process on this host is gone, or that are
    older than a day (another host's) or 6 hours (no owner recorded). Best effort: an
    unreadable or read-only cache is left alone. Returns the removed paths."""
    import re

    global _OWNER_RE
    if _OWNER_RE is None:
        _OWNER_RE = re.compile(r"-pid(\d+)@([A-Za-z0-9]+)-")
    now = time.time() if now is None else now
    root = Path(root)
    removed = []
    try:
        parents = [root] + [d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")]
    except OSError:
        return removed
    host = _host()
    for parent in parents:
        try:
            entries = [e for e in parent.iterdir() if e.name.startswith((".tmp-", ".old-")) and e.is_dir()]
        except OSError:
            continue
        for e in entries:
            try:
                age = now - e.stat().st_mtime
            except OSError:
                continue
            m = _OWNER_RE.search(e.name)
            if m and m.group(2) == host:
                stale = not _pid_alive(int(m.group(1)))
            elif m:
                stale = age > STALE_FOREIGN_S
            else:
                stale = age > STALE_UNOWNED_S
            if stale:
                shutil.rmtree(e, ignore_errors=True)
                if not e.exists():
                    removed.append(e)
    return removed


def publish_dir(tmp: Path, final: Path, replace: bool = False) -> Path:
    """Rename the finished `tmp` directory to `final`. If `final` exists: with `replace`, the old
    one is moved aside first and deleted after the swap; without, `tmp` is discarded and the
    existing directory wins (another process finished the same export first)."""
    tmp, final = Path(tmp), Path(final)
    if final.exists():
        if not replace:
            shutil.rmtree(tmp, ignore_errors=True)
            return final
        old = final.with_name(f".old-{final.name}-{_owner_tag()}-{int(time.time() * 1000)}")
        os.rename(final, old)
        try:
            os.rename(tmp, final)
        except OSError:
            os.rename(old, final)
            raise
        shutil.rmtree(old, ignore_errors=True)
        return final
    try:
        os.rename(tmp, final)
    except OSError:
        if final.exists():  # lost a race with a concurrent export of the same key
            shutil.rmtree(tmp, ignore_errors=True)
            return final
        raise
    return final


def check_writable_dir(path: Path, what: str = "output directory") -> None:
    """Fail early (before an expensive export) when `path` cannot be created or written."""
    path = Path(path).expanduser()
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise UserError(f"{what} {path}: {probe} is a file, not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"{what} {path} is not writable ({probe} denies write access)")
