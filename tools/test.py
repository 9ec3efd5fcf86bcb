"""Evaluate a checkpoint on the test split, optionally saving visualizations.

Examples:
    python tools/test.py configs/mtmamba_swin-l_nyud.py CKPT
    python tools/test.py CONFIG CKPT --show-dir vis     # one picture per image in vis/
    python tools/test.py CONFIG CKPT --out results.pkl  # raw predictions for offline analysis
    python tools/test.py CONFIG CKPT --tta              # flip + multi-scale test-time augmentation
    tools/dist_test.sh CONFIG CKPT 8
"""
import argparse
import glob
import os
import os.path as osp

# only the standard library until the arguments are parsed (fast --help; thread settings
# before torch starts OpenMP): see mmmt/utils/cli.py
from mmmt.utils.cli import add_runner_args, parse_runner_args
from mmmt.utils.errors import run_main


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and evaluate) a multi-task model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--out',
        help='write the predictions to this new pickle file (a relative path is under the '
        'work dir): per image a dict with img_id, img_path, ori_shape and pred (task -> numpy '
        'array at the image size; see mmmt.evaluation.DumpMultiTaskPredictions)')
    parser.add_argument(
        '--show-dir',
        help='save one visualization per image under this directory, relative to the work '
        'dir unless absolute (<show-dir>/vis_data/vis_image/test_<img_id>.png)')
    parser.add_argument('--force', action='store_true',
                        help='replace an existing --out file, and write into a --show-dir that '
                        'already holds pictures (same names are replaced); by default the run '
                        'stops before testing')
    parser.add_argument('--show', action='store_true', help='show results in a window')
    parser.add_argument('--wait-time', type=float, default=2, help='display time per image (s)')
    parser.add_argument(
        '--tta', action='store_true',
        help='test-time augmentation: the config\'s tta_pipeline (scales x flips) merged per '
        'task by its tta_model (see mmmt.utils.enable_tta)')
    add_runner_args(
        parser,
        trust_help='allow full unpickling of the checkpoint (only for files you trust)',
        work_dir_help='where the logs and metrics are written, and a relative --out or '
        '--show-dir')
    return parse_runner_args(parser, argv)


def enable_visualization(cfg, args):
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
    for backend in cfg.visualizer.get('vis_backends') or []:
        if str(backend.get('type')).split('.')[-1] == 'MultiTaskLocalVisBackend':
            # each picture is written exclusively unless --force: the check of the folder
            # below is at the start, and another run can save into it meanwhile
            backend['overwrite'] = bool(args.force)
    return cfg


def existing_pictures(folder: str) -> list:
    """Image files anywhere under ``folder`` (the visualizer writes into subfolders)."""
    return sorted(p for ext in ('png', 'jpg', 'jpeg')
                  for p in glob.glob(osp.join(glob.escape(folder), '**', f'*.{ext}'),
                                     recursive=True))


def _picture_times(folder: str) -> dict:
    """Picture -> modification time (ns) of the pictures under ``folder``."""
    return {p: os.stat(p).st_mtime_ns for p in existing_pictures(folder)}


def main(argv=None):
    args = parse_args(argv)
    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        raise SystemExit(f'--out must be a .pkl or .pickle file, got {args.out}')
    if '://' not in args.checkpoint and not osp.isfile(args.checkpoint):
        from mmmt.utils.cli import missing_checkpoint_message
        raise SystemExit(missing_checkpoint_message(args.checkpoint))
    from mmmt.utils.cli import build_runner, load_runner_config, shutdown_distributed
    cfg = load_runner_config(args)  # a missing config is named before torch is imported
    from mmengine.runner.checkpoint import CheckpointLoader

    from mmmt.evaluation import DumpMultiTaskPredictions
    from mmmt.utils import (CHECKPOINT_ERRORS, describe_non_finite, enable_tta, load_model_weights,
                            non_finite_tensors)
    from mmmt.utils.fileio import output_path_problem

    # relative outputs go under the work dir (git-ignored work_dirs/ by default), not into
    # whatever folder the command runs in
    for name in ('out', 'show_dir'):
        value = getattr(args, name)
        if value is not None and '://' not in value and not osp.isabs(value):
            setattr(args, name, osp.join(cfg.work_dir, value))
    if args.out is not None and osp.exists(args.out) and not args.force:
        # checked before any work so that a long test run cannot end in a refusal
        raise SystemExit(f'--out {args.out} exists; remove it, choose another name or pass '
                         '--force to replace it')
    # before the model is built (else a traceback at the first picture, or at the end)
    for option, path, folder in (('--out', args.out, False), ('--show-dir', args.show_dir, True)):
        problem = path and output_path_problem(path, folder=folder)
        if problem:
            raise SystemExit(f'{option}: {problem}')
    if args.show_dir and not args.force:
        pictures = existing_pictures(args.show_dir)
        if pictures:
            raise SystemExit(
                f'--show-dir {args.show_dir} already holds {len(pictures)} picture(s) (e.g. '
                f'{pictures[0]}) that this run would replace; choose another folder or pass '
                '--force')
    # not cfg.load_from: mmengine would load it non-strictly and only log what is missing, so a
    # checkpoint that does not fit (e.g. the reference implementation's) would test random
    # weights; it is loaded once, strictly, below (no config here uses after_load_checkpoint
    # hooks such as EMAHook)
    cfg.load_from = None
    if args.show or args.show_dir:
        cfg = enable_visualization(cfg, args)
    if args.tta:
        cfg = enable_tta(cfg)  # no tta_pipeline in the config: a UserInputError (one line)
    from mmmt.utils.fileio import removed_leftovers_note

    # a killed run's half-written --out (gigabytes at full test-set size) or picture
    notes = [removed_leftovers_note(cfg.work_dir,
                                    args.out and osp.dirname(osp.abspath(args.out))),
             removed_leftovers_note(args.show_dir, recursive=True)]  # <city>/<id> pictures
    for note in filter(None, notes):
        print(note)
    runner = build_runner(cfg, 'testing')
    try:
        load_model_weights(runner.model,
                           CheckpointLoader.load_checkpoint(args.checkpoint, map_location='cpu'),
                           args.checkpoint)
    except CHECKPOINT_ERRORS as e:
        raise SystemExit(str(e))
    # NaN weights give finite, plausible-looking metrics (argmax of NaN is class 0, ...)
    state = runner.model.state_dict()
    bad = non_finite_tensors(state)
    if bad:
        raise SystemExit(describe_non_finite(bad, len(state), args.checkpoint))
    runner.logger.info(f'Load checkpoint from {args.checkpoint}')
    if args.out is not None:
        runner.test_evaluator.metrics.append(DumpMultiTaskPredictions(out_file_path=args.out,
                                                                      overwrite=args.force))
    vis_image = osp.join(args.show_dir, 'vis_data', 'vis_image') if args.show_dir else None
    # with --force the folder may hold earlier pictures: only this run's are counted below
    before = _picture_times(vis_image) if vis_image else {}
    try:
        runner.test()
    # --out or a --show-dir picture appeared during the run (another run into the same place):
    # the message names it (and for --out where this run's predictions are); one line
    except FileExistsError as e:
        raise SystemExit(str(e))
    if args.show_dir:
        # the visualizer puts them two folders below --show-dir: say where, as --out does
        from mmengine.dist import is_main_process
        if is_main_process():
            written = [p for p, t in _picture_times(vis_image).items() if before.get(p) != t]
            runner.logger.info(f'{len(written)} pictures written to {vis_image}')
    shutdown_distributed()


if __name__ == '__main__':
    run_main(main)
