"""Devices: parsing and discovery, machine metadata and id, thread and denormal control.

    parse_device("cuda:0") -> Device(kind, index, name)     # UsageError (exit 2) when unusable
    discover_devices() -> list[dict]                        # the hardware (pfdeploy.backends.list_devices
                                                            # adds which backends run on each)
    cpu_flags() -> frozenset; cpu_native("bf16") -> None | reason
    machine_metadata() -> dict; machine_id(meta=None) -> str; tool_versions() -> dict
    physical_cores() -> int
    apply_thread_settings(threads, interop=1) -> dict       # in a fresh worker process
    set_flush_denormal() -> bool

Hardware probing only: what runs where is `pfdeploy.backends`. Importing this package imports only the standard library; torch, onnxruntime and openvino are
imported by the functions that need them.
"""
from __future__ import annotations

from .machine import (cpu_flags, cpu_info, cpu_native, machine_id, machine_metadata, memory_bytes, nvml_gpus,
                      physical_cores, tool_versions)
from .discover import discover_devices
from .parse import (ALLOWED_FORMS, Device, cuda_device_count, device_unavailable_reason, no_cuda_reason,
                    openvino_devices, parse_device)
from .threads import apply_thread_settings, set_flush_denormal

__all__ = [
    "ALLOWED_FORMS", "Device", "apply_thread_settings", "cpu_flags", "cpu_info", "cpu_native",
    "cuda_device_count", "device_unavailable_reason", "discover_devices",
    "machine_id", "machine_metadata", "memory_bytes", "no_cuda_reason", "nvml_gpus",
    "openvino_devices", "parse_device", "physical_cores",
    "set_flush_denormal", "tool_versions",
]
