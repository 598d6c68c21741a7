"""Backends: one module per runtime, registered by name (Polygraphy's runners, optimum-benchmark's
backends). Each module defines a `Backend` subclass (what pfdeploy knows about the runtime:
artifact target, availability and install hint, tool versions to record, load timeout, devices,
precisions and scenarios probed on this machine, int8 recipe, worker process setup,
`load(...) -> Runner`) and its `Runner`, and exposes the instance as `BACKEND`.

The built-in runtimes are listed in `REGISTRY`; third parties add one through the entry-point
group `pfdeploy.backends` (name -> a module or object exposing `BACKEND`, or a Backend itself),
with no edit to pfdeploy (docs/architecture.md, "Plugins"). Entry points are read on first use
(importlib.metadata) and a plugin's module is imported only when its backend is asked for; a
plugin that cannot be loaded is reported in one warning line and left out of listings.

Importing this package imports no runtime: a backend module imports its runtime inside the
functions that use it, so listing backends and planning a run stay cheap.
"""
from __future__ import annotations

import difflib
import functools
import importlib

from ..errors import UsageError, UserError
from .base import Backend, Candidate, Runner, RunnerStateError, check_space, precision_table
from .case import CaseSpec
from ..plugins import EntryPointRegistry

# name -> module (relative to this package) defining `BACKEND`; the order is the canonical order
REGISTRY: dict[str, str] = {
    "torch": "torch_eager",
    "torch-compile": "torch_compile",
    "onnxruntime": "onnxruntime",
    "openvino": "openvino",
    "tensorrt": "tensorrt",
}
BACKEND_NAMES = tuple(REGISTRY)  # the built-in runtimes: what a run without --backends measures
ENTRY_POINT_GROUP = "pfdeploy.backends"
PLUGINS = EntryPointRegistry(ENTRY_POINT_GROUP, "backend", builtin=REGISTRY)


def backend_names() -> tuple[str, ...]:
    """Every backend: the built-in ones in the canonical order, then the plugins' by name."""
    return BACKEND_NAMES + PLUGINS.names()


def _unknown(name: str) -> UsageError:
    names = backend_names()
    close = difflib.get_close_matches(str(name), list(names), n=2, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return UsageError(f"unknown backend {name!r}; choose from {', '.join(names)}{hint}")


@functools.lru_cache(maxsize=None)
def get_backend(name: str) -> Backend:
    """The Backend registered as `name`, built in or a plugin's (UsageError with the list and a
    "did you mean" when unknown; UserError in one line when a plugin's module cannot be loaded)."""
    if name in REGISTRY:
        return importlib.import_module(f"{__name__}.{REGISTRY[name]}").BACKEND
    if name not in PLUGINS.names():
        raise _unknown(name)
    return PLUGINS.load(name, _check_backend)


def _check_backend(name: str, obj) -> Backend:
    """A plugin's entry point resolved to its Backend: the object itself, its `BACKEND`, or an
    instance of a Backend class; its `name` must be the entry point's name."""
    obj = getattr(obj, "BACKEND", obj)
    if isinstance(obj, type) and issubclass(obj, Backend):
        obj = obj()
    if not isinstance(obj, Backend):
        raise UserError(f"it is {type(obj).__name__}, not a pfdeploy.backends.Backend (or a module exposing BACKEND)")
    if obj.name != name:
        raise UserError(f"its Backend is named {obj.name!r}, not {name!r}")
    if obj.runner.backend != name:
        raise UserError(f"its Runner class says backend {obj.runner.backend!r}, not {name!r}")
    return obj


backend_info = get_backend  # the name the bench CLI and older code use


def all_backends() -> list[Backend]:
    """Every backend that loads: the built-in ones, then the plugins (a plugin that does not load
    is left out with one warning line)."""
    return [get_backend(n) for n in BACKEND_NAMES] + PLUGINS.loadable(_check_backend)


def for_target(target: str) -> Backend:
    """The backend that runs artifacts of exporter target `target` (onnx, openvino, trt, or a
    plugin's target): the first one registered for it (built-in runtimes first)."""
    for b in all_backends():
        if b.target == target:
            return b
    raise UsageError(f"no backend runs artifacts of target {target!r}")


def load_runner_class(name: str):
    """The Runner class of a backend (built in or a plugin's)."""
    return get_backend(name).runner


def availability(device) -> dict[str, str | None]:
    """{backend: None when it can run on `device` (Device or string) here, else the reason}."""
    from ..devices import parse_device

    dev = parse_device(device, check=False) if isinstance(device, str) else device
    return {b.name: b.unavailable(dev) for b in all_backends()}


def tool_distributions() -> dict[str, tuple[str, ...]]:
    """{tool: distributions that provide it, the first installed one wins}: the core tools
    (`pfdeploy.devices.machine.CORE_TOOLS`) and every runtime's (`Backend.tool_table()`, plugins
    included; the first declaration of a tool wins). The one table of distribution names."""
    from ..devices.machine import CORE_TOOLS

    table = dict(CORE_TOOLS)
    for b in all_backends():
        for tool, dists in b.tool_table().items():
            table.setdefault(tool, tuple(dists))
    return table


def tool_versions(*tools: str) -> dict:
    """{tool: version or None}: of the named `tools` (looked up in `tool_distributions()`; a tool
    it does not know is its own distribution), or, with no names, of every runtime's declared
    tools (`Backend.tools`), plugins included. Imports no runtime."""
    if tools:
        from ..versions import dist_version

        table = tool_distributions()
        return {t: dist_version(table.get(t, (t,))) for t in tools}
    out: dict = {}
    for b in all_backends():
        for tool, version in b.tool_versions().items():
            if out.get(tool) is None:
                out[tool] = version
    return out


def machine_metadata() -> dict:
    """`pfdeploy.devices.machine_metadata()` (the hardware and the core tools) with the versions
    of every runtime's tools added: what a run records about its machine."""
    from ..devices import machine_metadata as hardware

    meta = hardware()
    runtimes = tool_versions()
    meta["tools"] = {**meta["tools"], **{k: v for k, v in runtimes.items() if k not in meta["tools"]}}
    return meta


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


__all__ = ["BACKEND_NAMES", "Backend", "Candidate", "CaseSpec", "ENTRY_POINT_GROUP", "REGISTRY", "Runner", "RunnerStateError",
           "all_backends", "availability", "backend_availability", "backend_info", "backend_names", "backends_for", "check_space",
           "for_target", "get_backend", "list_devices", "load_runner_class", "machine_metadata", "precision_table",
           "tool_distributions", "tool_versions"]


def artifact_request_of(spec: CaseSpec) -> dict | None:
    """The exporter request of a case's artifact: its backend's request for the precision and
    batch, updated by the case's `artifact` option (a tune candidate's int8 recipe or calibration
    size; `bench --tuned`'s {"file": path} of the tuned artifact). None: built from the zoo."""
    req = get_backend(spec.backend).artifact_request(spec.precision, spec.batch)
    extra = spec.options.get("artifact") if isinstance(spec.options, dict) else None
    if req is None or not extra:
        return req
    return {**req, **extra}
