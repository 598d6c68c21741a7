"""Fleet: one bench configuration on every node of a Ray cluster, each node's run gathered into the
driver's results store (docs/fleet.md).

    session = connect("10.0.0.5:6379")          # one clear UserError when it cannot be reached
    nodes = probe_nodes(session)                # alive nodes, what runs there, usable or why not
    fleet = FleetBench(cfg, store, select(nodes, "gpu-a,10.0.0.7"))
    fleet.run(display)                          # -> [NodeRun], every run imported into `store`

Each selected node runs one Ray task pinned to it (NodeAffinitySchedulingStrategy, soft=False)
that reserves every CPU and GPU the node has, so Ray schedules nothing else there while it
measures. The task is an ordinary `pfdeploy bench` on that node: the same Engine, a private SQLite
store in a temporary directory, the node's own machine metadata and id; the run's meta also
carries `fleet` (the Ray node id, host and address). Every finished case is relayed to a small
collector actor on the driver's node the moment it is committed (a synchronous call: the case is
on the driver before the node measures the next), so a node that dies mid-run loses nothing it
finished. At the end the driver imports each node's run file through the store's ordinary import
path (Store.import_run: one transaction per run): the node's own export when its task returned,
else the cases relayed so far, with status failed (the node died) or interrupted (Ctrl-C) and the
reason in `fleet.error`.
"""
from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field

from .errors import UsageError, UserError, optional_import

PROBE_TIMEOUT_S = 120.0  # a node that does not answer the probe in this long is unusable
CANCEL_GRACE_S = 30.0  # after Ctrl-C: how long the nodes get to stop and report before a force-cancel
PROGRESS_EVERY_S = 0.5  # a node relays its progress line at most this often


def _ray():
    return optional_import("ray", "pfdeploy fleet")


# ---------------------------------------------------------------------------- connecting


def _host_port(address: str) -> tuple[str, int] | None:
    """(host, port) of 'host:port' or 'ray://host:port'; None for what only Ray resolves ('auto')."""
    a = address.strip()
    if a.startswith("ray://"):
        a = a[len("ray://"):]
    elif "://" in a:
        raise UsageError(f"--address {address!r}: give host:port of the cluster's head (GCS, default port 6379) "
                         "or ray://host:port (Ray Client, port 10001)")
    if a in ("auto", "local", ""):
        return None
    host, sep, port = a.rpartition(":")
    if not sep or not host:
        raise UsageError(f"--address {address!r}: expected host:port (the head's GCS port, 6379 by default)")
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        raise UsageError(f"--address {address!r}: port {port!r} is not a number") from None


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """One clear UserError when nothing accepts a TCP connection at the address (Ray itself would
    retry for a minute before failing with a long log)."""
    hp = _host_port(address)
    if hp is None:
        return
    try:
        with socket.create_connection(hp, timeout=timeout_s):
            pass
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise UserError(f"cannot reach the Ray cluster at {address}: {why} (is `ray start --head` running there, "
                        "and is its port open to this machine?)") from None


def check_reachable_address(address: str | None) -> str:
    """The cluster address (--address, else $RAY_ADDRESS), checked to accept connections; one
    UserError line otherwise. Cheap: nothing heavy is imported."""
    address = address or os.environ.get("RAY_ADDRESS")
    if not address:
        raise UserError("no Ray cluster given: pass --address HOST:PORT (or set RAY_ADDRESS)")
    check_reachable(address)
    return address


def connect(address: str | None):
    """Connect this process to the Ray cluster as a driver (never starts one). Returns the ray
    module. UserError for no address, an unreachable address or a Ray/Python mismatch."""
    address = check_reachable_address(address)
    ray = _ray()
    import logging

    try:
        ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False,
                 namespace="pfdeploy-fleet", ignore_reinit_error=True)
    except Exception as exc:  # noqa: BLE001 - ConnectionError, version mismatch (RuntimeError), ...
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:400]
        raise UserError(f"cannot connect to the Ray cluster at {address}: {first}") from None
    return ray


def disconnect() -> None:
    ray = _ray()
    if ray.is_initialized():
        ray.shutdown()


# ---------------------------------------------------------------------------- nodes


@dataclass
class Node:
    node_id: str
    host: str
    ip: str
    cpus: float
    gpus: float
    accelerator: str | None = None
    # filled by the probe
    pfdeploy_version: str | None = None
    python: str | None = None
    cpu_model: str | None = None
    physical_cores: int | None = None
    logical_cores: int | None = None
    memory_gib: float | None = None
    gpu_names: list = field(default_factory=list)
    tools: dict = field(default_factory=dict)
    machine_id: str | None = None
    machine_name: str | None = None
    unusable: str | None = None  # why pfdeploy cannot run there (None: usable)

    @property
    def short(self) -> str:
        return self.node_id[:8]

    @property
    def label(self) -> str:
        name = f" ({self.machine_name})" if self.machine_name else ""
        return f"{self.host}{name} {self.short}"

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)


def _probe() -> dict:
    """Runs on a node: what pfdeploy sees there. Imports no runtime."""
    from . import __version__
    from .backends import machine_metadata

    meta = machine_metadata()
    cpu = meta.get("cpu") or {}
    return {"pfdeploy_version": __version__, "python": (meta.get("python") or {}).get("version"),
            "hostname": meta.get("hostname"), "cpu_model": cpu.get("model"),
            "physical_cores": cpu.get("physical_cores"), "logical_cores": cpu.get("logical_cores"),
            "memory_gib": meta.get("memory_gib"), "gpu_names": [g.get("name") for g in meta.get("gpus") or []],
            "tools": meta.get("tools") or {}, "machine_id": meta.get("machine_id"),
            "machine_name": meta.get("machine_name")}


def _pin(node_id: str, soft: bool = False):
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return NodeAffinitySchedulingStrategy(node_id=node_id, soft=soft)


def alive_nodes(ray) -> list[Node]:
    out = []
    for n in ray.nodes():
        if not n.get("Alive"):
            continue
        res = n.get("Resources") or {}
        accel = next((k.split(":", 1)[1] for k in res if k.startswith("accelerator_type:")), None)
        out.append(Node(node_id=n["NodeID"], host=n.get("NodeManagerHostname") or n.get("NodeManagerAddress") or "?",
                        ip=n.get("NodeManagerAddress") or "?", cpus=float(res.get("CPU", 0)),
                        gpus=float(res.get("GPU", 0)), accelerator=accel))
    out.sort(key=lambda x: (x.host, x.ip, x.node_id))
    return out


def probe_nodes(ray, timeout_s: float = PROBE_TIMEOUT_S) -> list[Node]:
    """Every alive node, probed by a zero-CPU task pinned to it: pfdeploy's version, the CPU, GPUs
    and runtime versions found there. A node where pfdeploy cannot be imported, or that does not
    answer, or whose pfdeploy differs from this one, is marked unusable with the reason."""
    from . import __version__

    nodes = alive_nodes(ray)
    if not nodes:
        raise UserError("the Ray cluster has no alive node")
    probe = ray.remote(_probe)
    refs = {n.node_id: probe.options(num_cpus=0, max_retries=0, scheduling_strategy=_pin(n.node_id)).remote()
            for n in nodes}
    deadline = time.monotonic() + timeout_s
    for n in nodes:
        try:
            info = ray.get(refs[n.node_id], timeout=max(0.1, deadline - time.monotonic()))
        except ray.exceptions.GetTimeoutError:
            ray.cancel(refs[n.node_id], force=True)
            n.unusable = f"did not answer the probe in {timeout_s:.0f} s"
            continue
        except Exception as exc:  # noqa: BLE001 - pfdeploy missing there (unpickling fails), node died...
            n.unusable = _probe_failure(exc)
            continue
        n.pfdeploy_version = info["pfdeploy_version"]
        n.python = info["python"]
        n.cpu_model, n.physical_cores, n.logical_cores = info["cpu_model"], info["physical_cores"], info["logical_cores"]
        n.memory_gib, n.gpu_names, n.tools = info["memory_gib"], info["gpu_names"], info["tools"]
        n.machine_id, n.machine_name = info["machine_id"], info["machine_name"]
        if n.pfdeploy_version != __version__:
            n.unusable = (f"pfdeploy {n.pfdeploy_version} there, {__version__} here: install the same version on "
                          "every node (docs/fleet.md)")
    return nodes


def _probe_failure(exc: BaseException) -> str:
    text = str(exc)
    if "No module named 'pfdeploy'" in text or "No module named \"pfdeploy\"" in text:
        return "pfdeploy is not installed there (No module named 'pfdeploy'; docs/fleet.md: install it in the image " \
               "or through a runtime_env)"
    return f"the probe failed: {_one_line(exc)}"


def _one_line(exc: BaseException) -> str:
    """The last meaningful line of a (possibly multi-line, traceback-carrying) Ray error."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    tail = [ln for ln in lines if not ln.startswith(("File ", "Traceback", "^", "~"))]
    text = (tail[-1] if tail else type(exc).__name__)
    return f"{type(exc).__name__}: {text}"[:400] if type(exc).__name__ not in text else text[:400]


def select(nodes: list[Node], selector: str | None) -> list[Node]:
    """The nodes a comma-separated selector names: each item is a node id (or a prefix of 6+
    characters), a host name, an IP address or a machine name ($PFDEPLOY_MACHINE_NAME there).
    None or 'all': every alive node. An item that matches nothing is a UsageError listing them."""
    from .errors import UsageError

    if not selector or selector.strip() == "all":
        return list(nodes)
    chosen: list[Node] = []
    for item in (s.strip() for s in selector.split(",")):
        if not item:
            continue
        hits = [n for n in nodes if item in (n.host, n.ip, n.machine_name)
                or n.node_id == item or (len(item) >= 6 and n.node_id.startswith(item))]
        if not hits:
            listed = "; ".join(f"{n.short} {n.host} {n.ip}" for n in nodes)
            raise UsageError(f"--nodes: no alive node matches {item!r} (nodes: {listed})")
        for n in hits:
            if n not in chosen:
                chosen.append(n)
    if not chosen:
        raise UsageError("--nodes selects no node")
    return chosen


def refuse_unusable(nodes: list[Node]) -> None:
    """Nothing runs unless every selected node can run this pfdeploy: one UserError naming each."""
    bad = [n for n in nodes if n.unusable]
    if bad:
        listed = "; ".join(f"node {n.short} ({n.host}): {n.unusable}" for n in bad)
        raise UserError(f"refused before anything ran: {len(bad)} of {len(nodes)} selected node(s) cannot run this "
                        f"pfdeploy: {listed}")


# ---------------------------------------------------------------------------- the node side


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
            self.lost = _one_line(exc)

    def _run_doc(self, run_id: str) -> dict:
        run = self.local.get_run(run_id)
        run.pop("n_results", None)
        return run

    def begin_run(self, meta: dict) -> str:
        run_id = self.local.begin_run({**meta, "fleet": self.fleet_meta})
        self.run_id = run_id
        self._send("begin", self._run_doc(run_id))
        return run_id

    def add_result(self, run_id, row, samples_ns=None, rounds=None, device_samples_ns=None) -> int:
        rid = self.local.add_result(run_id, row, samples_ns, rounds, device_samples_ns=device_samples_ns)
        stored = next(r for r in reversed(self.local.results(run_id)) if r["id"] == rid)
        s = self.local.samples(rid)
        self._send("case", {**stored, "samples_ns": s["latency_ns"], "sample_rounds": s["round"],
                            "device_samples_ns": s.get("device_latency_ns")})
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

    from .bench.engine import Engine
    from .store import open_store

    tmp = tempfile.mkdtemp(prefix="pfdeploy-fleet-")
    local = open_store(os.path.join(tmp, "node-run.db"))
    relay = _Relay(local, collector, key, {**fleet_meta, "ray_node_id": _current_node_id()})
    try:
        try:
            if prepared_cases is None:
                from .cli.bench import check_machine

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


def _current_node_id() -> str | None:
    try:
        import ray

        return ray.get_runtime_context().get_node_id()
    except Exception:  # noqa: BLE001
        return None


# ---------------------------------------------------------------------------- the driver side


@dataclass
class NodeRun:
    node: Node
    run: dict | None = None  # the run record relayed at begin (or finish)
    results: list = field(default_factory=list)  # relayed result rows with their samples
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
        for r in (self.doc or {}).get("results", self.results):
            c[r.get("status")] = c.get(r.get("status"), 0) + 1
        return c


class Display:
    """What the driver shows while the fleet runs; no-op by default (the CLI draws it with rich)."""

    def start(self, runs: list[NodeRun]) -> None: ...

    def update(self, nr: NodeRun) -> None: ...

    def case(self, nr: NodeRun, row: dict) -> None: ...

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
        driver_node = _current_node_id()
        collector_cls = ray.remote(_Collector)
        opts = {"num_cpus": 0, "max_restarts": 0}
        if driver_node:  # beside the driver: it must outlive any benchmarked node
            opts["scheduling_strategy"] = _pin(driver_node, soft=True)
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
                    scheduling_strategy=_pin(n.node_id, soft=False), name=f"pfdeploy-fleet-bench:{n.host}",
                ).remote(self.cfg, n.node_id, collector, fleet_meta, self.prepared_cases)
                nr.status, nr.started = "running", time.monotonic()
                display.update(nr)
            self._wait(refs, collector, display)
        except KeyboardInterrupt as exc:
            from . import signals

            self.signum = getattr(exc, "signum", None) or signals.received() or 2
            with signals.deferred():
                self._cancel(refs, collector, display)
        finally:
            display.stop()
        from . import signals

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
        from . import signals

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
                elif kind == "case":
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
        from .bench.engine import _now
        from .runfile import RUN_FILE_FORMAT, RUN_FILE_VERSION

        doc = nr.doc
        if doc is None and nr.run is not None:  # no export came back: what the node relayed
            run = dict(nr.run)
            if run.get("status") == "running":  # it never finished: how it ended is the driver's finding
                run["status"] = "interrupted" if nr.status == "interrupted" else "failed"
                run["finished_at"] = _now()  # the engine's own run timestamp format
            doc = {"format": RUN_FILE_FORMAT, "version": RUN_FILE_VERSION, "run": run, "results": list(nr.results)}
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
    ray = _ray()
    name = type(exc).__name__
    if isinstance(exc, (ray.exceptions.NodeDiedError, ray.exceptions.WorkerCrashedError,
                        ray.exceptions.LocalRayletDiedError, ray.exceptions.ObjectLostError)):
        return f"node {node.short} ({node.host}) died or was removed mid-run ({name})"
    if isinstance(exc, ray.exceptions.RayTaskError):
        cause = getattr(exc, "cause", None)
        if cause is not None:
            return f"the node's task failed: {_one_line(cause)}"
    return f"the node's task failed: {_one_line(exc)}"
