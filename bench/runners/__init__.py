"""Moved: the runners live in their backend modules, `pfdeploy.backends` (one module per runtime).
This package keeps the old import path and the engine's fake test runner (`_testing`)."""
from __future__ import annotations

from ...backends import BACKEND_NAMES, backend_info, get_backend, load_runner_class  # noqa: F401


def __getattr__(name):
    if name == "BACKENDS":  # the old name -> backend mapping
        return {n: get_backend(n) for n in BACKEND_NAMES}
    raise AttributeError(name)
