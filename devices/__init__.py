"""Devices: parsing and discovery, machine metadata and id, thread and denormal control.

    parse_device("cuda:0") -> Device(kind, index, name)     # UsageError (exit 2) when unusable
    list_devices() -> list[dict]                            # devices and the backends for each
    backends_for(device) -> list[str]
    machine_metadata() -> dict; machine_id(meta=None) -> str; tool_versions() -> dict
    physical_cores() -> int
    apply_thread_settings(threads, interop=1) -> dict       # in a fresh worker process
    set_flush_denormal() -> bool

Importing this package imports only the standard library; torch, onnxruntime and openvino are
imported by the functions that need them.
"""
from __future__ import annotations

from .machine import (cpu_info, machine_id, machine_metadata, memory_bytes, nvml_gpus, physical_cores,
                      tool_versions)
from .parse import (ALLOWED_FORMS, BACKENDS, Device, backend_availability, backends_for,
                    cuda_device_count, device_unavailable_reason, list_devices, no_cuda_reason,
                    openvino_devices, parse_device)
from .threads import apply_thread_settings, runtime_thread_options, set_flush_denormal

__all__ = [
    "ALLOWED_FORMS", "BACKENDS", "Device", "apply_thread_settings", "backend_availability",
    "backends_for", "cpu_info", "cuda_device_count", "device_unavailable_reason", "list_devices",
    "machine_id", "machine_metadata", "memory_bytes", "no_cuda_reason", "nvml_gpus",
    "openvino_devices", "parse_device", "physical_cores", "runtime_thread_options",
    "set_flush_denormal", "tool_versions",
]
