"""Installed distributions' versions, read from their metadata (importlib.metadata): nothing is
imported. The one lookup behind every recorded tool version: the core tools of a run
(pfdeploy.devices), the runtimes' declared tools and an artifact's tools
(`pfdeploy.backends.tool_versions`), and the keys of cached probes (pfdeploy.probecache).

    installed(("tensorrt", "tensorrt-cu13")) -> ("tensorrt-cu13", "10.13.2") or None
    dist_version(("tensorrt", "tensorrt-cu13")) -> "10.13.2" or None
"""
from __future__ import annotations

from importlib import metadata


def installed(names) -> tuple[str, str] | None:
    """(distribution, version) of the first of the distributions `names` that is installed, else None."""
    for name in names:
        try:
            return name, metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def dist_version(names) -> str | None:
    """The version of the first of the distributions `names` that is installed, else None."""
    found = installed(names)
    return found[1] if found else None
