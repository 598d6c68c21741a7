"""Shared fixtures. Tests never touch the user's cache or results store: both point into a
per-session temporary directory (exports are shared across tests of one session, they are slow)."""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys

import pytest


TESTS = os.path.dirname(os.path.abspath(__file__))
# the engine's fake runner (tests/fake_runner.py) is found by worker processes through these
os.environ["PFDEPLOY_PLUGINS"] = "pfdeploy.backends:fake=fake_runner"  # the engine's test double, a plugin
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
    """Run `python -m pfdeploy ARGS` in a subprocess (real exit codes and stderr). Costs an
    interpreter start and pfdeploy's imports (seconds): use it where the separate process is what
    the test checks (mark those tests `subprocess`), `invoke_cli` everywhere else."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    return subprocess.run([sys.executable, "-m", "pfdeploy", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=timeout)


def invoke_cli(*args: str, env: dict | None = None, cwd=None) -> subprocess.CompletedProcess:
    """Run `pfdeploy ARGS` in this process, through the console script's own entry point
    (`pfdeploy.cli.main`: its exit code, its one-line errors, its signal policy), with stdout and
    stderr captured by click's `CliRunner` isolation, `env` applied and `cwd` entered for the call
    only. Returns a CompletedProcess like `run_cli`.

    What it cannot see, and `run_cli` can: the interpreter's own start-up and exit (the console
    script, `python -m`, exit status of a signal), output that child processes write straight to
    the inherited file descriptors, and settings read once at import (a library's environment
    variables, already imported here)."""
    from click.testing import CliRunner

    from pfdeploy.cli import main

    runner = CliRunner()
    here = os.getcwd()
    with runner.isolation(env=env) as (out, err, _):
        try:
            if cwd is not None:
                os.chdir(cwd)
            try:
                code = main(list(args))
            except SystemExit as exc:  # a verb that exits itself (sys.exit(code))
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            os.chdir(here)
            sys.stdout.flush()
            sys.stderr.flush()
        stdout, stderr = out.getvalue().decode(), err.getvalue().decode("utf-8", "backslashreplace")
    return subprocess.CompletedProcess(["pfdeploy", *args], code, stdout, stderr)


@pytest.fixture
def cli():
    """The CLI in this process (`invoke_cli`); tests of the real process use `run_cli`."""
    return invoke_cli


def has_exe(name: str) -> bool:
    return shutil.which(name) is not None


PG_ENV = "PFDEPLOY_TEST_POSTGRES_URL"


@contextlib.contextmanager
def pg_schema(url: str):
    """A fresh, empty schema in the PostgreSQL database at `url`, dropped afterwards; yields the
    store URL that selects it (search_path). The one definition behind every PostgreSQL test."""
    import uuid

    pytest.importorskip("psycopg", reason="psycopg is not installed: pip install 'pfdeploy[postgres]'")
    import sqlalchemy as sa

    schema = "pft_" + uuid.uuid4().hex[:12]
    admin = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in url else "?"
    try:
        yield f"{url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


@pytest.fixture
def postgres_url():
    """A fresh, empty schema in the test PostgreSQL database named by $PFDEPLOY_TEST_POSTGRES_URL
    (`.ci/run` starts a local server and sets it; README: "Testing against PostgreSQL"). Skips
    with the reason when it is not set. Mark tests using it `postgres`."""
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(f"{PG_ENV} is not set (see README: testing against PostgreSQL)")
    with pg_schema(url) as schema_url:
        yield schema_url


@pytest.fixture
def make_readonly():
    """make_readonly(dir): make `dir` unwritable for this process, really (not a mock): chmod 0555
    for an ordinary user; as root (who ignores modes) the immutable attribute (chattr +i), else a
    read-only bind mount. Skips when none is possible here. Undone at teardown."""
    import stat

    undo = []

    def make(path):
        path = os.fspath(path)
        if os.geteuid() != 0:
            mode = stat.S_IMODE(os.stat(path).st_mode)
            os.chmod(path, 0o555)
            undo.append(lambda: os.chmod(path, mode))
            return path
        if has_exe("chattr") and subprocess.run(["chattr", "+i", path], capture_output=True).returncode == 0:
            undo.append(lambda: subprocess.run(["chattr", "-i", path], capture_output=True))
            return path
        if has_exe("mount") and subprocess.run(["mount", "--bind", "-o", "ro", path, path],
                                               capture_output=True).returncode == 0:
            undo.append(lambda: subprocess.run(["umount", "-l", path], capture_output=True))
            return path
        pytest.skip("cannot make a directory read-only as root here (no chattr +i, no bind mount)")

    yield make
    for u in reversed(undo):
        u()


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory):
    """A tiny fp32 ONNX model (conv 3->4, ReLU, global pool; dynamic batch, 3x8x8 inputs): what
    the runtimes' own tests load in milliseconds."""
    onnx = pytest.importorskip("onnx")
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(0).normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["g"]), helper.make_node("Flatten", ["g"], ["y"])]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path_factory.mktemp("tiny") / "tiny.onnx"
    onnx.save(model, path)
    return str(path)
