"""What a runtime reports about this machine, asked once and kept: the answers that need the
runtime itself (OpenVINO's devices and their OPTIMIZATION_CAPABILITIES, ONNX Runtime's execution
providers) cost its import (0.2-0.5 s, seconds with its plugins), so listing verbs read them
from a small JSON file in the cache directory instead.

    probed("openvino.devices", "openvino", lambda: list(ov.Core().available_devices))

The answer is kept per machine (host name, /etc/machine-id, the accelerator device nodes) and per
installed version of the runtime's distribution, so an upgrade, a new driver node or another host
sharing the cache directory asks again. A runtime that this process has already imported is
asked directly (it costs nothing more, and a test's stand-in is what it reports); only what a
runtime imported by a probe itself answers is kept. Failed
probes are not kept: a broken install is asked again next time. The file is written atomically and
only when the path is a plain file or absent; any problem with the cache means asking the
runtime, never an error. PFDEPLOY_PROBE_CACHE=0 turns the cache off.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
import sys
from pathlib import Path
from typing import Any, Callable

from .versions import installed

FORMAT = 1
ENV = "PFDEPLOY_PROBE_CACHE"
_PROBED_IMPORTS: set[str] = set()  # runtimes this process imported through a probe


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return ""


def _nodes(folder: str) -> list[str]:
    try:
        return sorted(os.listdir(folder))
    except OSError:
        return []


def machine_key() -> str:
    """A short stable key of this machine and the accelerators it exposes right now."""
    parts = [socket.gethostname(), platform.machine(), platform.system(), _read("/etc/machine-id"),
             ",".join(_nodes("/dev/dri")), ",".join(_nodes("/dev/accel")),
             ",".join(n for n in _nodes("/dev") if n.startswith("nvidia"))]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def cache_file() -> Path:
    from .config import cache_dir

    return cache_dir() / "probes" / f"{machine_key()}.json"


def _enabled() -> bool:
    from .config import env_flag

    try:
        return env_flag(ENV, True)
    except Exception:  # noqa: BLE001 - a bad value is reported where flags are parsed for real
        return True


def _load(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("answers"), dict):
        return {}
    return doc["answers"]


def _store(path: Path, key: str, value: Any) -> None:
    """Add one answer to the file: read, update, write to a temporary file and rename."""
    import tempfile

    try:
        if path.is_symlink() or (path.exists() and not path.is_file()):
            return  # not pfdeploy's own file: leave it alone
        path.parent.mkdir(parents=True, exist_ok=True)
        answers = _load(path)
        answers[key] = value
        fd, tmp = tempfile.mkstemp(prefix=".pfdeploy-tmp-probe.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"format": FORMAT, "answers": answers}, f, indent=1, sort_keys=True)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except (OSError, TypeError, ValueError):
        return  # a read-only or full cache: the answer is simply not kept


def probed(name: str, module: str, probe: Callable[[], tuple[Any, bool]], dists: tuple[str, ...] = ()) -> Any:
    """The answer of `probe() -> (value, keep)` for this machine and the installed version of
    `module` (its distributions `dists`, default the module's name): from the cache when it has
    one, else by calling `probe` and, when `keep`, keeping its JSON value. `module` already
    imported in this process: `probe` is called directly."""
    if not _enabled():
        return probe()[0]
    found = installed(dists or (module,))
    version = f"{found[0]} {found[1]}" if found else None
    if version is None:  # not installed from a distribution (a source tree): nothing to key on
        return probe()[0]
    key = f"{name} @ {version}"
    try:
        path = cache_file()
        answers = _load(path)
    except Exception:  # noqa: BLE001 - no usable cache directory
        return probe()[0]
    if module in sys.modules and module not in _PROBED_IMPORTS:  # imported by others: ask it, keep nothing
        return probe()[0]
    if key in answers and module not in sys.modules:
        return answers[key]
    before = module in sys.modules
    value, keep = probe()
    if not before and module in sys.modules:
        _PROBED_IMPORTS.add(module)  # imported by a probe here: the real runtime, its answers may be kept
    if keep and answers.get(key) != value:
        _store(path, key, value)
    return value
