"""Checking a dataset on disk: decode every sample as training would and collect all problems.

Used by ``tools/dataset_converters/check_dataset.py``; kept here (importable by name) so that
the per-sample check can run in worker processes.
"""
import warnings
from typing import Dict, List, Optional, Sequence, Tuple, Type

from mmmt.utils.progress import track_progress
from .base_multitask import BaseMultiTaskDataset
from .cityscapes import CityscapesMultiTaskDataset
from .nyud import NYUDv2MultiTaskDataset
from .pascal_context import PascalContextMultiTaskDataset
from .transforms import LoadMultiTaskAnnotations, LoadMultiTaskImage

__all__ = ['LAYOUTS', 'STANDARD_SPLIT_SIZES', 'check_sample', 'check_split',
           'check_config_split', 'check_built_dataset']

#: The dataset class of each layout name.
LAYOUTS: Dict[str, Type[BaseMultiTaskDataset]] = dict(
    nyud=NYUDv2MultiTaskDataset, pascal=PascalContextMultiTaskDataset,
    cityscapes=CityscapesMultiTaskDataset)
#: Split sizes of the multi-task tarballs used by ATRC, InvPT and MTMamba (Cityscapes: the
#: official fine-annotation splits).
STANDARD_SPLIT_SIZES = dict(
    nyud=dict(train=795, val=654), pascal=dict(train=4998, val=5105),
    cityscapes=dict(train=2975, val=500))

_load_image = LoadMultiTaskImage()
_load_annotations = LoadMultiTaskAnnotations()


def check_sample(info: dict) -> Tuple[List[str], List[str]]:
    """Decode one sample with the training loaders and report what they raise or warn.

    The loaders raise errors naming the file for missing or unreadable files, label values
    outside the class range and depth maps with NaN, inf, negative or absurd values, and warn
    when an annotation's size differs from its image (they resize it).

    Args:
        info (dict): A data info of a multi-task dataset (``img_path``, ``ann_info``,
            ``tasks``, ...).

    Returns:
        tuple[list[str], list[str]]: Errors and warnings, each naming its file.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        try:
            _load_annotations(_load_image(dict(info)))  # raises or warns, naming the file
        except Exception as e:  # report and go on: the point is to list every problem
            return [f'{type(e).__name__}: {e}'], []
    return [], [str(w.message) for w in caught]


def check_split(layout: str,
                data_root: str,
                split: str,
                tasks: Optional[Sequence[str]] = None,
                workers: int = 1,
                progress: bool = True) -> Dict:
    """Check every sample of one split.

    Args:
        layout (str): 'nyud', 'pascal' or 'cityscapes'.
        data_root (str): Dataset root.
        split (str): Split name ('train' or 'val').
        tasks (Sequence[str], optional): Tasks to check (default: all of the layout).
        workers (int): Worker processes. Defaults to 1.
        progress (bool): Show a progress bar. Defaults to True.

    Returns:
        dict: ``size`` (number of samples), ``tasks``, ``errors`` and ``warnings`` (lists of
        messages).

    Raises:
        FileNotFoundError: If the split list does not exist.
        ValueError: If the split list is empty or a task is unknown.
    """
    if layout not in LAYOUTS:
        raise ValueError(f'unknown layout {layout!r}; expected one of {sorted(LAYOUTS)}')
    # check_files=False: every missing file is reported by check_sample instead of the
    # dataset stopping at construction with the first ones
    ds = LAYOUTS[layout](data_root=data_root, split=split, tasks=tasks, check_files=False,
                         serialize_data=False)
    return check_built_dataset(ds, workers, progress)


def check_built_dataset(ds: BaseMultiTaskDataset, workers: int = 1,
                        progress: bool = True) -> Dict:
    """Check every sample of a multi-task dataset (built with ``check_files=False``, so that
    every missing file is listed instead of the first ones stopping construction).

    Returns:
        dict: As :func:`check_split`.
    """
    infos = [ds.get_data_info(i) for i in range(len(ds))]
    split_errors = ds.split_problems(infos)  # e.g. a folder of optional files all missing
    if not progress:
        outcomes = [check_sample(info) for info in infos]
    else:
        outcomes = track_progress(check_sample, infos, nproc=workers, description='samples')
    return dict(
        size=len(infos),
        tasks=list(ds.tasks),
        errors=split_errors + [e for errors, _ in outcomes for e in errors],
        warnings=[w for _, warns in outcomes for w in warns])


def check_config_split(config: str, split: str, data_root: Optional[str] = None,
                       tasks: Optional[Sequence[str]] = None, workers: int = 1,
                       progress: bool = True) -> Dict:
    """Check every sample of the dataset of a config's ``<split>_dataloader``.

    For datasets of one's own (docs/how_to_add_a_dataset.md): the config's ``custom_imports``
    and ``custom_tasks`` are loaded, the dataset is built as the config says except for
    ``check_files=False`` (every missing file listed) and ``tasks`` (if given); wrappers
    (``RepeatDataset``, ``ConcatDataset``) are looked through, each inner dataset checked.

    Args:
        config (str): The config file.
        split (str): ``'train'``, ``'val'`` or ``'test'``: which dataloader.
        data_root (str, optional): Replaces the datasets' ``data_root`` (``--data-root``).
        tasks (Sequence[str], optional): Tasks to check (default: the dataset's).
        workers (int): Worker processes. Defaults to 1.
        progress (bool): Show a progress bar. Defaults to True.

    Returns:
        dict: As :func:`check_split`; the sizes, errors and warnings of all inner datasets.

    Raises:
        UserInputError: The config has no such dataloader, or builds no mmmt multi-task
            dataset there.
    """
    from mmengine.registry import init_default_scope

    from mmmt.registry import DATASETS
    from mmmt.structures import register_tasks
    from mmmt.utils.cli import _dataset_configs, config_from_file, merge_cfg_options
    from mmmt.utils.errors import UserInputError
    from mmmt.utils.setup_env import register_all_modules
    register_all_modules(init_default_scope=False)
    cfg = merge_cfg_options(config_from_file(config), None, data_root)
    register_tasks(cfg.get('custom_tasks'))  # tasks defined in the config itself
    init_default_scope(cfg.get('default_scope', 'mmmt'))
    loader = cfg.get(f'{split}_dataloader')
    if not loader or not loader.get('dataset'):
        raise UserInputError(f'{config} has no {split}_dataloader with a dataset')
    report = dict(size=0, tasks=[], errors=[], warnings=[])
    # through RepeatDataset / ClassBalancedDataset / ConcatDataset, as --data-root goes
    for leaf in _dataset_configs(loader['dataset']):
        options = dict(leaf, check_files=False, serialize_data=False, pipeline=[])
        if tasks is not None:
            options['tasks'] = list(tasks)
        ds = DATASETS.build(options)
        if not isinstance(ds, BaseMultiTaskDataset):
            raise UserInputError(f'{split}_dataloader of {config} builds a '
                                 f'{type(ds).__name__}, not an mmmt multi-task dataset '
                                 '(BaseMultiTaskDataset)')
        part = check_built_dataset(ds, workers, progress)
        report['size'] += part['size']
        report['tasks'] += [t for t in part['tasks'] if t not in report['tasks']]
        report['errors'] += part['errors']
        report['warnings'] += part['warnings']
    return report
