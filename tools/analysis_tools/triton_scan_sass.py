"""What the Triton scan kernels compile to, without a GPU: registers, spills, shared memory and
the instructions of their hot loops, per kernel pair, at the Swin-L NYUD stage shapes.

Each kernel of :mod:`mmmt.ops._selective_scan_triton_kernels` is compiled with Triton's real
compiler for a CUDA architecture (default sm_90), specialised as Triton specialises it at run
time for these shapes (16-byte aligned pointers; L, channels and N divisible by 16), with SS2D's
options (D, delta_bias, softplus, no z; the forward saving checkpoints). Then

- ``ptxas -v`` (the one Triton ships) reports registers per thread, spill bytes and, with the
  warps per program, how many programs fit on one SM by registers (64k registers per SM);
- ``nvdisasm`` lists the SASS; the loops are its backward branches. A chunk's instructions
  are the chunk loop's body, plus N - 1 more passes of the state loop in the ``statewise``
  and ``runs`` kernels (``runs`` with ``prefetch``: N / 2 - 1 more of its loop over two
  states; the ``runs`` kernels' last chunk, the only one with time masks, follows the
  loop). Divided by the (channel, state, step) updates one thread makes per chunk, that is
  the issued instructions per state update, the figure that bounds a kernel that keeps the
  SM's issue slots busy (an SM issues 128 thread-instructions per cycle).

These are properties of the code, not timings: stalls, memory and occupancy effects only show
on a GPU (``tools/analysis_tools/gpu_check.sh``).

``--variants`` instead compiles every kernel for the variants a run can select (see
:func:`variants`: each option on and off, short sequences, N = 1 and 64, ungrouped B/C, odd
channel counts, the deterministic backward, ``prefetch``), for each ``--arch`` (CUDA compute
capabilities, or AMD ``gfx...`` targets) and ``--dtypes``: the interpreter tests never compile
anything, and the first-use check on a GPU compiles only the variants its run meets. It lists
what failed and exits with 1 if anything did (a few minutes for the whole set; compiles are
cached in ``~/.triton/cache``).

Example::

    python tools/analysis_tools/triton_scan_sass.py
    python tools/analysis_tools/triton_scan_sass.py --kernels statewise --json sass.json
    python tools/analysis_tools/triton_scan_sass.py --variants --arch 80 90 gfx942
"""
import argparse
import json
import os.path as osp
import re
import subprocess
import sys
import tempfile
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

from mmmt.utils.cli import add_json_output_args, check_output_file, write_output_file
from mmmt.utils.errors import run_main

# the Swin-L NYUD decoder stages: (name, channels per B/C group, L); N = 16, 4 groups
STAGES = [('swin-l stage 1', 1536, 28 * 36), ('swin-l stage 2', 768, 56 * 72),
          ('swin-l stage 3', 384, 112 * 144)]
N_STATE = 16
REGISTERS_PER_SM = 65536
_SCALARS = ('L', 'DIM', 'DG', 'N', 'NCHUNK', 'SLOTS', 'GB', 'GC')
# integer arguments Triton marks divisible by 16 at run time at these shapes
_DIVISIBLE = ('L', 'DIM', 'DG', 'N')
# the kernels' tensors in the activations' dtype (the others: A, D, delta_bias in the
# parameters' dtype, the state, checkpoints and sums in the compute dtype)
_ACTIVATIONS = ('u_ptr', 'delta_ptr', 'z_ptr', 'B_ptr', 'C_ptr', 'out_ptr', 'dout_ptr',
                'du_ptr', 'ddelta_ptr', 'dz_ptr')
_PARAMETERS = ('A_ptr', 'D_ptr', 'bias_ptr')
#: --variants --dtypes: (activations, parameters, compute dtype), as Triton names them; the
#: half-precision ones as AMP passes them (float32 parameters) and as a model cast with
#: .half() / .bfloat16() does (parameters in that dtype too)
DTYPES = {'float32': ('fp32', 'fp32', 'fp32'), 'float16': ('fp16', 'fp32', 'fp32'),
          'bfloat16': ('bf16', 'fp32', 'fp32'), 'float16-params': ('fp16', 'fp16', 'fp32'),
          'bfloat16-params': ('bf16', 'bf16', 'fp32'), 'float64': ('fp64', 'fp64', 'fp64')}


def _tool(name: str) -> str:
    import triton
    path = osp.join(osp.dirname(triton.__file__), 'backends', 'nvidia', 'bin', name)
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path}: Triton\'s bundled {name} is missing (a Triton '
                                'wheel without the NVIDIA backend?)')
    return path


def compile_kernel(fn, consts: dict, num_warps: int, arch: Union[int, str] = 90,
                   dtypes: Tuple[str, str, str] = ('fp32', 'fp32', 'fp32'),
                   ints: Optional[Dict[str, int]] = None, aligned: bool = True):
    """Compile one ``@triton.jit`` scan kernel for sm_`arch` (an int; a ``gfx...`` string: that
    AMD GPU), `consts` its constexpr arguments (those it does not have are ignored).

    Args:
        dtypes: Triton's names of the activations', parameters' and compute dtype
            (:data:`DTYPES`).
        ints: the integer arguments' values, specialised as Triton does at run time: 1 becomes
            a constant, a multiple of 16 is marked so. Default: :data:`_DIVISIBLE` multiples
            of 16, the others neither.
        aligned: whether the tensors are 16-byte aligned (as Triton marks them; a view at an
            odd offset is not, and loads are not vectorised then).
    """
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    consts = {k: v for k, v in consts.items() if k in fn.arg_names}
    if ints is not None:
        consts.update({k: 1 for k, v in ints.items() if v == 1 and k in fn.arg_names})
    act, par, acc = dtypes
    sig = {a: 'constexpr' if a in consts else 'i32' if a in _SCALARS else
           f'*{act if a in _ACTIVATIONS else par if a in _PARAMETERS else acc}'
           for a in fn.arg_names}
    divisible = _DIVISIBLE if ints is None else [k for k, v in ints.items() if v % 16 == 0]
    attrs = {(i, ): [['tt.divisibility', 16]] for i, a in enumerate(fn.arg_names)
             if a not in consts and ((aligned and a.endswith('_ptr')) or a in divisible)}
    src = ASTSource(fn=fn, signature=sig, attrs=attrs,
                    constexprs={(fn.arg_names.index(k), ): v for k, v in consts.items()})
    target = (GPUTarget('hip', arch, 64 if arch.startswith('gfx9') else 32)
              if isinstance(arch, str) else GPUTarget('cuda', arch, 32))
    return triton.compile(src, target=target, options=dict(num_warps=num_warps))


def ptxas_report(ptx: str) -> Tuple[int, int]:
    """(registers per thread, spill-store bytes) of `ptx`, from ``ptxas -v``."""
    target = re.search(r'^\.target\s+(\S+)', ptx, re.M).group(1)  # sm_90a where Triton uses it
    with tempfile.TemporaryDirectory() as tmp:
        src = osp.join(tmp, 'k.ptx')
        with open(src, 'w') as f:
            f.write(ptx)
        log = subprocess.run([_tool('ptxas'), '-v', f'--gpu-name={target}', src, '-o',
                              osp.join(tmp, 'k.cubin')], capture_output=True, text=True,
                             check=True).stderr
    return (int(re.search(r'Used (\d+) registers', log).group(1)),
            int(re.search(r'(\d+) bytes spill stores', log).group(1)))


def sass_loops(cubin: bytes) -> List[Dict[str, int]]:
    """The loops of a cubin's SASS: first and last instruction index, length, and how many
    MUFU (exp, ...), BAR (barriers) and SHFL (warp shuffles) instructions each contains."""
    with tempfile.TemporaryDirectory() as tmp:
        path = osp.join(tmp, 'k.cubin')
        with open(path, 'wb') as f:
            f.write(cubin)
        text = subprocess.run([_tool('nvdisasm'), '-c', path], capture_output=True, text=True,
                              check=True).stdout
    labels, instr = {}, []
    for line in text.splitlines():
        label = re.match(r'\s*\.(L_x_\d+):', line)
        if label:
            labels[label.group(1)] = len(instr)
        elif re.match(r'\s+/\*[0-9a-f]{4,}\*/', line):
            instr.append(line)
    loops = []
    for end, line in enumerate(instr):
        target = re.search(r'BRA\s+`\(\.(L_x_\d+)\)', line)
        start = labels.get(target.group(1)) if target else None
        if start is not None and end - start >= 4:  # not the 1-instruction trap after EXIT
            body = instr[start:end + 1]
            loops.append(dict(start=start, end=end, length=len(body),
                              **{op.lower(): sum(re.search(rf'\b{op}\b', b) is not None
                                                 for b in body)
                                 for op in ('MUFU', 'BAR', 'SHFL')}))
    return loops


def analyse(kernel: str, dim_group: int, length: int, dim_state: int = N_STATE,
            arch: int = 90, cfg=None) -> List[dict]:
    """Registers, spills, shared memory and hot-loop instructions of kernel pair `kernel`
    (forward and backward) at one shape, with its shipped launch sizes or `cfg`."""
    import triton.language as tl

    from mmmt.ops import selective_scan_triton as triton_scan
    kern = triton_scan._kernels(False)
    cfg = cfg or triton_scan.CONFIGS[kernel]
    block_d, block_n, block_l = triton_scan._launch_sizes(kernel, dim_group, dim_state, length,
                                                          cfg=cfg)
    num_warps = cfg.num_warps
    threads = 32 * num_warps
    base = dict(HAS_D=True, HAS_BIAS=True, SOFTPLUS=True, HAS_Z=False, ACC=tl.float32,
                FAST_EXP=True, DETERMINISTIC=False, EVEN_D=dim_group % block_d == 0,
                PREFETCH=cfg.prefetch,
                BLOCK_D=block_d, BLOCK_N=block_n,
                BLOCK_L=block_l, RUN=triton_scan.run_length(cfg, block_l))
    rows = []
    for direction, fn, extra in zip(('forward', 'backward'),
                                    triton_scan._kernel_fns(kern, kernel),
                                    (dict(SAVE_CKPT=True), dict(HAS_DLAST=False))):
        compiled = compile_kernel(fn, dict(base, **extra), num_warps, arch)
        regs, spills = ptxas_report(compiled.asm['ptx'])
        loops = sass_loops(compiled.asm['cubin'])
        chunk = max(loops, key=lambda r: r['length'])  # the loop over chunks holds the rest
        inner = [r for r in loops if chunk['start'] < r['start'] and r['end'] < chunk['end']]
        per_chunk = chunk['length']
        updates = block_d * block_l * block_n / threads  # (d, n, t) per thread and chunk
        if kernel in triton_scan._STATE_LOOP:
            if direction == 'forward' and cfg.prefetch:
                # two states per pass of the longer loop, an odd last one in the other
                two, one = sorted(inner, key=lambda r: r['length'], reverse=True)[:2]
                per_chunk += ((dim_state // 2 - 1) * two['length'] +
                              (dim_state % 2 - 1) * one['length'])
            else:
                state_loop = max(inner, key=lambda r: r['length'])
                per_chunk += (dim_state - 1) * state_loop['length']
            updates = block_d * block_l * dim_state / threads
        rows.append(dict(kernel=kernel, direction=direction, prefetch=cfg.prefetch,
                         channels_per_program=block_d,
                         steps_per_chunk=block_l, num_warps=num_warps, registers=regs,
                         spill_bytes=spills, shared_bytes=compiled.metadata.shared,
                         programs_per_sm=REGISTERS_PER_SM // (regs * threads),
                         loops=loops, instructions_per_chunk=per_chunk,
                         instructions_per_update=per_chunk / updates))
    return rows


def variants(kernel: str, cfg, acc: str, fast_exp: bool) -> Iterator[Tuple[str, dict, dict]]:
    """(name, constexpr arguments, integer arguments) of the variants of kernel pair `kernel`
    (launch sizes `cfg`) compiled by ``--variants``, with compute dtype `acc` (``fp32`` or
    ``fp64``); `fast_exp`: whether the dispatcher would use ``ex2.approx.ftz`` (an NVIDIA
    target and float32). Each option takes both values in some variant, and each launch
    size the dispatcher derives from a shape (chunk, channel and state blocks, runs) takes its
    extremes:

    - ``full``: every option (D, z, delta_bias, softplus, checkpoints, the last state's
      gradient), atomic dB/dC, at the Swin-L stage-3 shape (384 channels per group, 4 groups,
      N = 16, L = 16128);
    - ``bare``: no option, deterministic dB/dC, no ``ex2.approx.ftz``, one 16-step chunk
      (one run per channel for ``runs``), N = 1, 3 channels, ungrouped B/C (the values Triton
      turns into constants: 1), tensors not 16-byte aligned;
    - ``widest``: N = 64 (:data:`~mmmt.ops.selective_scan_triton.MAX_STATE`), 5 channels per
      group, B in 4 groups and C shared, inference (no checkpoints), D and delta_bias without
      softplus;
    - ``prefetch`` (``runs`` only, a run-time option of its forward pass): ``full`` with it.
    """
    import triton.language as tl

    from mmmt.ops import selective_scan_triton as triton_scan
    on = dict(HAS_D=True, HAS_Z=True, HAS_BIAS=True, SOFTPLUS=True, SAVE_CKPT=True,
              HAS_DLAST=True, DETERMINISTIC=False, FAST_EXP=fast_exp, PREFETCH=False)
    shapes = [('full', on, 384, 16, 16128, 4, 4),
              ('bare', {k: k == 'DETERMINISTIC' for k in on}, 3, 1, 5, 1, 1),
              ('widest', dict(on, HAS_Z=False, SOFTPLUS=False, SAVE_CKPT=False, HAS_DLAST=False),
               5, triton_scan.MAX_STATE, 40, 4, 1)]
    if kernel == 'runs':
        shapes.append(('prefetch', dict(on, PREFETCH=True), 384, 16, 16128, 4, 4))
    for name, flags, dim_group, dim_state, length, gb, gc in shapes:
        block_d, block_n, block_l = triton_scan._launch_sizes(kernel, dim_group, dim_state,
                                                              length, cfg=cfg)
        nchunk = -(-length // block_l)
        consts = dict(flags, ACC=tl.float64 if acc == 'fp64' else tl.float32,
                      FAST_EXP=flags['FAST_EXP'] and acc == 'fp32',
                      EVEN_D=dim_group % block_d == 0, BLOCK_D=block_d, BLOCK_N=block_n,
                      BLOCK_L=block_l, RUN=triton_scan.run_length(cfg, block_l))
        ints = dict(L=length, DIM=dim_group * max(gb, gc), DG=dim_group, N=dim_state,
                    NCHUNK=nchunk, SLOTS=nchunk + 1 if flags['SAVE_CKPT'] else 2, GB=gb, GC=gc)
        yield name, consts, ints


def compile_variants(kernels: Sequence[Tuple[str, object]], archs: Sequence[Union[int, str]],
                     dtypes: Sequence[str], only: Optional[Sequence[str]] = None) -> List[dict]:
    """Compile both kernels of each (kernel pair, launch sizes) of `kernels` in every
    :func:`variants` (those named in `only`, if given) for each target of `archs` and each
    dtype of `dtypes` (:data:`DTYPES`). One row per kernel: what was compiled and, if it
    failed, ``error`` (the exception's type and message); compile errors do not stop it."""
    from mmmt.ops import selective_scan_triton as triton_scan
    kern = triton_scan._kernels(False)
    rows = []
    for arch in archs:
        for dtype in dtypes:
            act, par, acc = DTYPES[dtype]
            for kernel, cfg in kernels:
                # the dispatcher's choice (mmmt.ops.selective_scan_triton._fast_exp)
                fast_exp = not isinstance(arch, str) and acc == 'fp32'
                for name, consts, ints in variants(kernel, cfg, acc, fast_exp):
                    if only and name not in only:
                        continue
                    for fn in triton_scan._kernel_fns(kern, kernel):
                        row = dict(arch=arch, dtype=dtype, kernel=kernel, config=str(cfg),
                                   variant=name, function=fn.__name__)
                        try:
                            compile_kernel(fn, consts, cfg.num_warps, arch, (act, par, acc),
                                           ints, aligned=name != 'bare')
                        except Exception as e:  # noqa: BLE001 -- reported, not raised
                            msg = getattr(e, 'error_message', None) or str(e)
                            row['error'] = f'{type(e).__name__}: {msg.strip()[-2000:]}'
                        print(f"{'FAILED' if 'error' in row else 'ok':6} {arch} {dtype} "
                              f"{kernel} ({cfg}) {name} {fn.__name__}", file=sys.stderr,
                              flush=True)
                        rows.append(row)
    return rows


def _arch(text: str) -> Union[int, str]:
    """A ``--arch`` value: a CUDA compute capability x 10 (``90``) or an AMD ``gfx...``."""
    if re.fullmatch(r'\d+', text):
        return int(text)
    if re.fullmatch(r'gfx[0-9a-f]+', text):
        return text
    raise argparse.ArgumentTypeError(f'{text!r}: expected a CUDA compute capability x 10 '
                                     '(80, 90) or an AMD target (gfx90a, gfx942)')


def format_table(rows: Sequence[dict]) -> str:
    lines = ['| shape | kernels | pass | channels x steps per program, warps | registers | '
             'spill bytes | programs/SM (registers) | instructions per state update |',
             '|---|---|---|---|---|---|---|---|']
    for r in rows:
        lines.append(
            f"| {r['shape']} | {r['kernel']} | {r['direction']} | {r['channels_per_program']} "
            f"x {r['steps_per_chunk']}, {r['num_warps']}"
            f"{', prefetch' if r.get('prefetch') else ''} | {r['registers']} | "
            f"{r['spill_bytes']} | {r['programs_per_sm']} | "
            f"{r['instructions_per_update']:.1f} |")
    return '\n'.join(lines)


def main(argv: Optional[List[str]] = None) -> List[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--kernels', nargs='+', default=None,
                        help='kernel pairs (default: all, see MMMT_TRITON_SCAN_KERNEL)')
    parser.add_argument('--shapes', nargs='+', default=None,
                        help='stage names (default: the three Swin-L NYUD stages)')
    parser.add_argument('--config', nargs='+', default=[],
                        metavar='KERNEL:STEPS:TILE:WARPS[:prefetch]',
                        help='other launch sizes to compile, e.g. tile:16:2048:4 or '
                        'runs:128:512:1:prefetch (see '
                        'mmmt.ops.selective_scan_triton.KernelConfig)')
    parser.add_argument('--arch', type=_arch, nargs='+', default=None,
                        help='CUDA compute capability x 10 (default 90; --variants: 80 90 '
                        'and also AMD targets such as gfx942)')
    parser.add_argument('--variants', action='store_true',
                        help='only compile every kernel in the variants a run can select '
                        '(each option, extreme launch sizes), for each --arch and --dtypes; '
                        'list the failures, exit 1 if any')
    parser.add_argument('--dtypes', nargs='+', choices=sorted(DTYPES), default=None,
                        help='--variants: the input dtypes (default: all)')
    add_json_output_args(parser, 'rows')
    args = parser.parse_args(argv)
    check_output_file(args.json, args.force)  # not after minutes of compiling

    from mmmt.ops import selective_scan_triton as triton_scan
    kernels = args.kernels or sorted(triton_scan.CONFIGS)
    unknown = set(kernels) - set(triton_scan.CONFIGS)
    if unknown:
        parser.error(f'unknown kernels {sorted(unknown)}; known: {sorted(triton_scan.CONFIGS)}')
    stages = [s for s in STAGES if not args.shapes or s[0] in args.shapes]
    if not stages:
        parser.error(f'no stage among {args.shapes}; known: {[s[0] for s in STAGES]}')
    configs = [(k, triton_scan.CONFIGS[k]) for k in kernels]
    for text in args.config:
        try:
            configs.append(triton_scan.parse_kernel(text))
        except ValueError as e:
            parser.error(f'--config {e}')
    if args.variants:
        rows = compile_variants(configs, args.arch or [80, 90], args.dtypes or sorted(DTYPES))
        failed = [r for r in rows if 'error' in r]
        for r in failed:
            print(f"FAILED {r['arch']} {r['dtype']} {r['kernel']} ({r['config']}) "
                  f"{r['variant']} {r['function']}: {r['error']}")
        print(f'{len(rows) - len(failed)} of {len(rows)} kernels compiled')
        if args.json:
            write_output_file(json.dumps(rows, indent=1), args.json, args.force)
        if failed:
            raise SystemExit(1)
        return rows
    if args.dtypes:
        parser.error('--dtypes is an option of --variants (the tables are float32)')
    arch = args.arch or [90]
    if len(arch) != 1 or isinstance(arch[0], str):
        parser.error('the tables are for one CUDA architecture (ptxas, nvdisasm); several '
                     'or AMD targets: with --variants')
    rows = []
    for name, dim_group, length in stages:
        for kernel, cfg in configs:
            print(f'compiling {kernel} ({cfg}) for sm_{arch[0]} at {name} ...',
                  file=sys.stderr, flush=True)
            rows += [dict(shape=name, **r) for r in analyse(kernel, dim_group, length,
                                                            arch=arch[0], cfg=cfg)]
    print(format_table(rows))
    if args.json:
        write_output_file(json.dumps(rows, indent=1), args.json, args.force)
    return rows


if __name__ == '__main__':
    run_main(main)
