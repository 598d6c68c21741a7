"""The checks of a bench configuration against the machine that will run it, before anything is
exported or timed: --threads against the CPUs this process may use, --batch against the memory
available now. `pfdeploy bench` runs them on this machine; `pfdeploy fleet bench` on each node.
Every failure is a UsageError (one line, exit 2)."""
from __future__ import annotations

from .errors import UsageError

# A batch is refused up front when this many times its input tensor (a floor for the
# activations a CNN/ViT keeps alive at once) exceeds the memory available now.
BATCH_MEMORY_FACTOR = 16


def usable_cpus() -> int:
    """Logical CPUs this process may run on: its affinity mask, capped by a container quota."""
    from .devices.machine import usable_cpus as _usable

    return _usable()


def check_threads(threads: int | None) -> None:
    """--threads: 1 .. the CPUs this process may use. More threads than CPUs measure the OS
    scheduler (on 2 CPUs, 16 threads made a 3.5 ms case take 105 ms), so they are refused; more
    than the physical cores is allowed with a warning in the table and the stored row."""
    if threads is None:
        return
    if threads < 1:
        raise UsageError(f"--threads must be >= 1, got {threads}")
    cpus = usable_cpus()
    if threads > cpus:
        raise UsageError(f"--threads {threads} is more than the {cpus} CPU(s) this process may use; "
                         f"oversubscribed threads measure contention, not the runtime (use at most {cpus})")


def check_batch_memory(models: tuple[str, ...], batches: tuple[int, ...]) -> None:
    """Refuse a batch whose inputs alone could not fit (BATCH_MEMORY_FACTOR x the input tensor
    against the memory available now): fail in a second, not after allocating for minutes."""
    try:
        import psutil

        available = psutil.virtual_memory().available
    except Exception:  # noqa: BLE001 - no reading, no check
        return
    from .zoo import get_spec

    for m in models:
        per_item = 4
        for d in get_spec(m).input_size:
            per_item *= int(d)
        for b in batches:
            need = b * per_item * BATCH_MEMORY_FACTOR
            if need > available:
                raise UsageError(
                    f"--batch {b} is too large for {m}: its fp32 inputs alone take {b * per_item / 2**30:.1f} GiB "
                    f"and {BATCH_MEMORY_FACTOR}x that (a floor for the activations) is more than the "
                    f"{available / 2**30:.1f} GiB of memory available")


def check_machine(cfg) -> None:
    """The checks of a BenchConfig against the machine that will run it: --threads against its
    CPUs, --batch against its memory (UsageError on failure)."""
    check_threads(cfg.threads)
    check_batch_memory(cfg.models, cfg.batches)
