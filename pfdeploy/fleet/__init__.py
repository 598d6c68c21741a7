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

The package by concern: `cluster` (reaching and connecting to the Ray cluster), `nodes` (the node
inventory: probe, select, refuse), `node_task` (what runs on a node: the pinned bench and its relay
to the driver), `driver` (the driver side: the collector actor, the per-node runs, the import into
the store). Nothing here imports the CLI; `pfdeploy.cli.fleet` draws the tables and progress.
"""
from __future__ import annotations

from .cluster import (CANCEL_GRACE_S, PROBE_TIMEOUT_S, PROGRESS_EVERY_S, check_reachable, check_reachable_address,
                      connect, disconnect)
from .driver import Display, FleetBench, NodeRun
from .node_task import node_bench
from .nodes import Node, alive_nodes, probe_nodes, refuse_unusable, select

__all__ = ["CANCEL_GRACE_S", "Display", "FleetBench", "Node", "NodeRun", "PROBE_TIMEOUT_S", "PROGRESS_EVERY_S",
           "alive_nodes", "check_reachable", "check_reachable_address", "connect", "disconnect", "node_bench",
           "probe_nodes", "refuse_unusable", "select"]
