"""Evaluate saved predictions (``tools/test.py --out``) against a config's test split.

Examples::

    python tools/test.py configs/mtmamba/mtmamba_swin-l_8xb1-50k_nyudv2-448x576.py CKPT \
        --out preds.pkl
    python tools/analysis_tools/eval_metric.py \
        configs/mtmamba/mtmamba_swin-l_8xb1-50k_nyudv2-448x576.py work_dirs/.../preds.pkl
    # the same predictions under the earlier boundary protocol, no model run
    python tools/analysis_tools/eval_metric.py CONFIG work_dirs/.../preds.pkl \
        --cfg-options test_evaluator.tasks.edge.protocol=seism-2016-01

The ground truth comes from the config's ``test_dataloader`` dataset through its test
pipeline, and the metrics from its ``test_evaluator``, exactly as ``tools/test.py`` computes
them: on the predictions of a run the numbers are the run's. Predictions are matched to the
dataset's images by ``img_id``; each image of the split needs one, and predictions of images
outside the split are refused. The file is read with
:func:`mmmt.evaluation.load_predictions`, which builds nothing but numpy arrays (a crafted
pickle is refused, not run). ``--out`` writes the metrics as one JSON line, the format of
``tools/test.py``'s metrics file, which ``compare_with_paper.py`` reads.
"""
import argparse
import json
import os.path as osp
import sys

# only the standard library until the arguments are parsed (fast --help)
from mmmt.utils.cli import LazyDictAction, check_config_file
from mmmt.utils.errors import UserInputError, run_main


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Evaluate tools/test.py --out predictions with a config's test_evaluator")
    parser.add_argument('config', help='config file (its test_dataloader and test_evaluator)')
    parser.add_argument('predictions', help='the .pkl file written by tools/test.py --out')
    parser.add_argument('--out', metavar='FILE.json',
                        help='also write the metrics to this new JSON file')
    parser.add_argument('--force', action='store_true', help='replace an existing --out file')
    parser.add_argument('--data-root', metavar='DIR',
                        help="the dataset folder (the config's data_root)")
    parser.add_argument('--cfg-options', nargs='+', action=LazyDictAction, metavar='KEY=VALUE',
                        help='override settings, e.g. '
                        'test_evaluator.tasks.edge.protocol=seism-2016-01')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.out is not None and osp.exists(args.out) and not args.force:
        raise UserInputError(f'--out {args.out} exists; choose another name or pass --force')
    check_config_file(args.config)  # before the slow imports below
    from mmengine.evaluator import Evaluator

    from mmmt.utils.analysis import predictions_and_test_dataset, samples_with_predictions
    from mmmt.utils.fileio import atomic_write, removed_leftovers_note
    cfg, records, dataset = predictions_and_test_dataset(args.config, args.predictions,
                                                         args.cfg_options, args.data_root)
    if not cfg.get('test_evaluator'):
        raise UserInputError(f'{args.config} has no test_evaluator')
    evaluator = Evaluator(cfg.test_evaluator)
    evaluator.dataset_meta = dataset.metainfo
    print(f'Evaluating {len(records)} predictions of {args.predictions}')
    for sample, record in samples_with_predictions(dataset, records, args.predictions):
        try:
            evaluator.process([sample])
        except (KeyError, ValueError) as e:  # what the file holds does not fit this image
            message = e.args[0] if isinstance(e, KeyError) and e.args else e
            raise UserInputError(f"{args.predictions}: image {record['img_id']!r}: "
                                 f'{message}') from None
    metrics = evaluator.evaluate(len(dataset))
    width = max(map(len, metrics), default=0)
    for key, value in metrics.items():
        print(f'{key:<{width}}  {value:.4f}' if isinstance(value, float) else f'{key}  {value}')
    if args.out is not None:
        note = removed_leftovers_note(osp.dirname(osp.abspath(args.out)))
        if note:
            print(note)
        atomic_write(json.dumps(metrics) + '\n', args.out, overwrite=args.force)
        print(f'metrics written to {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(run_main(main))
