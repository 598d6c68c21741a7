"""Backends: one module per runtime, registered by name (Polygraphy's runners, optimum-benchmark's
backends). Each module defines a `Backend` subclass (what pfdeploy knows about the runtime:
artifact target, availability and install hint, devices, precisions and scenarios probed on this
machine, int8 recipe, worker process setup, `load(...) -> Runner`) and its `Runner`.

Adding a runtime is one module plus one line in `REGISTRY` (see docs/architecture.md).

Importing this package imports no runtime: a backend module imports its runtime inside the
functions that use it, so listing backends and planning a run stay cheap.
"""
from __future__ import annotations

import difflib
import functools
import importlib

from ..errors import UsageError
from .base import Backend, Runner, RunnerStateError

# name -> module (relative to this package) defining `BACKEND`; the order is the canonical order
REGISTRY: dict[str, str] = {
    "torch": "torch_eager",
    "torch-compile": "torch_compile",
    "onnxruntime": "onnxruntime",
    "openvino": "openvino",
    "tensorrt": "tensorrt",
}
BACKEND_NAMES = tuple(REGISTRY)

# Runners that exist for the engine's own tests (not offered on the command line): "module:Class".
# They live in the test suite (tests/fake_runner.py; conftest.py puts tests/ on PYTHONPATH), and
# PFDEPLOY_TEST_RUNNERS="name=module:Class,..." (names start with "_") adds or overrides entries.
_INTERNAL = {"_fake": "fake_runner:FakeRunner"}
TEST_RUNNERS_ENV = "PFDEPLOY_TEST_RUNNERS"


def _test_runner(name: str) -> str | None:
    """"module:Class" of the internal test runner `name`, or None."""
    if not str(name).startswith("_"):
        return None
    import os

    for entry in os.environ.get(TEST_RUNNERS_ENV, "").split(","):
        key, _, path = entry.partition("=")
        if key.strip() == name and ":" in path:
            return path.strip()
    return _INTERNAL.get(name)


def _unknown(name: str) -> UsageError:
    close = difflib.get_close_matches(str(name), list(REGISTRY), n=2, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return UsageError(f"unknown backend {name!r}; choose from {', '.join(REGISTRY)}{hint}")


@functools.lru_cache(maxsize=None)
def get_backend(name: str) -> Backend:
    """The Backend registered as `name` (UsageError with the list and a "did you mean" when unknown)."""
    if name not in REGISTRY:
        raise _unknown(name)
    return importlib.import_module(f"{__name__}.{REGISTRY[name]}").BACKEND


backend_info = get_backend  # the name the bench CLI and older code use


def all_backends() -> list[Backend]:
    return [get_backend(n) for n in REGISTRY]


def for_target(target: str) -> Backend:
    """The backend that runs artifacts of exporter target `target` (onnx, openvino, trt)."""
    for b in all_backends():
        if b.target == target:
            return b
    raise UsageError(f"no backend runs artifacts of target {target!r}")


def load_runner_class(name: str):
    """The Runner class of a backend (or of an internal test backend such as `_fake`)."""
    path = _test_runner(name)
    if path is not None:
        mod, cls = path.split(":")
        return getattr(importlib.import_module(mod), cls)
    return get_backend(name).runner


def availability(device) -> dict[str, str | None]:
    """{backend: None when it can run on `device` (Device or string) here, else the reason}."""
    from ..devices import parse_device

    dev = parse_device(device, check=False) if isinstance(device, str) else device
    return {b.name: b.unavailable(dev) for b in all_backends()}


backend_availability = availability


def backends_for(device) -> list[str]:
    """Backends that can run on `device` here, in the canonical order."""
    return [n for n, why in availability(device).items() if why is None]


def list_devices() -> list[dict]:
    """What this machine has (pfdeploy.devices.discover_devices) and, for each device, the
    backends that run on it, the reasons of the others, and each backend's precisions here."""
    from ..devices import discover_devices

    out = []
    for entry in discover_devices():
        dev = entry.pop("_device")
        avail = availability(dev)
        runs = [b for b, why in avail.items() if why is None]
        entry.update({
            "backends": runs,
            "unavailable": {b: r for b, r in avail.items() if r is not None},
            "precisions": {b: get_backend(b).supported_precisions(dev) for b in runs},
        })
        out.append(entry)
    return out


__all__ = ["BACKEND_NAMES", "Backend", "REGISTRY", "Runner", "RunnerStateError", "all_backends", "availability",
           "backend_availability", "backend_info", "backends_for", "for_target", "get_backend", "list_devices",
           "load_runner_class"]
