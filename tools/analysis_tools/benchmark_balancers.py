"""Extra cost per training step of each gradient balancer, relative to a plain OptimWrapper.

The model is built from the config with random weights (as ``benchmark.py`` does) and trained
on one random batch of ``--shape`` with random labels of every task, with the config's real
task losses (combined with scheme 'sum', which GradNorm needs). One step is mmengine's
``train_step`` without the data preprocessor: the ``mode='loss'`` forward inside
``optim_context``, ``parse_losses`` and ``update_params``. The methods are timed
**interleaved** (round r times every method once) and each reported time is the median over
the rounds, so the ratios come from the same run and see the same machine load;
absolute times on a shared machine are not comparable across runs, the ratios roughly are.

Examples::

    python tools/analysis_tools/benchmark_balancers.py configs/mtmamba_swin-t_nyud.py
    python tools/analysis_tools/benchmark_balancers.py configs/mtmamba_swin-t_nyud.py \\
        --shape 224 288 --rounds 3 --balancers PCGrad MGDAUB --json work_dirs/balancers.json
"""
import argparse
import json
import statistics
import time
from typing import Dict, List, Optional

from mmmt.utils.cli import (add_json_output_args, add_model_input_args, check_output_file,
                            write_output_file)
from mmmt.utils.errors import run_main

ALL_BALANCERS = ['PCGrad', 'CAGrad', 'GradNorm', 'IMTLG', 'MGDAUB', 'NashMTL', 'AlignedMTL']


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    add_model_input_args(parser)
    parser.add_argument('--rounds', type=int, default=3, help='timed rounds (default 3)')
    parser.add_argument('--balancers', nargs='+', default=ALL_BALANCERS, choices=ALL_BALANCERS)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int, default=None, help='torch.set_num_threads')
    add_json_output_args(parser)
    return parser.parse_args(argv)


if __name__ == '__main__':
    parse_args()  # --help and argument errors before torch is imported

import torch  # noqa: E402

from mmmt.utils.analysis import build_model, cpu_name, log, sync  # noqa: E402


def random_samples(model, batch_size: int, h: int, w: int, device: torch.device) -> list:
    """Data samples with random ground truth for every task of ``model``."""
    from mmengine.structures import PixelData

    from mmmt.structures import TASKS, MultiTaskDataSample
    channels = getattr(model.decode_head, 'task_channels', {})
    samples = []
    for _ in range(batch_size):
        s = MultiTaskDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w),
                                              pad_shape=(h, w)))
        for t in model.tasks:
            # the label's kind from the task's definition, so that a config's own task gets
            # labels its loss accepts (its channels, class indices or values)
            spec = TASKS[t]
            shape = (spec.gt_channels, h, w)
            if spec.is_int:  # class indices (semseg, human_parts)
                gt = torch.randint(0, int(channels.get(t, 2)), shape)
            elif spec.activation == 'l2_normalize':  # unit vectors (normals)
                gt = torch.nn.functional.normalize(torch.randn(shape), dim=0)
            elif spec.activation in ('sigmoid', 'softmax_foreground'):  # edge, sal: binary
                gt = (torch.rand(shape) > 0.8).float()
            else:  # values (depth > 0)
                gt = torch.rand(shape) * 5 + 0.1
            s.set_field(PixelData(data=gt.to(device)), f'gt_{t}')
        samples.append(s)
    return samples


def make_wrapper(model, method: str):
    from mmmt.registry import OPTIM_WRAPPERS
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)
    if method == 'OptimWrapper':
        return OPTIM_WRAPPERS.build(dict(type='OptimWrapper'),
                                    default_args=dict(optimizer=optimizer))
    balancer = dict(type=method)
    return OPTIM_WRAPPERS.build(dict(type='MultiTaskOptimWrapper', balancer=balancer),
                                default_args=dict(optimizer=optimizer))


def main(argv: Optional[List[str]] = None) -> Dict:
    args = parse_args(argv)
    check_output_file(args.json, args.force)  # not after minutes of measuring
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    h, w = args.shape

    log(f'building {args.config} ...')
    model = build_model(args.config, device).train()
    # GradNorm needs positive losses; the scheme does not change the cost, so all methods use it
    model.decode_head.loss_combiner.scheme = 'sum'
    inputs = torch.randn(args.batch_size, 3, h, w, device=device)
    samples = random_samples(model, args.batch_size, h, w, device)
    methods = ['OptimWrapper'] + list(args.balancers)
    wrappers = {m: make_wrapper(model, m) for m in methods}

    def step(wrapper):
        with wrapper.optim_context(model):
            losses = model(inputs, samples, mode='loss')
        parsed, _ = model.parse_losses(losses)
        wrapper.update_params(parsed)

    for m in methods:  # warm-up: first-call allocations, GradNorm's initial losses
        step(wrappers[m])
    times = {m: [] for m in methods}
    for r in range(args.rounds):
        for m in methods:
            sync(device)
            t0 = time.perf_counter()
            step(wrappers[m])
            sync(device)
            times[m].append(time.perf_counter() - t0)
        log(f'round {r + 1}/{args.rounds} done')
    base = statistics.median(times['OptimWrapper'])
    result = dict(config=args.config, shape=[h, w], batch_size=args.batch_size,
                  rounds=args.rounds, device=str(device), cpu=cpu_name(),
                  threads=torch.get_num_threads(),
                  shared_params=sum(p.numel() for p in model.backbone.parameters()),
                  tasks=list(model.tasks),
                  step_s={m: statistics.median(t) for m, t in times.items()})
    result['ratio'] = {m: s / base for m, s in result['step_s'].items()}
    print(format_result(result))
    if args.json:  # into a folder made if missing (not a traceback after the whole benchmark)
        write_output_file(json.dumps(result, indent=2), args.json, args.force)
    return result


def format_result(r: Dict) -> str:
    lines = [f"{r['config']}  input {r['shape'][0]}x{r['shape'][1]} x{r['batch_size']}  "
             f"{len(r['tasks'])} tasks, {r['shared_params'] / 1e6:.1f}M shared params  "
             f"{r['device']} ({r['cpu']}, {r['threads']} threads), median of {r['rounds']}",
             f"{'method':<14}{'step s':>10}{'x plain':>10}"]
    for m, s in r['step_s'].items():
        lines.append(f'{m:<14}{s:>10.3f}{r["ratio"][m]:>10.2f}')
    return '\n'.join(lines)


if __name__ == '__main__':
    run_main(main)
