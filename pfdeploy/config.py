"""Environment flags and user directories. Imports only the standard library (plus platformdirs)."""
from __future__ import annotations

import os
from pathlib import Path

from .errors import UsageError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_flag(name: str, default: bool = False) -> bool:
    """Parse a boolean environment variable strictly: 1/true/yes/on and 0/false/no/off/empty
    (case-insensitive); anything else is a user error rather than a silent guess."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise UsageError(f"{name}={raw!r} is not a boolean; use one of 1/0, true/false, yes/no, on/off")


def cache_dir(override: str | os.PathLike | None = None) -> Path:
    """Artifact cache: `override`, else $PFDEPLOY_CACHE_DIR, else the user's cache directory."""
    if override:
        return Path(override).expanduser()
    env = os.environ.get("PFDEPLOY_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("pfdeploy")) / "artifacts"


def default_store_url(override: str | None = None) -> str:
    """Results store: `override`, else $PFDEPLOY_STORE, else `pfdeploy-results.db` in the working
    directory (SQLite)."""
    return override or os.environ.get("PFDEPLOY_STORE") or "pfdeploy-results.db"
