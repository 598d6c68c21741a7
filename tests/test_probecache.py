"""The per-machine cache of what runtimes report (pfdeploy.probecache) and the post-import hook
(pfdeploy.importhook) that keep listing verbs from importing torch, timm and the runtimes."""
from __future__ import annotations

import json
import os
import sys

import pytest

from pfdeploy import probecache


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PFDEPLOY_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(probecache.ENV, raising=False)
    return tmp_path / "cache"


def counting(value, keep=True):
    calls = []

    def probe():
        calls.append(1)
        return value, keep

    return probe, calls


def test_an_answer_is_asked_once_per_machine_and_version(cache):
    probe, calls = counting([["CPU", "GPU.0"], None])
    # a module this process has not imported, versioned by an installed distribution
    args = ("test.devices", "pfdeploy_probe_test_module", probe, ("click",))
    assert probecache.probed(*args) == [["CPU", "GPU.0"], None]
    assert probecache.probed(*args) == [["CPU", "GPU.0"], None]
    assert len(calls) == 1
    doc = json.loads(probecache.cache_file().read_text())
    (key,) = doc["answers"]
    assert key.startswith("test.devices @ click ")
    other, more = counting([["CPU"], None])  # another version of the runtime: asked again
    assert probecache.probed("test.devices", "pfdeploy_probe_test_module", other, ("jsonschema",)) == [["CPU"], None]
    assert len(more) == 1


def test_failures_are_not_kept_and_the_cache_can_be_turned_off(cache, monkeypatch):
    probe, calls = counting([[], "broken install"], keep=False)
    for _ in range(2):
        probecache.probed("test.failing", "pfdeploy_probe_test_module", probe, ("click",))
    assert len(calls) == 2 and not probecache.cache_file().exists()
    monkeypatch.setenv(probecache.ENV, "0")
    probe, calls = counting([["CPU"], None])
    for _ in range(2):
        probecache.probed("test.off", "pfdeploy_probe_test_module", probe, ("click",))
    assert len(calls) == 2 and not probecache.cache_file().exists()


def test_a_runtime_imported_by_others_answers_itself_and_nothing_is_kept(cache):
    """A module already in sys.modules (a test's stand-in, the user's own import) is asked
    directly every time, and what it says never reaches the cache."""
    import click  # noqa: F401

    probe, calls = counting([["FakeExecutionProvider"], None])
    for _ in range(2):
        assert probecache.probed("test.fake", "click", probe) == [["FakeExecutionProvider"], None]
    assert len(calls) == 2 and not probecache.cache_file().exists()


def test_a_cache_path_that_is_not_a_plain_file_is_left_alone(cache, tmp_path):
    path = probecache.cache_file()
    path.parent.mkdir(parents=True)
    target = tmp_path / "someone-elses.json"
    target.write_text("keep me")
    os.symlink(target, path)
    probe, calls = counting([["CPU"], None])
    assert probecache.probed("test.link", "pfdeploy_probe_test_module", probe, ("click",)) == [["CPU"], None]
    assert path.is_symlink() and target.read_text() == "keep me"
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".pfdeploy-tmp")]


def test_after_import_runs_the_hook_once_the_module_is_imported(tmp_path, monkeypatch):
    from pfdeploy.importhook import after_import

    (tmp_path / "pfdeploy_hook_target.py").write_text("VALUE = 41\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    seen = []
    after_import("pfdeploy_hook_target", lambda: seen.append(sys.modules["pfdeploy_hook_target"].VALUE))
    assert seen == [] and "pfdeploy_hook_target" not in sys.modules
    import pfdeploy_hook_target  # noqa: F401

    assert seen == [41]
    after_import("pfdeploy_hook_target", lambda: seen.append("now"))  # already imported: at once
    assert seen == [41, "now"]
    monkeypatch.delitem(sys.modules, "pfdeploy_hook_target")


@pytest.mark.slow  # over 3 s: the default run stays under 5 min; .ci/run's slow pass runs it
def test_the_zoo_loads_no_timm_and_registers_in_timm_when_it_is_imported():
    import subprocess

    script = ("import sys, pfdeploy.zoo\n"
              "assert 'timm' not in sys.modules and 'torch' not in sys.modules\n"
              "import timm\n"
              "print(type(timm.create_model('pit_ti_max')).__name__)\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "PiTMax"
