"""Export targets: one module per artifact format, registered by name like the backends.

The built-in targets are `BUILTIN` (onnx, openvino, trt); third parties add one through the
entry-point group `pfdeploy.targets` (name -> a module or object exposing `TARGET`, or a Target
itself), with no edit to pfdeploy (docs/architecture.md, "Plugins"). A target module imports
nothing heavy at module level; a plugin's module is imported only when its target is asked for
(a plugin that cannot be loaded: one UserError line when named, one warning line in listings).

    get_target("tensorrt") -> Target          # a name or an alias; UsageError with the choices
    canonical_target("ov") -> "openvino";  target_names() -> ("onnx", "openvino", "trt", <plugins>)
"""
from __future__ import annotations

import difflib
import functools
import importlib

from ...errors import UsageError, UserError
from ...plugins import EntryPointRegistry
from .base import ExportContext, ExportPlan, Target

# name -> module (relative to this package) defining `TARGET`; the order is the canonical order
BUILTIN: dict[str, str] = {"onnx": "onnx", "openvino": "openvino", "trt": "tensorrt"}
ENTRY_POINT_GROUP = "pfdeploy.targets"
PLUGINS = EntryPointRegistry(ENTRY_POINT_GROUP, "export target", builtin=BUILTIN)


def _check_target(name: str, obj) -> Target:
    obj = getattr(obj, "TARGET", obj)
    if isinstance(obj, type) and issubclass(obj, Target):
        obj = obj()
    if not isinstance(obj, Target):
        raise UserError(f"it is {type(obj).__name__}, not a pfdeploy.exporters.targets.Target "
                        f"(or a module exposing TARGET)")
    if obj.name != name:
        raise UserError(f"its Target is named {obj.name!r}, not {name!r}")
    return obj


@functools.lru_cache(maxsize=None)
def _builtin(name: str) -> Target:
    return importlib.import_module(f"{__name__}.{BUILTIN[name]}").TARGET


def target_names() -> tuple[str, ...]:
    """Every target: the built-in ones in the canonical order, then the plugins' by name."""
    return tuple(BUILTIN) + PLUGINS.names()


def all_targets() -> list[Target]:
    """Every target that loads (a plugin that does not is left out with one warning line)."""
    return [_builtin(n) for n in BUILTIN] + PLUGINS.loadable(_check_target)


def _aliases() -> dict[str, str]:
    table = {}
    for t in (_builtin(n) for n in BUILTIN):
        table.update({a: t.name for a in (t.name, *t.aliases)})
    return table


def canonical_target(target: str) -> str:
    """The target's name for a name or alias (case-insensitive for the built-in ones)."""
    raw = str(target).strip()
    key = raw.lower()
    builtin = _aliases()
    if key in builtin:
        return builtin[key]
    plugins = PLUGINS.names()
    if raw in plugins:
        return raw
    for name in plugins:  # a plugin's aliases are known once it is loaded
        t = PLUGINS.try_load(name, _check_target)
        if t is not None and key in (a.lower() for a in t.aliases):
            return t.name
    shown = [f"{n} (tensorrt)" if n == "trt" else n for n in target_names()]
    close = difflib.get_close_matches(key, list(builtin) + list(plugins), n=2, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise UsageError(f"unknown target {target!r}; choose from {', '.join(shown)}{hint}")


def get_target(target: str) -> Target:
    """The Target for a name or alias (UsageError when unknown, UserError when a plugin is broken)."""
    name = canonical_target(target)
    if name in BUILTIN:
        return _builtin(name)
    return PLUGINS.load(name, _check_target)


def check_precision(target: str, precision: str) -> str:
    """`precision` (lower-cased) when `target` exports it, else a UsageError with the choices."""
    return get_target(target).check_precision(precision)


__all__ = ["BUILTIN", "ENTRY_POINT_GROUP", "ExportContext", "ExportPlan", "Target", "all_targets",
           "canonical_target", "check_precision", "get_target", "target_names"]
