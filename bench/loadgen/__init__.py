"""MLPerf LoadGen drives pfdeploy's runners (docs/serving.md, docs/method.md section 6).

The official load generator (`mlcommons-loadgen`, import name `mlperf_loadgen`; the `loadgen`
extra) issues the queries by the rules of its scenarios and judges the run (VALID / INVALID, early
stopping, minimum duration and query count); pfdeploy is only the system under test: a runner that
keeps several requests in flight (`Runner.in_flight` / `Runner.submit`: OpenVINO's
AsyncInferQueue, ONNX Runtime sessions run from several threads) serving preprocessed tensors held
in memory. One concern per module:

    settings.py  what a LoadGen test is asked to do (scenario, target QPS, latency bound, duration,
                 query counts) and LoadGen's TestSettings built from it
    sut.py       the System Under Test and Query Sample Library around a runner
    logs.py      LoadGen's summary and detail logs read into the row's `loadgen` record
    run.py       one LoadGen test inside a bench worker process (the worker's `loadgen` command)
    group.py     `bench --scenario server|multistream|single-stream|offline`: every case in several
                 fresh worker processes, one LoadGen test per process
    capacity.py  `pfdeploy capacity`: bracketing then bisection of the server's target QPS
    overhead.py  LoadGen's own cost: a SUT that completes every query at once
"""
from __future__ import annotations

from ...errors import UsageError, is_installed

INSTALL_HINT = "pip install 'pfdeploy[loadgen]' (MLPerf's LoadGen: mlcommons-loadgen)"
# what the row's scenario is called -> LoadGen's TestScenario member
LOADGEN_SCENARIO = {"server": "Server", "multistream": "MultiStream", "single-stream": "SingleStream",
                    "offline": "Offline", "capacity": "Server"}


def loadgen_missing() -> str | None:
    """None when LoadGen's Python bindings are installed, else the reason with the install hint."""
    return None if is_installed("mlperf_loadgen") else f"MLPerf LoadGen is not installed: {INSTALL_HINT}"


def require_loadgen():
    """The `mlperf_loadgen` module (UsageError, exit 2, when it is not installed)."""
    why = loadgen_missing()
    if why:
        raise UsageError(why)
    import mlperf_loadgen

    return mlperf_loadgen


def concurrency_problem(backend) -> str | None:
    """None when `backend` (a pfdeploy.backends.Backend) can serve LoadGen (several requests in
    flight), else the one-line reason."""
    if "server" in backend.scenarios:
        return None
    if backend.name in ("torch", "torch-compile"):
        return (f"{backend.name} cannot serve LoadGen: eager PyTorch has no concurrent-request API and a thread "
                "pool around it would share the same intra-op threads (no gain on a CPU); use "
                "--backends openvino,onnxruntime")
    return (f"{backend.name} cannot serve LoadGen: pfdeploy has no concurrent-request path for it (it runs "
            f"{', '.join(backend.scenarios)} only); use --backends openvino,onnxruntime")
