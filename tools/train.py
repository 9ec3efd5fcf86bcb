"""Train a multi-task model with mmengine's Runner.

Examples:
    python tools/train.py configs/mtmamba_swin-l_nyud.py
    tools/dist_train.sh configs/mtmamba_swin-l_nyud.py 8
    python tools/train.py CONFIG --resume              # continue from the latest checkpoint
    python tools/train.py CONFIG --cfg-options train_dataloader.batch_size=8
"""
import argparse
import os

from mmengine.config import Config

from mmmt.utils import (add_runner_args, build_runner, load_runner_config, parse_runner_args,
                        shutdown_distributed)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a multi-task dense prediction model')
    parser.add_argument('config', help='train config file path')
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
    parser.add_argument(
        '--auto-scale-lr', action='store_true',
        help='scale the lr linearly from the config\'s auto_scale_lr.base_batch_size to the '
        'actual global batch (GPUs x train_dataloader.batch_size)')
    parser.add_argument('--seed', type=int, help='random seed')
    parser.add_argument('--deterministic', action='store_true',
                        help='deterministic algorithms (slower)')
    add_runner_args(
        parser,
        trust_help='allow full unpickling of load_from/resume/pretrained files (only for files '
        'you trust; by default only tensors and known mmengine/numpy types are loaded)')
    return parse_runner_args(parser, argv)


def apply_options(cfg: Config, args) -> Config:
    """Fold the training options into the config."""
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
    if args.auto_scale_lr:
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            raise SystemExit('--auto-scale-lr needs auto_scale_lr = dict(base_batch_size=...) '
                             'in the config (see configs/_base_/schedules/schedule_50k.py)')
        cfg.auto_scale_lr.enable = True
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
        if '://' not in args.resume and not os.path.isfile(args.resume):
            raise SystemExit(f'--resume: checkpoint not found: {args.resume} (without a value, '
                             '--resume continues from the latest checkpoint of the work dir)')
        cfg.resume = True
        cfg.load_from = args.resume
    return cfg


def main(argv=None):
    args = parse_args(argv)
    cfg = apply_options(load_runner_config(args), args)
    runner = build_runner(cfg, 'training')
    runner.train()
    shutdown_distributed()


if __name__ == '__main__':
    main()
