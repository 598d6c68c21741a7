#!/usr/bin/env bash
# GPU check of the benchmark engine (issue 4). No network needed. Writes JSON run files and the
# printed tables to $OUT (default ./gpu-check-out). Sized for about 8 minutes on one H100:
# torch eager at batch 1 and 64, torch.compile (inductor compiles once per case and process) at
# batch 1 only, fp32 and fp16, short measurement windows.
# NOT RUN YET: the session that wrote it had no GPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu-check-out}"
mkdir -p "$OUT"
PY="${PY:-.venv/bin/python}"
export PFDEPLOY_STORE="$OUT/results.db"
MODELS=pf_resnet50_max,pf_resnet50_hybrid,resnet50,dw_resnet50

nvidia-smi --query-gpu=name,driver_version,clocks.sm,power.limit --format=csv | tee "$OUT/nvidia-smi.csv" || true
"$PY" -m pfdeploy devices | tee "$OUT/devices.txt"

# eager: every precision and batch, interleaved
timeout 300 "$PY" -m pfdeploy bench --device cuda:0 --backends torch --models "$MODELS" \
    --precision fp32,fp16 --batch 1,64 --min-time 1 --max-time 4 --tag gpu-eager \
    --json "$OUT/bench-eager.json" | tee "$OUT/bench-eager.txt"

# torch.compile: batch 1 only (one compilation per case and process)
timeout 300 "$PY" -m pfdeploy bench --device cuda:0 --backends torch-compile --models "$MODELS" \
    --precision fp32,fp16 --batch 1 --min-time 1 --max-time 3 --tag gpu-compile \
    --json "$OUT/bench-compile.json" | tee "$OUT/bench-compile.txt"
