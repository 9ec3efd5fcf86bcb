"""Train a multi-task model with mmengine's Runner.

Examples:
    python tools/train.py configs/mtmamba_swin-l_nyud.py
    tools/dist_train.sh configs/mtmamba_swin-l_nyud.py 8
    python tools/train.py CONFIG --resume              # continue from the latest checkpoint
    python tools/train.py CONFIG --cfg-options train_dataloader.batch_size=8
"""
import argparse
import logging
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.logging import print_log
from mmengine.runner import Runner

import mmmt  # noqa: F401  (mmcv-lite shim, safe checkpoint loading)
from mmmt.utils import TRUST_ENV, register_all_modules, setup_cpu_distributed


def parse_args():
    parser = argparse.ArgumentParser(description='Train a multi-task dense prediction model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='where logs and checkpoints are written')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from CHECKPOINT, or without a value from the latest checkpoint in the '
        'work dir')
    parser.add_argument(
        '--amp',
        nargs='?',
        const='fp16',
        choices=['fp16', 'bf16'],
        help='mixed precision on the GPU (fp16 by default; the selective scan stays in fp32)')
    parser.add_argument(
        '--with-cp', action='store_true',
        help='activation checkpointing in the backbone and the decoder blocks (saves memory)')
    parser.add_argument('--clip-grad', type=float, help='clip gradients to this max L2 norm')
    parser.add_argument('--seed', type=int, help='random seed')
    parser.add_argument('--deterministic', action='store_true',
                        help='deterministic algorithms (slower)')
    parser.add_argument(
        '--trust-checkpoint', action='store_true',
        help='allow full unpickling of load_from/resume/pretrained files (only for files you '
        'trust; by default only tensors and known mmengine/numpy types are loaded)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings in the config, e.g. model.decode_head.with_cp=True')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
        help='job launcher')
    # torch.distributed.launch passes --local-rank; torchrun sets LOCAL_RANK instead
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def apply_options(cfg: Config, args) -> Config:
    """Fold the command-line options into the config."""
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        import torch
        if not torch.cuda.is_available():
            raise SystemExit('--amp needs a CUDA device (mmengine\'s AmpOptimWrapper); run '
                             'without it on the CPU')
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.dtype = 'bfloat16' if args.amp == 'bf16' else 'float16'
        if args.amp == 'fp16':
            cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.with_cp:
        cfg.model.backbone.with_cp = True
        cfg.model.decode_head.with_cp = True
    if args.clip_grad is not None:
        cfg.optim_wrapper.clip_grad = dict(max_norm=args.clip_grad, norm_type=2)
    if args.seed is not None:
        cfg.setdefault('randomness', {})['seed'] = args.seed
    if args.deterministic:
        cfg.setdefault('randomness', {})['deterministic'] = True
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    return cfg


def main():
    args = parse_args()
    if args.trust_checkpoint:
        os.environ[TRUST_ENV] = '1'
    register_all_modules(init_default_scope=False)
    cfg = apply_options(Config.fromfile(args.config), args)
    if setup_cpu_distributed(cfg, args.launcher):
        print_log('No CUDA device: distributed training on the CPU with the gloo backend.',
                  logger='current', level=logging.INFO)
    runner = Runner.from_cfg(cfg)
    runner.train()


if __name__ == '__main__':
    main()
