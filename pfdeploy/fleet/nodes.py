"""The cluster's node inventory: every alive node, probed by a zero-CPU task pinned to it (what
pfdeploy finds there), selected by the user's --nodes, refused when it cannot run this pfdeploy."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..errors import UserError
from .cluster import PROBE_TIMEOUT_S, one_line, pin_to


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
    from .. import __version__
    from ..backends import machine_metadata

    meta = machine_metadata()
    cpu = meta.get("cpu") or {}
    return {"pfdeploy_version": __version__, "python": (meta.get("python") or {}).get("version"),
            "hostname": meta.get("hostname"), "cpu_model": cpu.get("model"),
            "physical_cores": cpu.get("physical_cores"), "logical_cores": cpu.get("logical_cores"),
            "memory_gib": meta.get("memory_gib"), "gpu_names": [g.get("name") for g in meta.get("gpus") or []],
            "tools": meta.get("tools") or {}, "machine_id": meta.get("machine_id"),
            "machine_name": meta.get("machine_name")}


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
    from .. import __version__

    nodes = alive_nodes(ray)
    if not nodes:
        raise UserError("the Ray cluster has no alive node")
    probe = ray.remote(_probe)
    refs = {n.node_id: probe.options(num_cpus=0, max_retries=0, scheduling_strategy=pin_to(n.node_id)).remote()
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
    return f"the probe failed: {one_line(exc)}"


def select(nodes: list[Node], selector: str | None) -> list[Node]:
    """The nodes a comma-separated selector names: each item is a node id (or a prefix of 6+
    characters), a host name, an IP address or a machine name ($PFDEPLOY_MACHINE_NAME there).
    None or 'all': every alive node. An item that matches nothing is a UsageError listing them."""
    from ..errors import UsageError

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
