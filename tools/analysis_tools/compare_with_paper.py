"""Put a test run's metrics next to the paper's numbers for the same model.

Examples::

    python tools/test.py configs/mtmamba/mtmamba_swin-l_8xb1-50k_nyudv2-448x576.py CKPT
    python tools/analysis_tools/compare_with_paper.py \
        work_dirs/mtmamba_swin-l_8xb1-50k_nyudv2-448x576
    python tools/analysis_tools/compare_with_paper.py results.json \
        --model mtmamba_swin-l_8xb1-50k_nyudv2-448x576

RESULTS is a metrics file written by ``tools/test.py``
(``<work_dir>/<timestamp>/<timestamp>.json``), a training log (``vis_data/scalars.json``: its
last validation is used) or a work dir (its newest test metrics). The paper's numbers come from
the ``metafile.yml`` files listed in ``model-index.yml``; the model is ``--model`` or else the
work dir's name (as ``tools/train.py`` names it after the config). Besides the table, it prints
Δm of the run relative to the paper (the papers' multi-task measure, docs/metrics.md, with the
paper's numbers as the baseline): positive means better than published. A run's
``multi_task/delta_m`` is marked better only when it is better at the papers' printing (two
decimals, truncated).
"""
import argparse
import glob
import math
import os.path as osp
from typing import Dict, Optional, Tuple

from mmmt.utils.analysis import read_json_lines
from mmmt.utils.errors import run_main
from mmmt.utils.model_index import model_entries

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Compare a test run's metrics with the paper's numbers")
    parser.add_argument('results', help='metrics .json, scalars.json or a work dir')
    parser.add_argument('--model', help='model name of a metafile.yml (default: the work dir '
                        'name)')
    parser.add_argument('--model-index', default=osp.join(REPO, 'model-index.yml'),
                        help='model-index.yml listing the metafiles')
    return parser.parse_args(argv)


def paper_results(model_index: str) -> Dict[str, Dict[str, float]]:
    """Model name (or former name, :func:`mmmt.utils.model_index.model_entries`) -> the
    paper's metrics, from every metafile of ``model_index``."""
    papers = {}
    for name, model in model_entries(model_index).items():
        metrics = {}
        for result in model.get('Results') or []:
            metrics.update(result.get('Metrics') or {})
        papers[name] = metrics
    return papers


def _is_metrics(record) -> bool:
    return isinstance(record, dict) and any('/' in key for key in record)


def load_run(path: str) -> Tuple[Dict[str, float], str]:
    """The metrics of a run and the file they come from."""
    if osp.isdir(path):
        # tools/test.py: <work_dir>/<timestamp>/<timestamp>.json; newest timestamp first
        candidates = sorted(glob.glob(osp.join(path, '*', '*.json')), reverse=True)
        candidates = [c for c in candidates
                      if osp.basename(c)[:-5] == osp.basename(osp.dirname(c))]
        for file in candidates:
            metrics, _ = load_run(file)
            if metrics:
                return metrics, file
        raise SystemExit(f'no test metrics (<timestamp>/<timestamp>.json) under {path}')
    metrics = [r for r in read_json_lines(path) if _is_metrics(r)]
    if not metrics:
        return {}, path
    values = {}
    for key, value in metrics[-1].items():
        if '/' not in key:
            continue
        # a hand-written or exported file (pandas writes NaN as null): name the field rather
        # than fail in float() with a traceback
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SystemExit(f'{path}: metric {key!r} is {value!r}, expected a number '
                             '(in the units of docs/metrics.md)')
        values[key] = float(value)
    return values, path


def guess_model(results_path: str, names) -> Optional[str]:
    """The first folder name on the path that is a model name (work_dirs/<config stem>/...)."""
    folder = osp.abspath(results_path)
    while folder != osp.dirname(folder):
        if osp.basename(folder) in names:
            return osp.basename(folder)
        folder = osp.dirname(folder)
    return None


def check_percent_units(ours: Dict[str, float], paper: Dict[str, float], source: str,
                        percent_keys) -> None:
    """Stop when the run's percentages all look like fractions of one.

    A file exported from another tool (or divided by 100 by hand) with mIoU 0.5582 where
    mmmt and the papers write 55.82 compared as 55 points worse and gave a Δm near -50%.
    Only when every percentage metric both give is at most 1 while the paper's is at least
    10: a model that fails on one task still has the others in percent.

    Args:
        ours (dict): The run's metrics.
        paper (dict): The paper's metrics.
        source (str): The file the run's metrics come from, for the message.
        percent_keys (Iterable[str]): Metric keys in percent (e.g. ``semseg/mIoU``).
    """
    shared = [k for k in percent_keys if k in ours and k in paper and paper[k] >= 10]
    if shared and all(0 <= ours[k] <= 1 for k in shared):
        listed = ', '.join(f'{k} {ours[k]:g} (paper {paper[k]:g})' for k in shared)
        raise SystemExit(f'{source}: {listed}: these look like fractions of one, while mmmt '
                         'and the papers give percentages (docs/metrics.md); multiply them by '
                         '100')


def main(argv=None) -> float:
    args = parse_args(argv)
    # after parsing (mmmt.evaluation imports torch): --help answers at once
    from mmmt.evaluation.functional.delta_m import DELTA_M_METRICS, delta_m
    papers = paper_results(args.model_index)
    model = args.model or guess_model(args.results, papers)
    if model is None:
        raise SystemExit(
            f'no folder on the path {osp.abspath(args.results)} is named after a model of '
            f'{args.model_index} (work_dirs/<config name>/ is); pass --model, one of '
            f'{sorted(papers)}')
    if model not in papers:
        raise SystemExit(f'--model {model!r} is not in {args.model_index}; choose one of '
                         f'{sorted(papers)}')
    paper = papers[model]
    if not paper:
        raise SystemExit(f'the paper reports no numbers for {model}')
    ours, source = load_run(args.results)
    if not ours:
        raise SystemExit(f'no metrics in {source}')
    # the higher-is-better metric of each task (mIoU, maxF, odsF) is a percentage
    check_percent_units(ours, paper, source, [f'{task}/{name}' for task, (name, higher)
                                              in DELTA_M_METRICS.items() if higher])
    print(f'{model}: {source}')
    print(f'{"metric":<22}{"paper":>10}{"mmmt":>10}{"diff":>10}')
    for key, published in paper.items():
        value = ours.get(key)
        if value is None:
            print(f'{key:<22}{published:>10.4g}{"-":>10}{"":>10}')
            continue
        task, name = key.split('/', 1)
        better = ''
        higher = None
        if task in DELTA_M_METRICS and DELTA_M_METRICS[task][0] == name:
            higher = DELTA_M_METRICS[task][1]
        elif key == 'multi_task/delta_m':
            higher = True
        # the papers print delta_m truncated to two decimals (2.3819 -> 2.38, 0.9569 -> 0.95;
        # docs/metrics.md): a run that reproduces the published rows exactly is not better
        shown = math.trunc(round(value * 100, 6)) / 100 if key == 'multi_task/delta_m' else value
        if higher is not None and shown != published and (shown > published) == higher:
            better = ' better'
        print(f'{key:<22}{published:>10.4g}{value:>10.4g}{value - published:>+10.4g}{better}')
    baselines = {task: paper[f'{task}/{name}'] for task, (name, _) in DELTA_M_METRICS.items()
                 if f'{task}/{name}' in paper and f'{task}/{name}' in ours}
    if not baselines:
        raise SystemExit('no metric of the paper was found in the run')
    relative = delta_m(ours, baselines)
    print(f'delta_m vs the paper over {", ".join(baselines)}: {relative:+.2f}% '
          '(positive: better than published)')
    return relative


if __name__ == '__main__':
    run_main(main)
