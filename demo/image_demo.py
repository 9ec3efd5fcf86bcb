"""Predict every task of an mmmt model for images of any size and format.

Examples:
    python demo/image_demo.py photo.jpg configs/mtmamba_swin-l_nyud.py mtmamba_nyud.pth \\
        --out-dir outputs
    python demo/image_demo.py photos/ CONFIG CKPT --out-dir outputs --device cpu

For each image NAME, writes OUT_DIR/vis/NAME.png (the image and its predictions side by side,
a preview of at most 800 pixels a side per panel) and, with --save-pred, the full-resolution
predictions OUT_DIR/pred/NAME_<task>.png (class maps, 0-based class indices) or .npy (depth in
metres, unit normals, boundary and saliency probabilities, float32). OUT_DIR defaults to
work_dirs/image_demo.
"""
import argparse
import os
import os.path as osp
import time

# only the standard library until the arguments are parsed and the inputs checked: --help
# answers at once and OpenMP's thread settings are made before torch starts (see
# mmmt/utils/threads.py)
from mmmt.utils.cli import check_config_file, config_from_file, missing_checkpoint_message
from mmmt.utils.errors import InputFileNotFoundError, RunStopped, UserInputError, run_main
from mmmt.utils.threads import configure_cpu_threads


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Multi-task predictions for images')
    parser.add_argument('input', nargs='+',
                        help='image file(s) or folder(s) (hidden files in a folder are skipped)')
    parser.add_argument('config', help='model config file')
    parser.add_argument('checkpoint', help='checkpoint file (local path or URL)')
    parser.add_argument('--out-dir', default=osp.join('work_dirs', 'image_demo'),
                        help='where pictures and predictions go (default: %(default)s)')
    parser.add_argument('--device', default=None, help="e.g. 'cpu', 'cuda:0' (default: auto)")
    parser.add_argument('--batch-size', type=int, default=1, help='images per forward pass')
    parser.add_argument(
        '--max-size', default='auto',
        help="largest HxW fed to the model; larger images are shrunk (keeping their aspect "
        "ratio) to fit and the predictions resized back to the image: 'auto' (the config's "
        "test frame, what the model was trained at; fast), 'none' (full resolution: sharper "
        "on large photos, slower) or e.g. 448x576")
    parser.add_argument('--save-pred', action='store_true',
                        help='also write the full-resolution predictions to OUT_DIR/pred/ '
                        '(arrays as large as the image: 240 MB for a 4000x3000 photo)')
    parser.add_argument('--force', action='store_true',
                        help='replace outputs of the same names in --out-dir (by default the '
                        'run stops before building the model and names them)')
    parser.add_argument('--show', action='store_true', help='display each picture')
    parser.add_argument('--wait-time', type=float, default=0, help='display time (s)')
    parser.add_argument(
        '--trust-checkpoint', action='store_true',
        help='allow full unpickling of the checkpoint (only for files you trust)')
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error('--batch-size must be >= 1')
    return args


def parse_max_size(text):
    if text.lower() == 'auto':
        return 'auto'
    if text.lower() == 'none':
        return None
    try:
        h, w = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise SystemExit(f"--max-size must be 'auto', 'none' or HxW, got {text!r}")
    if min(h, w) < 1:
        raise SystemExit(f'--max-size must be positive, got {text!r}')
    return (h, w)


def check_run(args):
    """Every check that needs no model: inputs, files, outputs that would be replaced.

    Returns:
        list: The (name, path) pairs of the inputs.
    """
    from mmmt.apis.image_io import image_file_problem
    from mmmt.apis.multitask_inferencer import (MultiTaskInferencer, config_tasks, existing_outputs,
                                                output_dir_problem)
    if not args.out_dir:
        raise UserInputError("--out-dir: expected a folder, got ''; '.' for the current one")
    check_device(args.device)
    check_config_file(args.config)
    cfg = config_from_file(args.config)  # a syntax error: one line, naming the file
    if '://' not in args.checkpoint and not osp.isfile(args.checkpoint):
        raise InputFileNotFoundError(missing_checkpoint_message(args.checkpoint))
    items = MultiTaskInferencer._inputs_to_list(args.input)  # expands folders, checks paths
    # a file that is no image would otherwise stop the run halfway, after the first outputs
    bad = [(source, why) for _, source in items if isinstance(source, str)
           for why in [image_file_problem(source)] if why]
    if bad:
        more = f' and {len(bad) - 5} more' if len(bad) > 5 else ''
        raise UserInputError(f'{len(bad)} of {len(items)} input(s) are not readable images: '
                             + '; '.join(f'{p} ({why})' for p, why in bad[:5]) + more
                             + '. Remove them or give the other files')
    # before the model is built (else a traceback at the first output)
    names, tasks = [name for name, _ in items], config_tasks(cfg)
    problem = output_dir_problem(args.out_dir, names, tasks, save_pred=args.save_pred)
    if problem:
        raise UserInputError(f'--out-dir: {problem}')
    if not args.force:
        taken = existing_outputs(names, args.out_dir, tasks, save_pred=args.save_pred)
        if taken:
            more = f' and {len(taken) - 5} more' if len(taken) > 5 else ''
            raise UserInputError(f'{len(taken)} output file(s) exist: {", ".join(taken[:5])}'
                                 f'{more}; choose another --out-dir or pass --force')
    return items


def check_device(device):
    """``--device`` names a device torch knows and this machine has."""
    if device is None:
        return
    import torch
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        raise UserInputError(f"--device: {device!r} is not a device; e.g. 'cpu', 'cuda', "
                             "'cuda:1'") from None
    if parsed.type == 'cuda':
        if not torch.cuda.is_available():
            raise UserInputError(f'--device {device}: this machine has no CUDA device '
                                 '(torch.cuda.is_available() is False); use --device cpu')
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise UserInputError(f'--device {device}: this machine has '
                                 f'{torch.cuda.device_count()} CUDA device(s)')


def describe_max_size(max_size, requested: str) -> str:
    if max_size is None:
        if requested.lower() == 'auto':  # the config's test pipeline has no CenterPad frame
            return ("images are fed at full resolution (--max-size auto: the config's test "
                    'pipeline pads to no frame; --max-size HxW to shrink large ones)')
        return 'images are fed at full resolution (--max-size none)'
    how = "the config's test frame" if requested.lower() == 'auto' else '--max-size'
    return (f'images larger than {max_size[0]}x{max_size[1]} (HxW, {how}) are shrunk to fit, '
            'predictions resized back; --max-size none for full resolution')


def main(argv=None):
    args = parse_args(argv)
    max_size = parse_max_size(args.max_size)
    configure_cpu_threads()
    items = check_run(args)

    from mmmt.apis import MultiTaskInferencer
    from mmmt.apis.multitask_inferencer import fitted_size
    from mmmt.utils import CHECKPOINT_ERRORS, TRUST_ENV
    from mmmt.utils.fileio import KeptFileError, kept_file_message
    if args.trust_checkpoint:
        os.environ[TRUST_ENV] = '1'
    try:
        inferencer = MultiTaskInferencer(
            args.config, args.checkpoint, device=args.device, max_size=max_size,
            show_progress=False)
    except CHECKPOINT_ERRORS as e:  # the message names the file and what to do
        raise SystemExit(f'{type(e).__name__}: {e}') from None
    fed = inferencer.pipeline.max_size
    print(f'{len(items)} image(s); tasks: {", ".join(inferencer.tasks)}; device: '
          f'{next(inferencer.model.parameters()).device}; {describe_max_size(fed, args.max_size)}',
          flush=True)
    start = tic = time.time()
    results = inferencer.iter_predict(
        args.input, batch_size=args.batch_size, out_dir=args.out_dir, show=args.show,
        wait_time=args.wait_time, save_pred=args.save_pred, overwrite=args.force)
    done = 0
    try:
        for done, (path, pred, _) in enumerate(results, 1):
            height, width = next(iter(pred.values())).shape[:2]
            fh, fw = fitted_size(height, width, fed)
            size = f'{height}x{width}' + (f', fed at {fh}x{fw}' if (fh, fw) != (height, width)
                                          else '')  # HxW, as --max-size
            print(f'[{done}/{len(items)}] {path or items[done - 1][0]} ({size}) '
                  f'{time.time() - tic:.2f}s', flush=True)
            tic = time.time()
    except KeptFileError as e:  # an output appeared during the run: kept, and named
        raise UserInputError(kept_file_message(e, 'Choose another --out-dir or pass --force')) \
            from None
    except FileExistsError as e:
        raise UserInputError(str(e)) from None
    except OSError as e:  # an unreadable image (damaged in its pixel data), a full disk
        raise RunStopped(f'{e}; stopped after {done} of {len(items)} image(s), '
                         'whose outputs are complete') from None
    print(f'Done in {time.time() - start:.1f}s. Pictures: {osp.join(args.out_dir, "vis")}'
          + ('' if not args.save_pred else f'; predictions: {osp.join(args.out_dir, "pred")} '
             '(class maps: PNG, 0-based class indices; other tasks: float32 .npy)'),
          flush=True)


if __name__ == '__main__':
    run_main(main)
