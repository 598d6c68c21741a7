"""A worker process of a case (docs/method.md sections 2 and 5).

The parent starts `python -m pfdeploy.bench.worker RFD WFD` with two pipes and drives it with
JSON-line commands; the worker lives for the whole comparison, so the parent can interleave
rounds of several cases while exactly one worker runs at a time (the others block on their pipe).
A worker that crashes takes only its own case down: the parent sees the pipe close and records
the exit status (a negative return code is the signal number).

Commands (parent -> worker), one JSON object per line; every reply has "ok":
    load    {case, inputs, model_file, weights_file} -> {load_ms, first_ms, describe, threads}
    parity  {inputs, outputs}                        -> {n}  (outputs written to the .npz `outputs`)
    warmup  {rule, max_time_s}                       -> {samples_ns}
    measure {iters, budget_ns, rewarm}               -> {samples_ns, device_ms, h2d_ms, d2h_ms}
    loadgen {settings, outdir, warmup_s}             -> {record, samples_ns, cpu}  (MLPerf LoadGen test:
                                                         pfdeploy.bench.loadgen.run)
    close   {}                                       -> {peak_rss_mb, peak_gpu_mb, peak_gpu_source,
                                                         runtime_peak_gpu_mb?, items_per_step}
"""
from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

from .config import CaseSpec, StopRule
from ..devices.cpuload import cpu_snapshot, cpu_usage


class WorkerDied(Exception):
    """The worker process ended or stopped answering; `detail` says how (signal, exit code)."""

    def __init__(self, detail: str, returncode: int | None = None, log_tail: str = ""):
        super().__init__(detail)
        self.detail = detail
        self.returncode = returncode
        self.log_tail = log_tail


class WorkerError(Exception):
    """The worker reported an error (the case failed; the worker itself is still alive)."""

    def __init__(self, message: str, kind: str = "user"):
        super().__init__(message)
        self.kind = kind


def describe_returncode(rc: int | None) -> str:
    if rc is None:
        return "still running"
    if rc < 0:
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = f"signal {-rc}"
        return f"killed by {name} (signal {-rc})"
    return f"exited with code {rc}"


# ------------------------------------------------------------------------------ parent side
WORKER_PROTOCOL = 1  # the JSON-line commands above; `pfdeploy ab` refuses a side that speaks another


class WorkerProcess:
    """Parent-side handle of one case's worker process (`python`: the interpreter it runs, default
    this one; `pfdeploy ab` runs each side's workers with that side's interpreter)."""

    def __init__(self, label: str = "", env: dict | None = None, python: str | None = None):
        self.label = label
        p2c_r, p2c_w = os.pipe()
        c2p_r, c2p_w = os.pipe()
        self.log = tempfile.NamedTemporaryFile(prefix="pfdeploy-worker-", suffix=".log", delete=False)
        full_env = dict(os.environ)
        full_env.update(env or {})
        full_env.setdefault("PYTHONUNBUFFERED", "1")
        full_env["PFDEPLOY_PARENT_PID"] = str(os.getpid())  # the worker dies with this process
        self.proc = subprocess.Popen(
            [python or sys.executable, "-m", "pfdeploy.bench.worker", str(p2c_r), str(c2p_w)],
            pass_fds=(p2c_r, c2p_w), stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
            env=full_env, start_new_session=True,  # Ctrl-C reaches the parent only; it stops workers itself
        )
        os.close(p2c_r)
        os.close(c2p_w)
        self._w = os.fdopen(p2c_w, "w", buffering=1)
        self._r_fd = c2p_r
        self._buf = b""

    @property
    def pid(self) -> int:
        return self.proc.pid

    def call(self, op: str, timeout_s: float = 600.0, **payload) -> dict:
        """Send one command and wait for its reply. Raises WorkerDied when the process ends or
        exceeds `timeout_s` (then it is killed), WorkerError when it reports a failure."""
        try:
            self._w.write(json.dumps({"op": op, **payload}) + "\n")
            self._w.flush()
        except (BrokenPipeError, OSError):
            self._died(f"during {op}")
        line = self._readline(timeout_s, op)
        reply = json.loads(line)
        if not reply.get("ok"):
            raise WorkerError(reply.get("error", "unknown worker error"), reply.get("kind", "user"))
        return reply

    def _readline(self, timeout_s: float, op: str) -> bytes:
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise WorkerDied(f"no answer to {op} within {timeout_s:.0f} s (worker killed)", self.proc.returncode,
                                 self.log_tail())
            ready, _, _ = select.select([self._r_fd], [], [], min(left, 1.0))
            if not ready:
                continue
            chunk = os.read(self._r_fd, 1 << 20)
            if not chunk:
                self._died(f"during {op}")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line

    def _died(self, when: str):
        try:
            rc = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()
            rc = self.proc.returncode
        raise WorkerDied(f"worker {describe_returncode(rc)} {when}", rc, self.log_tail())

    def log_tail(self, lines: int = 8) -> str:
        try:
            text = Path(self.log.name).read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def kill(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)  # its own session: runtime helper processes too
            except (ProcessLookupError, PermissionError):
                self.proc.kill()
            self.proc.wait()

    def close(self, timeout_s: float = 60.0) -> dict:
        """Ask the worker for its final figures and let it exit."""
        try:
            reply = self.call("close", timeout_s=timeout_s)
        finally:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
            self.cleanup()
        return reply

    def cleanup(self):
        for f in (self._w,):
            try:
                f.close()
            except OSError:
                pass
        try:
            os.close(self._r_fd)
        except OSError:
            pass
        self.log.close()
        try:
            os.unlink(self.log.name)
        except OSError:
            pass


# ------------------------------------------------------------------------------ worker side
def _peak_rss_mb() -> float:
    """Peak resident memory of this process since its exec. Linux: VmHWM from /proc/self/status
    (per address space, so it starts afresh at exec). Not getrusage's ru_maxrss: Linux carries it
    over from the parent through fork and exec, so every worker would report at least the
    parent's size."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux, bytes on macOS
    return kb / 1024 if sys.platform != "darwin" else kb / 2**20


def _gpu_memory_sampler(device: str):
    """The per-process GPU memory sampler for a CUDA case, None elsewhere."""
    if not str(device).startswith("cuda"):
        return None
    from pfdeploy.devices.gpu_memory import GpuMemorySampler

    return GpuMemorySampler()


class _Worker:
    def __init__(self):
        self.runner = None
        self.info: dict = {}
        self.gpu_memory = None

    def load(self, case: dict, inputs: str, model_file: str | None = None, weights_file: str | None = None) -> dict:
        import numpy as np

        from ..backends import get_backend

        spec = CaseSpec(**case)
        x = np.load(inputs)
        self.gpu_memory = _gpu_memory_sampler(spec.device)
        backend = get_backend(spec.backend)  # a plugin's too (a test double registers as one)
        threads = backend.setup_process(spec.threads)  # before the runtime starts its pools
        t0 = time.perf_counter_ns()
        self.runner = backend.load(spec, x, model_file=model_file, weights_file=weights_file)
        t1 = time.perf_counter_ns()
        self._sample_gpu()
        self.runner.infer()  # first inference: cold start
        t2 = time.perf_counter_ns()
        self._sample_gpu()
        self.runner.device_ms.clear(), self.runner.h2d_ms.clear(), self.runner.d2h_ms.clear()
        return {"load_ms": (t1 - t0) / 1e6, "first_ms": (t2 - t1) / 1e6, "describe": self.runner.describe(),
                "threads": threads, "pid": os.getpid()}

    def parity(self, inputs: str, outputs: str) -> dict:
        """Run the loaded runner (the very object that is timed) on the parity inputs (`inputs`:
        an .npz of arrays x0, x1, ... at the case's batch) and write its first outputs to
        `outputs` (.npz, y0, y1, ...); the parent compares them with PyTorch."""
        import numpy as np

        data = np.load(inputs)
        timed_batch = np.array(self.runner.inputs, copy=True)
        try:
            ys = {f"y{i}": self.runner.outputs(data[f"x{i}"]) for i in range(len(data.files))}
        finally:
            self.runner.set_inputs(timed_batch)  # the timed steps run the prepared batch again
        np.savez(outputs, **ys)
        self._sample_gpu()  # parity batches count towards the process's peak GPU memory too
        self.runner.device_ms.clear(), self.runner.h2d_ms.clear(), self.runner.d2h_ms.clear()
        return {"n": len(ys)}

    def warmup(self, rule: dict, max_time_s: float | None = None) -> dict:
        from .timing import warm_up

        samples = warm_up(self.runner.step, StopRule(**rule), max_time_s=max_time_s)
        self._sample_gpu()
        self.runner.device_ms.clear(), self.runner.h2d_ms.clear(), self.runner.d2h_ms.clear()
        return {"samples_ns": samples}

    def measure(self, iters: int, budget_ns: int | None = None, rewarm: int = 0) -> dict:
        r = self.runner
        for _ in range(rewarm):  # caches were evicted while other cases ran: not recorded
            r.step()
        r.device_ms.clear(), r.h2d_ms.clear(), r.d2h_ms.clear()
        before = cpu_snapshot()  # outside the timed interval: who else used the CPU in this round
        samples = r.timed(iters, budget_ns=budget_ns)
        cpu = cpu_usage(before, cpu_snapshot())
        self._sample_gpu()
        return {"samples_ns": samples, "device_ms": list(r.device_ms), "h2d_ms": list(r.h2d_ms),
                "d2h_ms": list(r.d2h_ms), "cpu": cpu}

    def loadgen(self, settings: dict, outdir: str, warmup_s: float = 1.0, samples_file: str | None = None) -> dict:
        from .loadgen.run import run_test  # issue 31: MLPerf LoadGen drives the loaded runner

        reply = run_test(self.runner, settings, outdir, warmup_s, samples_file=samples_file)
        self._sample_gpu()
        return reply

    def _sample_gpu(self) -> None:
        if self.gpu_memory is not None:
            self.gpu_memory.sample()

    def close(self) -> dict:
        r = self.runner
        out = {"peak_rss_mb": _peak_rss_mb(), "items_per_step": r.items_per_step if r else None}
        # one definition of peak GPU memory for every backend (pfdeploy.devices.gpu_memory); the
        # runtime's own figure (torch allocator, TensorRT engine memory) is kept as detail
        out.update(self.gpu_memory.result() if self.gpu_memory is not None
                   else {"peak_gpu_mb": None, "peak_gpu_source": None})
        runtime_mb = r.peak_gpu_mb() if r else None
        if runtime_mb is not None:
            out["runtime_peak_gpu_mb"] = runtime_mb
        if r:
            r.close()
        if self.gpu_memory is not None:
            self.gpu_memory.close()
        return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    rfd, wfd = int(argv[0]), int(argv[1])
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    parent = os.environ.get("PFDEPLOY_PARENT_PID")
    if parent and parent.isdigit():
        from pfdeploy.signals import die_with_parent

        # SIGKILL when the parent dies, however it dies: a busy worker never outlives it
        die_with_parent(int(parent))
    reader = os.fdopen(rfd, "r")
    writer = os.fdopen(wfd, "w", buffering=1)
    worker = _Worker()
    from pfdeploy.errors import UserError

    for line in reader:
        msg = json.loads(line)
        op = msg.pop("op")
        try:
            reply = {"ok": True, **getattr(worker, op)(**msg)}
        except UserError as exc:
            reply = {"ok": False, "kind": "user", "error": str(exc)}
        except Exception as exc:  # noqa: BLE001 - a runtime's own error fails the case, with its cause
            tb = traceback.format_exc()
            sys.stderr.write(tb)
            reply = {"ok": False, "kind": "error", "error": f"{type(exc).__name__}: {exc}".strip()}
        writer.write(json.dumps(reply) + "\n")
        writer.flush()
        if op == "close":
            break
    return 0


if __name__ == "__main__":
    sys.exit(main())
