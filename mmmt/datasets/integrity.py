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

__all__ = ['LAYOUTS', 'STANDARD_SPLIT_SIZES', 'check_sample', 'check_split']

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
