"""Evaluate a checkpoint on the test split, optionally saving visualizations.

Examples:
    python tools/test.py configs/mtmamba_swin-l_nyud.py CKPT
    python tools/test.py CONFIG CKPT --show-dir vis     # one picture per image in vis/
    python tools/test.py CONFIG CKPT --out results.pkl  # raw predictions for offline analysis
    tools/dist_test.sh CONFIG CKPT 8
"""
import argparse
import os.path as osp

from mmengine.config import Config
from mmengine.runner.checkpoint import CheckpointLoader

from mmmt.evaluation import DumpMultiTaskPredictions
from mmmt.utils import (CheckpointMismatchError, add_runner_args, build_runner,
                        UntrustedCheckpointError, load_model_weights, load_runner_config,
                        parse_runner_args, shutdown_distributed)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and evaluate) a multi-task model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--out',
        help='write the predictions to this new pickle file: per image a dict with img_id, '
        'img_path, ori_shape and pred (task -> numpy array at the image size; see '
        'mmmt.evaluation.DumpMultiTaskPredictions)')
    parser.add_argument(
        '--show-dir',
        help='save one visualization per image under this directory '
        '(<show-dir>/vis_data/vis_image/)')
    parser.add_argument('--show', action='store_true', help='show results in a window')
    parser.add_argument('--wait-time', type=float, default=2, help='display time per image (s)')
    add_runner_args(
        parser,
        trust_help='allow full unpickling of the checkpoint (only for files you trust)')
    return parse_runner_args(parser, argv)


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


def main(argv=None):
    args = parse_args(argv)
    if args.out is not None:
        # checked before any work so that a long test run cannot end in a refusal
        if not args.out.endswith(('.pkl', '.pickle')):
            raise SystemExit(f'--out must be a .pkl or .pickle file, got {args.out}')
        if osp.exists(args.out):
            raise SystemExit(f'--out {args.out} exists; remove it or choose another name')
    if '://' not in args.checkpoint and not osp.isfile(args.checkpoint):
        raise SystemExit(f'checkpoint not found: {args.checkpoint}')
    cfg = load_runner_config(args)
    # not cfg.load_from: mmengine would load it non-strictly and only log what is missing, so a
    # checkpoint that does not fit (e.g. the reference implementation's) would test random
    # weights; it is loaded once, strictly, below (no config here uses after_load_checkpoint
    # hooks such as EMAHook)
    cfg.load_from = None
    if args.show or args.show_dir:
        cfg = enable_visualization(cfg, args)
    runner = build_runner(cfg, 'testing')
    try:
        load_model_weights(runner.model,
                           CheckpointLoader.load_checkpoint(args.checkpoint, map_location='cpu'),
                           args.checkpoint)
    except (CheckpointMismatchError, UntrustedCheckpointError) as e:
        raise SystemExit(str(e))
    runner.logger.info(f'Load checkpoint from {args.checkpoint}')
    if args.out is not None:
        runner.test_evaluator.metrics.append(DumpMultiTaskPredictions(out_file_path=args.out))
    runner.test()
    shutdown_distributed()


if __name__ == '__main__':
    main()
