#!/usr/bin/env bash
# One-off GPU check of the selective scan and the Swin-L NYUD model, for a CUDA machine.
#
#   OUT=/some/dir bash tools/analysis_tools/gpu_check.sh      # 3-9 minutes (GPU_CHECK_BUDGET)
#
# 1. environment: GPU, torch/CUDA/Triton versions, which scan backends import;
# 2. if mamba-ssm is missing, one short attempt to pip-install it (offline machines fail fast;
#    without it the CUDA backends checked are mmmt's Triton kernels and its PyTorch scan);
# 3. tools/analysis_tools/scan_parity.py: every CUDA backend (triton, cuda, torch) against the
#    CPU scan (C++ kernel, or PyTorch if it cannot be built) on the small and the Swin-L NYUD
#    stage shapes, output and all input gradients, float32 and (Triton) bfloat16 inputs; the
#    Triton backend once per kernel pair (triton-runs, triton-statewise, triton-tile);
# 4. tools/analysis_tools/benchmark_scan.py --device cuda --quick --no-reference: timings, peak
#    memory and the memory roofline of every backend;
# 5. tools/analysis_tools/benchmark.py configs/mtmamba_swin-l_nyud.py --device cuda, a whole
#    training step (batch 1, 448x576) per fused scan backend (GPU_CHECK_MODEL_BACKENDS,
#    default "triton cuda", those available; "triton-tile" names the other Triton kernel
#    pair), float32 and --amp bf16;
# 6. step 4 at the stage-3 shape for other Triton launch sizes (GPU_CHECK_SWEEP, a list of
#    NAME:STEPS:TILE:WARPS[:prefetch]; empty skips it);
# 7. tools/analysis_tools/gpu_check_summary.py: the results against the Triton scan's targets.
# Every step has its own time limit; a failed step is reported and the next one still runs.
# GPU_CHECK_BUDGET (seconds, default 540) bounds the whole run: a step gets at most what is
# left, a step with nothing left is skipped, and the summary and the archive are still
# written (the steps come in the order of what the targets need most).
# A dry run elsewhere: GPU_CHECK_DEVICE=cpu GPU_CHECK_QUICK=1 (CPU "device", small shape only).
# GPU_CHECK_NO_PIP=1 skips the pip attempts (offline machine with the packages pre-installed);
# GPU_CHECK_WHEELS=DIR installs the wheels tools/analysis_tools/gpu_check_wheels.sh downloaded
# (an offline machine with torch but without the OpenMMLab packages) and skips them too.
# GPU_CHECK_DETAIL_DIR=/tmp/x: the per-step files there, then one archive of them in $OUT
# (gpu_check_details.tar.gz), beside gpu_check.log and summary.md: three files to fetch.
# Otherwise everything is written under $OUT (default work_dirs/gpu_check): gpu_check.log, env.txt,
# parity.json, benchmark_scan.{md,json}, triton_sweep.{md,json},
# benchmark_swin-l_nyud_<backend>_<fp32|bf16>.{md,json}, summary.{md,json}.
# A re-run into the same folders first moves an earlier run's files into previous-<time>/
# there (so its summary never reads them as its own) and appends to gpu_check.log.
set -u
if [ $# -gt 0 ]; then  # configured through the environment only (see above)
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
    exit 2
fi
cd "$(dirname "$0")/../.."
OUT=${OUT:-work_dirs/gpu_check}
# the per-step files (tables, JSON) go to GPU_CHECK_DETAIL_DIR if set, and come back as one
# archive in $OUT at the end (the device tool returns at most 8 files); the log, which holds
# every table too, and the summary stay in $OUT itself
DETAIL=${GPU_CHECK_DETAIL_DIR:-$OUT}
mkdir -p "$OUT" "$DETAIL"
exec > >(tee -a "$OUT/gpu_check.log") 2>&1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
export GPU_CHECK_DEVICE=${GPU_CHECK_DEVICE:-cuda}
DEV=$GPU_CHECK_DEVICE
START=$(date +%s)

# an earlier run's results in these folders move to previous-<time>/ first: a step that fails
# or is skipped this time would otherwise leave them to the summary as this run's
OWN='^(env\.txt|parity\.json|benchmark_scan\.(md|json)|triton_sweep\.(md|json)|'
OWN+='benchmark_swin-l_nyud_.+\.(md|json)|summary\.(md|json)|gpu_check_details\.tar\.gz)$'
for dir in $(printf '%s\n' "$DETAIL" "$OUT" | sort -u); do
  EARLIER=$(ls -A "$dir" | grep -E "$OWN")
  if [ -n "$EARLIER" ]; then
    PREV="$dir/previous-$(date -d "@$START" +%Y%m%d-%H%M%S)"
    mkdir -p "$PREV" && (cd "$dir" && mv $EARLIER "$PREV/") &&
      echo "an earlier run's results moved to $PREV:" $EARLIER
  fi
done

# the whole run's budget: a step gets at most what is left of it, less RESERVE seconds kept
# for the summary and the archive (NO_BUDGET=1 step ...: those; the device tool stops a
# command after 600 s, and then only what is in $OUT comes back)
BUDGET=${GPU_CHECK_BUDGET:-540}
RESERVE=20
step() {  # step NAME SECONDS CMD...: run with a time limit, report, never abort the script
  local name=$1 limit=$2
  shift 2
  local left=$((BUDGET - RESERVE - ($(date +%s) - START)))
  if [ -z "${NO_BUDGET:-}" ] && [ "$left" -lt 10 ]; then
    echo "=== $name: skipped, the ${BUDGET}s budget is spent (GPU_CHECK_BUDGET)"
    return 124
  fi
  [ -z "${NO_BUDGET:-}" ] && [ "$limit" -gt "$left" ] && limit=$left
  echo "=== [$(($(date +%s) - START))s] $name (limit ${limit}s)"
  timeout --kill-after=15 "$limit" "$@"
  local rc=$?
  echo "=== $name: exit $rc$([ $rc -eq 124 ] && echo ' (timed out)')"
  return $rc
}

PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for c in .venv/bin/python python3 python; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import torch' >/dev/null 2>&1; then
      PY=$c
      break
    fi
  done
fi
if [ -z "$PY" ]; then
  echo "no Python with torch found (set PYTHON=...)"; exit 1
fi

step "environment" 60 "$PY" - <<'EOF' | tee "$DETAIL/env.txt"
import importlib, subprocess, torch
print('python torch', torch.__version__, 'cuda', torch.version.cuda,
      'available', torch.cuda.is_available())
if torch.cuda.is_available():
    print('gpu', torch.cuda.get_device_name(0))
for m in ('mmengine', 'mmseg', 'mmpretrain', 'mmcv', 'mamba_ssm', 'ninja', 'triton'):
    try:
        mod = importlib.import_module(m)
        print(m, getattr(mod, '__version__', '?'))
    except Exception as e:  # noqa: BLE001
        print(m, 'MISSING', type(e).__name__, str(e).splitlines()[0] if str(e) else '')
try:
    print(subprocess.run(['nvidia-smi', '--query-gpu=name,memory.total,driver_version',
                          '--format=csv,noheader'], capture_output=True, text=True,
                         timeout=30).stdout)
except Exception as e:  # noqa: BLE001
    print('nvidia-smi:', e)
EOF

# GPU_CHECK_WHEELS=DIR: wheels carried to an offline machine (gpu_check_wheels.sh made them),
# installed without the index; the index is then not tried at all
if [ -n "${GPU_CHECK_WHEELS:-}" ]; then
  GPU_CHECK_NO_PIP=1
  if ! "$PY" -c 'import mmengine, mmseg, mmpretrain' >/dev/null 2>&1; then
    step "pip install the carried wheels" 120 "$PY" -m pip install -q --no-index --no-deps \
      "$GPU_CHECK_WHEELS"/*.whl
  fi
fi
# GPU_CHECK_NO_PIP=1: an offline machine whose packages were installed beforehand
if [ -z "${GPU_CHECK_NO_PIP:-}" ] && [ "$DEV" = cuda ] && \
    ! "$PY" -c 'import mmengine, mmseg, mmpretrain' >/dev/null 2>&1; then
  step "pip install the runtime requirements" 90 "$PY" -m pip install -q --timeout 15 \
    --retries 1 -r requirements/runtime.txt mmcv-lite==2.1.0 ninja
fi
if [ -z "${GPU_CHECK_NO_PIP:-}" ] && [ "$DEV" = cuda ] && \
    ! "$PY" -c 'import mamba_ssm.ops.selective_scan_interface' >/dev/null 2>&1; then
  # a prebuilt wheel or nothing: compiling mamba-ssm takes far longer than this check may
  step "pip install mamba-ssm" 90 "$PY" -m pip install -q --timeout 15 --retries 1 \
    --no-build-isolation mamba-ssm
fi

QUICK_SHAPES=()  # a dry run: the small shape only
[ -n "${GPU_CHECK_QUICK:-}" ] && QUICK_SHAPES=(--shapes small)
step "scan parity, $DEV backends vs the CPU scan" 240 "$PY" tools/analysis_tools/scan_parity.py \
  --device "$DEV" "${QUICK_SHAPES[@]}" --json "$DETAIL/parity.json" --force

# no sequential per-step loops on a GPU (tens of thousands of launches each, minutes of device
# time, and only a baseline for the speed-up columns): the backends against the roofline
step "benchmark_scan.py on $DEV" 240 "$PY" tools/analysis_tools/benchmark_scan.py --device "$DEV" \
  --quick --no-reference "${QUICK_SHAPES[@]}" --json "$DETAIL/benchmark_scan.json" --force \
  > "$DETAIL/benchmark_scan.md"
cat "$DETAIL/benchmark_scan.md"

MODEL_ARGS=(configs/mtmamba_swin-l_nyud.py --iters 5 --warmup 2)
[ -n "${GPU_CHECK_QUICK:-}" ] && MODEL_ARGS=(configs/demo/mtmamba-tiny_synthetic-nyud.py
                                             --shape 64 96 --iters 1 --warmup 0)
# the fused backends that import here (the PyTorch scan's training step took over 180 s on an
# H100); a CPU dry run uses the CPU's automatic backend
AVAILABLE=$("$PY" -c 'from mmmt.ops import available_backends; print(*available_backends())' \
            2>/dev/null | tail -n 1)
MODEL_BACKENDS=()
for b in ${GPU_CHECK_MODEL_BACKENDS:-triton cuda}; do  # triton-tile: the other kernel pair
  case " $AVAILABLE " in *" ${b%%-*} "*) MODEL_BACKENDS+=("$b") ;; esac
done
[ "$DEV" != cuda ] && MODEL_BACKENDS=(auto)
echo "model benchmark backends: ${MODEL_BACKENDS[*]:-none} (available: $AVAILABLE)"
for b in "${MODEL_BACKENDS[@]}"; do
  for prec in fp32 bf16; do
    BACKEND_ARGS=()
    [ "$b" != auto ] && BACKEND_ARGS=(--scan-backend "$b")
    PREC_ARGS=()
    [ "$prec" = bf16 ] && PREC_ARGS=(--amp bf16)
    name="benchmark_swin-l_nyud_${b}_${prec}"
    step "benchmark.py Swin-L NYUD on $DEV, scan $b, $prec" 200 "$PY" \
      tools/analysis_tools/benchmark.py "${MODEL_ARGS[@]}" --device "$DEV" \
      "${BACKEND_ARGS[@]}" "${PREC_ARGS[@]}" --json "$DETAIL/$name.json" --force \
      > "$DETAIL/$name.md"
    cat "$DETAIL/$name.md"
  done
done

# other launch sizes of the Triton kernels at the Swin-L stage-3 shape (each compiles in about
# a second): NAME:STEPS:TILE:WARPS, see mmmt.ops.selective_scan_triton.parse_kernel; the first
# is the shipped default, for comparison within this run
# (runs: 1, 2 or 4 channels per one-warp program, i.e. 4x, 2x or 1x the programs for the
# same B/C reuse, with and without prefetch; more warps per program; then the other pairs)
SWEEP=${GPU_CHECK_SWEEP:-runs:128:512:1 runs:128:512:1:prefetch runs:256:512:1 \
runs:512:512:1 runs:512:512:1:prefetch runs:128:1024:2 runs:128:2048:4 runs:128:256:1 \
statewise:128:1024:4 statewise:128:256:1 tile:64:2048:8}
if [ "$DEV" = cuda ] && [ -n "$SWEEP" ]; then
  SWEEP_BACKENDS=()
  for c in $SWEEP; do SWEEP_BACKENDS+=("triton-$c"); done
  step "Triton launch-size sweep at Swin-L stage 3" 240 "$PY" \
    tools/analysis_tools/benchmark_scan.py --device cuda --quick --no-reference \
    --shapes "swin-l stage 3" --backends "${SWEEP_BACKENDS[@]}" \
    --json "$DETAIL/triton_sweep.json" --force > "$DETAIL/triton_sweep.md"
  cat "$DETAIL/triton_sweep.md"
fi

NO_BUDGET=1 step "summary against the targets" 30 "$PY" tools/analysis_tools/gpu_check_summary.py \
  "$DETAIL" --force

if [ "$DETAIL" != "$OUT" ]; then
  cp "$DETAIL/summary.md" "$OUT/" 2>/dev/null
  tar czf "$OUT/gpu_check_details.tar.gz" --exclude='./previous-*' -C "$DETAIL" . &&
    echo "per-step files: $OUT/gpu_check_details.tar.gz"
fi
echo "=== done in $(($(date +%s) - START))s; results in $OUT"
