"""Discovery: the devices this machine has (the CPU, CUDA devices, OpenVINO devices), for
`pfdeploy devices` and `pfdeploy.backends.list_devices`. Built on `parse` (device names,
availability) and `machine` (CPU and memory facts); neither of those imports this module.
"""
from __future__ import annotations

from .machine import cpu_info, memory_bytes
from .parse import _OV_RE, Device, cuda_device_count, openvino_devices


def discover_devices() -> list[dict]:
    """What this machine has: the CPU first, then CUDA devices, then OpenVINO devices other than
    its CPU plugin. Each entry: device (the string to pass to --device), kind, name (model name),
    details (memory, capability, ...), and `_device` (the Device). Which backends run on each is
    `pfdeploy.backends.list_devices()`. Reads CUDA device properties, so it initialises CUDA in
    the calling process when a GPU is present (workers that need a clean CUDA state are spawned)."""
    cpu = cpu_info()
    ov_avail, _ = openvino_devices()
    entries = [{"device": "cpu", "kind": "cpu", "name": cpu.get("model") or "unknown CPU", "details": {
        "physical_cores": cpu.get("physical_cores"), "logical_cores": cpu.get("logical_cores"),
        "memory_gib": round(memory_bytes() / 2**30, 1) if memory_bytes() else None,
        "openvino_devices": list(ov_avail), "isa": cpu.get("isa")}, "_device": Device("cpu", None, "cpu")}]
    n, _ = cuda_device_count()
    if n:
        import torch

        for i in range(n):
            props = torch.cuda.get_device_properties(i)
            entries.append({"device": f"cuda:{i}", "kind": "cuda", "name": props.name, "details": {
                "memory_gib": round(props.total_memory / 2**30, 1), "capability": f"{props.major}.{props.minor}"},
                "_device": Device("cuda", i, f"cuda:{i}")})
    for name in ov_avail:
        if name.split(".")[0] == "CPU":
            continue
        try:
            import openvino as ov

            full = ov.Core().get_property(name, "FULL_DEVICE_NAME")
        except Exception:
            full = name
        m = _OV_RE.match(name)
        dev = Device("openvino", int(m.group(2)) if m and m.group(2) else None, name)
        entries.append({"device": str(dev), "kind": "openvino", "name": str(full), "details": {}, "_device": dev})
    return entries
