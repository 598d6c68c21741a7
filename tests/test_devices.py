"""Devices: parsing (no side effects), the no-GPU paths, discovery, metadata, machine id, threads."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import types

import pytest

import pfdeploy.devices as devices
from pfdeploy.devices import Device, machine_id, parse_device
from pfdeploy.devices import parse as parse_mod
from pfdeploy.errors import UsageError


@pytest.mark.parametrize("text, kind, index, name, canonical", [
    ("cpu", "cpu", None, "cpu", "cpu"),
    ("CPU", "cpu", None, "cpu", "cpu"),
    ("openvino:CPU", "cpu", None, "cpu", "cpu"),
    ("cuda", "cuda", 0, "cuda:0", "cuda:0"),
    ("cuda:1", "cuda", 1, "cuda:1", "cuda:1"),
    (" CUDA:2 ", "cuda", 2, "cuda:2", "cuda:2"),
    ("GPU", "openvino", None, "GPU", "openvino:GPU"),
    ("gpu.1", "openvino", 1, "GPU.1", "openvino:GPU.1"),
    ("openvino:GPU.0", "openvino", 0, "GPU.0", "openvino:GPU.0"),
    ("NPU", "openvino", None, "NPU", "openvino:NPU"),
    ("AUTO", "openvino", None, "AUTO", "openvino:AUTO"),
    ("HETERO:GPU,CPU", "openvino", None, "HETERO:GPU,CPU", "openvino:HETERO:GPU,CPU"),
])
def test_parse_forms(text, kind, index, name, canonical):
    dev = parse_device(text, check=False)
    assert (dev.kind, dev.index, dev.name, str(dev)) == (kind, index, name, canonical)
    assert parse_device(str(dev), check=False) == dev  # the canonical string parses back
    with pytest.raises(dataclasses.FrozenInstanceError):
        dev.index = 5


@pytest.mark.parametrize("text", ["", "gpu0", "cuda:", "cuda:x", "cuda:-1", "tpu", "openvino:", "mps"])
def test_unknown_device_lists_allowed_forms(text):
    with pytest.raises(UsageError) as info:
        parse_device(text)
    assert info.value.exit_code == 2
    msg = str(info.value)
    assert "allowed forms" in msg and "cuda:N" in msg and "GPU" in msg and "\n" not in msg


def test_cpu_is_always_usable_and_has_backends():
    assert parse_device("cpu") == Device("cpu", None, "cpu")


def test_device_helpers():
    assert parse_device("cpu").openvino_device == "CPU"
    assert parse_device("cuda:0", check=False).torch_device == "cuda:0"
    assert parse_device("GPU.1", check=False).openvino_device == "GPU.1"
    assert parse_device("GPU.1", check=False).torch_device is None
    with pytest.raises(UsageError):
        Device("tpu", 0, "tpu")


def test_parsing_sets_no_environment_variables(monkeypatch):
    before = dict(os.environ)
    for text in ("cpu", "cuda:0", "cuda:7", "GPU", "NPU.1"):
        try:
            parse_device(text)
        except UsageError:
            pass
    assert dict(os.environ) == before


def _fake_torch(monkeypatch, cuda_version, count):
    import torch

    monkeypatch.setattr(torch.version, "cuda", cuda_version)
    monkeypatch.setattr(torch.version, "hip", None, raising=False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


def test_cuda_on_cpu_only_torch_build(monkeypatch):
    _fake_torch(monkeypatch, None, 0)
    with pytest.raises(UsageError, match=r"cuda:0 is not usable here: this torch build \(.*\) has no CUDA support") as info:
        parse_device("cuda:0")
    assert info.value.exit_code == 2


def test_cuda_without_driver(monkeypatch):
    _fake_torch(monkeypatch, "12.4", 0)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(parse_mod, "nvidia_driver_version", lambda: None)
    monkeypatch.setattr(parse_mod.os.path, "exists", lambda p: False)
    with pytest.raises(UsageError, match="no NVIDIA driver found"):
        parse_device("cuda:0")


def test_cuda_hidden_by_visible_devices(monkeypatch):
    _fake_torch(monkeypatch, "12.4", 0)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(UsageError, match="CUDA_VISIBLE_DEVICES=''"):
        parse_device("cuda")


def test_cuda_index_out_of_range(monkeypatch):
    _fake_torch(monkeypatch, "12.4", 2)
    assert parse_device("cuda:1") == Device("cuda", 1, "cuda:1")
    with pytest.raises(UsageError, match=r"index 2 is out of range: this machine has 2 CUDA device\(s\) \(cuda:0, cuda:1\)"):
        parse_device("cuda:2")


def test_cuda_device_count_error_is_reported(monkeypatch):
    import torch

    monkeypatch.setattr(torch.version, "cuda", "12.4")

    def broken():
        raise RuntimeError("CUDA driver version is insufficient for CUDA runtime version\nmore")

    monkeypatch.setattr(torch.cuda, "device_count", broken)
    with pytest.raises(UsageError, match="the CUDA driver cannot be used: CUDA driver version is insufficient"):
        parse_device("cuda:0")


def test_real_machine_cuda_verdict_is_consistent():
    """On this machine, parse_device('cuda:0') either works or says why in one line."""
    n, why = devices.cuda_device_count()
    if n:
        assert parse_device("cuda:0").kind == "cuda"
    else:
        with pytest.raises(UsageError) as info:
            parse_device("cuda:0")
        assert why in str(info.value) and "\n" not in str(info.value)


def test_openvino_device_not_present(monkeypatch):
    monkeypatch.setattr(parse_mod, "openvino_devices", lambda: (("CPU",), None))
    with pytest.raises(UsageError, match=r"OpenVINO does not see GPU \(available: CPU\)"):
        parse_device("GPU")
    monkeypatch.setattr(parse_mod, "openvino_devices", lambda: (("CPU", "GPU.0", "GPU.1"), None))
    assert parse_device("GPU").name == "GPU"
    assert parse_device("GPU.1").index == 1
    with pytest.raises(UsageError, match="does not see GPU.2"):
        parse_device("GPU.2")
    monkeypatch.setattr(parse_mod, "openvino_devices", lambda: ((), "openvino is not installed: pip install x"))
    with pytest.raises(UsageError, match="openvino is not installed"):
        parse_device("NPU")


# ----------------------------------------------------------------------------- metadata

def test_machine_metadata_fields():
    from pfdeploy.backends import machine_metadata

    hardware = devices.machine_metadata()  # the hardware and the core tools
    assert set(hardware["tools"]) >= {"torch", "timm", "onnx", "numpy", "pfdeploy", "python", "torch_cuda"}
    assert not set(hardware["tools"]) & {"onnxruntime", "openvino", "tensorrt"}  # the runtimes declare theirs
    meta = machine_metadata()  # what a run records: plus every runtime's tools
    assert meta["machine_id"] == hardware["machine_id"]
    json.dumps(meta)
    cpu = meta["cpu"]
    assert cpu["model"] and cpu["logical_cores"] >= 1 and cpu["physical_cores"] >= 1
    assert isinstance(cpu["isa"], list)
    assert meta["memory_bytes"] > 2**28
    assert set(meta["tools"]) >= {"torch", "timm", "onnx", "onnxruntime", "openvino", "tensorrt", "numpy", "pfdeploy",
                                  "nncf", "triton", "onnxruntime_dist", "sqlalchemy", "nvidia_driver"}
    assert meta["tools"]["pfdeploy"]
    assert meta["os"]["system"] and meta["python"]["version"]
    assert "governor" in meta["cpufreq"] and len(meta["loadavg"]) == 3
    assert meta["machine_id"] == machine_id(meta) == machine_id()
    if not meta["gpus"]:
        assert meta["gpu_note"]


def test_machine_id_ignores_noise_and_follows_hardware():
    base = {"cpu": {"model": "Intel Xeon 8480", "physical_cores": 56, "logical_cores": 112},
            "memory_bytes": 512 * 2**30 - 300 * 2**20, "loadavg": [1, 1, 1],
            "gpus": [{"name": "NVIDIA H100", "sm_clock_mhz": 1980, "temperature_c": 40}]}
    noisy = {**base, "memory_bytes": 512 * 2**30 - 310 * 2**20, "loadavg": [9, 9, 9], "hostname": "other",
             "gpus": [{"name": "NVIDIA H100", "sm_clock_mhz": 345, "temperature_c": 70}], "tools": {"torch": "3"}}
    assert machine_id(base) == machine_id(noisy)
    assert len(machine_id(base)) == 16
    for change in ({"cpu": {**base["cpu"], "model": "AMD EPYC"}},
                   {"cpu": {**base["cpu"], "logical_cores": 56}},
                   {"memory_bytes": 256 * 2**30},
                   {"gpus": []},
                   {"gpus": base["gpus"] * 2}):
        assert machine_id({**base, **change}) != machine_id(base), change


def test_physical_cores_bounds():
    n = devices.physical_cores()
    assert 1 <= n <= (os.cpu_count() or 1)


def test_tool_versions_import_nothing_heavy():
    code = ("import sys, json; import pfdeploy.devices as d; d.tool_versions(); d.machine_id(); "
            "import pfdeploy.backends as b; b.tool_versions(); "
            "d.parse_device('cpu'); d.physical_cores(); "
            "print(json.dumps(sorted(m for m in ('torch','onnxruntime','openvino','tensorrt','timm','onnx') "
            "if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []


class _FakeNVML(types.SimpleNamespace):
    pass


def _fake_pynvml():
    m = _FakeNVML()
    m.NVML_CLOCK_SM, m.NVML_CLOCK_MEM, m.NVML_TEMPERATURE_GPU = 1, 2, 0
    m.calls = []
    m.nvmlInit = lambda: m.calls.append("init")
    m.nvmlShutdown = lambda: m.calls.append("shutdown")
    m.nvmlSystemGetDriverVersion = lambda: b"550.54.15"
    m.nvmlSystemGetCudaDriverVersion = lambda: 12040
    m.nvmlDeviceGetCount = lambda: 2
    m.nvmlDeviceGetHandleByIndex = lambda i: i
    m.nvmlDeviceGetName = lambda h: ["NVIDIA H100 80GB HBM3", "NVIDIA L4"][h]
    m.nvmlDeviceGetUUID = lambda h: f"GPU-{h}"
    m.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(total=80 * 2**30)
    m.nvmlDeviceGetPowerManagementLimit = lambda h: 700000
    m.nvmlDeviceGetClockInfo = lambda h, c: 1980 if c == 1 else 2619
    m.nvmlDeviceGetMaxClockInfo = lambda h, c: 1980 if c == 1 else 2619
    m.nvmlDeviceGetPersistenceMode = lambda h: 1

    def no_temp(h, s):
        raise RuntimeError("not supported")

    m.nvmlDeviceGetTemperature = no_temp
    return m


def test_nvml_metadata_with_a_fake_nvml(monkeypatch):
    fake = _fake_pynvml()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    gpus, note = devices.nvml_gpus()
    assert note is None and fake.calls == ["init", "shutdown"]
    assert [g["name"] for g in gpus] == ["NVIDIA H100 80GB HBM3", "NVIDIA L4"]
    g = gpus[0]
    assert g["driver"] == "550.54.15" and g["cuda_driver"] == "12.4" and g["power_limit_w"] == 700.0
    assert g["sm_clock_mhz"] == 1980 and g["memory_total_mb"] == 80 * 1024
    assert g["temperature_c"] is None  # an unsupported query is missing, not an error


def test_nvml_unavailable_is_a_note(monkeypatch):
    fake = _fake_pynvml()

    def fail():
        raise RuntimeError("NVML Shared Library Not Found")

    fake.nvmlInit = fail
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    assert devices.nvml_gpus() == ([], "NVML unavailable: NVML Shared Library Not Found")


# ----------------------------------------------------------------------------- threads, denormals

THREADS_SCRIPT = """
import json, os
from pfdeploy.devices import apply_thread_settings, set_flush_denormal
applied = apply_thread_settings(1, 1)
applied["flush"] = set_flush_denormal()
import torch
applied["after"] = {"torch": torch.get_num_threads(), "interop": torch.get_num_interop_threads(),
                    "omp": os.environ["OMP_NUM_THREADS"], "mkl": os.environ["MKL_NUM_THREADS"],
                    "tiny": float(torch.tensor([1e-42]) * 1.0)}
print(json.dumps(applied))
"""


def test_apply_thread_settings_in_a_fresh_process():
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", THREADS_SCRIPT], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["threads"] == 1 and got["interop"] == 1 and got["warnings"] == []
    assert got["torch_threads"] == 1 and got["torch_interop"] == 1
    assert got["after"]["torch"] == 1 and got["after"]["interop"] == 1
    assert got["after"]["omp"] == "1" and got["after"]["mkl"] == "1"
    import platform

    if platform.machine() in ("x86_64", "AMD64"):
        assert got["flush"] is True and got["after"]["tiny"] == 0.0  # the denormal was flushed


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_thread_counts_are_validated(bad):
    with pytest.raises(UsageError):
        devices.apply_thread_settings(bad)
    with pytest.raises(UsageError):
        devices.apply_thread_settings(2, bad)


# ----------------------------------------------------------------------------- CLI

def test_devices_cli_json_and_table(capsys):
    from pfdeploy.cli import main

    capsys.readouterr()
    assert main(["devices", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["devices"][0]["device"] == "cpu"
    assert data["machine_id"] == data["machine"]["machine_id"] == machine_id()
    from click.testing import CliRunner

    from pfdeploy.cli.devices import command

    res = CliRunner().invoke(command, [])
    assert res.exit_code == 0, res.output
    assert "cpu" in res.output and data["machine_id"] in res.output
