"""The task definitions: one entry per dense task, read by every part of mmmt.

A task is a name (the ``<task>`` of ``gt_<task>`` / ``pred_<task>``) and a :class:`TaskSpec`
saying how its labels are stored, padded and ignored, which loss trains it, how logits become a
prediction, which evaluator scores it, how it is drawn, where it sits in the canonical order and
how it counts in the multi-task performance delta_m. The pipeline (``PackMultiTaskInputs``,
``CenterPad``, ``AddIgnoreRegions``, ``MultiTaskRandomFlip``), the model (the head's task order
and default losses, the segmentor's activations and flip handling), the metric
(``MultiTaskMetric``, delta_m) and the visualizer look tasks up in :data:`TASKS`.

A new task is one :func:`register_task` call, in a module named by a config's
``custom_imports``, or a list of dicts in the config itself::

    custom_tasks = [dict(name='occupancy', label_dtype='int64', loss=dict(
        type='PixelCrossEntropyLoss'), activation='argmax', evaluator='segmentation',
        draw='segmentation', delta_m=('mIoU', True))]

which ``tools/train.py``, ``tools/test.py`` and the inferencer register (:func:`register_tasks`)
before building anything. See docs/how_to_add_a_task.md.

This module itself imports only the standard library and :mod:`mmmt.utils.errors`: datasets,
models and evaluation all read it.
"""
from dataclasses import dataclass, field, fields
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple, Union

from mmmt.utils.errors import (DuplicateNameError, InvalidOptionError, UnknownNameError,
                               UserInputError, did_you_mean, is_number)

__all__ = [
    'IGNORE_INDEX', 'TaskSpec', 'TaskTable', 'TASKS', 'register_task', 'register_tasks',
    'get_task', 'ordered_tasks', 'meta_for_task', 'is_delta_m_pair'
]

#: The ground-truth value that marks a pixel as "no label" for every task (the reference's).
IGNORE_INDEX = 255

_LABEL_DTYPES = ('int64', 'float32')
#: How :class:`~mmmt.datasets.transforms.AddIgnoreRegions` turns invalid labels into
#: IGNORE_INDEX: ``zero_vector``: pixels whose vector has zero L2 norm (all channels);
#: ``zero_value``: pixels equal to 0; ``empty_map``: the whole map when no pixel is foreground
#: (every value 0 or IGNORE_INDEX).
IGNORE_RULES = ('zero_vector', 'zero_value', 'empty_map')
ACTIVATIONS = ('argmax', 'relu', 'l2_normalize', 'sigmoid', 'softmax_foreground', 'identity')
DRAW_STYLES = ('segmentation', 'depth', 'normals', 'probability')
INTERPOLATIONS = ('nearest', 'bicubic')


@dataclass(frozen=True)
class TaskSpec:
    """What mmmt needs to know about one dense task.

    Args:
        name (str): Task name, lower case (``gt_<name>`` / ``pred_<name>``).
        gt_channels (int): Channels C of the (C, H, W) ground truth (1 for maps, 3 for normals).
        label_dtype (str): ``'int64'`` for class indices, ``'float32'`` otherwise.
        out_channels (int, optional): The head's fixed output channels for this task (depth 1,
            normals 3; the head checks its ``tasks``); None when the config chooses it (the
            number of classes; 1 or 2 for saliency).
        pad_value (float): Label fill of ``CenterPad``. Defaults to :data:`IGNORE_INDEX`.
        ignore_rule (str, optional): One of :data:`IGNORE_RULES`, applied by
            ``AddIgnoreRegions``; None: labels are kept as they are.
        label_interpolation (str): How a label map of the wrong size is resized on loading:
            ``'nearest'`` (default) or ``'bicubic'`` (normals, as the reference).
        mirror_channels (bool): The first two channels are x/y components that change sign when
            the image is mirrored (normals). Defaults to False.
        loss (dict, optional): Default loss config of the head (``mmmt`` scope).
        activation (str): How (C, H, W) logits become the prediction: one of
            :data:`ACTIVATIONS`. Defaults to ``'identity'``.
        evaluator (str, optional): Default evaluator type of ``MultiTaskMetric``
            (``'segmentation'``, ``'depth'``, ``'normals'``, ``'saliency'``, ``'boundary'`` or
            any registered one).
        draw (str): Drawing style of the visualizer: one of :data:`DRAW_STYLES`.
        delta_m (tuple[str, bool], optional): ``(metric, higher_is_better)`` representing the
            task in delta_m.
        meta_prefix (str, optional): Besides ``<name>_classes`` / ``<name>_palette``, the
            dataset meta keys ``<meta_prefix>classes`` / ``<meta_prefix>palette`` hold the
            task's classes and palette (``''`` for semseg, ``'part_'`` for human_parts).
        order (int): Position in the canonical order (the CTM's concatenation order and the
            columns of the visualizer): the six built-in tasks have 0-5 (the reference's
            order); a task without one (-1, the default) comes after every ordered task, by
            name, so that a checkpoint's order never depends on which module or config
            registered its tasks first.
    """

    name: str
    gt_channels: int = 1
    label_dtype: str = 'float32'
    out_channels: Optional[int] = None
    pad_value: float = IGNORE_INDEX
    ignore_rule: Optional[str] = None
    label_interpolation: str = 'nearest'
    mirror_channels: bool = False
    loss: Optional[dict] = field(default=None, compare=False)
    activation: str = 'identity'
    evaluator: Optional[str] = None
    draw: str = 'probability'
    delta_m: Optional[Tuple[str, bool]] = None
    meta_prefix: Optional[str] = None
    order: int = -1

    def __post_init__(self) -> None:
        def check(value, allowed, what):
            if value not in allowed:
                raise UserInputError(f'task {self.name!r}: {what} must be one of {allowed}, got '
                                     f'{value!r}')

        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise UserInputError(f'task name must be an identifier, got {self.name!r}')
        check(self.label_dtype, _LABEL_DTYPES, 'label_dtype')
        check(self.ignore_rule, IGNORE_RULES + (None, ), 'ignore_rule')
        check(self.activation, ACTIVATIONS, 'activation')
        check(self.draw, DRAW_STYLES, 'draw')
        check(self.label_interpolation, INTERPOLATIONS, 'label_interpolation')

        def fail(what: str, value) -> None:
            raise UserInputError(f'task {self.name!r}: {what}, got {value!r}')

        # a definition often comes from a config (custom_tasks), where a quoted number or a
        # bare string is easy to write; it was a TypeError or ValueError without the task's
        # name, or registered and failed later (mirror_channels on one channel: the first flip)
        if not _is_int(self.gt_channels) or self.gt_channels < 1:
            fail('gt_channels must be an integer >= 1', self.gt_channels)
        if self.out_channels is not None and (not _is_int(self.out_channels)
                                              or self.out_channels < 1):
            fail('out_channels must be None or an integer >= 1', self.out_channels)
        for name in ('pad_value', 'order'):
            if not is_number(getattr(self, name)):
                fail(f'{name} must be a number', getattr(self, name))
        if not isinstance(self.mirror_channels, bool):
            fail('mirror_channels must be True or False', self.mirror_channels)
        if self.mirror_channels and self.gt_channels < 2:
            # the flip negates channels 0 and 1 (x and y), which a map of one channel lacks
            raise UserInputError(f'task {self.name!r}: mirror_channels=True needs x and y '
                                 f'channels (gt_channels >= 2), got gt_channels='
                                 f'{self.gt_channels}')
        if self.loss is not None and not (isinstance(self.loss, Mapping) and 'type' in self.loss):
            fail("loss must be None or a config dict with a 'type'", self.loss)
        for name in ('evaluator', 'meta_prefix'):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                fail(f'{name} must be None or a string', getattr(self, name))
        if self.delta_m is not None:
            if not is_delta_m_pair(self.delta_m):
                fail("delta_m must be None or a (metric, higher_is_better) pair such as "
                     "('mIoU', True)", self.delta_m)
            object.__setattr__(self, 'delta_m', tuple(self.delta_m))

    @classmethod
    def from_dict(cls, definition: Mapping) -> 'TaskSpec':
        """Build a spec from a dict of its fields (``custom_tasks``, ``register_task(**kw)``),
        with an error naming the task and any field that is not one of :class:`TaskSpec`'s
        (the dataclass itself would raise a bare ``TypeError`` without the task's name)."""
        definition = dict(definition)
        known = [f.name for f in fields(cls)]
        if 'name' not in definition:
            raise UserInputError(f'a task definition needs a name; got the fields '
                                 f'{sorted(definition)}')
        unknown = [k for k in definition if k not in known]
        if unknown:
            hints = []
            for key in unknown:
                hint = did_you_mean(key, known)
                hints.append(f'{key!r} ({hint})' if hint else repr(key))
            raise UserInputError(f"task {definition['name']!r}: unknown field(s) "
                                 f"{', '.join(hints)}; the fields are {', '.join(known)} "
                                 '(docs/how_to_add_a_task.md)')
        return cls(**definition)

    @property
    def is_int(self) -> bool:
        """Whether the labels are class indices (packed as int64)."""
        return self.label_dtype == 'int64'


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_delta_m_pair(value: Any) -> bool:
    """Whether ``value`` is a ``(metric, higher_is_better)`` pair as Δm reads it: a bare
    ``'mIoU'`` would be split into its letters, a ``'False'`` count as true."""
    return (isinstance(value, (tuple, list)) and len(value) == 2 and isinstance(value[0], str)
            and isinstance(value[1], bool))


class TaskTable(Mapping):
    """The registered tasks by name (a read-only mapping with :meth:`register`)."""

    def __init__(self) -> None:
        self._specs: Dict[str, TaskSpec] = {}

    def register(self, spec: Union[TaskSpec, dict], force: bool = False) -> TaskSpec:
        """Add a task (a :class:`TaskSpec` or its keyword arguments as a dict).

        Re-registering the same definition is a no-op (configs are loaded more than once);
        a different one under an existing name needs ``force=True``.
        """
        if isinstance(spec, Mapping):
            spec = TaskSpec.from_dict(spec)
        elif not isinstance(spec, TaskSpec):
            raise InvalidOptionError(f'a task is a TaskSpec or a dict, got {type(spec).__name__}')
        old = self._specs.get(spec.name)
        if old is not None and not force:
            if old == spec and old.loss == spec.loss:
                return old
            if spec.name in BUILTIN_TASKS:
                # force=True would change the built-in task for every config of the process
                raise DuplicateNameError(
                    f'task {spec.name!r} is already registered as a built-in task of mmmt '
                    f'({", ".join(BUILTIN_TASKS)}) with another definition; give your task '
                    f'another name (force=True would replace {spec.name!r} for every model and '
                    'dataset)')
            raise DuplicateNameError(f'task {spec.name!r} is already registered with another '
                                     'definition; pass force=True to replace it')
        self._specs[spec.name] = spec
        return spec

    def unregister(self, name: str) -> None:
        """Remove a task (tests that register toy tasks clean up with this)."""
        self._specs.pop(name, None)

    def __getitem__(self, name: str) -> TaskSpec:
        try:
            return self._specs[name]
        except KeyError:
            raise UnknownNameError(f'unknown task {name!r}: registered tasks are '
                                   f'{sorted(self._specs)}; define it with '
                                   'mmmt.structures.register_task (see '
                                   'docs/how_to_add_a_task.md)') from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def __repr__(self) -> str:
        return f'{type(self).__name__}({list(self._specs)})'


#: Every task mmmt knows. mmmt defines the six of the MTMamba papers below.
TASKS = TaskTable()


def register_task(spec: Union[TaskSpec, dict, None] = None, force: bool = False,
                  **kwargs) -> TaskSpec:
    """Register a task: ``register_task(TaskSpec(...))``, ``register_task(dict(...))`` or
    ``register_task(name='occupancy', ...)``.

    Args:
        spec (TaskSpec | dict, optional): The definition; or give its fields as keywords.
        force (bool): Replace an existing task of the same name with another definition.
            Defaults to False (re-registering the same definition is always allowed).
        **kwargs: The fields of :class:`TaskSpec`, when ``spec`` is not given.

    Returns:
        TaskSpec: The registered spec.
    """
    if spec is None:
        spec = kwargs
    elif kwargs:
        raise InvalidOptionError('register_task: give a spec or keyword arguments, not both')
    return TASKS.register(spec, force=force)


def register_tasks(specs: Optional[Iterable[Union[TaskSpec, dict]]]) -> List[TaskSpec]:
    """Register every task of a config's ``custom_tasks`` list (None: nothing)."""
    if isinstance(specs, (Mapping, TaskSpec, str)):
        # a dict would be iterated as its field names ("a task is ... got str")
        raise InvalidOptionError(
            'custom_tasks must be a list of task definitions, '
            f"[dict(name='occupancy', ...), ...], got a {type(specs).__name__}"
            + (f" (task {specs.get('name')!r}): put it in a list" if isinstance(specs, Mapping)
               else ''))
    return [TASKS.register(s) for s in (specs or [])]


def get_task(name: str) -> Optional[TaskSpec]:
    """The spec of ``name``, or None for a task nobody registered."""
    return TASKS.get(name)


def ordered_tasks(tasks: Iterable[str]) -> List[str]:
    """Registered tasks in the canonical order (those with an ``order`` by it, then the
    others by name), then any other task in the given order."""
    tasks = list(tasks)

    def key(t: str) -> tuple:
        order = TASKS[t].order
        # the name breaks ties (a registered task given a built-in's order): the order
        # must not depend on the order in which a config lists its tasks
        return (0, order, t) if order >= 0 else (1, 0, t)

    known = sorted((t for t in tasks if t in TASKS), key=key)
    return known + [t for t in tasks if t not in TASKS]


def meta_for_task(dataset_meta: Optional[dict], task: str, what: str) -> Optional[list]:
    """Look up ``what`` (``'classes'`` or ``'palette'``) of ``task`` in a dataset meta dict.

    Tried in order: ``<task>_<what>``; ``<what>`` as a dict keyed by task; the task's
    ``meta_prefix`` (``classes``/``palette`` for semseg, ``part_classes``/``part_palette`` for
    human_parts).

    Returns:
        list | None: The value, or None if absent.
    """
    meta = dataset_meta or {}
    value = meta.get(f'{task}_{what}')
    if value is None and isinstance(meta.get(what), dict):
        value = meta[what].get(task)
    spec = TASKS.get(task)
    if value is None and spec is not None and spec.meta_prefix is not None:
        candidate = meta.get(f'{spec.meta_prefix}{what}')
        if candidate is not None and not isinstance(candidate, (dict, str)):
            value = candidate
    return list(value) if value is not None else None


# The reference's tasks, in its concatenation order (which the CTM checkpoints depend on).
for _spec in (
    dict(name='semseg', label_dtype='int64', loss=dict(type='PixelCrossEntropyLoss'),
         activation='argmax', evaluator='segmentation', draw='segmentation',
         delta_m=('mIoU', True), meta_prefix=''),
    dict(name='depth', out_channels=1, pad_value=0, ignore_rule='zero_value',
         loss=dict(type='DepthL1Loss'), activation='relu', evaluator='depth', draw='depth',
         delta_m=('rmse', False)),
    dict(name='human_parts', label_dtype='int64', ignore_rule='empty_map',
         loss=dict(type='PixelCrossEntropyLoss'), activation='argmax',
         evaluator='segmentation', draw='segmentation', delta_m=('mIoU', True),
         meta_prefix='part_'),
    dict(name='sal', loss=dict(type='BalancedSaliencyLoss'), activation='softmax_foreground',
         evaluator='saliency', draw='probability', delta_m=('maxF', True)),
    dict(name='normals', gt_channels=3, out_channels=3, pad_value=0, ignore_rule='zero_vector',
         label_interpolation='bicubic', mirror_channels=True, loss=dict(type='NormalsL1Loss'),
         activation='l2_normalize', evaluator='normals', draw='normals',
         delta_m=('mean', False)),
    dict(name='edge', out_channels=1, loss=dict(type='BalancedBCEEdgeLoss', pos_weight=0.95),
         activation='sigmoid', evaluator='boundary', draw='probability',
         delta_m=('odsF', True)),
):
    TASKS.register(dict(_spec, order=len(TASKS)))
del _spec
#: The names of mmmt's own tasks, which a registered task cannot redefine without force.
BUILTIN_TASKS = tuple(TASKS)
