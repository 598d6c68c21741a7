"""Runner registry: one module per runtime, loaded only when that backend is used.

This module imports only the standard library: listing backends, checking which are installed and
which precisions each supports must not import torch, onnxruntime or openvino.
"""
from __future__ import annotations

import importlib
import os
import shutil
from dataclasses import dataclass

from ...errors import INSTALL_HINTS, UsageError, is_installed


@dataclass(frozen=True)
class BackendInfo:
    name: str
    runner: str  # "module:Class", module relative to this package
    requires: tuple[str, ...]  # importable modules it needs
    target: str | None  # exporter target of its artifact (None: built from the zoo in the worker)
    devices: tuple[str, ...]  # device kinds: cpu, cuda, openvino
    precisions: dict  # device kind -> precisions supported
    install_hint: str
    description: str

    def supports(self, device_kind: str, precision: str) -> str | None:
        """None when the combination runs, else the reason it does not."""
        if device_kind not in self.devices:
            return f"{self.name} does not run on {device_kind} devices (it runs on {', '.join(self.devices)})"
        ok = self.precisions.get(device_kind, ())
        if precision not in ok:
            return f"{self.name} on {device_kind} supports {', '.join(ok)}, not {precision}"
        return None

    def missing(self) -> str | None:
        """None when installed, else the reason with the install hint."""
        for mod in self.requires:
            if not is_installed(mod):
                return f"{mod} is not installed: {self.install_hint}"
        if self.name == "torch-compile" and not (shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")):
            return "torch.compile (inductor) needs a C++ compiler on the CPU: install g++ (apt-get install g++)"
        return None


BACKENDS: dict[str, BackendInfo] = {b.name: b for b in (
    BackendInfo("torch", "torch_eager:TorchRunner", ("torch",), None, ("cpu", "cuda"),
                {"cpu": ("fp32", "bf16"), "cuda": ("fp32", "fp16", "bf16")},
                "pip install torch", "PyTorch eager (inference_mode; channels_last option)"),
    BackendInfo("torch-compile", "torch_compile:TorchCompileRunner", ("torch",), None, ("cpu", "cuda"),
                {"cpu": ("fp32", "bf16"), "cuda": ("fp32", "fp16", "bf16")},
                "pip install torch", "torch.compile, inductor backend (CUDA graphs option on GPU)"),
    BackendInfo("onnxruntime", "onnxruntime:OnnxRuntimeRunner", ("onnxruntime",), "onnx", ("cpu", "cuda"),
                {"cpu": ("fp32", "fp16", "int8"), "cuda": ("fp32", "fp16", "int8")},
                INSTALL_HINTS["onnxruntime"], "ONNX Runtime (CPU EP; CUDA/TensorRT EPs with onnxruntime-gpu)"),
    BackendInfo("openvino", "openvino:OpenVinoRunner", ("openvino",), "openvino", ("cpu", "openvino"),
                {"cpu": ("fp32", "fp16", "int8"), "openvino": ("fp32", "fp16", "int8")},
                INSTALL_HINTS["openvino"], "OpenVINO runtime (latency/throughput hints, AsyncInferQueue)"),
    BackendInfo("tensorrt", "tensorrt:TensorRtRunner", ("tensorrt", "torch"), "trt", ("cuda",),
                {"cuda": ("fp32", "fp16", "int8")},
                INSTALL_HINTS["tensorrt"], "TensorRT 10 engine (execute_async_v3, CUDA events)"),
)}

# Runners of the engine's own tests live in the test suite: PFDEPLOY_TEST_RUNNERS="name=module:Class,..."
# (names start with "_"; the module must be importable, conftest.py puts tests/ on PYTHONPATH).
TEST_RUNNERS_ENV = "PFDEPLOY_TEST_RUNNERS"


def _test_runner(name: str) -> str | None:
    if not name.startswith("_"):
        return None
    for entry in os.environ.get(TEST_RUNNERS_ENV, "").split(","):
        key, _, path = entry.partition("=")
        if key.strip() == name and ":" in path:
            return path.strip()
    return None


def backend_info(name: str) -> BackendInfo:
    if name not in BACKENDS:
        import difflib

        close = difflib.get_close_matches(name, list(BACKENDS), n=2, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UsageError(f"unknown backend {name!r}; choose from {', '.join(BACKENDS)}{hint}")
    return BACKENDS[name]


def load_runner_class(name: str):
    """The runner class of a backend (imports its module, not the runtime: runtimes are
    imported in the runner's `_load`)."""
    if name in BACKENDS:
        mod, cls = BACKENDS[name].runner.split(":")
        return getattr(importlib.import_module(f"{__name__}.{mod}"), cls)
    path = _test_runner(name)
    if path is None:
        backend_info(name)  # raises with the list
    mod, cls = path.split(":")
    return getattr(importlib.import_module(mod), cls)
