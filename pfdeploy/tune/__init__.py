"""pfdeploy tune: the fastest verified deployment of each model on this machine (docs/tune.md)."""
from __future__ import annotations


def __getattr__(name):  # lazy: `from pfdeploy.tune import load` imports no runtime until called
    if name in ("load", "read_tuned", "write_tuned"):
        from . import artifact

        return getattr(artifact, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
