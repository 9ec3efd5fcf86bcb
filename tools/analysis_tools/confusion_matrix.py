"""The confusion matrix of a class task from saved predictions (``tools/test.py --out``).

Examples::

    python tools/test.py configs/mtmamba/mtmamba_swin-l_8xb1-50k_nyudv2-448x576.py CKPT \
        --out preds.pkl
    python tools/analysis_tools/confusion_matrix.py \
        configs/mtmamba/mtmamba_swin-l_8xb1-50k_nyudv2-448x576.py work_dirs/.../preds.pkl \
        confusion/ --task semseg

Rows are the ground-truth classes, columns the predicted ones, counted over the labelled
pixels of the config's test split (its test pipeline, as ``tools/test.py`` evaluates; the
ignore value 255 is left out), the counts from which the segmentation evaluator's IoU comes.
Writes ``<SAVE_DIR>/confusion_matrix_<task>.npy`` (int64 pixel counts) and ``.png`` (each
row in percent of its ground-truth pixels); existing files are kept unless ``--force``. The
predictions file is read with :func:`mmmt.evaluation.load_predictions` (numpy arrays only).
"""
import argparse
import os.path as osp
import sys
from typing import List, Optional

import numpy as np

# only the standard library and numpy until the arguments are parsed (fast --help)
from mmmt.utils.cli import LazyDictAction, check_config_file
from mmmt.utils.errors import UserInputError, name_some, run_main


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Confusion matrix of a class task from tools/test.py --out predictions')
    parser.add_argument('config', help='config file (its test_dataloader)')
    parser.add_argument('predictions', help='the .pkl file written by tools/test.py --out')
    parser.add_argument('save_dir', help='folder for confusion_matrix_<task>.npy and .png')
    parser.add_argument('--task', default='semseg',
                        help='a class task of the predictions (default: semseg)')
    parser.add_argument('--title', help='title of the figure (default: the task and file)')
    parser.add_argument('--cmap', default='Blues', help='matplotlib colour map (default: Blues)')
    parser.add_argument('--show', action='store_true', help='also show the figure in a window')
    parser.add_argument('--force', action='store_true', help='replace existing output files')
    parser.add_argument('--data-root', metavar='DIR',
                        help="the dataset folder (the config's data_root)")
    parser.add_argument('--cfg-options', nargs='+', action=LazyDictAction, metavar='KEY=VALUE',
                        help='override settings of the config')
    return parser.parse_args(argv)


def count_confusion(gt: np.ndarray, pred: np.ndarray, num_classes: int,
                    ignore_index: int = 255) -> np.ndarray:
    """(num_classes, num_classes) int64 counts: row = ground truth, column = prediction.

    Pixels whose label is ``ignore_index`` are left out; any other label or prediction outside
    ``[0, num_classes)`` is an error (it would be a wrong class count, not noise).
    """
    gt, pred = np.asarray(gt).ravel(), np.asarray(pred).ravel()
    if gt.shape != pred.shape:
        raise ValueError(f'ground truth has {gt.size} pixels, the prediction {pred.size}')
    valid = gt != ignore_index
    gt, pred = gt[valid].astype(np.int64), pred[valid].astype(np.int64)
    for name, values in (('label', gt), ('prediction', pred)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(f'a {name} of {values.max()} is outside the {num_classes} classes')
    return np.bincount(gt * num_classes + pred, minlength=num_classes**2).reshape(
        num_classes, num_classes)


def plot_confusion(counts: np.ndarray, classes: List[str], title: str, cmap: str):
    """A matplotlib figure of ``counts`` with each row in percent of its pixels (an absent
    class's row stays 0); cells are annotated up to 25 classes."""
    import matplotlib
    if not matplotlib.get_backend().lower().startswith(('qt', 'tk', 'gtk', 'wx', 'macosx')):
        matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    rows = counts.sum(axis=1, keepdims=True)
    percent = np.divide(100.0 * counts, rows, out=np.zeros(counts.shape), where=rows > 0)
    n = len(classes)
    size = max(6.0, 0.35 * n + 3)
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    image = ax.imshow(percent, cmap=cmap, vmin=0, vmax=100)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label='% of the ground-truth pixels')
    ax.set_xticks(range(n), classes, rotation=90, fontsize=8)
    ax.set_yticks(range(n), classes, fontsize=8)
    ax.set_xlabel('prediction')
    ax.set_ylabel('ground truth')
    ax.set_title(title)
    if n <= 25:
        for (i, j), value in np.ndenumerate(percent):
            if counts[i, j]:
                ax.text(j, i, f'{value:.0f}', ha='center', va='center', fontsize=7,
                        color='white' if value > 50 else 'black')
    fig.tight_layout()
    return fig


def class_names(dataset_meta: Optional[dict], task: str,
                num_classes: Optional[int] = None) -> List[str]:
    """The classes of ``task`` as the segmentation evaluator counts them: ``num_classes``
    (the test evaluator's option) if given, else as many as the dataset's meta names; names
    from the meta, ``class_<i>`` beyond them. A new task's dataset usually names none
    (docs/how_to_add_a_task.md), and its evaluator's ``num_classes`` is its count."""
    from mmmt.structures import meta_for_task
    names = [str(n) for n in meta_for_task(dataset_meta, task, 'classes') or []]
    n = int(num_classes) if num_classes else len(names)
    if not n:
        raise UserInputError(f'the test dataset names no classes of {task} (its metainfo has '
                             f'no {task}_classes) and test_evaluator.tasks.{task} sets no '
                             'num_classes, so the class count is unknown; set one of them')
    return [names[i] if i < len(names) else f'class_{i}' for i in range(n)]


def evaluator_num_classes(cfg, task: str) -> Optional[int]:
    """``test_evaluator.tasks.<task>.num_classes`` of the config, if it sets one."""
    tasks = (cfg.get('test_evaluator') or {}).get('tasks')
    options = tasks.get(task) if isinstance(tasks, dict) else None
    return options.get('num_classes') if isinstance(options, dict) else None


def main(argv=None) -> int:
    args = parse_args(argv)
    outputs = [osp.join(args.save_dir, f'confusion_matrix_{args.task}.{ext}')
               for ext in ('npy', 'png')]
    from mmmt.utils.fileio import output_path_problem
    problem = output_path_problem(args.save_dir, folder=True)  # before the counting
    if problem:
        raise UserInputError(f'SAVE_DIR: {problem}')
    existing = [f for f in outputs if osp.exists(f)]
    if existing and not args.force:
        half = (f' but {[f for f in outputs if f not in existing][0]} does not (a run '
                'stopped between the two?)') if len(existing) < len(outputs) else ''
        raise UserInputError(f'{existing[0]} exists{half}; choose another SAVE_DIR or pass '
                             '--force')
    check_config_file(args.config)  # before the slow imports below
    from mmmt.structures import IGNORE_INDEX, TASKS
    from mmmt.utils.analysis import predictions_and_test_dataset, samples_with_predictions
    from mmmt.utils.fileio import atomic_write, removed_leftovers_note
    cfg, records, dataset = predictions_and_test_dataset(args.config, args.predictions,
                                                         args.cfg_options, args.data_root)
    spec = TASKS.get(args.task)
    if spec is None or spec.label_dtype != 'int64':
        classes = sorted(t for t, s in TASKS.items() if s.label_dtype == 'int64')
        raise UserInputError(f'--task {args.task} is not a class task; choose one of {classes}')
    names = class_names(dataset.metainfo, args.task, evaluator_num_classes(cfg, args.task))
    without = [str(r.get('img_id', i)) for i, r in enumerate(records)
               if args.task not in r['pred']]
    if not records or without:
        raise UserInputError(f'{args.predictions} holds no {args.task} prediction of '
                             f'{len(without)} of its {len(records)} images '
                             f'({name_some(without)})' if without else
                             f'{args.predictions} holds no predictions')
    counts = np.zeros((len(names), len(names)), np.int64)
    for sample, record in samples_with_predictions(dataset, records, args.predictions):
        gt = sample.get(f'gt_{args.task}')
        if gt is None:
            raise UserInputError(f'{sample.img_path} has no {args.task} ground truth')
        try:
            counts += count_confusion(gt.data.numpy(), record['pred'][args.task], len(names),
                                      IGNORE_INDEX)
        except ValueError as e:
            raise UserInputError(f'{sample.img_path}: {e}') from e
    title = args.title or f'{args.task}: {osp.basename(args.predictions)}'
    fig = plot_confusion(counts, names, title, args.cmap)
    note = removed_leftovers_note(osp.dirname(osp.abspath(outputs[0])))
    if note:
        print(note)
    atomic_write(lambda f: np.save(f, counts), outputs[0], overwrite=args.force)
    atomic_write(lambda f: fig.savefig(f, format='png', dpi=150), outputs[1],
                 overwrite=args.force)
    labelled = counts.sum()
    print(f'{args.task}: {labelled} labelled pixels, {np.trace(counts) / max(labelled, 1):.2%} '
          f'correct; written {outputs[0]} and {outputs[1]}')
    if args.show:
        import matplotlib.pyplot as plt
        plt.show()
    return 0


if __name__ == '__main__':
    sys.exit(run_main(main))
