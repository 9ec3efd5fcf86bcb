#!/usr/bin/env bash
# One-off GPU check of the selective scan and the Swin-L NYUD model, for a CUDA machine.
#
#   OUT=/some/dir bash tools/analysis_tools/gpu_check.sh      # about 3-12 minutes
#
# 1. environment: GPU, torch/CUDA/Triton versions, which scan backends import;
# 2. if mamba-ssm is missing, one short attempt to pip-install it (offline machines fail fast;
#    without it the CUDA backends checked are mmmt's Triton kernels and its PyTorch scan);
# 3. parity: every CUDA backend (triton, cuda, torch) against the CPU scan (C++ kernel, or
#    PyTorch if it cannot be built) on the small and the Swin-L NYUD stage shapes, output and
#    all input gradients, float32 and (Triton) bfloat16 inputs; the Triton backend once per
#    kernel pair (triton-statewise, triton-tile: MMMT_TRITON_SCAN_KERNEL);
# 4. tools/analysis_tools/benchmark_scan.py --device cuda --quick: timings, peak memory and
#    the memory roofline of every backend;
# 5. the same at the stage-3 shape for other Triton launch sizes (GPU_CHECK_SWEEP, a list of
#    NAME:STEPS:TILE:WARPS; empty skips it);
# 6. tools/analysis_tools/benchmark.py configs/mtmamba_swin-l_nyud.py --device cuda, a whole
#    training step (batch 1, 448x576) per fused scan backend (GPU_CHECK_MODEL_BACKENDS,
#    default "triton cuda", those available; "triton-tile" names the other Triton kernel
#    pair), float32 and --amp bf16;
# 7. tools/analysis_tools/gpu_check_summary.py: the results against the Triton scan's targets.
# Every step has its own time limit; a failed step is reported and the next one still runs.
# A dry run elsewhere: GPU_CHECK_DEVICE=cpu GPU_CHECK_QUICK=1 (CPU "device", small shape only).
# GPU_CHECK_NO_PIP=1 skips the pip attempts (offline machine with the packages pre-installed).
# Everything is written under $OUT (default work_dirs/gpu_check): gpu_check.log, env.txt,
# parity.json, benchmark_scan.{md,json}, triton_sweep.{md,json},
# benchmark_swin-l_nyud_<backend>_<fp32|bf16>.{md,json}, summary.{md,json}.
set -u
if [ $# -gt 0 ]; then  # configured through the environment only (see above)
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
    exit 2
fi
cd "$(dirname "$0")/../.."
OUT=${OUT:-work_dirs/gpu_check}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/gpu_check.log") 2>&1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
export GPU_CHECK_DEVICE=${GPU_CHECK_DEVICE:-cuda}
DEV=$GPU_CHECK_DEVICE
START=$(date +%s)

step() {  # step NAME SECONDS CMD...: run with a time limit, report, never abort the script
  local name=$1 limit=$2
  shift 2
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

step "environment" 60 "$PY" - <<'EOF' | tee "$OUT/env.txt"
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

step "scan parity, CUDA vs CPU" 240 "$PY" - "$OUT/parity.json" <<'EOF'
import json, os, sys, time, warnings
import torch
sys.path.insert(0, 'tools/analysis_tools')
from benchmark_scan import GRAD_NAMES, make_inputs, rel_err
from mmmt.ops import available_backends, selective_scan_fn
from mmmt.utils.analysis import forced_scan_backend, scan_backend_names

dev = torch.device(os.environ['GPU_CHECK_DEVICE'])

def run(backend, x, grad_out, dtype=None):
    leaves = {k: v.detach().clone().requires_grad_(k in GRAD_NAMES) for k, v in x.items()}
    args = dict(leaves)
    if dtype is not None:  # AMP-like: activations in dtype, parameters float32
        args.update({k: args[k].to(dtype) for k in ('u', 'delta', 'B', 'C')})
    with forced_scan_backend(backend):
        out = selective_scan_fn(**args, delta_softplus=True)
        out.float().backward(grad_out)
    if out.is_cuda:
        torch.cuda.synchronize()
    return out.detach().cpu(), {k: leaves[k].grad.cpu() for k in GRAD_NAMES}

with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter('always')
    backends = available_backends()
print('backends:', backends, [str(m.message) for m in w])
cpu_backend = 'cpp' if 'cpp' in backends else 'torch'
# the Triton backend once per kernel pair (triton-statewise, triton-tile)
cuda_backends = scan_backend_names(b for b in ('triton', 'cuda', 'torch')
                                   if b == 'torch' or b in backends)
variants = [(b, None) for b in cuda_backends] + [
    (b, torch.bfloat16) for b in cuda_backends if b.startswith('triton')]
shapes = [('small', 384, 252), ('swin-l stage 1', 6144, 1008), ('swin-l stage 2', 3072, 4032),
          ('swin-l stage 3', 1536, 16128)]
if os.environ.get('GPU_CHECK_QUICK'):
    shapes = shapes[:1]
rows = []
for name, ch, length in shapes:
    x = make_inputs(ch, length, 'cpu')
    g = torch.randn(1, ch, length, generator=torch.Generator().manual_seed(1))
    t0 = time.perf_counter()
    ref, ref_g = run(cpu_backend, x, g)
    t_cpu = time.perf_counter() - t0
    for b, dtype in variants:
        xc = {k: v.to(dev) for k, v in x.items()}
        run(b, xc, g.to(dev), dtype)  # warm-up
        t0 = time.perf_counter()
        out, grads = run(b, xc, g.to(dev), dtype)
        t_gpu = time.perf_counter() - t0
        if dtype is not None:
            b = f'{b}:{str(dtype).replace("torch.", "")}'
        row = dict(shape=name, channels=ch, length=length, cpu=cpu_backend, cuda=b,
                   out_rel_err=rel_err(out, ref),
                   grad_rel_err={k: rel_err(grads[k], ref_g[k]) for k in GRAD_NAMES},
                   cpu_fwd_bwd_s=t_cpu, gpu_fwd_bwd_s=t_gpu)
        rows.append(row)
        print(f"{name:15s} {cpu_backend:>5s} vs {b:25s}  out {row['out_rel_err']:.1e}  "
              f"grads {max(row['grad_rel_err'].values()):.1e}  "
              f"fwd+bwd cpu {t_cpu:.3f} s / gpu {t_gpu * 1e3:.1f} ms", flush=True)
# bfloat16 inputs: the reference saw float32 ones, so only rounding-level agreement is expected
ok = all(r['out_rel_err'] < (3e-2 if ':' in r['cuda'] else 1e-4) and
         max(r['grad_rel_err'].values()) < (5e-2 if ':' in r['cuda'] else 1e-3) for r in rows)
gpu = torch.cuda.get_device_name(0) if dev.type == 'cuda' else str(dev)
json.dump(dict(backends=list(backends), gpu=gpu, rows=rows, ok=ok),
          open(sys.argv[1], 'w'), indent=1)
print('PARITY', 'OK' if ok else 'MISMATCH')
EOF

QUICK_SHAPES=()
[ -n "${GPU_CHECK_QUICK:-}" ] && QUICK_SHAPES=(--shapes small)
step "benchmark_scan.py on $DEV" 240 "$PY" tools/analysis_tools/benchmark_scan.py --device "$DEV" \
  --quick "${QUICK_SHAPES[@]}" --json "$OUT/benchmark_scan.json" > "$OUT/benchmark_scan.md"
cat "$OUT/benchmark_scan.md"

# other launch sizes of the Triton kernels at the Swin-L stage-3 shape (each compiles in about
# a second): NAME:STEPS:TILE:WARPS, see mmmt.ops.selective_scan_triton.parse_kernel; the first
# is the shipped default, for comparison within this run
SWEEP=${GPU_CHECK_SWEEP:-statewise:128:1024:4 statewise:128:256:1 statewise:128:512:2 \
statewise:32:512:2 statewise:64:1024:4 statewise:256:1024:4 tile:16:2048:4 tile:64:2048:8}
if [ "$DEV" = cuda ] && [ -n "$SWEEP" ]; then
  SWEEP_BACKENDS=()
  for c in $SWEEP; do SWEEP_BACKENDS+=("triton-$c"); done
  step "Triton launch-size sweep at Swin-L stage 3" 180 "$PY" \
    tools/analysis_tools/benchmark_scan.py --device cuda --quick --no-reference \
    --shapes "swin-l stage 3" --backends "${SWEEP_BACKENDS[@]}" \
    --json "$OUT/triton_sweep.json" > "$OUT/triton_sweep.md"
  cat "$OUT/triton_sweep.md"
fi

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
      "${BACKEND_ARGS[@]}" "${PREC_ARGS[@]}" --json "$OUT/$name.json" > "$OUT/$name.md"
    cat "$OUT/$name.md"
  done
done

step "summary against the targets" 30 "$PY" tools/analysis_tools/gpu_check_summary.py "$OUT"

echo "=== done in $(($(date +%s) - START))s; results in $OUT"
