"""`pfdeploy tune`: the fastest verified deployment of each model on this machine (docs/tune.md).

    race.py      one runtime's candidates raced in one rotation (paired, hierarchical eliminations)
    run.py       a whole tune: candidates from every backend, the races, the final rotation
    artifact.py  the winner as a directory: artifact + tuned.json; `load(DIR)` in Python
"""
from __future__ import annotations


def load(path, inputs=None):
    """A loaded Runner of a tuned directory: `runner = load("tuned/pf_resnet50_max")`, then
    `runner.outputs(x)` (see pfdeploy.tune.artifact.load)."""
    from .artifact import load as _load

    return _load(path, inputs=inputs)


__all__ = ["load"]
