"""Run a function right after a module is imported, without importing it now (the post-import
hook of PEP 369 / wrapt.importer). `pfdeploy.zoo` registers its models in timm this way: importing
the zoo stays cheap (listing models loads no torch or timm), and `timm.create_model('pit_s_max')`
still works in any process that imported the zoo, whenever it imports timm."""
from __future__ import annotations

import importlib.abc
import importlib.util
import logging
import sys
from typing import Callable

log = logging.getLogger(__name__)


def _call(name: str, hook: Callable[[], None]) -> None:
    try:
        hook()
    except Exception:  # noqa: BLE001 - a failing hook must not make the module unimportable
        log.warning("pfdeploy: the hook run after importing %s failed", name, exc_info=True)


class _Finder(importlib.abc.MetaPathFinder):
    """Finds nothing itself: when `name` is imported, it asks the other finders for the module's
    spec and wraps the loader's exec_module so the hooks run once the module is executed."""

    def __init__(self, name: str):
        self.name = name
        self.hooks: list[Callable[[], None]] = []

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)  # one import: the finder leaves, and cannot find itself below
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_module, hooks = spec.loader.exec_module, self.hooks

        def exec_then_hooks(module):
            exec_module(module)
            for hook in hooks:
                _call(fullname, hook)

        spec.loader.exec_module = exec_then_hooks  # this spec's loader instance only
        return spec


def after_import(name: str, hook: Callable[[], None]) -> None:
    """Call `hook()` once the top-level module `name` has been imported: now when it already is,
    else right after its import completes (in whichever code imports it)."""
    if name in sys.modules:
        _call(name, hook)
        return
    finder = next((f for f in sys.meta_path if isinstance(f, _Finder) and f.name == name), None)
    if finder is None:
        finder = _Finder(name)
        sys.meta_path.insert(0, finder)
    finder.hooks.append(hook)
