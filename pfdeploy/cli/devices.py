"""`pfdeploy devices`: this machine's devices, the backends that can run on each, and the
metadata every run records (CPU, ISA flags, cores, memory, governor, GPUs, tool versions)."""
from __future__ import annotations

import click

from ..render import Col, emit, print_line, print_table


@click.command("devices")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--wide", is_flag=True, help="The table at full width, even where the terminal is narrower.")
def command(as_json, wide):
    """List this machine's devices and the backends that can run on each."""
    from ..backends import list_devices, machine_metadata

    devices = list_devices()
    meta = machine_metadata()
    data = {"machine_id": meta["machine_id"], "devices": devices, "machine": meta}

    def human(console):
        cpu = meta["cpu"]
        print_line(console, ("machine", "bold"), f" {meta['machine_id']}: {cpu.get('model')} "
                   f"({cpu.get('physical_cores')} physical / {cpu.get('logical_cores')} logical cores, "
                   f"{cpu.get('usable_physical_cores')} usable), {meta.get('memory_gib')} GiB, "
                   f"{meta['os'].get('distribution') or meta['os'].get('system')} {meta['os'].get('release')}")
        print_line(console, f"ISA: {', '.join(cpu.get('isa') or []) or '-'}; governor: "
                   f"{meta['cpufreq'].get('governor') or 'not readable'}; load average: "
                   f"{', '.join(f'{x:.2f}' for x in meta['loadavg'] or [])}")
        # names never wrap; the lists wrap between names and the reasons between words
        print_table(console, [Col("device"), Col("name"), Col("backends (precisions here)", wrap=True),
                              Col("not available", 1, wrap=True)],
                    [(d["device"], d["name"],
                      "\n".join(f"{b} ({', '.join(d['precisions'].get(b) or [])})" for b in d["backends"]) or "-",
                      "\n".join(f"{b}: {why}" for b, why in d["unavailable"].items()) or "-") for d in devices],
                    wide=wide)
        if not any(d["kind"] == "cuda" for d in devices):
            from ..devices import no_cuda_reason

            print_line(console, f"no CUDA device: {no_cuda_reason()}")
        if meta.get("gpu_note") and not meta.get("gpus"):
            print_line(console, f"GPU metadata: {meta['gpu_note']}")
        for g in meta.get("gpus") or []:
            print_line(console, f"GPU {g['index']}: {g['name']}, driver {g['driver']}, CUDA {g['cuda_driver']}, "
                       f"SM {g['sm_clock_mhz']}/{g['sm_clock_max_mhz']} MHz, power limit {g['power_limit_w']} W")
        tools = meta["tools"]
        print_line(console, "tools: " + ", ".join(f"{k} {v}" for k, v in tools.items()
                                                  if v and k not in ("onnxruntime_dist",)))

    emit(data, as_json, human)
