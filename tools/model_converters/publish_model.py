"""Turn a training checkpoint into a release file: weights and metadata only, hash in the name.

    python tools/model_converters/publish_model.py work_dirs/mtmamba_swin-l_nyud/iter_50000.pth \
        mtmamba_swin-l_nyud.pth
    # -> mtmamba_swin-l_nyud-1a2b3c4d.pth (the first 8 hex digits of its SHA-256)

The OpenMMLab convention for model zoos: the optimizer state, the message hub (loss history)
and the schedulers' state are dropped (about two thirds of a Swin-L checkpoint trained with
AdamW), ``meta`` is kept (mmengine version, dataset metadata, iteration), and the file name
carries the hash that ``metafile.yml`` and users check downloads against. The source is loaded
with ``torch.load(weights_only=True)`` plus mmengine's known types unless
``--trust-checkpoint``; the output is written atomically and never over an existing file
unless ``--force``.
"""
import argparse
import hashlib
import os
import os.path as osp

from mmmt.utils.converters import check_destination, load_source
from mmmt.utils.errors import run_main

#: Entries of an mmengine checkpoint that a release keeps; everything else is training state.
KEPT = ('state_dict', 'meta')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Strip a training checkpoint to weights + meta and add its hash to the name')
    parser.add_argument('src', help='checkpoint written by training (iter_N.pth)')
    parser.add_argument('dst', help='output name; "-<sha256[:8]>" is inserted before .pth')
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='allow full unpickling of SRC (only for files you trust)')
    parser.add_argument('--force', action='store_true', help='overwrite the output')
    args = parser.parse_args(argv)
    if not args.dst.endswith('.pth'):
        parser.error(f'DST must end with .pth, got {args.dst}')
    return args


def sha256_of(path: str, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            digest.update(block)
    return digest.hexdigest()


def main(argv=None) -> str:
    args = parse_args(argv)
    import torch  # after parsing: --help answers at once

    from mmmt.utils.fileio import (fsync_directory, locked_temporary, move_exclusive,
                                   output_path_problem, removed_leftovers_note)
    problem = output_path_problem(args.dst)  # before reading a 1.2 GB checkpoint
    if problem:
        raise SystemExit(problem)
    ckpt = load_source(args.src, trust=args.trust_checkpoint)
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get('state_dict'), dict):
        raise SystemExit(f'{args.src}: expected an mmengine checkpoint with a state_dict')
    dropped = sorted(k for k in ckpt if k not in KEPT)
    release = {k: ckpt[k] for k in KEPT if k in ckpt}
    # written under a hidden temporary name first (the hash is only known once the file
    # exists), unique so that no file of the user's is ever replaced or removed
    stem = args.dst[:-len('.pth')]
    folder = osp.dirname(osp.abspath(args.dst))
    note = removed_leftovers_note(folder)  # e.g. of a publish_model.py killed while writing
    if note:
        print(note)
    with locked_temporary(f'{stem}.unhashed.pth') as (tmp, f):
        torch.save(release, f)
        f.flush()
        os.fsync(f.fileno())
        final = f'{stem}-{sha256_of(tmp)[:8]}.pth'
        check_destination(final, args.force)
        if args.force:
            os.replace(tmp, final)
            fsync_directory(folder)  # the rename survives a power loss (as move_exclusive's)
        else:
            try:
                move_exclusive(tmp, final)
            except FileExistsError:  # appeared meanwhile
                check_destination(final, False)
    # floating-point tensors only: integer buffers (Swin's relative_position_index) are not
    # weights, and counting them would disagree with get_flops and the README
    num = sum(v.numel() for v in release['state_dict'].values()
              if isinstance(v, torch.Tensor) and v.is_floating_point())
    print(f'{final}: {num:,} weights, {osp.getsize(final) / 2**20:.1f} MiB '
          f'(dropped: {", ".join(dropped) or "nothing"})')
    return final


if __name__ == '__main__':
    run_main(main)
