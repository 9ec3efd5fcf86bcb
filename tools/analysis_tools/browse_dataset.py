"""Draw what the model is fed: samples of a config's dataset after its full pipeline.

Examples::

    python tools/analysis_tools/browse_dataset.py configs/mtmamba_swin-l_nyud.py \
        --output-dir browse/nyud_train --num 20
    python tools/analysis_tools/browse_dataset.py configs/demo/mtmamba-tiny_synthetic-nyud.py \
        --split test --output-dir browse/demo_test

Each picture shows the (augmented) image and a ground-truth panel per task, drawn by
:class:`~mmmt.visualization.MultiTaskVisualizer` after every transform of the pipeline
(random scaling, crop, flip, photometric distortion, padding, ignore regions), so wrong label
mappings, mirrored normals or misaligned crops are visible at a glance. The pipeline's
``Normalize`` step is undone for display.
"""
import argparse
import os
import os.path as osp
import sys

import numpy as np

# only the standard library and numpy until the arguments are parsed (fast --help)
from mmmt.utils.cli import LazyDictAction, check_config_file, config_from_file, merge_cfg_options
from mmmt.utils.errors import UserInputError, run_main


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Draw dataset samples after the training (or test) pipeline.')
    parser.add_argument('config', help='config file')
    parser.add_argument('--output-dir', required=True,
                        help='folder for the pictures (<img_id>.png); must be new or empty')
    parser.add_argument('--split', choices=['train', 'val', 'test'], default='train',
                        help="which dataloader's dataset and pipeline (default: train)")
    parser.add_argument('--num', type=int, default=10, help='number of samples (from the start)')
    parser.add_argument('--force', action='store_true',
                        help='write into a non-empty --output-dir (same names are replaced)')
    parser.add_argument('--data-root', metavar='DIR',
                        help="the dataset folder (the config's data_root, for every split)")
    parser.add_argument('--cfg-options', nargs='+', action=LazyDictAction, metavar='KEY=VALUE',
                        help='override settings, e.g. train_dataloader.dataset.pipeline=...')
    args = parser.parse_args(argv)
    if args.num < 1:
        parser.error('--num must be >= 1')
    return args


def find_normalization(pipeline: list):
    """mean and std of the pipeline's ``Normalize`` step (None if there is none)."""
    for step in pipeline:
        if str(step.get('type', '')).split('.')[-1] == 'Normalize':
            return np.asarray(step['mean'], np.float32), np.asarray(step['std'], np.float32)
    return None


def to_display_image(inputs, normalization) -> np.ndarray:
    """(3, H, W) float tensor of the pipeline -> (H, W, 3) RGB uint8."""
    img = inputs.numpy().transpose(1, 2, 0).astype(np.float32)
    if normalization is not None:
        mean, std = normalization
        img = img * std + mean
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def main(argv=None) -> int:
    args = parse_args(argv)
    if osp.exists(args.output_dir) and not osp.isdir(args.output_dir):
        # before the dataset is built (else a FileExistsError traceback at the first picture)
        raise UserInputError(f'--output-dir {args.output_dir} is a file; give a folder')
    if osp.isdir(args.output_dir) and os.listdir(args.output_dir) and not args.force:
        raise UserInputError(f'{args.output_dir} is not empty; choose another folder or pass '
                             '--force')
    check_config_file(args.config)  # before the slow imports below
    from mmengine.registry import init_default_scope

    from mmmt.registry import DATASETS, VISUALIZERS
    from mmmt.utils import register_all_modules
    from mmmt.utils.fileio import keep_existing_files, path_in_folder
    from mmmt.utils.progress import ProgressBar
    register_all_modules(init_default_scope=False)
    cfg = merge_cfg_options(config_from_file(args.config), args.cfg_options, args.data_root)
    from mmmt.structures import register_tasks
    register_tasks(cfg.get('custom_tasks'))  # tasks defined in the config itself
    init_default_scope(cfg.get('default_scope', 'mmmt'))
    loader_cfg = cfg.get(f'{args.split}_dataloader')
    if not loader_cfg:
        raise UserInputError(f'the config has no {args.split}_dataloader')
    dataset = DATASETS.build(loader_cfg.dataset)
    normalization = find_normalization(loader_cfg.dataset.get('pipeline', []))
    visualizer = VISUALIZERS.build(
        dict(cfg.get('visualizer', dict(type='MultiTaskVisualizer')), name='browse_dataset',
             vis_backends=None, save_dir=None))
    visualizer.dataset_meta = dataset.metainfo
    os.makedirs(args.output_dir, exist_ok=True)
    num = min(args.num, len(dataset))
    progress = ProgressBar(num, description='pictures')
    for i in range(num):
        item = dataset[i]
        sample = item['data_samples']
        name = sample.metainfo.get('img_id', f'{i:06d}')
        # a picture that appeared after the check above (another run) is kept
        with keep_existing_files('Choose another folder or pass --force',
                                 error_type=UserInputError):
            visualizer.add_datasample(
                name, to_display_image(item['inputs'], normalization), data_sample=sample,
                draw_pred=False, out_file=path_in_folder(args.output_dir, name, '.png'),
                overwrite=args.force)
        progress.update()
    progress.finish()
    print(f'{num} pictures written to {args.output_dir}')
    return 0


if __name__ == '__main__':
    sys.exit(run_main(main))
