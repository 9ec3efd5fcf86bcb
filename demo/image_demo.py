"""Predict every task of an mmmt model for images of any size and format.

Examples:
    python demo/image_demo.py photo.jpg configs/mtmamba_swin-l_nyud.py mtmamba_nyud.pth \\
        --out-dir outputs
    python demo/image_demo.py photos/ CONFIG CKPT --out-dir outputs --device cpu

For each image NAME, writes OUT_DIR/vis/NAME.png (the image and its predictions side by side)
and OUT_DIR/pred/NAME_<task>.png (class maps) or .npy (depth in metres, unit normals, boundary
and saliency probabilities, float32).
"""
import argparse
import os
import sys
import time

from mmmt.apis import MultiTaskInferencer
from mmmt.utils import TRUST_ENV


def parse_args():
    parser = argparse.ArgumentParser(description='Multi-task predictions for images')
    parser.add_argument('input', nargs='+', help='image file(s) or folder(s)')
    parser.add_argument('config', help='model config file')
    parser.add_argument('checkpoint', help='checkpoint file (local path or URL)')
    parser.add_argument('--out-dir', required=True, help='where pictures and predictions go')
    parser.add_argument('--device', default=None, help="e.g. 'cpu', 'cuda:0' (default: auto)")
    parser.add_argument('--batch-size', type=int, default=1, help='images per forward pass')
    parser.add_argument(
        '--max-size', default='auto',
        help="largest HxW fed to the model, larger images are shrunk to fit: 'auto' (the "
        "config's test frame), 'none' (full resolution) or e.g. 448x576")
    parser.add_argument('--no-pred', action='store_true', help='only write the pictures')
    parser.add_argument('--force', action='store_true',
                        help='replace outputs of the same names in --out-dir (by default the '
                        'run stops before predicting and names them)')
    parser.add_argument('--show', action='store_true', help='display each picture')
    parser.add_argument('--wait-time', type=float, default=0, help='display time (s)')
    parser.add_argument(
        '--trust-checkpoint', action='store_true',
        help='allow full unpickling of the checkpoint (only for files you trust)')
    return parser.parse_args()


def parse_max_size(text):
    if text.lower() == 'auto':
        return 'auto'
    if text.lower() == 'none':
        return None
    try:
        h, w = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise SystemExit(f"--max-size must be 'auto', 'none' or HxW, got {text!r}")
    return (h, w)


def main():
    args = parse_args()
    if args.trust_checkpoint:
        os.environ[TRUST_ENV] = '1'
    inferencer = MultiTaskInferencer(
        args.config, args.checkpoint, device=args.device,
        max_size=parse_max_size(args.max_size), show_progress=False)
    total = len(inferencer._inputs_to_list(args.input))  # expands folders, checks paths
    print(f'{total} image(s); tasks: {", ".join(inferencer.tasks)}; device: '
          f'{next(inferencer.model.parameters()).device}', flush=True)
    start = tic = time.time()
    results = inferencer.iter_predict(
        args.input, batch_size=args.batch_size, out_dir=args.out_dir, show=args.show,
        wait_time=args.wait_time, save_pred=not args.no_pred, overwrite=args.force)
    for done, (path, pred, _) in enumerate(results, 1):
        height, width = next(iter(pred.values())).shape[:2]
        print(f'[{done}/{total}] {path} ({width}x{height}) {time.time() - tic:.2f}s',
              flush=True)
        tic = time.time()
    print(f'Done in {time.time() - start:.1f}s. Pictures: {os.path.join(args.out_dir, "vis")}'
          + ('' if args.no_pred else f'; predictions: {os.path.join(args.out_dir, "pred")}'),
          flush=True)


if __name__ == '__main__':
    try:
        main()
    except (FileNotFoundError, OSError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        sys.exit(1)
