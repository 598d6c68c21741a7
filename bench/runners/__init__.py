"""Moved: the runners live in their backend modules, `pfdeploy.backends` (one module per runtime).
This package keeps the old import path (the engine's fake test runner lives in tests/fake_runner.py)."""
from __future__ import annotations

from ...backends import (BACKEND_NAMES, TEST_RUNNERS_ENV, _test_runner, backend_info,  # noqa: F401
                         get_backend, load_runner_class)


def __getattr__(name):
    if name == "BACKENDS":  # the old name -> backend mapping
        return {n: get_backend(n) for n in BACKEND_NAMES}
    raise AttributeError(name)
