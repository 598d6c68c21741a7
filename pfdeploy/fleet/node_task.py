"""What runs on a node, inside the Ray task pinned to it: an ordinary bench of the configuration
into a private SQLite store, every write relayed at once to the driver's collector, so a node
that dies mid-run loses nothing it finished."""
from __future__ import annotations

import os
import time

from ..errors import UserError
from ..result import Result
from .cluster import PROGRESS_EVERY_S, current_node_id, one_line


class _Relay:
    """The Store the node's Engine writes to: the node's private SQLite store, and every write
    relayed to the driver's collector at once (synchronously for runs and cases)."""

    def __init__(self, local, collector, key: str, fleet_meta: dict):
        self.local, self.collector, self.key, self.fleet_meta = local, collector, key, fleet_meta
        self.url = local.url
        self.run_id = None
        self.lost: str | None = None  # why the driver can no longer be told (it keeps measuring)

    def _send(self, kind: str, payload, wait: bool = True) -> None:
        if self.lost:
            return
        import ray

        try:
            ref = self.collector.put.remote(self.key, kind, payload)
            if wait:
                ray.get(ref, timeout=120)
        except Exception as exc:  # noqa: BLE001 - the driver went away; the node's run still completes
            self.lost = one_line(exc)

    def _run_doc(self, run_id: str) -> dict:
        run = self.local.get_run(run_id)
        run.pop("n_results", None)
        return run

    def begin_run(self, meta: dict) -> str:
        run_id = self.local.begin_run({**meta, "fleet": self.fleet_meta})
        self.run_id = run_id
        self._send("begin", self._run_doc(run_id))
        return run_id

    def add_result(self, run_id, result: Result, samples_ns=None, rounds=None, device_samples_ns=None) -> int:
        """Store the case locally and relay it as the run file's row of it (`Result.to_row(samples=True)`:
        the stored result, with the samples the store was given: the result's own unless passed)."""
        rid = self.local.add_result(run_id, result, samples_ns, rounds, device_samples_ns=device_samples_ns)
        stored = next(r for r in reversed(self.local.results(run_id)) if r.id == rid)
        if samples_ns is None:  # as Store.add_result: the result carries its samples (the engine's way)
            samples_ns, rounds = result.samples_ns, result.sample_rounds
            if device_samples_ns is None:
                device_samples_ns = result.device_samples_ns
        stored = stored.but(samples_ns=None if samples_ns is None else list(samples_ns),
                            sample_rounds=None if rounds is None or samples_ns is None else list(rounds),
                            device_samples_ns=None if device_samples_ns is None else list(device_samples_ns))
        self._send("case", stored.to_row(samples=True))
        return rid

    def finish_run(self, run_id, status, loadavg_after=None) -> None:
        self.local.finish_run(run_id, status, loadavg_after=loadavg_after)
        self._send("finish", self._run_doc(run_id))

    def __getattr__(self, name):
        return getattr(self.local, name)


class _RelayProgress:
    """The engine's progress, relayed to the driver (at most every PROGRESS_EVERY_S; phases at once)."""

    def __init__(self, relay: _Relay):
        self.relay = relay
        self._last = 0.0

    def phase(self, text):
        self.relay._send("progress", {"text": text}, wait=False)

    def plan(self, total_units):
        self.relay._send("progress", {"done": 0.0, "total": total_units}, wait=False)

    def update(self, current, completed_units, total_units):
        now = time.monotonic()
        if now - self._last >= PROGRESS_EVERY_S:
            self._last = now
            self.relay._send("progress", {"text": current, "done": completed_units, "total": total_units}, wait=False)

    def case_done(self, result):
        pass  # the case itself was relayed by the store


def node_bench(cfg, key: str, collector, fleet_meta: dict, prepared_cases=None) -> dict:
    """Runs on the node (inside the pinned Ray task): an ordinary bench of `cfg` into a private
    store, relayed to the driver. Returns {"status", "doc" (the run file) or None, "error"}."""
    import shutil
    import tempfile

    from ..bench.engine import Engine
    from ..store import open_store

    tmp = tempfile.mkdtemp(prefix="pfdeploy-fleet-")
    local = open_store(os.path.join(tmp, "node-run.db"))
    relay = _Relay(local, collector, key, {**fleet_meta, "ray_node_id": current_node_id()})
    try:
        try:
            if prepared_cases is None:
                from ..preflight import check_machine

                check_machine(cfg)  # --threads and --batch against this node's CPUs and memory
            outcome = Engine(cfg, relay, store_url=local.url).run(_RelayProgress(relay), prepared_cases=prepared_cases)
        except UserError as exc:
            doc = local.export_run(relay.run_id) if relay.run_id else None
            return {"status": "failed", "doc": doc, "error": str(exc), "relay_lost": relay.lost}
        return {"status": outcome.status, "doc": local.export_run(outcome.run_id), "error": None,
                "notes": outcome.notes, "relay_lost": relay.lost}
    finally:
        local.close()
        shutil.rmtree(tmp, ignore_errors=True)
