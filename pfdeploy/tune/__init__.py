"""`pfdeploy tune`: the fastest verified deployment of each model on this machine (docs/tune.md).

    race.py      one runtime's candidates raced in one rotation (paired, hierarchical eliminations)
    final.py     the final rotation: every model's shipped deployments together; the overall winner
    run.py       a whole tune: candidates from every backend, the races, the final rotation
    artifact/    the winner as a directory: artifact + tuned.json (record, write, runner); `load(DIR)` in Python

    from pfdeploy.tune import load
    runner = load("tuned/pf_resnet50_max")
    y = runner.outputs(x)
"""
from __future__ import annotations


def __getattr__(name):  # lazy: `from pfdeploy.tune import load` imports no runtime until called
    if name in ("load", "read_tuned", "write_tuned"):
        from . import artifact

        return getattr(artifact, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["load", "read_tuned", "write_tuned"]
