"""Planning a run: which cases (models x backends x precisions x batches), which are skipped and
why (every reason from the backend), and which cases share an interleaving rotation."""
from __future__ import annotations

from .config import CaseSpec
from .model import BenchConfig

MAX_GROUP = 16  # at most this many worker processes alive at once


def plan_cases(cfg: BenchConfig, device, threads: int) -> tuple[list[CaseSpec], list[tuple[CaseSpec, str]]]:
    """(runnable cases, [(skipped case, reason)]) for the config on `device`. Every reason
    comes from the backend: not installed (with the install hint), not on this device, a
    precision it cannot run here (probed), a scenario it does not implement."""
    from ..backends import BACKEND_NAMES, get_backend
    from ..zoo import canonical_name

    if cfg.cases:
        return explicit_cases(cfg, device)
    if cfg.backends:
        backends = [get_backend(b) for b in cfg.backends]
    else:
        backends = [b for b in map(get_backend, BACKEND_NAMES) if device.kind in b.devices]
    runnable, skipped = [], []
    for model in [canonical_name(m) for m in cfg.models]:
        weights = cfg.weights_for(model).source  # part of the case key: never mixed across weights
        for backend in backends:
            why_backend = backend.unavailable(device) or backend.supports_scenario(cfg.scenario)
            for precision in precisions_for(cfg, backend, device, why_backend is None):
                for batch in cfg.batches:
                    spec = CaseSpec(model=model, backend=backend.name, device=str(device), precision=precision,
                                    batch=batch, threads=threads, scenario=cfg.scenario, weights=weights,
                                    options=dict(cfg.options.get(backend.name, {})))
                    why = why_backend or backend.supports(device, precision)
                    (skipped.append((spec, why)) if why else runnable.append(spec))
    return runnable, skipped


def explicit_cases(cfg: BenchConfig, device) -> tuple[list[CaseSpec], list[tuple[CaseSpec, str]]]:
    """The config's explicit cases, each checked like a planned one (installed, on this device,
    its scenario and precision here); a case's device is the run's."""
    from dataclasses import replace

    from ..backends import get_backend

    runnable, skipped = [], []
    for spec in cfg.cases:
        spec = replace(spec, device=str(device))
        backend = get_backend(spec.backend)
        why = (backend.unavailable(device) or backend.supports_scenario(spec.scenario)
               or backend.supports(device, spec.precision))
        (skipped.append((spec, why)) if why else runnable.append(spec))
    return runnable, skipped


def precisions_for(cfg: BenchConfig, backend, device, available: bool = True) -> list[str]:
    """The precisions a backend is measured at: the config's, with "best" expanded to fp32 and
    the backend's fastest precision on the device, and optional precisions kept only where
    the backend runs them here."""
    out: list[str] = []
    for p in cfg.precisions:
        for q in (["fp32", backend.best_precision(device)] if p == "best" and available else
                  ["fp32"] if p == "best" else [p]):
            if q not in out:
                out.append(q)
    for p in cfg.optional_precisions:
        if available and p not in out and backend.supports(device, p) is None:
            out.append(p)
    return out


def groups(todo: list, interleave: bool = True, max_group: int | None = None) -> list[list]:
    """Interleaving groups (rotations): one per precision and batch when it fits max_group
    workers; otherwise clusters that must share a rotation (a model with its zoo baselines,
    per backend) are packed whole into groups (first fit,
    largest first), so every speedup of a model over its baselines stays paired. Only a
    cluster larger than max_group itself is split (its cross-chunk ratios are then unpaired,
    and say so). `--no-interleave`: every case alone."""
    max_group = MAX_GROUP if max_group is None else max_group
    if not interleave:
        return [[t] for t in todo]
    by_key: dict[tuple, list] = {}
    for spec, prep in todo:  # one comparison per precision and batch
        by_key.setdefault((spec.precision, spec.batch), []).append((spec, prep))
    groups = []
    for items in by_key.values():
        if len(items) <= max_group:
            groups.append(items)
            continue
        bins: list[list] = []
        for cluster in sorted(clusters(items), key=len, reverse=True):
            for i in range(0, len(cluster), max_group):
                part = cluster[i:i + max_group]
                target = next((b for b in bins if len(b) + len(part) <= max_group), None)
                if target is None:
                    bins.append(list(part))
                else:
                    target.extend(part)
        groups.extend(bins)
    return groups


def clusters(items: list) -> list[list]:
    """Cases that should share a rotation: per backend, each model linked with the baselines its
    zoo spec names (what the table and the claims compare it with; union-find over model names)."""
    from ..zoo import get_spec

    parent: dict = {}

    def find(a):
        while parent.setdefault(a, a) != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    def union(a, b):
        parent[find(a)] = find(b)

    present = {(s.backend, s.model) for s, _ in items}
    for backend, model in present:
        find((backend, model))
        try:
            spec = get_spec(model)
            links = list(spec.baselines)  # the baselines the claims compare it with
        except Exception:  # noqa: BLE001 - a model outside the zoo (the fake runner's): no links
            links = []
        for other in links:
            if (backend, other) in present:
                union((backend, model), (backend, other))
    out: dict = {}
    for spec, prep in items:
        out.setdefault(find((spec.backend, spec.model)), []).append((spec, prep))
    return list(out.values())
