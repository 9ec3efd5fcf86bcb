"""Print a config as mmmt's tools read it: its ``_base_`` files merged, ``--cfg-options`` and
``--data-root`` applied.

    python tools/misc/print_config.py configs/mtmamba_swin-l_nyud.py
    python tools/misc/print_config.py my_child.py --cfg-options train_cfg.max_iters=100 \\
        --save-path work_dirs/merged.py

A child config's surprises show here before any training: a dict that mmengine merged key by
key where ``_delete_=True`` was needed (the base's other tasks still in the head), a base
variable that did not follow a child's new value (``tta_scales``, see
docs/test_time_augmentation.md). ``--save-path`` writes the merged config (``.py``, ``.json``,
``.yaml``/``.yml``) atomically, and never over an existing file unless ``--force``.
"""
import argparse
import os.path as osp

from mmmt.utils.cli import LazyDictAction  # the standard library only
from mmmt.utils.errors import UserInputError, run_main

#: Formats mmengine's ``Config.dump`` writes, by file extension.
FORMATS = ('.py', '.json', '.yaml', '.yml')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Print a config with its _base_ files merged and the options applied')
    parser.add_argument('config', help='config file')
    parser.add_argument('--cfg-options', nargs='+', action=LazyDictAction, metavar='KEY=VALUE',
                        help='override config settings, xxx=yyy format (as train.py takes them)')
    parser.add_argument('--data-root', default=None,
                        help="set every dataset's data_root (as train.py --data-root does)")
    parser.add_argument('--save-path', default=None,
                        help=f'also write the merged config here ({", ".join(FORMATS)})')
    parser.add_argument('--force', action='store_true', help='replace an existing --save-path')
    return parser.parse_args(argv)


def config_text(cfg, ext: str, pretty_text: str) -> str:
    """The config as ``Config.dump`` would write it to a file ending in ``ext``
    (``pretty_text``, already formatted, for ``.py``)."""
    if ext == '.py':
        return pretty_text
    from mmengine.fileio import dump
    return dump(cfg.to_dict(), file_format='json' if ext == '.json' else 'yaml')


def main(argv=None) -> str:
    """Print (and with ``--save-path`` write) the merged config; return its text."""
    args = parse_args(argv)
    if args.save_path is not None:
        if osp.splitext(args.save_path)[1] not in FORMATS:
            raise UserInputError(f'--save-path {args.save_path}: give a file ending in one of '
                                 f'{", ".join(FORMATS)}')
        from mmmt.utils.fileio import output_path_problem
        problem = output_path_problem(args.save_path)
        if problem:
            raise UserInputError(f'--save-path: {problem}')
        if osp.exists(args.save_path) and not args.force:
            raise UserInputError(f'--save-path {args.save_path} exists; choose another name '
                                 'or pass --force to replace it')
    from mmmt.utils.cli import merge_cfg_options, read_config
    cfg = read_config(args.config)  # a missing config: one line
    merge_cfg_options(cfg, args.cfg_options, args.data_root)
    text = cfg.pretty_text
    print(text)
    if args.save_path is not None:
        from mmmt.utils.fileio import atomic_write
        ext = osp.splitext(args.save_path)[1]
        atomic_write(config_text(cfg, ext, text), args.save_path, overwrite=args.force)
        print(f'saved to {args.save_path}')
    return text


if __name__ == '__main__':
    run_main(main)
