"""Shared fixtures. Tests never touch the user's cache or results store: both point into a
per-session temporary directory (exports are shared across tests of one session, they are slow)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest


TESTS = os.path.dirname(os.path.abspath(__file__))
# the engine's fake runner (tests/fake_runner.py) is found by worker processes through these
os.environ["PFDEPLOY_TEST_RUNNERS"] = "_fake=fake_runner:FakeRunner"
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (TESTS, os.environ.get("PYTHONPATH")) if p)


@pytest.fixture(scope="session", autouse=True)
def _isolated_env(tmp_path_factory):
    root = tmp_path_factory.mktemp("pfdeploy-env")
    old = {k: os.environ.get(k) for k in ("PFDEPLOY_CACHE_DIR", "PFDEPLOY_STORE")}
    os.environ["PFDEPLOY_CACHE_DIR"] = str(root / "cache")
    os.environ["PFDEPLOY_STORE"] = str(root / "results.db")
    yield root
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def artifact_cache(_isolated_env):
    """The session-wide artifact cache directory."""
    return _isolated_env / "cache"


def run_cli(*args: str, env: dict | None = None, cwd=None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `python -m pfdeploy ARGS` in a subprocess (real exit codes and stderr)."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    return subprocess.run([sys.executable, "-m", "pfdeploy", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=timeout)


@pytest.fixture
def cli():
    return run_cli


def has_exe(name: str) -> bool:
    return shutil.which(name) is not None
