"""Device strings -> `Device`, and what can run on each device.

Parsing has no side effects: it never writes environment variables and never initialises a CUDA
context. `cuda:N` is checked with `torch.version.cuda` and `torch.cuda.device_count()` (which
ask the driver for a count without creating a context), OpenVINO names against
`openvino.Core().available_devices`.
"""
from __future__ import annotations

import functools
import os
import re
import sys
from dataclasses import dataclass

from ..errors import UsageError, is_installed

KINDS = ("cpu", "cuda", "openvino")

# OpenVINO plugin names (https://docs.openvino.ai: "Inference Devices and Modes"). Virtual
# devices (AUTO, HETERO, MULTI, BATCH) take a device list after a colon.
_OV_PLAIN = ("CPU", "GPU", "NPU")
_OV_VIRTUAL = ("AUTO", "HETERO", "MULTI", "BATCH")

ALLOWED_FORMS = ("cpu", "cuda", "cuda:N", "GPU", "GPU.N", "NPU", "AUTO", "HETERO:GPU,CPU",
                 "openvino:<OpenVINO device, e.g. GPU.0>")

_OV_RE = re.compile(r"^(CPU|GPU|NPU)(?:\.(\d+))?$")
_OV_VIRTUAL_RE = re.compile(r"^(AUTO|HETERO|MULTI|BATCH)(?::[A-Z0-9.,()]+)?$")


@dataclass(frozen=True)
class Device:
    """A device to run on.

    kind: 'cpu' | 'cuda' | 'openvino'; index: the CUDA ordinal or the OpenVINO device's number
    (GPU.1 -> 1), None when not numbered; name: the canonical string (`cpu`, `cuda:0`, or the
    OpenVINO device name such as `GPU.0`). `str(device)` is what goes into case keys.
    """

    kind: str
    index: int | None
    name: str

    def __post_init__(self):
        if self.kind not in KINDS:
            raise UsageError(f"device kind {self.kind!r} is not one of {', '.join(KINDS)}")

    def __str__(self) -> str:
        if self.kind == "openvino":
            return f"openvino:{self.name}"
        return self.name

    @property
    def torch_device(self) -> str | None:
        """The torch device string ('cpu', 'cuda:0'), or None for an OpenVINO-only device."""
        return self.name if self.kind in ("cpu", "cuda") else None

    @property
    def openvino_device(self) -> str | None:
        """The OpenVINO device name to compile for ('CPU' for the host CPU), or None for CUDA."""
        if self.kind == "cpu":
            return "CPU"
        return self.name if self.kind == "openvino" else None

    def to_dict(self) -> dict:
        return {"kind": self.kind, "index": self.index, "name": self.name, "device": str(self)}


def _usage(s: str) -> UsageError:
    return UsageError(f"unknown device {s!r}; allowed forms: {', '.join(ALLOWED_FORMS)}")


def parse_device(s: str | Device, check: bool = True) -> Device:
    """Parse a device string. Accepted: 'cpu'; 'cuda' (= cuda:0) and 'cuda:N'; OpenVINO device
    names ('GPU', 'GPU.1', 'NPU', 'AUTO', 'HETERO:GPU,CPU', optionally prefixed 'openvino:').
    'openvino:CPU' is the host CPU as OpenVINO names it and parses to the 'cpu' device.

    With `check` (default), a device this machine cannot use raises UsageError (exit code 2) with
    one line saying why: no CUDA build of torch, no NVIDIA driver, index out of range, OpenVINO
    not installed or the device not among `Core().available_devices`. Sets no environment
    variables and creates no CUDA context.
    """
    if isinstance(s, Device):
        dev = s
    else:
        if not isinstance(s, str) or not s.strip():
            raise _usage(str(s))
        dev = _parse(s.strip())
    if check:
        why = device_unavailable_reason(dev)
        if why:
            raise UsageError(f"device {dev} is not usable here: {why}")
    return dev


def _parse(s: str) -> Device:
    low = s.lower()
    if low == "cpu":
        return Device("cpu", None, "cpu")
    if low == "cuda" or low.startswith("cuda:"):
        idx = low[5:] if low.startswith("cuda:") else "0"
        if not idx.isdigit():
            raise _usage(s)
        return Device("cuda", int(idx), f"cuda:{int(idx)}")
    ov = s[len("openvino:"):] if low.startswith("openvino:") else s
    up = ov.upper()
    if up == "CPU":  # OpenVINO's name for the host CPU is the same device as 'cpu'
        return Device("cpu", None, "cpu")
    m = _OV_RE.match(up)
    if m:
        return Device("openvino", int(m.group(2)) if m.group(2) is not None else None, up)
    if _OV_VIRTUAL_RE.match(up):
        return Device("openvino", None, up)
    raise _usage(s)


# ----------------------------------------------------------------------------- availability

def _torch_cuda_version() -> str | None:
    """torch's CUDA build version read from torch/version.py without importing torch."""
    return _torch_version_field("cuda")


def _torch_version_field(field: str) -> str | None:
    """A field of torch/version.py (cuda, hip) read without importing torch; None when unset."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("torch")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        path = os.path.join(loc, "version.py")
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError:
            continue
        m = re.search(rf"^{field}\s*(?::\s*[^=]+)?=\s*(.+)$", text, re.M)
        if m:
            value = m.group(1).strip().strip("'\"")
            return None if value in ("None", "") else value
    return None


def nvidia_driver_version() -> str | None:
    """The NVIDIA kernel driver version from /proc (Linux), or None without a driver."""
    try:
        with open("/proc/driver/nvidia/version", encoding="utf-8") as f:
            m = re.search(r"Kernel Module\s+(?:for \S+\s+)?([\d.]+)", f.read())
            return m.group(1) if m else "unknown"
    except OSError:
        return None


def cuda_device_count() -> tuple[int, str | None]:
    """(number of CUDA devices torch can use, reason when 0). Imports torch but creates no CUDA
    context: torch.cuda.device_count() asks NVML or the driver for a count only."""
    if not is_installed("torch"):
        return 0, "torch is not installed"
    if "torch" not in sys.modules:  # answers that need no torch import (seconds): see _no_cuda_here
        why = _no_cuda_here()
        if why:
            return 0, why
    import torch

    if torch.version.cuda is None:
        hip = getattr(torch.version, "hip", None)
        if not hip:
            return 0, f"this torch build ({torch.__version__}) has no CUDA support"
    try:
        n = torch.cuda.device_count()
    except Exception as exc:  # a broken driver install raises here
        return 0, f"the CUDA driver cannot be used: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    if n == 0:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        if visible is not None and visible.strip() in ("", "-1"):
            return 0, f"CUDA_VISIBLE_DEVICES={visible!r} hides every GPU"
        if nvidia_driver_version() is None and not os.path.exists("/dev/nvidiactl"):
            return 0, "no NVIDIA driver found (no /proc/driver/nvidia/version)"
        return 0, "the NVIDIA driver reports no usable CUDA device"
    return n, None


def _no_cuda_here() -> str | None:
    """Why torch would see no CUDA device, read without importing it, when that is certain:
    torch built without CUDA, or (Linux, not WSL) no NVIDIA driver loaded. None: ask torch."""
    cuda, hip = _torch_cuda_version(), _torch_version_field("hip")
    if hip:
        return None
    if cuda is None:
        from importlib import metadata

        return f"this torch build ({metadata.version('torch')}) has no CUDA support"
    if not sys.platform.startswith("linux") or os.path.exists("/dev/dxg"):
        return None
    if nvidia_driver_version() is None and not os.path.exists("/dev/nvidiactl"):
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        if visible is not None and visible.strip() in ("", "-1"):
            return f"CUDA_VISIBLE_DEVICES={visible!r} hides every GPU"
        return "no NVIDIA driver found (no /proc/driver/nvidia/version)"
    return None


@functools.lru_cache(maxsize=1)
def openvino_devices() -> tuple[tuple[str, ...], str | None]:
    """(OpenVINO's available device names, reason when OpenVINO cannot be used). Kept per machine
    and OpenVINO version (pfdeploy.probecache): listing devices does not import OpenVINO."""
    if not is_installed("openvino"):
        return (), "openvino is not installed: pip install 'pfdeploy[cpu]'"
    from ..probecache import probed

    def probe():
        try:
            import openvino as ov

            return [list(ov.Core().available_devices), None], True
        except Exception as exc:  # broken install: missing shared libraries, plugin errors
            return [[], f"openvino cannot be loaded: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"], False

    names, why = probed("openvino.available_devices", "openvino", probe)
    return tuple(names), why


def device_unavailable_reason(dev: Device) -> str | None:
    """One line saying why `dev` cannot be used on this machine, or None when it can."""
    if dev.kind == "cpu":
        return None
    if dev.kind == "cuda":
        n, why = cuda_device_count()
        if why:
            return why
        if dev.index >= n:
            have = ", ".join(f"cuda:{i}" for i in range(n))
            return f"index {dev.index} is out of range: this machine has {n} CUDA device(s) ({have})"
        return None
    avail, why = openvino_devices()
    if why:
        return why
    if dev.name.split(":")[0] in _OV_VIRTUAL:
        return None  # OpenVINO resolves the device list itself and says what is missing
    base = dev.name.split(".")[0]
    if dev.name in avail or (dev.index is None and any(a.split(".")[0] == base for a in avail)):
        return None
    return f"OpenVINO does not see {dev.name} (available: {', '.join(avail) or 'none'})"


def no_cuda_reason() -> str | None:
    """Why this machine has no usable CUDA device, or None when it has one."""
    n, why = cuda_device_count()
    return why if n == 0 else None
