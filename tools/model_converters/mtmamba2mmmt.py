"""Convert a checkpoint of the reference MTMamba / MTMamba++ implementation to mmmt.

    python tools/model_converters/mtmamba2mmmt.py checkpoint.pth.tar mtmamba_nyud.pth
    python tools/model_converters/mtmamba2mmmt.py mtmamba_nyud.pth back.pth.tar --reverse \
        --variant mtmamba

The reference saves ``{'model': state_dict}`` from a DDP-wrapped model (every key starts with
``module.``): an mmseg Swin backbone under ``backbone.`` and the decoder's own names. The output
is an mmengine checkpoint ``{'state_dict': ..., 'meta': ...}`` with ``backbone.*`` and
``decode_head.*`` keys that loads with ``strict=True`` into the matching config:

    MTMamba   NYUD    configs/mtmamba_swin-l_nyud.py
    MTMamba   PASCAL  configs/mtmamba_swin-l_pascal.py
    MTMamba++ NYUD    configs/mtmamba_plus/mtmamba-plus_swin-l_nyud.py
    MTMamba++ PASCAL  configs/mtmamba_plus/mtmamba-plus_swin-l_pascal.py

Then e.g. ``tools/test.py CONFIG mtmamba_nyud.pth``. The name mapping lives in
``mmmt/models/utils/reference_keys.py``. The source is loaded with
``torch.load(weights_only=True)``; ``--trust-checkpoint`` allows full unpickling (only for
files you trust). The output is written atomically and never over an existing file unless
``--force``.
"""
import argparse
import os.path as osp

from mmmt.utils.converters import (check_destination, extract_state_dict, load_source, save_atomic,
                                   source_layout_errors)
from mmmt.utils.errors import run_main


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert a reference MTMamba/MTMamba++ checkpoint to mmmt (or back)')
    parser.add_argument('src', help='source checkpoint')
    parser.add_argument('dst', help='output file')
    parser.add_argument('--variant', choices=['auto', 'mtmamba', 'mtmamba_plus'],
                        default='auto', help="decoder layout; 'auto' detects it from the "
                        'key names (with --reverse: from the meta, else required)')
    parser.add_argument('--reverse', action='store_true',
                        help='mmmt checkpoint -> reference layout ({"model": ...}, module.*)')
    parser.add_argument('--config', help='also build this mmmt config and check that the '
                        'mmmt weights (the converted ones; with --reverse, the source) load '
                        'into it with strict=True')
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='allow full unpickling of SRC (runs code stored in the file: only '
                        'for files you trust)')
    parser.add_argument('--force', action='store_true', help='overwrite DST')
    return parser.parse_args(argv)


def convert(ckpt: dict, variant: str = 'auto', src_name: str = '') -> dict:
    """Reference checkpoint dict -> mmengine checkpoint dict."""
    from mmmt.models.utils import reference_to_mmmt_state_dict
    from mmmt.version import __version__
    state_dict, variant = reference_to_mmmt_state_dict(extract_state_dict(ckpt, ('model', )),
                                                       variant)
    meta = dict(
        converted_from=src_name, source_layout=f'reference {variant}', variant=variant,
        mmmt_version=__version__)
    return dict(state_dict=state_dict, meta=meta)


def convert_back(ckpt: dict, variant: str = 'auto') -> dict:
    """mmengine checkpoint dict -> reference checkpoint dict ``{'model': ...}``."""
    from mmmt.models.utils import mmmt_to_reference_state_dict
    if variant == 'auto':
        variant = (ckpt.get('meta') or {}).get('variant')
        if variant is None:
            raise SystemExit('--reverse needs --variant mtmamba|mtmamba_plus (the checkpoint '
                             'meta does not say)')
    return dict(model=mmmt_to_reference_state_dict(extract_state_dict(ckpt, ('state_dict', )),
                                                   variant))


def check_loads(config: str, state_dict: dict) -> None:
    """Build ``config`` (no pretrained download) and load ``state_dict`` strictly."""
    from mmmt.utils import CHECKPOINT_ERRORS, load_model_weights
    from mmmt.utils.analysis import build_model
    model = build_model(config)  # the config's own tasks registered, no Pretrained
    try:
        load_model_weights(model, dict(state_dict=state_dict), 'the converted checkpoint')
    except CHECKPOINT_ERRORS as e:  # names what does not fit, in one message
        raise SystemExit(f'--config {config}: {e}')
    print(f'loads strictly into {config}')


def main(argv=None) -> None:
    args = parse_args(argv)
    check_destination(args.dst, args.force)
    ckpt = load_source(args.src, trust=args.trust_checkpoint)
    if args.config and args.reverse:
        # the mmmt side of a reverse conversion is the source: check it before exporting
        # instead of dropping the option (the user would take the export as checked)
        check_loads(args.config, extract_state_dict(ckpt, ('state_dict', )))
    with source_layout_errors(args.src):
        if args.reverse:
            out = convert_back(ckpt, args.variant)
            n = len(out['model'])
        else:
            out = convert(ckpt, args.variant, osp.basename(args.src))
            n = len(out['state_dict'])
    if args.config and not args.reverse:
        check_loads(args.config, out['state_dict'])
    save_atomic(out, args.dst, force=args.force)
    what = ('reference layout' if args.reverse
            else f"mmmt layout ({out['meta']['variant']})")
    print(f'wrote {n} tensors in the {what} to {args.dst}')


if __name__ == '__main__':
    run_main(main)
