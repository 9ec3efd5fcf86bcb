"""Command-line plumbing shared by ``tools/train.py`` and ``tools/test.py``.

Both scripts take the same launcher, work-dir, config-override and checkpoint-trust options and
turn them into a config and a :class:`~mmengine.runner.Runner` the same way; keeping that in one
place means a fix (e.g. to the CPU distributed setup) reaches both.
"""
import argparse
import difflib
import logging
import os
import os.path as osp
from typing import List

import torch.distributed as dist
from mmengine.config import Config, DictAction
from mmengine.logging import print_log
from mmengine.runner import Runner

from mmmt.structures import register_tasks
from .checkpoint import TRUST_ENV
from .dist_utils import check_launcher_env, setup_cpu_distributed
from .setup_env import register_all_modules

__all__ = [
    'add_runner_args', 'CfgOptionsAction', 'warn_misspelled_keys', 'parse_runner_args',
    'load_runner_config', 'build_runner', 'shutdown_distributed'
]


class CfgOptionsAction(DictAction):
    """mmengine's ``DictAction``, with a usage error for items that are not ``KEY=VALUE``
    (``DictAction`` fails with a bare ``ValueError: not enough values to unpack``)."""

    def __call__(self, parser, namespace, values, option_string=None):
        for item in values:
            key, sep, _ = item.partition('=')
            if not sep or not key:
                parser.error(f'{option_string} expects KEY=VALUE items (e.g. '
                             f'train_dataloader.batch_size=8), got {item!r}')
        super().__call__(parser, namespace, values, option_string)


def _runner_keys() -> set:
    """The top-level config keys that mmengine's Runner (or mmmt's tools) read."""
    import inspect
    keys = set(inspect.signature(Runner.__init__).parameters) - {'self'}
    return keys | {'launcher', 'vis_backends', 'model_wrapper_cfg', 'custom_imports',
                   'gpu_ids', 'compile', 'strategy', 'cfg'}


def warn_misspelled_keys(cfg: Config) -> List[str]:
    """Warn about top-level keys that look like a misspelt Runner setting (``lod_from``).

    Configs also hold helper variables (``crop_size``, ``tasks`` ...), so only keys within a
    small edit distance of a real setting are reported.

    Returns:
        list[str]: The reported keys.
    """
    known = _runner_keys()
    reported = []
    for key in cfg.keys():
        if key in known or key.startswith('_'):
            continue
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.8)
        if close:
            reported.append(key)
            print_log(f'config key {key!r} is not read by the Runner (ignored); did you mean '
                      f'{close[0]!r}?', logger='current', level=logging.WARNING)
    return reported


def add_runner_args(parser: argparse.ArgumentParser, trust_help: str) -> None:
    """Add the options every Runner-based tool shares.

    Args:
        parser (argparse.ArgumentParser): The tool's parser.
        trust_help (str): Help text of ``--trust-checkpoint`` (what gets unpickled differs
            between training and testing).
    """
    parser.add_argument('--work-dir', help='where logs, metrics and checkpoints are written '
                        '(default: ./work_dirs/<config name>)')
    parser.add_argument('--trust-checkpoint', action='store_true', help=trust_help)
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=CfgOptionsAction,
        help='override settings in the config, e.g. model.decode_head.with_cp=True')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
        help='job launcher')
    # torch.distributed.launch passes --local-rank; torchrun sets LOCAL_RANK instead
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse_runner_args(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """Parse the arguments and export ``LOCAL_RANK`` for launchers that only pass a flag."""
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def load_runner_config(args: argparse.Namespace) -> Config:
    """Read ``args.config`` and fold in the shared options.

    Registers mmmt's modules, honours ``--trust-checkpoint`` (through the environment, so that
    every checkpoint load of the run sees it), applies ``--cfg-options`` and resolves the work
    directory the way mmseg's tools do.

    Args:
        args (argparse.Namespace): Parsed arguments with ``config`` and the options of
            :func:`add_runner_args`.

    Returns:
        Config: The config, ready for tool-specific changes.
    """
    if args.trust_checkpoint:
        os.environ[TRUST_ENV] = '1'
    register_all_modules(init_default_scope=False)
    if not osp.isfile(args.config):
        raise SystemExit(f'config file not found: {args.config}')
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    register_tasks(cfg.get('custom_tasks'))  # tasks defined in the config itself
    warn_misspelled_keys(cfg)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    return cfg


def build_runner(cfg: Config, what: str) -> Runner:
    """Build the Runner, setting up gloo first when a launcher is used without CUDA.

    Args:
        cfg (Config): The final config (``cfg.launcher`` set).
        what (str): 'training' or 'testing', for the log line.

    Returns:
        Runner: The runner built from ``cfg``.
    """
    check_launcher_env(cfg.launcher)
    if setup_cpu_distributed(cfg, cfg.launcher):
        print_log(f'No CUDA device: distributed {what} on the CPU with the gloo backend.',
                  logger='current', level=logging.INFO)
    return Runner.from_cfg(cfg)


def shutdown_distributed() -> None:
    """Wait for every rank, then destroy the process group.

    Without this a rank that finishes first exits and closes its gloo connections while
    another is still writing its last checkpoint; the slower rank then aborts at exit
    ('terminate called without an active exception') and the launcher reports a failed run
    although training completed.
    """
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
