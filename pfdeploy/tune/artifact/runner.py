"""A tuned directory loaded: a Runner with the tuned runtime settings, ready to infer."""
from __future__ import annotations

import os
from pathlib import Path

from .record import case_of, model_path, model_weights, read_tuned


def load(directory, inputs=None):
    """A loaded Runner with the tuned settings of `directory`:

        from pfdeploy.tune import load
        runner = load("tuned/pf_resnet50_max")
        y = runner.outputs(x)        # x: float32 (batch, 3, H, W), the tuned batch

    `inputs`: the batch the runner is prepared with (default zeros of the model's input shape at
    the tuned batch); later calls take any batch of that shape. Close it with runner.close() (or
    use it in a `with` block)."""
    import numpy as np

    from ...backends import get_backend
    from ...zoo import get_spec

    t = read_tuned(directory)
    spec = case_of(t)
    if inputs is None:
        inputs = np.zeros((spec.batch, *get_spec(spec.model).input_size), dtype=np.float32)
    else:
        inputs = np.ascontiguousarray(inputs, dtype=np.float32)
    f = model_path(directory, t)
    weights_file = None
    if f is None:  # torch: the tuned weights (a checkpoint's state dict, else the seeded synthetic model)
        w = model_weights(t)
        if w.choice is not None:
            weights_file = _torch_state_dict(spec.model, w.choice)
    try:
        return get_backend(spec.backend).load(spec, inputs, model_file=str(f) if f else None,
                                               weights_file=weights_file)
    finally:
        if weights_file:  # loaded into the runner's model by now
            Path(weights_file).unlink(missing_ok=True)


def _torch_state_dict(model: str, choice: str) -> str:
    """A state-dict file of `model` with the weights `choice` (a checkpoint, release or
    pretrained), for the torch runner (which loads a state dict)."""
    import tempfile

    import torch

    from ...zoo import create_model

    net = create_model(model, weights=choice)
    fd, path = tempfile.mkstemp(prefix="pfdeploy-tuned-", suffix=".pt")
    os.close(fd)
    torch.save(net.state_dict(), path)
    return path
