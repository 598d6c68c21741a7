#!/usr/bin/env bash
# Device check of pfdeploy's GPU paths as ONE command (issue 10; docs/gpu.md says how to run it).
#
#   GPU machine (bare image: its python3 with torch, no network):
#       bash scripts/gpu_check.sh                  # DEVICE=cuda:0, results under $OUT (the device tool sets it)
#   this machine / CI (CPU, pfdeploy already installed for $PY):
#       DEVICE=cpu OUT=DIR PY=.venv/bin/python bash scripts/gpu_check.sh
#
# Setup (GPU mode, or INSTALL=1): the pure-Python wheels the image lacks, carried in .whl/ (see
# docs/gpu.md for the `pip download` line), and pfdeploy itself from this tree, are installed with
# `pip install --no-index --no-deps --target` into $SITE (default: a temporary folder, removed at the
# end) and put on PYTHONPATH. Nothing is written outside $OUT and the temporary folder.
# Then the steps, each bounded on its own (SIGINT at its limit: the bench keeps its finished cases
# and still writes its JSON run file (pfdeploy.signals); if it does not, the run is exported from
# the store):
#   env      nvidia-smi, package versions, `pfdeploy devices --json`
#   eager    torch eager (CUDA events, NVML peak memory), fp32+fp16, batch 1 and 64
#   compile  torch.compile (inductor), one case after another (--no-interleave)
#   ort      ONNX Runtime on the device (CUDA provider; the step is skipped without onnxruntime-gpu)
#   trt      the TensorRT backend (skipped without tensorrt)
#   tests    the GPU-path tests (fakes of ONNX Runtime, NVML, TensorRT, torch.cuda)
# One step failing does not stop the others. Everything lands in $OUT: summary.json (one line per
# step: rc, seconds, cases ok/failed/skipped), check.log, one run file per bench step and
# gpu-check.tar.gz with all the rest (tables, devices, nvidia-smi, the results store): at most 8
# files, none in a sub-folder, as the device tool returns them. Exit 0 when every step exited 0.
set -u
[ -n "${OUT:-}" ] || { echo "gpu_check.sh: set OUT=DIR, the folder the results go to (the device tool sets it)" >&2; exit 2; }
mkdir -p "$OUT" && OUT="$(cd "$OUT" && pwd)"   # relative to where it is called from
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
DEVICE="${DEVICE:-cuda:0}"
PY="${PY:-python3}"
# the whole check, setup included: on the GPU box 420 s (8 minutes with the kill grace; a run there
# may last 600 s); on a CPU it is about 2 minutes, the generous bound is for a loaded machine
TOTAL_S="${TOTAL_S:-$([ "$DEVICE" = cpu ] && echo 900 || echo 420)}"
WHEELS="${WHEELS:-.whl}"             # the carried wheels (ignored folder)
case "$PY" in */*) PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")" ;; esac  # steps run from elsewhere
case "$WHEELS" in /*) ;; *) WHEELS="$ROOT/$WHEELS" ;; esac
WORK="$(mktemp -d "${TMPDIR:-/tmp}/pfdeploy-check.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
SITE="${SITE:-$WORK/site}"
LOG="$OUT/check.log"
: > "$LOG"
: > "$WORK/steps.jsonl"
START=$(date +%s)
export PFDEPLOY_STORE="$WORK/results.db" PFDEPLOY_CACHE_DIR="${PFDEPLOY_CACHE_DIR:-$WORK/cache}"
export PYTHONUNBUFFERED=1 NO_COLOR=1 COLUMNS=200

say() { echo "[gpu_check $(date -u +%H:%M:%S)] $*" | tee -a "$LOG"; }
left() { echo $(( TOTAL_S - ($(date +%s) - START) )); }

# record NAME RC SECONDS STATUS [RUNFILE]: one JSON line per step
record() {
  "$PY" - "$@" >> "$WORK/steps.jsonl" <<'EOF'
import json, sys
name, rc, secs, status = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
runfile = sys.argv[5] if len(sys.argv) > 5 else ""
step = {"step": name, "rc": rc, "seconds": secs, "status": status}
if runfile:
    try:
        doc = json.load(open(runfile))
        cases = {}
        for r in doc.get("results", []):
            cases[r["status"]] = cases.get(r["status"], 0) + 1
        step.update(runfile=runfile.rsplit("/", 1)[-1], run_status=doc["run"]["status"], cases=cases,
                    not_ok=[f"{r['case_key']}: {r['status']}: {r.get('error')}" for r in doc["results"] if r["status"] != "ok"])
    except (OSError, ValueError, KeyError) as exc:
        step.update(runfile=None, runfile_error=f"{type(exc).__name__}: {exc}")
print(json.dumps(step))
EOF
}

# step NAME LIMIT_S CMD...: run with its own bound (and never past the total), log, record
step() {
  local name="$1" limit="$2"; shift 2
  local budget; budget=$(left)
  if [ "$budget" -lt 20 ]; then
    say "$name: not run (only ${budget}s of the ${TOTAL_S}s left)"
    STEP_RC=1 STEP_SECS=0 STEP_STATUS="not run: out of time"
    return
  fi
  [ "$limit" -gt "$budget" ] && limit="$budget"
  say "$name: start (limit ${limit}s): $*"
  local t0 rc; t0=$(date +%s)
  timeout -s INT -k 45 "$limit" "$@" > "$WORK/$name.txt" 2>&1
  rc=$?
  cat "$WORK/$name.txt" >> "$LOG"
  local secs=$(( $(date +%s) - t0 )) status="ok"
  case $rc in
    0) status="ok" ;;
    124|130|137) status="stopped at its ${limit}s limit" ;;
    *) status="exit $rc" ;;
  esac
  say "$name: $status (${secs}s)"
  STEP_RC=$rc STEP_SECS=$secs STEP_STATUS="$status"
}

# bench NAME LIMIT ARGS...: `pfdeploy bench` with a tag and a run file; the file is exported from
# the store when the bench could not write it (killed)
bench() {
  local name="$1" limit="$2"; shift 2
  local runfile="$OUT/run-$name.json"
  rm -f "$runfile"
  step "$name" "$limit" "$PY" -m pfdeploy bench --device "$DEVICE" --tag "check-$name" --json "$runfile" "$@"
  if [ ! -s "$runfile" ] && [ "$STEP_SECS" != 0 ]; then
    "$PY" -m pfdeploy results --run "check-$name" --format json --out "$runfile" >> "$LOG" 2>&1 \
      && say "$name: run file exported from the store" || say "$name: no run in the store"
  fi
  record "$name" "$STEP_RC" "$STEP_SECS" "$STEP_STATUS" "$runfile"
}

skip() { say "$1: skipped: $2"; record "$1" 0 0 "skipped: $2"; }

# ------------------------------------------------------------------ setup
GPU=1; [ "$DEVICE" = cpu ] && GPU=0
say "device $DEVICE, python $("$PY" -c 'import sys; print(sys.version.split()[0])' 2>&1), out $OUT"
if [ "$GPU" = 1 ] || [ "${INSTALL:-0}" = 1 ]; then
  t0=$(date +%s)
  rm -rf "$SITE" && mkdir -p "$SITE"
  rc=0
  wheels=()
  if ls "$WHEELS"/*.whl >/dev/null 2>&1; then
    wheels=("$WHEELS"/*.whl)
  else
    say "setup: no wheels in $WHEELS/: the image must already have sqlalchemy, platformdirs, alembic, Mako, pydantic"
  fi
  # the wheels and pfdeploy from this tree in one go, without dependencies (pfdeploy is built with
  # the image's setuptools and wheel: no network)
  "$PY" -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --no-cache-dir \
      --target "$SITE" "${wheels[@]}" "$ROOT" >> "$LOG" 2>&1 || rc=$?
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
  (cd "$WORK" && "$PY" -c "import pfdeploy, pfdeploy.bench.worker, sqlalchemy, alembic, pydantic, platformdirs; print('pfdeploy', pfdeploy.__version__, 'from', pfdeploy.__file__)") >> "$LOG" 2>&1 || rc=$?
  status=ok; [ "$rc" = 0 ] || status="exit $rc"
  say "setup: $status ($(( $(date +%s) - t0 ))s)"
  record setup "$rc" $(( $(date +%s) - t0 )) "$status"
  if [ "$rc" != 0 ]; then say "setup failed: see $LOG"; fi
fi

# Everything runs from outside the tree: `python -m` puts the working directory first on sys.path,
# and the tree's pfdeploy/ folder is not the installed package (bench/, devices/... install into it).
cd "$WORK"

# ------------------------------------------------------------------ environment
if [ "$GPU" = 1 ]; then
  nvidia-smi > "$WORK/nvidia-smi.txt" 2>&1
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,power.limit --format=csv >> "$WORK/nvidia-smi.txt" 2>&1
fi
"$PY" - > "$WORK/versions.txt" 2>&1 <<'EOF'
import importlib.metadata as md
for n in ("torch", "onnxruntime", "onnxruntime-gpu", "tensorrt", "tensorrt-cu12", "tensorrt-cu13", "nvidia-ml-py",
          "onnx", "timm", "sqlalchemy", "alembic", "pydantic", "pydantic-core", "platformdirs", "numpy"):
    try:
        print(n, md.version(n))
    except md.PackageNotFoundError:
        print(n, "-")
EOF
cat "$WORK/versions.txt" >> "$LOG"
step env 60 "$PY" -m pfdeploy devices --json
[ -s "$WORK/env.txt" ] && cp "$WORK/env.txt" "$WORK/devices.json"
record env "$STEP_RC" "$STEP_SECS" "$STEP_STATUS"

# ------------------------------------------------------------------ the steps
if [ "$GPU" = 1 ]; then
  MODELS="${MODELS:-pf_resnet50_max,resnet50}"  # the paper's pair; 8 eager cases fit the step's bound
  bench eager 170 --backends torch --models "$MODELS" --precision fp32,fp16 --batch 1,64 --min-time 1 --max-time 3
  bench compile 120 --backends torch-compile --models "$MODELS" --precision fp16 --batch 1 \
      --min-time 1 --max-time 2 --no-interleave
  # without the runtime every case would be skipped, which `pfdeploy bench` reports as an error
  if "$PY" -c "import sys, onnxruntime as o; sys.exit('CUDAExecutionProvider' not in o.get_available_providers())" 2>/dev/null; then
    bench ort 45 --backends onnxruntime --models "$MODELS" --precision fp32,fp16 --batch 1 --min-time 1 --max-time 2
  else
    skip ort "onnxruntime here has no CUDAExecutionProvider (onnxruntime-gpu is not installed: pfdeploy[gpu-cu13])"
  fi
  if "$PY" -c "import tensorrt" 2>/dev/null; then
    bench trt 45 --backends tensorrt --models "$MODELS" --precision fp32,fp16 --batch 1 --min-time 1 --max-time 2
  else
    skip trt "tensorrt is not installed (pfdeploy[gpu-cu13])"
  fi
else
  MODELS="${MODELS:-timm:test_resnet}"  # a small timm test network: the same code paths, seconds not minutes
  # one thread: torch's OpenMP threads busy-wait on a loaded 2-core machine (docs/bench.md)
  bench eager 300 --backends torch --models "$MODELS" --batch 1 --threads 1 --min-time 0.2 --max-time 0.5
  if [ "${CPU_COMPILE:-0}" = 1 ]; then
    bench compile 240 --backends torch-compile --models "$MODELS" --batch 1 --threads 1 --min-time 0.2 --max-time 0.5 --no-interleave
  else
    skip compile "DEVICE=cpu: inductor compiles for about a minute per model on 2 cores (CPU_COMPILE=1 runs it)"
  fi
  bench ort 300 --backends onnxruntime --models "$MODELS" --batch 1 --threads 1 --min-time 0.2 --max-time 0.5
  skip trt "the TensorRT backend runs on CUDA devices only"
fi
step tests 60 "$PY" -m pytest -q -p no:cacheprovider "$ROOT/tests/test_gpu_paths.py" "$ROOT/tests/test_export_tensorrt_fake.py"
record tests "$STEP_RC" "$STEP_SECS" "$STEP_STATUS"

# ------------------------------------------------------------------ what comes back
"$PY" - "$WORK/steps.jsonl" "$OUT/summary.json" "$DEVICE" "$(( $(date +%s) - START ))" <<'EOF'
import json, sys
steps = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
doc = {"device": sys.argv[3], "total_seconds": int(sys.argv[4]), "steps": steps,
       "all_ok": all(s["rc"] == 0 for s in steps)}
json.dump(doc, open(sys.argv[2], "w"), indent=1)
for s in steps:
    print(f"{s['step']:8} rc={s['rc']:<3} {s['seconds']:>4}s  {s['status']}"
          + (f"  cases {s['cases']}" if s.get("cases") else ""))
EOF
tar -czf "$OUT/gpu-check.tar.gz" -C "$WORK" --exclude cache . 2>> "$LOG"
n=$(find "$OUT" -type f | wc -l)
say "done in $(( $(date +%s) - START ))s; $n files in $OUT"
[ "$n" -le 8 ] || say "warning: more than 8 files in $OUT: the device tool returns 8"
"$PY" -c "import json,sys; sys.exit(0 if json.load(open(sys.argv[1]))['all_ok'] else 1)" "$OUT/summary.json"
