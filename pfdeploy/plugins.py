"""Entry-point registries: how third-party distributions add runtimes (`pfdeploy.backends`) and
export targets (`pfdeploy.targets`) with no edit to pfdeploy (docs/architecture.md, "Plugins").

An `EntryPointRegistry` reads its group's entry points on first use (importlib.metadata reads the
installed distributions' metadata; nothing is imported), and imports a plugin's module only when
that plugin is asked for. A plugin that cannot be used (its module does not import, its object is
not what the group expects, its name clashes with a built-in one) never shows a traceback: asked
for by name, it is a UserError of one line; in a listing, it is left out with one warning line on
stderr (once per process).
"""
from __future__ import annotations

import re
import sys
from importlib import metadata
from typing import Any, Callable

from .errors import UserError

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")  # usable in comma-separated option values
# Plugins named in the environment, as pytest's PYTEST_PLUGINS: "group:name=module[:attr],..." (e.g.
# "pfdeploy.backends:fake=fake_runner"), read beside the installed distributions' entry points, for a
# plugin that is not packaged (a test double, a runtime being written). Worker processes inherit it.
PLUGINS_ENV = "PFDEPLOY_PLUGINS"


def env_entry_points(group: str) -> list:
    """The entry points of `group` that $PFDEPLOY_PLUGINS declares."""
    import os

    out = []
    for item in os.environ.get(PLUGINS_ENV, "").split(","):
        item = item.strip()
        if not item or "=" not in item:
            continue
        left, value = item.split("=", 1)
        grp, _, name = left.rpartition(":")
        if grp == group and name and value:
            out.append(metadata.EntryPoint(name=name.strip(), value=value.strip(), group=group))
    return out
_WARNED: set[str] = set()


def warn(message: str) -> None:
    """One warning line on stderr, once per process per message."""
    if message in _WARNED:
        return
    _WARNED.add(message)
    try:
        sys.stderr.write(f"warning: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed or broken stderr: the warning is lost, not the command
        pass


def _origin(ep) -> str:
    dist = getattr(ep, "dist", None)
    name = getattr(dist, "name", None) or (dist.metadata["Name"] if dist is not None else None)
    return f"{ep.value}" + (f", from the distribution {name}" if name else "")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


class EntryPointRegistry:
    """The plugins of one entry-point group. `builtin`: the names pfdeploy itself defines (a
    plugin cannot replace them); `kind`: what a plugin adds ("backend", "export target"), for
    messages."""

    def __init__(self, group: str, kind: str, builtin):
        self.group, self.kind, self._builtin = group, kind, builtin
        self._eps: dict[str, Any] | None = None
        self._loaded: dict[str, Any] = {}
        self._failed: dict[str, str] = {}

    def _entry_points(self) -> dict[str, Any]:
        if self._eps is None:
            found: dict[str, Any] = {}
            try:
                eps = list(metadata.entry_points(group=self.group))
            except Exception as exc:  # noqa: BLE001 - unreadable metadata of some distribution
                warn(f"cannot read the {self.group} entry points: {_first_line(exc)}")
                eps = []
            eps += env_entry_points(self.group)
            for ep in eps:
                if not NAME_RE.match(ep.name):
                    warn(f"{self.kind} plugin {ep.name!r} ({_origin(ep)}) is ignored: a name needs letters, "
                         f"digits and _.+- only")
                elif ep.name in self._builtin:
                    warn(f"{self.kind} plugin {ep.name!r} ({_origin(ep)}) is ignored: {ep.name} is built into pfdeploy")
                elif ep.name in found and found[ep.name].value != ep.value:
                    warn(f"{self.kind} plugin {ep.name!r} is declared twice ({_origin(found[ep.name])}; "
                         f"{_origin(ep)}); the first is used")
                else:
                    found.setdefault(ep.name, ep)
            self._eps = found
        return self._eps

    def names(self) -> tuple[str, ...]:
        """The plugins' names, sorted (none of them is imported)."""
        return tuple(sorted(self._entry_points()))

    def load(self, name: str, check: Callable[[str, Any], Any]) -> Any:
        """The plugin `name`, loaded and passed through `check(name, obj) -> obj` (which raises a
        UserError saying what is wrong). A plugin that fails raises a UserError of one line."""
        if name in self._loaded:
            return self._loaded[name]
        if name not in self._failed:
            ep = self._entry_points()[name]
            try:
                obj = check(name, ep.load())
            except Exception as exc:  # noqa: BLE001 - whatever a third party's import raises
                why = str(exc) if isinstance(exc, UserError) else _first_line(exc)
                self._failed[name] = f"{self.kind} plugin {name!r} ({_origin(ep)}) cannot be used: {why}"
            else:
                self._loaded[name] = obj
                return obj
        raise UserError(self._failed[name])

    def try_load(self, name: str, check: Callable[[str, Any], Any]) -> Any | None:
        """`load`, or None with one warning line when the plugin cannot be used (for listings)."""
        try:
            return self.load(name, check)
        except UserError as exc:
            warn(str(exc))
            return None

    def loadable(self, check: Callable[[str, Any], Any]) -> list:
        """Every plugin that loads, by name (one that does not is left out with one warning line):
        what a listing adds after the built-in entries."""
        return [obj for obj in (self.try_load(name, check) for name in self.names()) if obj is not None]
