"""The driver side of a fleet bench: one pinned task per node, the collector actor the nodes relay
to, the per-node runs as they progress, Ctrl-C (cancel, wait, force), and each node's run imported
into the driver's store through Store.import_run."""
from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field

from ..errors import UserError
from ..result import Result
from .cluster import CANCEL_GRACE_S, current_node_id, one_line, pin_to, ray_module
from .node_task import node_bench
from .nodes import Node


class _Collector:
    """Actor on the driver's node: what the nodes relay (begin, each case, progress, finish),
    drained by the driver. Holds nothing the driver has not yet drained."""

    def __init__(self):
        self._events: list = []

    def put(self, key: str, kind: str, payload) -> bool:
        self._events.append((key, kind, payload))
        return True

    def drain(self) -> list:
        out, self._events = self._events, []
        return out


@dataclass
class NodeRun:
    node: Node
    run: dict | None = None  # the run record relayed at begin (or finish)
    results: list[Result] = field(default_factory=list)  # the relayed results (with their samples); the
    # node's own export's once its task returned one
    status: str = "pending"  # pending | running | finished | failed | interrupted
    error: str | None = None
    doc: dict | None = None  # the run file imported into the store
    run_id: str | None = None
    imported: bool = False
    text: str = "waiting for the node"
    done: float = 0.0
    total: float | None = None
    started: float | None = None
    wall_s: float | None = None
    notes: list = field(default_factory=list)

    def counts(self) -> dict:
        c = {"ok": 0, "failed": 0, "skipped": 0}
        for r in self.results:
            c[r.status] = c.get(r.status, 0) + 1
        return c


class Display:
    """What the driver shows while the fleet runs; no-op by default (the CLI draws it with rich)."""

    def start(self, runs: list[NodeRun]) -> None: ...

    def update(self, nr: NodeRun) -> None: ...

    def case(self, nr: NodeRun, row: Result) -> None: ...

    def stop(self) -> None: ...


class FleetBench:
    """Runs `cfg` on every node of `nodes` at once and imports each node's run into `store`."""

    def __init__(self, ray, cfg, store, nodes: list[Node], address: str, prepared_cases=None):
        self.ray, self.cfg, self.store, self.nodes = ray, cfg, store, nodes
        self.address = address
        self.prepared_cases = prepared_cases
        self.runs = {n.node_id: NodeRun(n) for n in nodes}
        self.signum: int | None = None
        self._pending: list = []  # relayed events fetched but not yet applied

    def run(self, display: Display | None = None) -> list[NodeRun]:
        ray = self.ray
        display = display or Display()
        driver_node = current_node_id()
        collector_cls = ray.remote(_Collector)
        opts = {"num_cpus": 0, "max_restarts": 0}
        if driver_node:  # beside the driver: it must outlive any benchmarked node
            opts["scheduling_strategy"] = pin_to(driver_node, soft=True)
        collector = collector_cls.options(**opts).remote()
        task = ray.remote(node_bench)
        refs = {}
        display.start(list(self.runs.values()))
        try:
            for n in self.nodes:
                nr = self.runs[n.node_id]
                fleet_meta = {"node_id": n.node_id, "host": n.host, "ip": n.ip, "address": self.address,
                              "driver_host": socket.gethostname(), "reserved": {"CPU": n.cpus, "GPU": n.gpus}}
                # exclusive: pinned to the node, holding all of its CPUs and GPUs while it measures
                refs[n.node_id] = task.options(
                    num_cpus=n.cpus, num_gpus=n.gpus, max_retries=0, retry_exceptions=False,
                    scheduling_strategy=pin_to(n.node_id, soft=False), name=f"pfdeploy-fleet-bench:{n.host}",
                ).remote(self.cfg, n.node_id, collector, fleet_meta, self.prepared_cases)
                nr.status, nr.started = "running", time.monotonic()
                display.update(nr)
            self._wait(refs, collector, display)
        except KeyboardInterrupt as exc:
            from .. import signals

            self.signum = getattr(exc, "signum", None) or signals.received() or 2
            with signals.deferred():
                self._cancel(refs, collector, display)
        finally:
            display.stop()
        from .. import signals

        with signals.deferred():  # every run reaches the store, even under a second Ctrl-C
            for nr in self.runs.values():
                self._import(nr)
        try:
            ray.kill(collector)
        except Exception:  # noqa: BLE001
            pass
        return list(self.runs.values())

    # -- events

    def _drain(self, collector, display) -> None:
        """Fetch what the nodes relayed and apply it. Events wait in self._pending until applied,
        each applied whole (signals deferred), so a Ctrl-C in the middle of a batch loses none:
        the cancel path drains again and carries on where this stopped."""
        from .. import signals

        try:
            self._pending.extend(self.ray.get(collector.drain.remote(), timeout=60))
        except Exception:  # noqa: BLE001 - the collector is gone: the task returns still carry the runs
            pass
        while self._pending:
            with signals.deferred():
                key, kind, payload = self._pending.pop(0)
                nr = self.runs.get(key)
                if nr is None:
                    continue
                if kind in ("begin", "finish"):
                    nr.run = payload
                    nr.run_id = payload.get("id")
                    if kind == "begin":
                        nr.text = "measuring"
                elif kind == "case":  # the relayed run-file row: typed here
                    payload = Result.from_row(payload)
                    nr.results.append(payload)
                elif kind == "progress":
                    nr.text = payload.get("text", nr.text)
                    if payload.get("total") is not None:
                        nr.total = payload["total"]
                    if payload.get("done") is not None:
                        nr.done = payload["done"]
            if kind == "case":
                display.case(nr, payload)
            display.update(nr)

    def _settle(self, node_id: str, ref, display) -> None:
        """A task has ended: its return, or why it has none."""
        nr = self.runs[node_id]
        nr.wall_s = time.monotonic() - (nr.started or time.monotonic())
        try:
            out = self.ray.get(ref, timeout=60)
        except self.ray.exceptions.TaskCancelledError:
            nr.status, nr.error = "interrupted", "cancelled from the driver (Ctrl-C)"
        except Exception as exc:  # noqa: BLE001 - NodeDiedError, WorkerCrashedError, ...
            nr.status = "failed"
            nr.error = _death_reason(exc, nr.node)
        else:
            nr.doc = out.get("doc")
            if nr.doc is not None:  # the node's own export (a run file): what it stored, typed
                nr.results = [Result.from_row(r) for r in nr.doc["results"]]
            nr.status = out["status"] if out["status"] in ("finished", "interrupted") else "failed"
            nr.error = out.get("error")
            nr.notes = out.get("notes") or []
            if self.signum and nr.status == "interrupted":
                nr.error = nr.error or "cancelled from the driver (Ctrl-C)"
        nr.text = nr.status if not nr.error else f"{nr.status}: {nr.error}"
        display.update(nr)

    def _wait(self, refs: dict, collector, display) -> None:
        ray = self.ray
        pending = {ref: nid for nid, ref in refs.items()}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0.5)
            self._drain(collector, display)
            for ref in ready:
                self._settle(pending.pop(ref), ref, display)
        self._drain(collector, display)

    def _cancel(self, refs: dict, collector, display) -> None:
        """Ctrl-C: cancel every node's task (each node's engine then stops its workers, keeps its
        finished cases and marks its run interrupted), wait for them to report, force after
        CANCEL_GRACE_S."""
        ray = self.ray
        pending = {ref: nid for nid, ref in refs.items() if self.runs[nid].status in ("pending", "running")}
        for ref in pending:
            try:
                ray.cancel(ref)
            except Exception:  # noqa: BLE001
                pass
        deadline = time.monotonic() + CANCEL_GRACE_S
        while pending and time.monotonic() < deadline:
            ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0.5)
            self._drain(collector, display)
            for ref in ready:
                self._settle(pending.pop(ref), ref, display)
        for ref, nid in pending.items():
            try:
                ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001
                pass
            nr = self.runs[nid]
            nr.status, nr.error = "interrupted", f"cancelled from the driver (Ctrl-C); no answer in {CANCEL_GRACE_S:.0f} s"
        self._drain(collector, display)

    # -- the store

    def _import(self, nr: NodeRun) -> None:
        """The node's run into the driver's store through Store.import_run: the node's own export
        when its task returned one, else what it relayed (status failed/interrupted, reason kept)."""
        from ..clock import utc_now_iso as _now
        from ..runfile import RUN_FILE_FORMAT, RUN_FILE_VERSION

        doc = nr.doc
        if doc is None and nr.run is not None:  # no export came back: what the node relayed
            run = dict(nr.run)
            if run.get("status") == "running":  # it never finished: how it ended is the driver's finding
                run["status"] = "interrupted" if nr.status == "interrupted" else "failed"
                run["finished_at"] = _now()  # the engine's own run timestamp format
            doc = {"format": RUN_FILE_FORMAT, "version": RUN_FILE_VERSION, "run": run,
                   "results": [r.to_row(samples=True) for r in nr.results]}
        if doc is None:  # the node died (or was cancelled) before its run began: nothing to keep
            nr.status = "interrupted" if nr.status == "interrupted" else "failed"
            nr.error = nr.error or "no run was started"
            return
        run = doc["run"]
        if nr.error:
            run["fleet"] = {**(run.get("fleet") or {}), "error": nr.error}
        nr.status = run.get("status") or "failed"
        nr.doc = doc
        nr.run_id = run.get("id")
        try:
            self.store.import_run(doc)
            nr.imported = True
        except UserError as exc:
            nr.error = f"{nr.error + '; ' if nr.error else ''}not stored: {exc}"


def _death_reason(exc: BaseException, node: Node) -> str:
    ray = ray_module()
    name = type(exc).__name__
    if isinstance(exc, (ray.exceptions.NodeDiedError, ray.exceptions.WorkerCrashedError,
                        ray.exceptions.LocalRayletDiedError, ray.exceptions.ObjectLostError)):
        return f"node {node.short} ({node.host}) died or was removed mid-run ({name})"
    if isinstance(exc, ray.exceptions.RayTaskError):
        cause = getattr(exc, "cause", None)
        if cause is not None:
            return f"the node's task failed: {one_line(cause)}"
    return f"the node's task failed: {one_line(exc)}"
