"""Common base of the multi-task datasets: split lists, task selection, file checks."""
from collections import Counter
from typing import Dict, List, Optional, Sequence

import mmengine.fileio as fileio
from mmengine.dataset import BaseDataset

from mmmt.structures import TASKS
from mmmt.utils.errors import InputFileNotFoundError, UserInputError, did_you_mean, name_some
from mmmt.utils.fileio import sample_id_problem

__all__ = ['BaseMultiTaskDataset']


class BaseMultiTaskDataset(BaseDataset):
    """A dataset whose samples are listed by id in a split file and carry several dense tasks.

    Subclasses set :attr:`SUPPORTED_TASKS`, :attr:`DEFAULT_TASKS`, :attr:`SPLIT_FILE` and
    implement :meth:`sample_info`. Each data info holds paths only (``img_path`` and
    ``ann_info[task] = dict(path=..., encoding=...)``); the transforms
    :class:`~mmmt.datasets.transforms.LoadMultiTaskImage` and
    :class:`~mmmt.datasets.transforms.LoadMultiTaskAnnotations` read them.

    Args:
        data_root (str): Root of the dataset layout.
        split (str): ``'train'`` or ``'val'`` (the val split is the test set of the papers).
        tasks (Sequence[str], optional): Tasks to load (default :attr:`DEFAULT_TASKS`).
            Also stored as ``metainfo['tasks']``. Each must be in :attr:`SUPPORTED_TASKS` and
            registered (``mmmt.structures.TASKS``).
        ann_file (str): Split list, relative to ``data_root``; defaults to
            ``SPLIT_FILE.format(split=split)``.
        check_files (bool): Check at construction that every file needed by the selected tasks
            exists, and raise an error naming the first missing ones and the split list.
            Defaults to True.
        metainfo (dict, optional): Passed to :class:`mmengine.dataset.BaseDataset`, with
            ``tasks`` added unless it has one.
        backend_args (dict, optional): Arguments of mmengine's file backend for the split list
            and the file check (the pipeline's loaders take their own, as in mmseg).
        **kwargs: Passed to :class:`mmengine.dataset.BaseDataset` (``pipeline``,
            ``test_mode``, ``indices``, ``lazy_init``, ...).
    """

    SUPPORTED_TASKS: Sequence[str] = ()
    DEFAULT_TASKS: Sequence[str] = ()
    SPLIT_FILE: str = ''

    def __init__(self,
                 data_root: str = '',
                 split: str = 'train',
                 tasks: Optional[Sequence[str]] = None,
                 ann_file: str = '',
                 check_files: bool = True,
                 metainfo: Optional[dict] = None,
                 backend_args: Optional[dict] = None,
                 **kwargs) -> None:
        tasks = tuple(self.DEFAULT_TASKS if tasks is None else tasks)
        if isinstance(tasks, str) or not tasks:
            raise UserInputError(f'tasks must be a non-empty list of task names, got {tasks!r}')
        repeated = sorted({t for t in tasks if tasks.count(t) > 1})
        if repeated:
            raise UserInputError(f'tasks: {repeated} listed more than once in {list(tasks)}')
        unknown = [t for t in tasks if t not in self.SUPPORTED_TASKS]
        if unknown:
            raise UserInputError(f'{type(self).__name__} has no task(s) {unknown}; supported: '
                                 f'{list(self.SUPPORTED_TASKS)}')
        # every transform, the packer and the visualizer look the task up in TASKS and fall
        # back to defaults for a task they do not find (255 padding, no ignore rule, float
        # labels, drawn as a probability): a dataset is where a task enters the data, so an
        # undefined one stops here instead of being loaded and drawn wrongly
        undefined = [t for t in tasks if t not in TASKS]
        if undefined:
            raise UserInputError(
                f'{type(self).__name__}: task(s) {undefined} are not registered (registered: '
                f'{", ".join(TASKS)}); define them with mmmt.structures.register_task in a '
                'module named by custom_imports, or in custom_tasks '
                '(docs/how_to_add_a_task.md)')
        self.tasks = tasks
        self.split = split
        self.check_files = check_files
        self.backend_args = backend_args
        metainfo = dict(metainfo or {})
        metainfo.setdefault('tasks', list(tasks))
        super().__init__(
            ann_file=ann_file or self.SPLIT_FILE.format(split=split),
            data_root=data_root,
            metainfo=metainfo,
            **kwargs)

    def read_split(self) -> List[str]:
        """The sample ids of the split list (one per line, blank lines skipped)."""
        path = self.ann_file
        if not fileio.isfile(path, backend_args=self.backend_args):
            raise InputFileNotFoundError(
                f"Split list '{path}' of split '{self.split}' does not exist "
                f"(data_root='{self.data_root}'). Prepare the dataset as README.md ('Data') "
                'describes, set data_root to where it is, or write a synthetic one with '
                'tools/dataset_converters/synthetic_mt.py.')
        try:  # utf-8-sig: a byte-order mark would otherwise become part of the first id
            text = fileio.get_text(path, encoding='utf-8-sig', backend_args=self.backend_args)
        except UnicodeDecodeError as e:
            raise UserInputError(f"Split list '{path}' is not UTF-8 text ({e}); save it as UTF-8 "
                                 'with one sample id per line') from e
        ids = [line.strip() for line in text.splitlines() if line.strip()]
        if not ids:
            raise UserInputError(f"Split list '{path}' of split '{self.split}' is empty.")
        for number, line in enumerate(text.splitlines(), 1):
            problem = sample_id_problem(line.strip()) if line.strip() else None
            if problem:  # the ids name files inside the task folders, and outputs of tools
                raise UserInputError(
                    f"Split list '{path}' line {number}: the id {line.strip()!r} {problem}; an "
                    "id names files inside the dataset's folders (and outputs inside output "
                    'folders), e.g. 0001 or <city>/<name>')
        # a repeated id (two lists pasted together) counts its image that many times in the
        # metrics, and its predictions and pictures are saved under one name
        repeated = [i for i, n in Counter(ids).items() if n > 1]
        if repeated:
            raise UserInputError(
                f"Split list '{path}' of split '{self.split}' lists {len(repeated)} id(s) more "
                f'than once ({name_some(repeated, 5)}); list each sample once (to train on some '
                'more often, add a dataset of a list of those: mmengine\'s ConcatDataset)')
        return ids

    def sample_info(self, img_id: str) -> Dict:
        """The data info of one sample: ``img_path``, ``ann_info`` and ``required_files``."""
        raise NotImplementedError

    def _check_ann_info(self, img_id: str, info: dict, known_encodings: set) -> None:
        """Refuse a ``sample_info`` result that the loader could not read: a selected task
        without an ``ann_info`` entry, an entry without ``path`` or ``encoding``, an encoding
        no decoder is registered under. Found here, at construction, instead of when the
        first sample is loaded (in a dataloader worker, after the model is built)."""
        from mmmt.registry import ANNOTATION_DECODERS
        where = f"{type(self).__name__}.sample_info('{img_id}')"
        ann_info = info.get('ann_info')
        if not isinstance(ann_info, dict):
            raise UserInputError(f"{where} gives no 'ann_info' dict (task -> dict(path=..., "
                                 f'encoding=...)), got {type(ann_info).__name__}')
        missing = [t for t in self.tasks if t not in ann_info]
        if missing:
            raise UserInputError(
                f'{where} gives no ann_info entry for task(s) {missing} of the selected tasks '
                f'{list(self.tasks)}: add dict(path=..., encoding=...) for each selected task '
                '(docs/how_to_add_a_dataset.md)')
        for task in self.tasks:
            entry = ann_info[task]
            keys = [k for k in ('path', 'encoding')
                    if not isinstance(entry, dict) or k not in entry]
            if keys:
                raise UserInputError(f"{where}: ann_info['{task}'] needs {' and '.join(keys)} "
                                     f'(dict(path=..., encoding=...)), got {entry!r}')
            encoding = entry['encoding']
            if encoding in known_encodings:
                continue
            try:
                found = ANNOTATION_DECODERS.get(encoding) is not None
            except KeyError:  # a malformed scoped name
                found = False
            if not found:
                names = sorted(ANNOTATION_DECODERS.module_dict)
                hint = did_you_mean(encoding, names)
                hint = f'{hint} ' if hint else ''
                raise UserInputError(
                    f"{where}: encoding {encoding!r} of task '{task}' is not a registered "
                    f'annotation decoder; {hint}(registered: {", ".join(names)}); register it '
                    "with @ANNOTATION_DECODERS.register_module('NAME') in a module named by "
                    'custom_imports (docs/how_to_add_a_dataset.md)')
            known_encodings.add(encoding)

    def load_data_list(self) -> List[dict]:
        ids = self.read_split()
        data_list = []
        missing = []
        known_encodings: set = set()
        for img_id in ids:
            info = self.sample_info(img_id)
            self._check_ann_info(img_id, info, known_encodings)
            required = info.pop('required_files', [])
            if self.check_files:
                missing.extend(
                    p for p in required if not fileio.isfile(p, backend_args=self.backend_args))
            info.update(img_id=img_id, tasks=list(self.tasks), split_file=self.ann_file,
                        seg_fields=[])
            data_list.append(info)
        if missing:
            shown = '\n  '.join(missing[:10])
            more = f'\n  ... and {len(missing) - 10} more' if len(missing) > 10 else ''
            raise InputFileNotFoundError(
                f"{len(missing)} file(s) needed for tasks {list(self.tasks)} by the ids in split "
                f"list '{self.ann_file}' are missing:\n  {shown}{more}")
        if self.check_files:
            problems = self.split_problems(data_list)
            if problems:
                raise InputFileNotFoundError(problems[0])
        return data_list

    def split_problems(self, data_list: List[dict]) -> List[str]:
        """What is wrong with the split as a whole, beyond single files (none by default).

        For datasets where a single file may be absent but not all of them (a folder that was
        not extracted); checked at construction with ``check_files`` and by
        ``tools/dataset_converters/check_dataset.py``.

        Args:
            data_list (list[dict]): The samples of the split (:meth:`load_data_list`).

        Returns:
            list[str]: One message per problem, naming the folder and what to do.
        """
        return []
