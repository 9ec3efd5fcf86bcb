"""Convert an official Microsoft Swin Transformer (v1) checkpoint to mmpretrain's layout.

    python tools/model_converters/swin2mmpretrain.py \
        swin_large_patch4_window12_384_22kto1k.pth swin-l_mmpretrain.pth

mmpretrain ships no Swin converter in its pip package (its repository's
``tools/model_converters`` is not installed), so this is mmmt's. The output
``{'state_dict': ..., 'meta': ...}`` has ``backbone.*`` (and ``head.fc.*``) keys, the layout of
OpenMMLab's converted Swin checkpoints, usable as the backbone's
``init_cfg=dict(type='Pretrained', checkpoint=..., prefix='backbone.')``. The renaming and the
patch-merging reorder are in ``mmmt/models/utils/swin_keys.py``. The source is loaded with
``torch.load(weights_only=True)`` unless ``--trust-checkpoint``; the output is written
atomically and never over an existing file unless ``--force``.
"""
import argparse
import os.path as osp

from mmmt.utils.converters import (check_destination, extract_state_dict, load_source, save_atomic,
                                   source_layout_errors)
from mmmt.utils.errors import run_main


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert an official Swin checkpoint to the mmpretrain layout')
    parser.add_argument('src', help='Microsoft checkpoint ({"model": state_dict})')
    parser.add_argument('dst', help='output file')
    parser.add_argument('--no-head', action='store_true', help='drop the classifier')
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='allow full unpickling of SRC (only for files you trust)')
    parser.add_argument('--force', action='store_true', help='overwrite DST')
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    from mmmt.models.utils import microsoft_swin_to_mmpretrain
    check_destination(args.dst, args.force)
    ckpt = load_source(args.src, trust=args.trust_checkpoint)
    with source_layout_errors(args.src):
        state_dict = microsoft_swin_to_mmpretrain(
            extract_state_dict(ckpt, ('model', 'state_dict')), keep_head=not args.no_head)
    meta = dict(converted_from=osp.basename(args.src), source_layout='microsoft swin v1')
    save_atomic(dict(state_dict=state_dict, meta=meta), args.dst, force=args.force)
    print(f'wrote {len(state_dict)} tensors to {args.dst}')


if __name__ == '__main__':
    run_main(main)
