"""Train a multi-task model with mmengine's Runner.

Examples:
    python tools/train.py configs/mtmamba_swin-l_nyud.py
    tools/dist_train.sh configs/mtmamba_swin-l_nyud.py 8
    python tools/train.py CONFIG --resume              # continue from the latest checkpoint
    python tools/train.py CONFIG --cfg-options train_dataloader.batch_size=8
"""
import argparse
import logging
import math
import os
from typing import Optional
from urllib.error import URLError

# only the standard library until the arguments are parsed (fast --help; thread settings
# before torch starts OpenMP): see mmmt/utils/cli.py
from mmmt.utils.cli import add_runner_args, parse_runner_args
from mmmt.utils.errors import RunStopped, run_main


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
    parser.add_argument(
        '--force', action='store_true',
        help='train into a work dir that already holds checkpoints, or --resume an earlier '
        'checkpoint than its latest (files of the same names are replaced); by default such '
        'a run stops before training and names them')
    parser.add_argument(
        '--partial-load', action='store_true',
        help='load the parts of load_from/--resume/Pretrained checkpoints that fit the model '
        '(with a warning) instead of refusing checkpoints that do not fit')
    parser.add_argument('--seed', type=int, help='random seed')
    parser.add_argument('--deterministic', action='store_true',
                        help='deterministic algorithms (slower)')
    add_runner_args(
        parser,
        trust_help='allow full unpickling of load_from/resume/pretrained files (only for files '
        'you trust; by default only tensors and known mmengine/numpy types are loaded)')
    return parse_runner_args(parser, argv)


def apply_options(cfg, args):
    """Fold the training options into the config."""
    if args.amp:
        wrapper = str(cfg.optim_wrapper.get('type', 'OptimWrapper')).split('.')[-1]
        if wrapper not in ('OptimWrapper', 'AmpOptimWrapper'):
            # AmpOptimWrapper would replace it, and mmengine's constructor would then stop at
            # its options (balancer=...) with a bare TypeError
            raise SystemExit(f'--amp replaces optim_wrapper.type with AmpOptimWrapper, and this '
                             f'config trains with {wrapper} (e.g. a gradient balancer), which '
                             'has no mixed-precision variant; train it without --amp')
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
    if args.partial_load and cfg.get('default_hooks', {}).get('checkpoint_fit'):
        cfg.default_hooks.checkpoint_fit['allow_partial'] = True
    # runs shorter than the logging interval would print no progress at all
    logger = cfg.get('default_hooks', {}).get('logger')
    max_iters = cfg.get('train_cfg', {}).get('max_iters')
    if logger is not None and max_iters and logger.get('interval', 50) > max_iters // 2:
        logger['interval'] = max(1, max_iters // 4)
    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader')
        # e.g. --cfg-options train_dataloader.num_workers=0 on a config with persistent workers:
        # torch refuses that pair, and without workers there is nothing to keep alive
        if loader and loader.get('num_workers', 1) == 0 and loader.get('persistent_workers'):
            loader['persistent_workers'] = False
    if args.resume == 'auto':
        from mmengine.logging import print_log

        from mmmt.utils import find_resume_checkpoint
        latest, note = find_resume_checkpoint(cfg.work_dir, checkpoint_out_dir(cfg))
        if latest is None and cfg.get('load_from'):
            # nothing to resume yet (a re-queueable job's first start): the config's load_from
            # still gives the starting weights, as without --resume
            note = (f'--resume: no checkpoint in {cfg.work_dir}; training starts from the '
                    f'weights of load_from={cfg.load_from}')
        if note:
            print_log(note, logger='current', level=logging.WARNING)
        # resume=True without a file would make mmengine read last_checkpoint again
        cfg.resume = latest is not None
        if latest is not None:
            cfg.load_from = latest
    elif args.resume is not None:
        check_resume_file(args.resume)
        cfg.resume = True
        cfg.load_from = args.resume
    return cfg


def check_schedule(cfg) -> Optional[str]:
    """A warning when the iteration-based lr schedule ends before training does (for
    example after ``--cfg-options train_cfg.max_iters=...`` alone), else None.

    mmengine then keeps the schedule's last learning rate, which for the shipped PolyLR
    (``eta_min=0``) is 0: the iterations past its end would change nothing.
    """
    from mmmt.engine.hooks.checkpoint_fit_hook import latest_iteration_scheduler
    max_iters = (cfg.get('train_cfg') or {}).get('max_iters')
    latest = latest_iteration_scheduler(cfg.get('param_scheduler'))
    if not max_iters or latest is None:
        return None
    index, last = latest
    end = last.get('end', math.inf)
    if end >= max_iters:
        return None
    final = (' (0 for this PolyLR: those iterations change nothing)'
             if last.get('type') == 'PolyLR' and last.get('eta_min', 0) == 0 else '')
    return (f'param_scheduler[{index}] ({last.get("type")}) ends at iteration {end} but '
            f'train_cfg.max_iters is {max_iters}: the last {max_iters - end} iterations train '
            f'at its final learning rate{final}. To stretch the schedule, add '
            f'--cfg-options param_scheduler.{index}.end={max_iters + 1}')


def check_resume_target(cfg) -> Optional[str]:
    """Stop a resume whose checkpoint (by its ``iter_N``/``epoch_N`` name) is already at or
    past the end of training, before anything is built; mmengine would load it, run nothing
    and exit as if it had trained (pruning old checkpoints on the way).

    Returns:
        str or None: A note when the checkpoint is exactly at the end (nothing left to do;
        the caller exits 0, so a re-queued finished job succeeds), else None. A local one
        at the end that is empty or truncated stops the run instead: it is the training's
        result, and a note would report a damaged one as finished.
    """
    if not cfg.get('resume') or not cfg.get('load_from'):
        return None
    from mmmt.utils import checkpoint_step, is_complete_checkpoint
    step = checkpoint_step(cfg.load_from)
    limit_key = {'iter': 'max_iters', 'epoch': 'max_epochs'}.get(step[0]) if step else None
    limit = (cfg.get('train_cfg') or {}).get(limit_key) if limit_key else None
    if not limit or step[1] < limit:
        return None
    if step[1] > limit:
        raise SystemExit(
            f'--resume: {cfg.load_from} is at {step[0]} {step[1]}, past '
            f'train_cfg.{limit_key}={limit}: nothing would be trained. Raise '
            f'train_cfg.{limit_key} above {step[1]} to train further')
    if '://' not in str(cfg.load_from) and not is_complete_checkpoint(cfg.load_from):
        raise SystemExit(
            f'--resume: {cfg.load_from} is at {step[0]} {step[1]} = train_cfg.{limit_key}, but '
            'it is not a complete checkpoint (empty, truncated or damaged: an interrupted '
            'copy?), so this training has no usable final checkpoint. Copy it again, or --resume '
            f'an earlier checkpoint (with --force) to train the last {step[0]}s again')
    # Not "raise max_iters": mmengine restores the lr schedule saved in the checkpoint, which
    # for a finished run ends here, and CheckpointFitHook then refuses that resume.
    return (f'--resume: {cfg.load_from} is at {step[0]} {step[1]} = train_cfg.{limit_key}: '
            'this training has finished, nothing to do. To train it further, start from its '
            f'weights: --cfg-options load_from={cfg.load_from} without --resume, in a new '
            '--work-dir')


def check_accumulation(cfg) -> Optional[str]:
    """A warning when iteration checkpoints fall inside gradient-accumulation windows.

    Checkpoints hold no gradients: a ``--resume`` from one saved after j of the window's
    ``accumulative_counts`` micro-batches loses their gradients, and the optimizer's next
    step averages fewer of them (the resumed run then differs from the uninterrupted one).
    """
    wrapper = cfg.get('optim_wrapper') or {}
    counts = wrapper.get('accumulative_counts', 1) if isinstance(wrapper, dict) else 1
    hook = (cfg.get('default_hooks') or {}).get('checkpoint') or {}
    interval = hook.get('interval', -1)
    if not isinstance(counts, int) or counts <= 1 or hook.get('by_epoch', True) is not False \
            or not isinstance(interval, int) or interval <= 0 or interval % counts == 0:
        return None
    return (f'default_hooks.checkpoint.interval={interval} is not a multiple of '
            f'optim_wrapper.accumulative_counts={counts}: checkpoints are saved inside '
            'accumulation windows, whose gradients they do not hold, so a --resume from one '
            'trains on differently from the uninterrupted run. Set the interval to a multiple '
            f'of {counts}')


def adopt_resumed_seed(cfg) -> Optional[str]:
    """On ``--resume``, put the checkpoint's seed (``meta.seed``) into ``cfg.randomness``
    before anything is built.

    mmengine restores that seed too, but only inside ``Runner.resume``, after the training
    dataloader exists: its sampler's shuffling seed and the workers' seeds came from the
    config's seed, so a run resumed without the original ``--seed`` (or with
    ``randomness.seed=None``) trained on another data order than the uninterrupted run.
    Only its meta is read for it: the weights are mapped, not loaded (mmengine loads them).

    Returns:
        str or None: A warning when the config's seed differs from the checkpoint's.
    """
    if not cfg.get('resume') or not cfg.get('load_from') or '://' in str(cfg.load_from):
        return None
    from mmmt.utils import load_checkpoint_file
    checkpoint = load_checkpoint_file(cfg.load_from, map_location='cpu', mmap=True)
    seed = (checkpoint.get('meta') or {}).get('seed') if isinstance(checkpoint, dict) else None
    del checkpoint
    randomness = cfg.setdefault('randomness', {})
    current = randomness.get('seed')
    if seed is None or seed == current:
        return None
    randomness['seed'] = seed
    return (f'--resume: training on with the seed of {cfg.load_from} ({seed}) instead of '
            f'randomness.seed={current}, so that the data order and the random draws continue '
            'those of the interrupted run')


def describe_download_failure(cfg, error) -> str:
    """One line for a checkpoint download that failed: the URLs the config names (load_from,
    every ``init_cfg`` checkpoint) and what to pass instead on a machine without network."""
    urls = []

    def collect(node, path):
        if isinstance(node, dict):
            for key, value in node.items():
                collect(value, f'{path}.{key}' if path else key)
        elif isinstance(node, (list, tuple)):
            for i, value in enumerate(node):
                collect(value, f'{path}.{i}')
        elif isinstance(node, str) and '://' in node and (
                path == 'load_from' or path.endswith('init_cfg.checkpoint')):
            urls.append(f'{path}={node}')

    collect(dict(model=cfg.get('model'), load_from=cfg.get('load_from')), '')
    named = '; '.join(urls) or 'a checkpoint URL'
    return (f'could not download {named} ({getattr(error, "reason", error)}). Without network, '
            'fetch the file on another machine (or convert it, README.md "Published '
            'checkpoints and Swin weights") and pass its path instead, e.g. --cfg-options '
            'model.backbone.init_cfg.checkpoint=FILE')


def checkpoint_out_dir(cfg) -> Optional[str]:
    """The local folder of the checkpoints when ``default_hooks.checkpoint.out_dir`` is set
    (mmengine's layout: ``<out_dir>/<name of the work dir>``), else None (the work dir)."""
    hook = (cfg.get('default_hooks') or {}).get('checkpoint') or {}
    out_dir = hook.get('out_dir')
    if not out_dir or '://' in str(out_dir):
        return None
    return os.path.join(str(out_dir), os.path.basename(os.path.abspath(cfg.work_dir)))


def check_work_dir(cfg, args) -> None:
    """Stop a new training that would replace the checkpoints of an earlier one (in the work
    dir, or in the checkpoint hook's ``out_dir``, which another work dir of the same name
    shares), and any training while another runs there (on every rank, before a --resume
    checkpoint is chosen)."""
    from mmmt.engine.hooks.safe_checkpoint_hook import check_work_dir_unlocked
    out_dir = checkpoint_out_dir(cfg)
    check_work_dir_unlocked(cfg.work_dir)
    if out_dir:
        check_work_dir_unlocked(out_dir,
                                'the checkpoint folder (default_hooks.checkpoint.out_dir)')
    if args.force:
        return
    from mmmt.utils import existing_training_outputs
    if args.resume is not None:
        check_resume_branch(cfg, args.resume, out_dir or cfg.work_dir)
        return
    # --resume reads the work dir's last_checkpoint: it is the way on only for the work dir
    for what, folder, remedy in (
            ('work dir', cfg.work_dir, 'Pass --resume to continue it, --force to train into it '
             'anyway, or choose another --work-dir'),
            ('checkpoint folder (default_hooks.checkpoint.out_dir)', out_dir, 'Pass --force to '
             'train into it anyway, or choose a --work-dir of another name')):
        found = existing_training_outputs(folder) if folder else []
        if found:
            more = f' and {len(found) - 5} more' if len(found) > 5 else ''
            raise SystemExit(
                f'{what} {folder} already holds {", ".join(found[:5])}{more} from an earlier '
                f'run; a new training would replace them. {remedy}')


def check_resume_file(resume: str) -> None:
    """Stop when the checkpoint ``--resume FILE`` names does not exist (a URL is not checked)."""
    if '://' not in resume and not os.path.isfile(resume):
        raise SystemExit(f'--resume: checkpoint not found: {resume} (without a value, '
                         '--resume continues from the latest checkpoint of the work dir)')


def check_resume_branch(cfg, resume: str, folder: str) -> None:
    """Stop a ``--resume`` of a named checkpoint when the checkpoint folder holds later ones of
    the same kind: training on from the earlier one saves under their names (``iter_N.pth``),
    replacing them, and ``--resume`` without a file would later take them for this run's.
    Without a file (``auto``) ``--resume`` takes the latest, so nothing is checked then."""
    from mmmt.utils import checkpoint_step, later_checkpoints
    from mmmt.utils.errors import name_some
    step = checkpoint_step(resume) if resume != 'auto' and '://' not in resume else None
    if step is None:
        return
    check_resume_file(resume)  # said first: a pruned file is no branch (max_keep_ckpts)
    names = later_checkpoints(folder, *step)
    if names:
        raise SystemExit(
            f'--resume {resume} is at {step[0]} {step[1]}, but {folder} holds later '
            f'checkpoints ({name_some(names, 5)}) that '
            'training on from it would replace. Pass --resume without a file to continue '
            'from the latest, resume it in another --work-dir, or pass --force to replace them')


def check_head_matches_dataset(runner) -> None:
    """Stop when the head does not fit the training set: a head task the set does not load, or
    a class task's head with another class count than the set's classes (otherwise the loss
    fails with 'IndexError: Target 12 is out of bounds'). The evaluator's side is
    :func:`mmmt.utils.cli.check_evaluator_matches_head`."""
    from mmengine.model import is_model_wrapper

    from mmmt.structures import get_task, meta_for_task
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    channels = getattr(getattr(model, 'decode_head', None), 'task_channels', {}) or {}
    dataset = runner.train_loop.dataloader.dataset
    while hasattr(dataset, 'dataset'):  # dataset wrappers
        dataset = dataset.dataset
    meta = getattr(dataset, 'metainfo', None) or {}
    # a head task the training set does not load failed at the first iteration's loss (a
    # KeyError traceback); most often a child config's head tasks merged into the base's
    missing = [t for t in channels if meta.get('tasks') and t not in meta['tasks']]
    if missing:
        raise SystemExit(
            f'model.decode_head.tasks has {", ".join(missing)}, which the training set '
            f'({type(dataset).__name__}, tasks {list(meta["tasks"])}) does not load: the loss '
            'needs their ground truth. Remove them from the head (in a child config: '
            'tasks=dict(_delete_=True, ...), docs/how_to_add_a_task.md) or add them to the '
            "dataset's tasks")
    for task in meta.get('tasks') or []:
        spec = get_task(task)
        classes = meta_for_task(meta, task, 'classes') if spec is not None and spec.is_int \
            else None
        if task in channels and classes and len(classes) != channels[task]:
            raise SystemExit(
                f'model.decode_head.tasks.{task} is {channels[task]} but the training set '
                f'({type(dataset).__name__}) has {len(classes)} {task} classes; set it to '
                f'{len(classes)}')


def main(argv=None):
    args = parse_args(argv)
    from mmmt.utils.cli import build_runner, load_runner_config, shutdown_distributed
    cfg = load_runner_config(args)
    from mmmt.utils import CHECKPOINT_ERRORS  # imports torch: after the config file's check
    check_work_dir(cfg, args)
    try:
        cfg = apply_options(cfg, args)
        finished = check_resume_target(cfg)
        if finished:
            from mmengine.logging import print_log
            print_log(finished, logger='current')
            shutdown_distributed()
            return
        warnings = [w for w in (adopt_resumed_seed(cfg), check_schedule(cfg),
                                check_accumulation(cfg)) if w]
        runner = build_runner(cfg, 'training')
        for warning in warnings:
            runner.logger.warning(warning)
        check_head_matches_dataset(runner)
        runner.train()
    except CHECKPOINT_ERRORS as e:
        # the message names the file and what to do: an input error (exit status 2)
        raise SystemExit(f'{type(e).__name__}: {e}') from None
    except URLError as e:  # an init_cfg or load_from URL, unreachable (offline?)
        raise SystemExit(describe_download_failure(cfg, e)) from None
    except FloatingPointError as e:
        # the message names the iteration and the images of the batch; the inputs passed every
        # check, so exit status 1 (mmmt.utils.errors.RunStopped)
        raise RunStopped(f'{type(e).__name__}: {e}') from None
    shutdown_distributed()


if __name__ == '__main__':
    run_main(main)
