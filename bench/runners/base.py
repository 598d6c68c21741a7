"""Moved to `pfdeploy.backends.base` (kept so that old imports keep working)."""
from ...backends.base import Runner, RunnerStateError  # noqa: F401
