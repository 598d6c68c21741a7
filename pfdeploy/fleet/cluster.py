"""Reaching the Ray cluster: the address checked before Ray is imported (one clear line when
nothing listens there), the driver's connection, node pinning, and Ray's errors as one line."""
from __future__ import annotations

import os
import socket

from ..errors import UsageError, UserError, optional_import

PROBE_TIMEOUT_S = 120.0  # a node that does not answer the probe in this long is unusable
CANCEL_GRACE_S = 30.0  # after Ctrl-C: how long the nodes get to stop and report before a force-cancel
PROGRESS_EVERY_S = 0.5  # a node relays its progress line at most this often


def ray_module():
    return optional_import("ray", "pfdeploy fleet")


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
    ray = ray_module()
    import logging

    try:
        ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False,
                 namespace="pfdeploy-fleet", ignore_reinit_error=True)
    except Exception as exc:  # noqa: BLE001 - ConnectionError, version mismatch (RuntimeError), ...
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:400]
        raise UserError(f"cannot connect to the Ray cluster at {address}: {first}") from None
    return ray


def disconnect() -> None:
    ray = ray_module()
    if ray.is_initialized():
        ray.shutdown()


def pin_to(node_id: str, soft: bool = False):
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return NodeAffinitySchedulingStrategy(node_id=node_id, soft=soft)


def current_node_id() -> str | None:
    try:
        import ray

        return ray.get_runtime_context().get_node_id()
    except Exception:  # noqa: BLE001
        return None


def one_line(exc: BaseException) -> str:
    """The last meaningful line of a (possibly multi-line, traceback-carrying) Ray error."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    tail = [ln for ln in lines if not ln.startswith(("File ", "Traceback", "^", "~"))]
    text = (tail[-1] if tail else type(exc).__name__)
    return f"{type(exc).__name__}: {text}"[:400] if type(exc).__name__ not in text else text[:400]
