"""`pfdeploy fleet`: the nodes of a Ray cluster (`nodes`) and one bench configuration run on every
one of them at once (`bench`), each node's run gathered into the driver's store (docs/fleet.md)."""
from __future__ import annotations

import sys
from dataclasses import asdict, dataclass

import click
from rich.text import Text

from .bench_options import bench_options

ADDRESS_HELP = ("The Ray cluster: HOST:PORT of its head (GCS, 6379 by default) or ray://HOST:PORT (Ray Client); "
                "default $RAY_ADDRESS.")


@click.group("fleet")
def command():
    """Benchmark every machine of a Ray cluster with one command (docs/fleet.md).

    Needs `pip install 'pfdeploy[fleet]'` here and the same pfdeploy (and Ray, Python) on every node."""


def _gpus(n) -> str:
    if not n.gpus and not n.gpu_names:
        return "-"
    names = ", ".join(sorted(set(n.gpu_names))) if n.gpu_names else (n.accelerator or "")
    return f"{n.gpus:g} {names}".strip()


def _runtimes(n) -> str:
    t = n.tools or {}
    parts = [f"{k} {t[k]}" for k in ("onnxruntime", "openvino", "torch", "tensorrt") if t.get(k)]
    return ", ".join(parts) or "-"


@command.command("nodes")
@click.option("--address", help=ADDRESS_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the nodes as JSON.")
@click.option("--wide", is_flag=True, help="Table: every column, even where the terminal is narrower.")
def nodes_command(address, as_json, wide):
    """List the cluster's alive nodes: node id, host, CPU, GPUs, the pfdeploy and runtime versions
    found there, and whether `fleet bench` can use it (and why not). Exit 1 when a node is unusable."""
    from .. import __version__, fleet
    from ..render import Col, console, print_table

    fleet.check_reachable_address(address)
    ray = fleet.connect(address)
    try:
        nodes = fleet.probe_nodes(ray)
    finally:
        fleet.disconnect()
    if as_json:
        from ..render import to_json

        sys.stdout.write(to_json({"pfdeploy_version": __version__, "nodes": [n.to_dict() for n in nodes]}) + "\n")
    else:
        cols = [Col("node"), Col("host"), Col("usable", wrap=True, min=24), Col("CPU", 1), Col("cores", 2, right=True),
                Col("GPUs", 1), Col("pfdeploy", 2), Col("runtimes", 4), Col("machine id", 5), Col("ip", 6)]
        rows = []
        for n in nodes:
            cores = f"{n.physical_cores}/{n.logical_cores}" if n.logical_cores else f"{n.cpus:g}"
            rows.append([n.short + (f" ({n.machine_name})" if n.machine_name else ""), n.host,
                         Text("yes", style="green") if not n.unusable else Text(f"no: {n.unusable}", style="red"),
                         n.cpu_model or "-", cores, _gpus(n), n.pfdeploy_version or "-", _runtimes(n),
                         n.machine_id or "-", n.ip])
        print_table(console, cols, rows, title=f"Ray cluster {address or ''}: {len(nodes)} alive node(s); "
                                                 f"pfdeploy {__version__} here (cores: physical/logical)", wide=wide)
    if any(n.unusable for n in nodes):
        sys.exit(1)


class RichFleetDisplay:
    """One progress bar per node on stderr (rich, as `pfdeploy bench`), each case's failure printed
    above them with its node; on a terminal that is not a TTY, one line per event instead."""

    def __init__(self, console):
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
        from rich.table import Column

        self.console = console
        self.tty = console.is_terminal
        self.bar = Progress(SpinnerColumn(),
                            TextColumn("{task.fields[node]}", style="bold", markup=False,
                                       table_column=Column(no_wrap=True, overflow="crop", max_width=28)),
                            BarColumn(bar_width=12), TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(),
                            TextColumn("{task.description}", markup=False,
                                       table_column=Column(no_wrap=True, overflow="ellipsis")),
                            console=console, transient=False, refresh_per_second=4)
        self.tasks = {}
        self._last_text = {}

    def start(self, runs):
        self.bar.start()
        for nr in runs:
            self.tasks[nr.node.node_id] = self.bar.add_task(nr.text, total=None, node=nr.node.label)

    def update(self, nr):
        tid = self.tasks.get(nr.node.node_id)
        if tid is None:
            return
        total = max(nr.total, 1e-9) if nr.total else None
        done = nr.done
        if nr.status in ("finished",) and total:
            done = total
        self.bar.update(tid, description=nr.text, completed=done, total=total)
        if not self.tty and self._last_text.get(nr.node.node_id) != nr.text and (nr.status != "running"
                                                                                  or nr.total is None):
            self._last_text[nr.node.node_id] = nr.text
            self.console.print(Text(f"{nr.node.label}: {nr.text}"))

    def case(self, nr, row):
        from ..result import Result

        r = Result.from_row(row, warn=lambda *_: None)  # the relayed row (plain JSON): the edge
        if not r.ok or not self.tty:
            detail = f"{r.p50_ms:.3f} ms" if r.p50_ms is not None else (r.error or "")
            label = f"{r.model}/{r.backend}/{r.precision}/b{r.batch}"
            self.console.print(Text(f"{nr.node.label}: {r.status:>7}  {label}: {detail}"))

    def stop(self):
        self.bar.stop()


@dataclass(frozen=True)
class NodeSummary:
    """One node's line of `fleet bench` (`to_dict()`: an entry of the JSON's "nodes")."""

    node_id: str
    host: str
    machine_name: str | None
    machine_id: str | None
    cpu: str | None
    run_id: str | None
    status: str
    stored: bool
    ok: int
    failed: int
    skipped: int
    wall_s: float | None
    error: str | None

    def to_dict(self) -> dict:
        return asdict(self)


def fleet_summary(runs) -> list[NodeSummary]:
    out = []
    for nr in runs:
        c = nr.counts()
        out.append(NodeSummary(
            node_id=nr.node.node_id, host=nr.node.host, machine_name=nr.node.machine_name,
            machine_id=(nr.doc or {}).get("run", {}).get("machine_id") or nr.node.machine_id,  # the run file
            cpu=nr.node.cpu_model, run_id=nr.run_id, status=nr.status, stored=nr.imported,
            ok=c.get("ok", 0), failed=c.get("failed", 0), skipped=c.get("skipped", 0),
            wall_s=round(nr.wall_s, 1) if nr.wall_s is not None else None, error=nr.error))
    return out


def print_fleet(console, runs, store_url: str, wide: bool) -> dict:
    """Each node's bench table, then the per-node summary table. Returns the data printed."""
    from ..render import Col, fmt, print_note, print_table
    from .bench_summary import outcome_of_run, print_summary, summary_data

    data = {"store": store_url, "nodes": fleet_summary(runs), "runs": {}}
    for nr in runs:
        if nr.doc is None:
            continue
        console.print(Text(f"\nnode {nr.node.label}", style="bold"))
        d = summary_data(outcome_of_run(nr.doc, nr.run_id, nr.status, store_url, nr.wall_s or 0.0, nr.notes))
        data["runs"][nr.node.node_id] = d
        print_summary(console, d, wide)
    cols = [Col("node"), Col("host"), Col("status"), Col("ok", right=True), Col("failed", 1, right=True),
            Col("skipped", 2, right=True), Col("wall s", 3, right=True), Col("run", 4), Col("machine id", 5),
            Col("CPU", 6)]
    rows = []
    for s in data["nodes"]:
        style = "green" if s.status == "finished" and not s.failed else "red"
        rows.append([s.node_id[:8] + (f" ({s.machine_name})" if s.machine_name else ""), s.host,
                     Text(s.status + ("" if s.stored else " (not stored)"), style=style), s.ok, s.failed,
                     s.skipped, fmt(s.wall_s, 0), s.run_id or "-", s.machine_id or "-", s.cpu or "-"])
    console.print()
    print_table(console, cols, rows, title=f"pfdeploy fleet bench: {len(runs)} node(s), runs stored in {store_url}",
                wide=wide)
    for s in data["nodes"]:
        if s.error:
            print_note(console, f"{s.host} ({s.node_id[:8]}): {s.error}", style="red")
    return data


@command.command("bench")
@click.option("--address", help=ADDRESS_HELP)
@click.option("--nodes", "selector", help="Comma-separated nodes to run on: node ids (or 6+ character prefixes), "
                                          "host names, IP addresses or machine names (default: every alive node).")
@bench_options
def bench_command(address, selector, models, suite, backends, device, precision, batch, threads, processes, scenario,
                  min_time, max_time, target_ci, interleave, allow_failed_parity, weights, images, labels, store_url,
                  tag, json_file, wide):
    """Run one bench configuration on every selected node of a Ray cluster, all at once.

    Takes every `pfdeploy bench` option. Each node runs exclusively (its task is pinned to it and
    holds all its CPUs and GPUs) and produces an ordinary run (its own machine metadata and id,
    plus the Ray node id and host under `fleet`), stored in --store on this machine. Exit codes:
    0 every node finished with no failed case; 1 a node failed (died, removed, refused) or a case
    failed; 2 bad usage; 130 Ctrl-C (remote tasks cancelled, finished cases kept)."""
    from .. import fleet, signals
    from ..config import default_store_url
    from ..render import console, err_console, esc, to_json
    from ..store import open_store
    from .bench_options import build_config

    from ..errors import UsageError

    if weights not in (None, "synthetic") or images or labels:
        # checkpoints and image folders are files of this machine, not of the nodes
        raise UsageError("fleet bench runs synthetic weights only: --weights, --images and --labels name files on "
                         "this machine that the nodes do not have; run `pfdeploy bench --weights ...` on a node")
    fleet.check_reachable_address(address)  # first: an unreachable cluster is one line, at once
    cfg = build_config(models, suite, backends, device, precision, batch, threads, scenario, min_time, max_time,
                       target_ci, interleave, tag, processes=processes, local_checks=False)  # threads/memory: checked on each node
    cfg.allow_failed_parity = allow_failed_parity
    if json_file and json_file != "-":
        from ..outputs import check_output_file

        check_output_file(json_file, "--json")
    store = open_store(default_store_url(store_url))  # before the cluster: a bad store is one line, at once
    ray = fleet.connect(address)
    try:
        nodes = fleet.select(fleet.probe_nodes(ray), selector)
        fleet.refuse_unusable(nodes)
        err_console.print(esc(f"fleet: {len(nodes)} node(s): " + ", ".join(n.label for n in nodes)))
        runner = fleet.FleetBench(ray, cfg, store, nodes, address or "")
        runs = runner.run(RichFleetDisplay(err_console))
    finally:
        with signals.deferred():
            fleet.disconnect()
    if json_file == "-":
        data = {"store": store.url, "nodes": fleet_summary(runs)}
        sys.stdout.write(to_json({**data, "runs": [nr.doc for nr in runs if nr.doc]}) + "\n")
    else:
        data = print_fleet(console, runs, store.url, wide)
        if json_file:
            from ..outputs import atomic_write_bytes

            atomic_write_bytes(json_file, (to_json({**data, "runs_files": [nr.doc for nr in runs if nr.doc]})
                                           + "\n").encode())
    store.close()
    if runner.signum:
        kept = sum(nr.counts().get("ok", 0) for nr in runs)
        err_console.print(esc(f"interrupted by {signals.signal_name(runner.signum)}: remote tasks cancelled; {kept} "
                              f"finished case(s) kept in {store.url}"))
        sys.exit(128 + runner.signum)
    bad = [nr for nr in runs if nr.status != "finished" or not nr.imported]
    if bad or any(nr.counts().get("failed") for nr in runs):
        sys.exit(1)
