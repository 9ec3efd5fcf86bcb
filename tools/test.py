"""Evaluate a checkpoint on the test split, optionally saving visualizations.

Examples:
    python tools/test.py configs/mtmamba_swin-l_nyud.py CKPT
    python tools/test.py CONFIG CKPT --show-dir vis     # one picture per image in vis/
    python tools/test.py CONFIG CKPT --out results.pkl  # raw predictions for offline analysis
    tools/dist_test.sh CONFIG CKPT 8
"""
import argparse
import logging
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.evaluator import DumpResults
from mmengine.logging import print_log
from mmengine.runner import Runner

import mmmt  # noqa: F401  (mmcv-lite shim, safe checkpoint loading)
from mmmt.utils import TRUST_ENV, register_all_modules, setup_cpu_distributed


def parse_args():
    parser = argparse.ArgumentParser(description='Test (and evaluate) a multi-task model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='where the evaluation metrics are written')
    parser.add_argument('--out', help='dump the predictions to this pickle file')
    parser.add_argument(
        '--show-dir',
        help='save one visualization per image under this directory '
        '(<show-dir>/vis_data/vis_image/)')
    parser.add_argument('--show', action='store_true', help='show results in a window')
    parser.add_argument('--wait-time', type=float, default=2, help='display time per image (s)')
    parser.add_argument(
        '--trust-checkpoint', action='store_true',
        help='allow full unpickling of the checkpoint (only for files you trust)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, help='override settings in the config')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def enable_visualization(cfg: Config, args) -> Config:
    """Switch the visualization hook on for --show / --show-dir."""
    hook = cfg.default_hooks.get('visualization', None)
    if hook is None:
        raise SystemExit('--show/--show-dir need `default_hooks.visualization` in the config '
                         '(see configs/_base_/default_runtime.py)')
    hook['draw'] = True
    hook['interval'] = 1  # every test image
    if args.show:
        hook['show'] = True
        hook['wait_time'] = args.wait_time
    if args.show_dir:
        # the visualizer's LocalVisBackend writes <show_dir>/vis_data/vis_image/*.png
        cfg.visualizer['save_dir'] = args.show_dir
    return cfg


def main():
    args = parse_args()
    if args.trust_checkpoint:
        os.environ[TRUST_ENV] = '1'
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    if args.show or args.show_dir:
        cfg = enable_visualization(cfg, args)
    if setup_cpu_distributed(cfg, args.launcher):
        print_log('No CUDA device: distributed testing on the CPU with the gloo backend.',
                  logger='current', level=logging.INFO)
    runner = Runner.from_cfg(cfg)
    if args.out is not None:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise SystemExit(f'--out must be a .pkl or .pickle file, got {args.out}')
        if osp.exists(args.out):
            raise SystemExit(f'--out {args.out} exists; remove it or choose another name')
        runner.test_evaluator.metrics.append(DumpResults(out_file_path=args.out))
    runner.test()


if __name__ == '__main__':
    main()
