"""LoadGen's System Under Test and Query Sample Library around a pfdeploy runner.

The QSL holds `n` preprocessed tensors in memory (the case's seeded batch and shifted copies of it,
so the samples are distinct with the same statistics): the measurement is the runtime, never a
decoder. The SUT queues every sample LoadGen issues and a dispatcher thread hands them to the
runner's concurrent-request API (`Runner.submit`), never more than `Runner.in_flight()` at once;
the runtime's completion callback answers LoadGen (`QuerySamplesComplete`). A query waiting in the
SUT's queue is waiting for the runtime, as it would in a server: LoadGen's latency includes it.

Beside LoadGen's own figures the SUT keeps its own issue-to-completion time of every query
(`latencies_ns`: one per issued query; offline: one per sample), so a case's processes can be
resampled like every other case's (the row's p50/p99 and their interval); LoadGen measures from
its scheduled issue time, so its figures are the verdict's and these are a close lower bound.
"""
from __future__ import annotations

import queue
import threading
import time
from functools import partial
from pathlib import Path


def qsl_samples(batch, n: int) -> list:
    """`n` distinct host tensors shaped like `batch`: the batch itself and copies shifted along the
    width (same value statistics; synthetic weights were calibrated on such images)."""
    import numpy as np

    batch = np.ascontiguousarray(batch)
    return [batch] + [np.ascontiguousarray(np.roll(batch, 7 * i, axis=-1)) for i in range(1, n)]


def image_samples(folder, spec, n: int):
    """(N, C, H, W) float32 of the first `n` images of `folder` (sorted paths) preprocessed per the
    model's zoo `spec` (resize, centre crop, normalise: what its accuracy check uses), and where
    they came from. The decoding happens here, before any test: the measurement is the runtime,
    not the decoder."""
    from ...exporters.images import folder_digest, list_images, preprocess

    files = list_images(folder, "--images folder")[: max(1, int(n))]
    x = preprocess(files, spec).numpy()
    return x, {"source": "images", "folder": str(Path(folder).expanduser().resolve()), "count": len(files),
               "sha256": folder_digest(files), "input_size": list(spec.input_size)}


def file_samples(path: str, like) -> list:
    """LoadGen's samples from a .npy written by `image_samples`: one host tensor per image, shaped
    and typed like the runner's own input `like` (batch 1); a tensor of another shape is refused."""
    import numpy as np

    x = np.load(path)
    want = tuple(like.shape[1:])
    if x.ndim != len(like.shape) or tuple(x.shape[1:]) != want:
        from ...errors import UserError

        raise UserError(f"LoadGen samples {tuple(x.shape[1:])} do not fit the model's input {want}")
    return [np.ascontiguousarray(x[i:i + 1].astype(like.dtype)) for i in range(len(x))]


class RunnerSUT:
    """The System Under Test: LoadGen's issue callback -> the runner's submit -> LoadGen's completion."""

    def __init__(self, lg, runner, samples: list, per_sample: bool = False, clock=time.perf_counter_ns):
        slots = runner.in_flight()
        if slots < 1:
            runner.submit(samples[0], None)  # raises the runner's own one-line refusal
        self.lg, self.runner, self.samples, self.per_sample, self.clock = lg, runner, samples, per_sample, clock
        self.slots = threading.BoundedSemaphore(slots)
        self.in_flight = slots
        self.pending: queue.SimpleQueue = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.latencies_ns: list[int] = []
        self.errors: list[str] = []
        self.error_count = 0
        self.issued = 0
        self.completed = 0
        self._queries: dict[int, list[int]] = {}  # query number -> [issue time, samples left]
        self._next = 0
        self.thread = threading.Thread(target=self._dispatch, name="pfdeploy-sut", daemon=True)
        self.thread.start()
        self.handle = lg.ConstructSUT(self.issue_query, self.flush_queries)

    # LoadGen's callbacks (its issue thread)
    def issue_query(self, query_samples) -> None:
        now = self.clock()
        with self.lock:
            q = self._next
            self._next += 1
            self._queries[q] = [now, len(query_samples)]
            self.issued += len(query_samples)
        for s in query_samples:
            self.pending.put((q, s.id, s.index))

    def flush_queries(self) -> None:
        pass

    # the dispatcher and the runtime's completion threads
    def _dispatch(self) -> None:
        n = len(self.samples)
        while True:
            item = self.pending.get()
            if item is None:
                return
            q, qid, index = item
            self.slots.acquire()
            try:
                self.runner.submit(self.samples[index % n], partial(self._done, q, qid))
            except Exception as exc:  # noqa: BLE001 - a failed start still answers LoadGen (and fails the run)
                self._done(q, qid, None, exc)

    def _done(self, q: int, qid: int, output, error) -> None:
        now = self.clock()
        self.slots.release()
        with self.lock:
            self.completed += 1
            if error is not None:
                self.error_count += 1
                if len(self.errors) < 3:
                    self.errors.append(f"{type(error).__name__}: {error}".strip())
            entry = self._queries[q]
            entry[1] -= 1
            if self.per_sample:
                self.latencies_ns.append(now - entry[0])
            if entry[1] == 0:
                if not self.per_sample:
                    self.latencies_ns.append(now - entry[0])
                del self._queries[q]
        self.lg.QuerySamplesComplete([self.lg.QuerySampleResponse(qid, 0, 0)])

    def close(self) -> None:
        self.pending.put(None)
        self.thread.join(timeout=60)
        self.lg.DestroySUT(self.handle)


class MemoryQSL:
    """The Query Sample Library: every sample already in memory (load and unload are no-ops)."""

    def __init__(self, lg, count: int):
        self.lg = lg
        self.handle = lg.ConstructQSL(count, count, self._load, self._unload)

    def _load(self, indices) -> None:
        pass

    def _unload(self, indices) -> None:
        pass

    def close(self) -> None:
        self.lg.DestroyQSL(self.handle)
