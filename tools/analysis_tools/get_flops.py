"""Parameters and FLOPs of an mmmt model, split by backbone, decoder stages and output heads.

    python tools/analysis_tools/get_flops.py configs/mtmamba_swin-l_nyud.py --shape 448 576

Counter: mmengine's ``FlopAnalyzer`` (a fvcore port, by JIT trace), which counts one
multiply-add as one FLOP for linear layers, convolutions, matmuls and einsums and ignores
element-wise operations. The selective scan is one opaque operation to the tracer, so it is
counted explicitly: ``9 * B * D * L * N + B * D * L`` per call (B batch, D = 4 directions x
d_inner channels, L = H*W, N state size; the D skip adds B*D*L), the rule VMamba and MTMamba
use with fvcore. See docs/complexity.md for how the totals relate to the paper's.
"""
import argparse
import contextlib
import math
from collections import OrderedDict
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from mmmt.utils.cli import LazyDictAction  # the standard library only
from mmmt.utils.errors import run_main


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Parameters and FLOPs of an mmmt model')
    parser.add_argument('config', help='config file')
    parser.add_argument('--shape', type=int, nargs='+', default=None,
                        help='input H W (one value for a square), multiples of 32 (the '
                        'encoder downsamples 32x); default: the config\'s crop_size if it has '
                        'one, else 448 576')
    parser.add_argument('--params-only', action='store_true',
                        help='count parameters only (no forward pass)')
    parser.add_argument('--cfg-options', nargs='+', action=LazyDictAction, metavar='KEY=VALUE',
                        help='override config settings, xxx=yyy format')
    return parser.parse_args(argv)


if __name__ == '__main__':
    parse_args()  # --help and argument errors before torch is imported

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

from mmmt.utils.analysis import build_model as build_random_model  # noqa: E402

#: Name of the traced op the scan becomes (``prim::PythonOp.<class name>``).
SCAN_OP = 'prim::PythonOp.SelectiveScanForFlops'


def scan_flops(batch: int, channels: int, length: int, state: int, with_d: bool = True) -> int:
    """FLOPs of one selective scan: 9*B*D*L*N (+ B*D*L for the D skip), as VMamba counts."""
    flops = 9 * batch * channels * length * state
    return flops + (batch * channels * length if with_d else 0)


class SelectiveScanForFlops(torch.autograd.Function):
    """Stands for the scan in the JIT trace: one named op with the scan's inputs and output.

    It returns zeros of the output's shape instead of running a backend, whose own operations
    the tracer would otherwise record (and, for the PyTorch backend, partly count). FLOPs depend
    on shapes only.
    """

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, delta_bias):
        return torch.zeros_like(u)


def _scan_handle(inputs: List, outputs: List) -> int:
    from mmengine.analysis.jit_handles import get_shape
    batch, channels, length = get_shape(inputs[0])
    state = get_shape(inputs[2])[1]
    return scan_flops(batch, channels, length, state, with_d=True)


@contextlib.contextmanager
def traceable_scan() -> Iterator[None]:
    """Route SS2D's scan through :class:`SelectiveScanForFlops` while counting."""
    from mmmt.models.layers import ss2d
    original = ss2d.selective_scan_fn

    def scan(u, delta, A, B, C, D=None, delta_bias=None, delta_softplus=False, **kwargs):
        if D is None or delta_bias is None or not delta_softplus or kwargs:
            raise NotImplementedError('get_flops counts the scan as SS2D calls it')
        return SelectiveScanForFlops.apply(u, delta, A, B, C, D, delta_bias)

    ss2d.selective_scan_fn = scan
    try:
        yield
    finally:
        ss2d.selective_scan_fn = original


class _TensorForward(nn.Module):
    """``model(x, mode='tensor')`` with the task logits returned as a tuple (traceable)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        out = self.model._forward(x)
        return tuple(out.values()) if isinstance(out, dict) else (out, )


def build_model(config, cfg_options: Optional[dict] = None) -> nn.Module:
    """Build the config's model without pretrained weights, in eval mode, on the CPU."""
    return build_random_model(config, 'cpu', cfg_options).eval()


def module_groups(model: nn.Module) -> List[str]:
    """Report rows: the backbone, every decoder stage, the rest of the head (output heads)."""
    groups = [name for name, _ in model.named_children() if name != 'decode_head'
              and name != 'data_preprocessor']
    head = getattr(model, 'decode_head', None)
    if head is not None:
        groups += [f'decode_head.stages.{i}' for i in range(len(getattr(head, 'stages', [])))]
        groups.append('decode_head.heads')
    return groups


def _params_of(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def count_params(model: nn.Module) -> 'OrderedDict[str, int]':
    """Parameters per :func:`module_groups` row (buffers excluded), plus 'total'."""
    out = OrderedDict()
    for group in module_groups(model):
        if group == 'decode_head.heads':
            head = model.decode_head
            stages = _params_of(head.stages) if hasattr(head, 'stages') else 0
            out[group] = _params_of(head) - stages
        else:
            out[group] = _params_of(model.get_submodule(group))
    out['total'] = _params_of(model)
    return out


def count_flops(model: nn.Module, shape: Sequence[int]) -> Tuple['OrderedDict[str, int]', int]:
    """FLOPs per :func:`module_groups` row and 'total' for one (1, 3, H, W) input.

    Returns:
        (OrderedDict, int): the per-row FLOPs, and the part of the total spent in the scan.
    """
    from mmengine.analysis import FlopAnalyzer
    wrapper = _TensorForward(model).eval()
    inputs = (torch.zeros(1, 3, *shape), )
    with traceable_scan(), torch.no_grad():
        analyzer = FlopAnalyzer(wrapper, inputs)
        analyzer.set_op_handle(**{SCAN_OP: _scan_handle})
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        analyzer.tracer_warnings('none')
        by_module = analyzer.by_module()
        scan = analyzer.by_operator().get(SCAN_OP.replace('prim::', ''), 0)
    out = OrderedDict()
    for group in module_groups(model):
        if group == 'decode_head.heads':
            stages = sum(by_module.get(f'model.decode_head.stages.{i}', 0)
                         for i in range(len(model.decode_head.stages)))
            out[group] = by_module.get('model.decode_head', 0) - stages
        else:
            out[group] = by_module.get(f'model.{group}', 0)
    out['total'] = by_module['']
    return OrderedDict((k, int(v)) for k, v in out.items()), int(scan)


def reference_resize_flops(model: nn.Module, shape: Sequence[int]) -> int:
    """FLOPs of the MTMamba reference's last op, absent in mmmt: a bilinear resize of every
    task's logits to the (fixed) image size, an identity at the configured sizes, which the
    counter charges 4 FLOPs per output value. Zero for MTMamba++ (whose one bilinear 4x
    upsampling is in both) and for heads other than MTMamba's."""
    from mmmt.models.decode_heads import MTMambaPlusDecodeHead, MultiTaskMambaDecodeHead
    head = getattr(model, 'decode_head', None)
    if not isinstance(head, MultiTaskMambaDecodeHead) or isinstance(head, MTMambaPlusDecodeHead):
        return 0
    return 4 * shape[0] * shape[1] * sum(head.task_channels.values())


def paper_millions(n: int) -> str:
    """Millions truncated (not rounded) to two decimals, as the paper prints parameters."""
    return f'{math.floor(n / 1e4) / 100:.2f}'


def paper_billions(n: int) -> str:
    """Billions truncated (not rounded) to two decimals, as the paper prints FLOPs."""
    return f'{math.floor(n / 1e7) / 100:.2f}'


def format_report(params: Dict[str, int], flops: Optional[Dict[str, int]] = None,
                  scan: int = 0, resize: int = 0) -> str:
    rows = [f'{"module":<24}{"params":>16}{"params (M)":>12}' +
            (f'{"FLOPs (G)":>14}' if flops else '')]
    for group, n in params.items():
        row = f'{group:<24}{n:>16,}{n / 1e6:>12.3f}'
        if flops:
            # three decimals, as params (M): the table never contradicts the truncated totals
            row += f'{flops[group] / 1e9:>14.3f}'
        rows.append(row)
    line = '=' * len(rows[0])
    lines = [line, rows[0], '-' * len(line)] + rows[1:-1] + ['-' * len(line), rows[-1], line]
    total = params['total']
    lines.append(f'Params: {paper_millions(total)} M ({total:,}; millions truncated to two '
                 'decimals, as the paper prints them)')
    if flops:
        # truncated like the other totals (and the docs' counts): rounding printed 523.91 G
        # for MTMamba++ NYUD where every doc quotes 523,906,427,520 as 523.90 G
        lines.append(f'FLOPs: {paper_billions(flops["total"])} G ({flops["total"]:,}; mmengine '
                     'FlopAnalyzer, 1 multiply-add = 1 FLOP; truncated to two decimals; '
                     f'selective scan {scan / 1e9:.2f} G counted as 9*B*D*L*N + B*D*L)')
        if resize:
            total = flops['total'] + resize
            lines.append(f'FLOPs as the paper counts them: {paper_billions(total)} G '
                         f'({total:,}; adds the reference\'s identity resize of the logits, '
                         f'{resize / 1e9:.3f} G; truncated to two decimals)')
    return '\n'.join(lines)


def main(argv=None) -> None:
    from mmmt.utils.cli import read_config
    args = parse_args(argv)
    cfg = read_config(args.config)
    if args.shape is None:
        shape = tuple(cfg.get('crop_size', (448, 576)))
    elif len(args.shape) == 1:
        shape = (args.shape[0], args.shape[0])
    elif len(args.shape) == 2:
        shape = tuple(args.shape)
    else:
        raise SystemExit('--shape takes H W (or one value)')
    if not args.params_only and any(v <= 0 or v % 32 for v in shape):
        # counted on the model as it runs: the data preprocessor pads to 32 (size_divisor)
        def padded(v):  # what size_divisor=32 pads a side to (at least one block)
            return max(32, -(-v // 32) * 32)

        raise SystemExit(f'--shape {shape[0]} {shape[1]}: height and width must be positive '
                         f'multiples of 32, e.g. {padded(shape[0])} {padded(shape[1])} (what '
                         'size_divisor=32 pads it to)')
    model = build_model(cfg, args.cfg_options)
    params = count_params(model)
    flops, scan = (None, 0) if args.params_only else count_flops(model, shape)
    resize = 0 if args.params_only else reference_resize_flops(model, shape)
    print(f'Config: {args.config}')
    if flops:
        print(f'Input shape: (1, 3, {shape[0]}, {shape[1]})')
    print(format_report(params, flops, scan, resize))


if __name__ == '__main__':
    run_main(main)
