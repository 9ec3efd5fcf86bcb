"""Command-line plumbing shared by ``tools/train.py`` and ``tools/test.py``.

Both scripts take the same launcher, work-dir, config-override and checkpoint-trust options and
turn them into a config and a :class:`~mmengine.runner.Runner` the same way; keeping that in one
place means a fix (e.g. to the CPU distributed setup) reaches both.

Argument parsing imports only the standard library: torch, mmengine and the rest of mmmt are
imported by the functions that need them, after :func:`parse_runner_args` has answered
``--help`` and set the CPU thread defaults (:func:`~mmmt.utils.threads.configure_cpu_threads`),
which OpenMP reads when torch is imported.
"""
import argparse
import ast
import logging
import os
import os.path as osp
import random
import re
import traceback
from typing import TYPE_CHECKING, Any, Iterator, List, Optional, Tuple

from .errors import InputFileNotFoundError, UserInputError, did_you_mean
from .threads import configure_cpu_threads

if TYPE_CHECKING:
    from mmengine.config import Config
    from mmengine.runner import Runner

__all__ = [
    'add_runner_args', 'add_model_input_args', 'warn_misspelled_keys', 'parse_runner_args',
    'load_runner_config', 'build_runner', 'isolate_run', 'claim_log_stamp',
    'shutdown_distributed', 'set_data_root', 'pipeline_seed_offset',
    'merge_cfg_options', 'LazyDictAction', 'read_config', 'check_config_file',
    'config_from_file', 'check_evaluator_matches_head', 'check_evaluator_matches_data',
    'warn_unevaluated_head_tasks', 'check_loop_settings', 'check_work_dir_path',
    'add_json_output_args', 'check_output_file', 'write_output_file',
    'deterministic_cuda_setup', 'CUBLAS_DETERMINISTIC'
]


class LazyDictAction(argparse.Action):
    """mmengine's ``DictAction`` (``KEY=VALUE`` pairs), imported only when the option is used,
    with a usage error for items that are not ``KEY=VALUE`` (``DictAction`` fails with a bare
    ``ValueError: not enough values to unpack``)."""

    def __call__(self, parser, namespace, values, option_string=None):
        for item in values:
            key, sep, _ = item.partition('=')
            if not sep or not key:
                parser.error(f'{option_string} expects KEY=VALUE items (e.g. '
                             f'train_dataloader.batch_size=8), got {item!r}')
        from mmengine.config import DictAction
        DictAction(self.option_strings, self.dest, nargs=self.nargs)(
            parser, namespace, values, option_string)


def _runner_keys() -> set:
    """The top-level config keys that mmengine's Runner (or mmmt's tools) read."""
    import inspect

    from mmengine.runner import Runner
    keys = set(inspect.signature(Runner.__init__).parameters) - {'self'}
    return keys | {'launcher', 'vis_backends', 'model_wrapper_cfg', 'custom_imports',
                   'gpu_ids', 'compile', 'strategy', 'cfg', 'custom_tasks'}


def warn_misspelled_keys(cfg: 'Config') -> List[str]:
    """Warn about top-level keys that look like a misspelt Runner setting (``lod_from``).

    Configs also hold helper variables (``crop_size``, ``tasks`` ...), so only keys within a
    small edit distance of a real setting are reported.

    Returns:
        list[str]: The reported keys.
    """
    from mmengine.logging import print_log
    known = _runner_keys()
    reported = []
    for key in cfg.keys():
        if key in known or key.startswith('_'):
            continue
        hint = did_you_mean(key, known, cutoff=0.8)
        if hint:
            reported.append(key)
            print_log(f'config key {key!r} is not read by the Runner (ignored); {hint}',
                      logger='current', level=logging.WARNING)
    return reported


def add_runner_args(parser: argparse.ArgumentParser, trust_help: str,
                    work_dir_help: str = 'where logs, metrics and checkpoints are written'
                    ) -> None:
    """Add the options every Runner-based tool shares.

    Args:
        parser (argparse.ArgumentParser): The tool's parser.
        trust_help (str): Help text of ``--trust-checkpoint`` (what gets unpickled differs
            between training and testing).
        work_dir_help (str): What the tool writes into ``--work-dir`` (a test writes no
            checkpoints); the default folder is appended.
    """
    parser.add_argument('--work-dir',
                        help=f'{work_dir_help} (default: ./work_dirs/<config name>)')
    parser.add_argument(
        '--data-root', metavar='DIR',
        help="the dataset folder of every dataloader of the config (the config's data_root; "
        "`--cfg-options data_root=DIR` does the same)")
    parser.add_argument('--trust-checkpoint', action='store_true', help=trust_help)
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=LazyDictAction,
        metavar='KEY=VALUE',
        help='override settings in the config, e.g. model.decode_head.with_cp=True')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
        help='job launcher')
    # torch.distributed.launch passes --local-rank; torchrun sets LOCAL_RANK instead
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def add_model_input_args(parser: argparse.ArgumentParser) -> None:
    """Add the config and input-size arguments the model benchmarks share (without importing
    torch, so that their ``--help`` stays fast).

    Args:
        parser (argparse.ArgumentParser): The tool's parser.
    """
    parser.add_argument('config')
    parser.add_argument('--shape', type=_multiple_of_32, nargs=2, metavar=('H', 'W'),
                        default=[448, 576],
                        help='input size, multiples of 32 (default 448 576, the NYUDv2 crop)')
    parser.add_argument('--batch-size', type=int, default=1)


def _multiple_of_32(value: str) -> int:
    """An input side for the model: a positive multiple of 32, which the encoder's four 2x
    downsamplings and the decoder's skips need (the data preprocessor pads images to it);
    another value failed deep in the decoder with a traceback."""
    try:
        side = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f'invalid int value: {value!r}') from None
    if side <= 0 or side % 32:
        raise argparse.ArgumentTypeError(
            f'{side} is not a positive multiple of 32 (the model pads its inputs to 32, '
            f'size_divisor=32), e.g. {max(32, -(-side // 32) * 32)}')
    return side


def parse_runner_args(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """Parse the arguments, export ``LOCAL_RANK`` for launchers that only pass a flag and set
    the CPU thread defaults (before torch is imported; see :mod:`mmmt.utils.threads`)."""
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    configure_cpu_threads()
    return args


def _dataset_configs(node: Any) -> List[dict]:
    """The dataset configs of a dataloader's ``dataset``, through wrappers (``dataset``,
    ``datasets``)."""
    if isinstance(node, (list, tuple)):
        return [d for item in node for d in _dataset_configs(item)]
    if not isinstance(node, dict):
        return []
    inner = node.get('dataset', None), node.get('datasets', None)
    if any(x is not None for x in inner):
        return [d for x in inner for d in _dataset_configs(x)]
    return [node]


def set_data_root(cfg: 'Config', data_root: str) -> int:
    """Point every dataset of the config's train/val/test dataloaders at ``data_root``.

    A config's top-level ``data_root`` is a variable that was already substituted into the
    dataloaders when the file was read, so setting it afterwards changes nothing; this sets
    the dataset field itself.

    Args:
        cfg (Config): The config; modified in place.
        data_root (str): The dataset folder.

    Returns:
        int: How many dataset configs were changed.

    Raises:
        SystemExit: the config has no dataset with a ``data_root`` field.
    """
    count = 0
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        for dataset in _dataset_configs((cfg.get(loader) or {}).get('dataset')):
            if 'data_root' in dataset:
                dataset['data_root'] = data_root
                count += 1
    if not count:
        raise SystemExit('--data-root: no dataloader of the config has a dataset with a '
                         'data_root field')
    cfg.data_root = data_root
    return count


def _option_path_problem(cfg: Any, key: str) -> Optional[str]:
    """Where the dotted ``key`` stops fitting ``cfg``: a part after a value that is neither a
    dict nor a list, or a list indexed by a name (None when every step fits)."""
    node, path = cfg, []
    for part in key.split('.')[:-1]:
        where = '.'.join(path) or 'the config'
        if isinstance(node, dict) or hasattr(node, 'keys'):  # a ConfigDict or the Config
            if part not in node:
                return None  # a new key: mmengine creates it
            node = node[part]
        elif isinstance(node, (list, tuple)):
            if not any(isinstance(x, dict) or hasattr(x, 'keys') for x in node):
                # indexing would only reach a value without fields (e.g. the task names of
                # the demo's test_evaluator.tasks): say so instead of advising an index
                shown = ', '.join(repr(x) for x in node[:4]) + (', ...' if len(node) > 4 else '')
                return (f'{where} is a list of {len(node)} values ({shown}), none of them a '
                        'dict, so nothing inside it can be set; set '
                        f'{where}=[...] whole, or write the option into a child config '
                        f'({where.rsplit(".", 1)[-1]}=dict(_delete_=True, ...) replaces it)')
            if not part.isdigit() or int(part) >= len(node):
                return (f'{where} is a list of {len(node)}: index it by number '
                        f'({where}.0...) or set it whole')
            node = node[int(part)]
        else:
            return f'{where} is {node!r}, not a dict'
        path.append(part)
    if path and not (isinstance(node, (dict, list, tuple)) or hasattr(node, 'keys')):
        return f"{'.'.join(path)} is {node!r}, not a dict"
    if isinstance(node, (list, tuple)):
        where = '.'.join(path)
        return (f'{where} is a list, whose items --cfg-options can only merge dicts into; '
                f'set {where}=[...] whole')
    return None


def merge_cfg_options(cfg: 'Config', cfg_options: Optional[dict],
                      data_root: Optional[str] = None) -> 'Config':
    """Apply ``--cfg-options`` and ``--data-root`` to a config.

    ``data_root=DIR`` among the options means ``--data-root DIR``: merged as it is it would
    only set the config's variable, which the dataloaders no longer read.

    Args:
        cfg (Config): The config; modified in place.
        cfg_options (dict, optional): ``KEY=VALUE`` overrides (dotted keys).
        data_root (str, optional): The value of ``--data-root``; wins over the options'.

    Returns:
        Config: ``cfg``.

    Raises:
        UserInputError: An option that does not fit the config (e.g. a dotted key through a
            list by name, or a dict over a value that is not one); the message names it.
    """
    options = dict(cfg_options or {})
    data_root = data_root or options.pop('data_root', None)
    options.pop('data_root', None)
    for key, value in options.items():  # one at a time, so that an error names its key
        try:
            cfg.merge_from_dict({key: value})
        except (TypeError, KeyError, AttributeError) as e:
            # mmengine's own words ("'str' object has no attribute 'copy'") name no key
            raise UserInputError(f'--cfg-options {key}={value!r} does not fit the config: '
                                 f'{_option_path_problem(cfg, key) or e}') from e
    if data_root is not None:
        set_data_root(cfg, data_root)
    return cfg


#: The file types mmengine's Config.fromfile reads.
_CONFIG_EXTENSIONS = ('.py', '.yml', '.yaml', '.json')


def _config_hint(path: str) -> str:
    """For a config path that is no file: the config of the model of that name
    (model-index.yml), else the closest config file of its folder; '' when neither."""
    from .model_index import config_of_model
    try:
        config = config_of_model(path)
    except (OSError, UserInputError, ValueError):  # an index that does not read: no hint
        config = None
    if config is not None:
        if not osp.relpath(config).startswith(os.pardir):
            config = osp.relpath(config)
        return f' (it is the name of a model of model-index.yml: its config is {config})'
    folder = osp.dirname(path) or '.'
    if not osp.isdir(folder):
        return ''
    names = [n for n in os.listdir(folder) if osp.splitext(n)[1] in _CONFIG_EXTENSIONS]
    hint = did_you_mean(osp.basename(path), names)
    if not hint:
        return ''
    closest = hint[len("did you mean '"):-len("'?")]
    return f'; did you mean {osp.join(osp.dirname(path), closest)!r}?'


def missing_checkpoint_message(path: str) -> str:
    """``checkpoint not found: PATH``, or for a folder (a work dir given where its checkpoint
    goes) the checkpoint to give instead: the one its ``last_checkpoint`` names, else its
    first ``.pth`` file."""
    if not osp.isdir(path):
        return f'checkpoint not found: {path}'
    example = None
    pointer = osp.join(path, 'last_checkpoint')
    if osp.isfile(pointer):
        with open(pointer, encoding='utf-8', errors='replace') as f:
            named = f.read().strip()
        own = osp.join(path, osp.basename(named)) if named else ''
        # the folder's own file first: a copied work dir's pointer names the original's
        example = own if osp.isfile(own) else (named if osp.isfile(named) else None)
    if example is None:
        names = sorted(n for n in os.listdir(path) if n.endswith('.pth'))
        example = osp.join(path, names[0]) if names else None
    if example is None:
        return f'{path} is a folder, not a checkpoint, and holds no .pth file'
    return f'{path} is a folder, not a checkpoint; give a checkpoint file such as {example}'


def check_config_file(path: str) -> None:
    """Stop with a one-line error when the config file ``path`` is missing; cheap, so tools
    call it before their slow imports.

    Raises:
        InputFileNotFoundError: ``path`` is not a file (mmengine would raise a plain
            ``FileNotFoundError``, which the tools cannot tell from a bug).
        UserInputError: ``path`` has none of the extensions mmengine reads configs from (a
            checkpoint given first: ``test.py CHECKPOINT CONFIG``), where mmengine raised
            "OSError: Only py/yml/yaml/json type are supported now!", naming no file.
    """
    if not osp.isfile(path):
        raise InputFileNotFoundError(f'config file not found: {path}{_config_hint(path)}')
    if osp.splitext(path)[1] not in _CONFIG_EXTENSIONS:
        raise UserInputError(f'{path} is not a config file (expected '
                             f'{", ".join(_CONFIG_EXTENSIONS)}); the config comes first, e.g. '
                             'tools/test.py CONFIG CHECKPOINT')


def _local_config_files(path: str) -> Iterator[Tuple[str, Optional[SyntaxError]]]:
    """``path`` and its ``_base_`` files given by a relative path (a package's ``mmseg::``
    bases are not the user's), each with the ``SyntaxError`` Python finds in it (or None;
    the bases of a file that does not parse are not followed)."""
    pending, seen = [osp.abspath(path)], set()
    while pending:
        file = pending.pop(0)
        if file in seen or not osp.isfile(file):
            continue
        seen.add(file)
        with open(file, encoding='utf-8') as f:
            source = f.read()
        try:
            tree = ast.parse(source, filename=file)
        except SyntaxError as e:
            yield file, e
            continue
        yield file, None
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == '_base_' for t in node.targets):
                try:
                    bases = ast.literal_eval(node.value)
                except ValueError:
                    continue
                for base in [bases] if isinstance(bases, str) else list(bases):
                    if isinstance(base, str) and '::' not in base:
                        pending.append(osp.normpath(osp.join(osp.dirname(file), base)))


def config_from_file(path: str) -> 'Config':
    """``Config.fromfile(path)``; a Python syntax error in the config or one of its
    ``_base_`` files is a one-line :class:`~mmmt.utils.UserInputError` naming the file and the
    line (mmengine's own ``SyntaxError`` names neither), and so are a name the config uses but
    does not define (most often a base's variable, which a child cannot name) and a child's
    dict over a base's value of another type (without ``_delete_=True``).

    Args:
        path (str): The config file (its existence is the caller's check).

    Returns:
        Config: The config.
    """
    from mmengine.config import Config
    try:
        # custom_imports are imported below, where a module that is not there is named
        cfg = Config.fromfile(path, import_custom_modules=False)
    except AssertionError as e:
        # mmengine 0.10 resolves `package::` bases only for its hard-coded OpenMMLab packages
        found = re.match(r'mmengine does not support to load (\S+) config', str(e))
        if not found:
            raise
        raise UserInputError(
            f"config {path} (or one of its _base_ files): mmengine cannot resolve a "
            f"'{found.group(1)}::' _base_ (it knows only its own list of OpenMMLab packages); "
            "write the base config's path instead (docs/installation.md, 'Inheriting from "
            "mmmt's configs')") from e
    except SyntaxError as e:
        where = next((f'{file}, line {err.lineno}: {err.msg}'
                      for file, err in _local_config_files(path) if err), None)
        where = where or f'{path} or one of its _base_ files: {e.msg or e}'
        raise UserInputError(f'config syntax error in {where}') from e
    except TypeError as e:
        # mmengine's message on a child dict over a base's non-dict names the key and the way
        # out (_delete_=True) but no file
        if 'cannot inherit from base' not in str(e):
            raise
        raise UserInputError(f'config {path} (or one of its _base_ files): {e}') from e
    except NameError as e:
        # only a name in a config file itself (mmengine runs it under its own file name), not
        # one in a module its custom_imports import: that is a bug with its traceback
        frames = traceback.extract_tb(e.__traceback__)
        configs = {file for file, _ in _local_config_files(path)}
        if not frames or osp.abspath(frames[-1].filename) not in configs:
            raise
        name = getattr(e, 'name', None) or 'X'
        raise UserInputError(
            f'config {frames[-1].filename}, line {frames[-1].lineno}: {e}. A config cannot '
            f"name the variables of its _base_ files: write {{{{_base_.{name}}}}} for a base's "
            'value, or define it in the file') from e
    _import_custom_modules(cfg, path)
    return cfg


def _import_custom_modules(cfg: 'Config', path: str) -> None:
    """Import the config's ``custom_imports`` as ``Config.fromfile`` would, but name an entry
    that is not importable at all (a misspelt name, a project that is not on ``sys.path``) in
    one line: mmengine's error is a traceback that lists ``sys.path``. A module that is found
    but fails inside (its own imports) keeps its traceback: that is a bug in it."""
    import importlib

    from mmengine.utils import import_modules_from_strings
    custom = cfg.get('custom_imports')
    if not custom:
        return
    if isinstance(custom, dict) and not custom.get('allow_failed_imports', False):
        entries = custom.get('imports') or []
        for entry in [entries] if isinstance(entries, str) else entries:
            if not isinstance(entry, str):
                continue  # mmengine's own TypeError below names it
            try:
                importlib.import_module(entry)
            except ModuleNotFoundError as e:
                parts = entry.split('.')
                if e.name not in {'.'.join(parts[:i]) for i in range(1, len(parts) + 1)}:
                    raise
                raise UserInputError(
                    f'config {path} (or one of its _base_ files): custom_imports entry '
                    f"{entry!r} cannot be imported (no module named {e.name!r}); put the folder "
                    'that holds it on PYTHONPATH or install it') from e
    import_modules_from_strings(**custom)


def read_config(path: str) -> 'Config':
    """``Config.fromfile(path)``, stopping with a one-line error when the file is missing.

    Args:
        path (str): The config file.

    Returns:
        Config: The config.

    Raises:
        InputFileNotFoundError: ``path`` is not a file (:func:`check_config_file`).
    """
    check_config_file(path)
    return config_from_file(path)


def load_runner_config(args: argparse.Namespace) -> 'Config':
    """Read ``args.config`` and fold in the shared options.

    Registers mmmt's modules, honours ``--trust-checkpoint`` (through the environment, so that
    every checkpoint load of the run sees it), applies ``--cfg-options`` and resolves the work
    directory the way mmseg's tools do.

    Args:
        args (argparse.Namespace): Parsed arguments with ``config`` and the options of
            :func:`add_runner_args`.

    Returns:
        Config: The config, ready for tool-specific changes.

    Raises:
        InputFileNotFoundError: ``args.config`` is not a file (checked before the imports
            below, which take seconds).
    """
    check_config_file(args.config)
    from .checkpoint import TRUST_ENV
    from .setup_env import register_all_modules
    if args.trust_checkpoint:
        os.environ[TRUST_ENV] = '1'
    register_all_modules(init_default_scope=False)
    cfg = config_from_file(args.config)
    cfg.launcher = args.launcher
    merge_cfg_options(cfg, args.cfg_options, args.data_root)
    from mmmt.structures import register_tasks
    register_tasks(cfg.get('custom_tasks'))  # tasks defined in the config itself
    warn_misspelled_keys(cfg)
    check_evaluator_matches_head(cfg)
    check_evaluator_matches_data(cfg)
    warn_unevaluated_head_tasks(cfg)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    check_work_dir_path(str(cfg.work_dir), '--work-dir' if args.work_dir is not None else
                        'work_dir')
    return cfg


def check_work_dir_path(work_dir: str, what: str) -> None:
    """Stop when ``work_dir`` cannot be a folder: it, or the nearest part of its path that
    exists, is a file (mmengine's Runner ended in a FileExistsError or NotADirectoryError
    traceback from ``os.makedirs``).

    Args:
        work_dir (str): The work directory (local; a URL is not checked).
        what (str): How the user gave it (``--work-dir`` or the config's ``work_dir``).

    Raises:
        UserInputError: ``work_dir`` or one of the folders above it is a file.
    """
    if '://' in work_dir:
        return
    path = osp.abspath(work_dir)
    while not osp.exists(path) and osp.dirname(path) != path:
        path = osp.dirname(path)
    if osp.isdir(path):
        return
    if path == osp.abspath(work_dir):
        raise UserInputError(f'{what} {work_dir} is a file; give a folder')
    raise UserInputError(f'{what} {work_dir} cannot be made: {path}, in its path, is a file; '
                         'give a folder')


def _head_tasks_option(cfg: 'Config') -> Any:
    """``model.decode_head.tasks`` as the config gives it, or None."""
    head = (cfg.get('model') or {}).get('decode_head') or {}
    return head.get('tasks') if isinstance(head, dict) else None


def _head_tasks(cfg: 'Config') -> Optional[List[str]]:
    """The task names of ``model.decode_head.tasks`` (a mapping, a list or one name), or None
    when the head names no tasks (a single-task mmseg head)."""
    tasks = _head_tasks_option(cfg)
    if isinstance(tasks, str):
        return [tasks]
    return list(tasks) if isinstance(tasks, (dict, list, tuple)) else None


def check_evaluator_matches_head(cfg: 'Config') -> None:
    """Stop when an evaluator does not fit the head: a task it scores that the head does not
    predict, or a ``num_classes`` for a task that differs from the head's channels.

    A task the head does not predict (``model.decode_head.tasks`` without normals while the
    evaluator lists it, e.g. a child config's head replaced with ``_delete_=True``) trained to
    the end and then failed at the first validation with "KeyError: sample ... has gt_normals
    but no pred_normals" (or, without its ground truth either, gave no metric for it at all).

    A new class task (docs/how_to_add_a_task.md) has no class names in the dataset meta, so its
    evaluator's ``num_classes`` is the only count the metric has: with more classes than the
    head predicts, the classes it can never predict count as IoU 0 and mIoU comes out too low;
    with fewer, the head's extra class counts as wrong everywhere. Neither fails by itself.

    Args:
        cfg (Config): The merged config.

    Raises:
        UserInputError: A ``{val,test}_evaluator`` scores a task that is not in
            ``model.decode_head.tasks``, or its ``tasks.<task>.num_classes`` (or that of one
            metric of an evaluator list) differs from ``model.decode_head.tasks.<task>``.
    """
    head_tasks = _head_tasks(cfg)
    if head_tasks is None:
        return
    for key in ('val_evaluator', 'test_evaluator'):
        scored = _metric_tasks(cfg.get(key)) or set()
        unpredicted = sorted(scored - set(head_tasks))
        if unpredicted:
            raise UserInputError(
                f'{key} scores {", ".join(unpredicted)}, which the model does not predict '
                f'(model.decode_head.tasks: {", ".join(head_tasks)}); its metric would fail '
                f'at the first evaluation. Remove {"them" if len(unpredicted) > 1 else "it"} '
                f'from {key}.tasks or add {"them" if len(unpredicted) > 1 else "it"} to the '
                'head')
    channels = _head_tasks_option(cfg)
    if not isinstance(channels, dict):
        return
    for key in ('val_evaluator', 'test_evaluator'):
        evaluator = cfg.get(key)
        # one metric, or a list of them (e.g. the metric and DumpMultiTaskPredictions)
        metrics = enumerate(evaluator) if isinstance(evaluator, (list, tuple)) else [
            (None, evaluator)]
        for i, metric in metrics:
            tasks = metric.get('tasks') if isinstance(metric, dict) else None
            if not isinstance(tasks, dict):  # a list of names, or no evaluator (val_cfg=None)
                continue
            where = key if i is None else f'{key}[{i}]'
            for task, options in tasks.items():
                n = options.get('num_classes') if isinstance(options, dict) else None
                c = channels.get(task)
                if isinstance(n, int) and isinstance(c, int) and n != c:
                    raise UserInputError(
                        f'{where}.tasks.{task}.num_classes is {n} but '
                        f'model.decode_head.tasks.{task} is {c}: the metric would score {n} '
                        f'classes of a head that predicts {c}; set them to the same count')


def check_evaluator_matches_data(cfg: 'Config') -> None:
    """Stop when an evaluator scores a task that its dataloader's dataset does not load.

    ``val_dataloader.dataset.tasks=['semseg', 'depth']`` under an evaluator of four tasks
    trained to the end and then gave, at each validation, only "no sample with ground truth
    for 'normals'" and no normals metric (nor ``multi_task/delta_m``). Only a dataset config
    that lists its ``tasks`` is checked (a wrapper or a dataset's default tasks are not known
    before it is built).

    Args:
        cfg (Config): The merged config.

    Raises:
        UserInputError: ``{val,test}_evaluator`` scores a task that is not in
            ``{val,test}_dataloader.dataset.tasks``.
    """
    for split in ('val', 'test'):
        loader = cfg.get(f'{split}_dataloader')
        dataset = loader.get('dataset') if isinstance(loader, dict) else None
        loaded = dataset.get('tasks') if isinstance(dataset, dict) else None
        if not isinstance(loaded, (list, tuple)):
            continue
        unloaded = sorted((_metric_tasks(cfg.get(f'{split}_evaluator')) or set()) - set(loaded))
        if unloaded:
            them = 'them' if len(unloaded) > 1 else 'it'
            raise UserInputError(
                f'{split}_evaluator scores {", ".join(unloaded)}, which {split}_dataloader.'
                f'dataset.tasks ({", ".join(loaded)}) does not load: its metric would have no '
                f'ground truth. Add {them} to the dataset\'s tasks or remove {them} from '
                f'{split}_evaluator.tasks')


def _metric_tasks(evaluator: Any) -> Optional[set]:
    """The tasks an evaluator config scores: the union of its metrics' ``tasks`` (a mapping
    or a list of names), or None when no metric names tasks (a metric of another kind, e.g.
    only ``DumpMultiTaskPredictions``: what it scores is unknown here)."""
    metrics = evaluator if isinstance(evaluator, (list, tuple)) else [evaluator]
    found = None
    for metric in metrics:
        tasks = metric.get('tasks') if isinstance(metric, dict) else None
        if tasks is None:
            continue
        names = [tasks] if isinstance(tasks, str) else list(tasks)
        found = (found or set()) | {t for t in names if isinstance(t, str)}
    return found


def warn_unevaluated_head_tasks(cfg: 'Config') -> List[str]:
    """Warn about the head's tasks that an evaluator has no metric for.

    A ``val_evaluator`` without ``edge`` while the head predicts edge trains edge and reports
    nothing for it, silently; some do that on purpose (an auxiliary task), hence a warning and
    not an error. ``val_evaluator`` and ``test_evaluator`` missing the same tasks (the shipped
    configs share one dict) are named in one warning.

    Args:
        cfg (Config): The merged config.

    Returns:
        list[str]: The warnings given.
    """
    from mmengine.logging import print_log
    head_tasks = _head_tasks(cfg)
    if head_tasks is None:
        return []
    missing_by_key = {}
    for key in ('val_evaluator', 'test_evaluator'):
        scored = _metric_tasks(cfg.get(key))
        if scored is None:  # no evaluator (val_cfg=None), or no metric that names tasks
            continue
        missing = tuple(t for t in head_tasks if t not in scored)
        if missing:
            missing_by_key.setdefault(missing, []).append(key)
    warnings = []
    for missing, keys in missing_by_key.items():
        names, verb = ', '.join(missing), 'have' if len(keys) > 1 else 'has'
        warnings.append(
            f'{" and ".join(keys)} {verb} no metric for the head task(s) {names} '
            f'(model.decode_head.tasks): they are trained and predicted, but not evaluated. '
            f'Add them to {keys[0]}.tasks unless that is intended')
        print_log(warnings[-1], logger='current', level=logging.WARNING)
    return warnings


def isolate_run(cfg) -> None:
    """Make a run build mmengine objects of its own when an earlier run of this process built
    some (a tool's ``main()`` called twice: a notebook, a sweep script); :func:`build_runner`
    calls it.

    mmengine's visualizer, logger and message hub are global by name (``ManagerMixin``) and
    building one of a name that exists hands back the existing one. The configs name the
    visualizer ``'visualizer'``: a second run wrote its scalars and its config into the first
    run's log folder. The logger and message hub are named ``<config name>_<timestamp>`` and
    the log folder ``<work_dir>/<timestamp>``, to the second: those are claimed when the
    Runner is built (:func:`claim_log_stamp`).

    Args:
        cfg (Config): The final config; its visualizer name may be changed in place.
    """
    from mmengine.visualization import Visualizer
    vis = cfg.get('visualizer')
    name = vis.get('name') if isinstance(vis, dict) else None
    # Visualizer.get_instance files every subclass's instances under Visualizer too
    if name is not None and Visualizer.check_instance_created(name):
        n = 2
        while Visualizer.check_instance_created(f'{name}_{n}'):
            n += 1
        vis['name'] = f'{name}_{n}'


def claim_log_stamp(work_dir: str, experiment: Optional[str]) -> str:
    """The timestamp for a run's log folder ``<work_dir>/<timestamp>``, which this creates.

    mmengine names the log folder and the logger (``<experiment>_<timestamp>``) after the
    second the Runner was built, and creates the folder if it is missing: two runs started
    within one second, in one process (a sweep script) or in two (``tools/test.py ... &``
    twice in one work dir), wrote into one log file and one ``vis_data``. A second whose
    folder another run has created (``os.mkdir`` lets exactly one run create it) or whose
    logger this process holds is passed over for the next.

    Args:
        work_dir (str): The run's work dir, which exists.
        experiment (str, optional): The prefix of mmengine's logger name: the config's
            ``experiment_name``, else the config file's name without extension.

    Returns:
        str: The timestamp, formatted as mmengine formats it (``%Y%m%d_%H%M%S``).
    """
    import time

    from mmengine.logging import MMLogger
    while True:
        stamp = time.strftime('%Y%m%d_%H%M%S')
        if not MMLogger.check_instance_created(f'{experiment}_{stamp}' if experiment
                                               else stamp):
            try:
                os.mkdir(osp.join(work_dir, stamp))
                return stamp
            except FileExistsError:
                pass
        time.sleep(1.0 - time.time() % 1.0 + 0.01)  # the next second


#: The settings of each of mmengine's loops, which its Runner takes all or none of.
_LOOP_SETTINGS = {
    'training': ('train_dataloader', 'train_cfg', 'optim_wrapper'),
    'validation': ('val_dataloader', 'val_cfg', 'val_evaluator'),
    'testing': ('test_dataloader', 'test_cfg', 'test_evaluator'),
}


def check_loop_settings(cfg: 'Config') -> None:
    """Stop when a loop's settings are set in part (``--cfg-options val_cfg=None`` alone, to
    train without validation): mmengine's Runner refuses that with a ValueError traceback
    that prints the whole of the other two.

    Args:
        cfg (Config): The final config.

    Raises:
        UserInputError: One or two of a loop's three settings are None.
    """
    for loop, keys in _LOOP_SETTINGS.items():
        unset = [k for k in keys if cfg.get(k) is None]
        if 0 < len(unset) < len(keys):
            given = [k for k in keys if k not in unset]
            raise UserInputError(
                f'{" and ".join(unset)} {"is" if len(unset) == 1 else "are"} None but '
                f'{" and ".join(given)} {"is" if len(given) == 1 else "are"} set: mmengine '
                f'runs {loop} with all three or none. Without {loop}: --cfg-options '
                + ' '.join(f'{k}=None' for k in keys))


def build_runner(cfg: 'Config', what: str) -> 'Runner':
    """Build the Runner, setting up gloo first when a launcher is used without CUDA.

    Args:
        cfg (Config): The final config (``cfg.launcher`` set).
        what (str): 'training' or 'testing', for the log line.

    Returns:
        Runner: The runner built from ``cfg``.

    Raises:
        UserInputError: A loop's settings are set in part (:func:`check_loop_settings`).
    """
    from .dist_utils import check_launcher_env, setup_cpu_distributed
    check_loop_settings(cfg)
    check_launcher_env(cfg.launcher)
    isolate_run(cfg)
    from mmengine.logging import print_log

    if setup_cpu_distributed(cfg, cfg.launcher):
        print_log(f'No CUDA device: distributed {what} on the CPU with the gloo backend.',
                  logger='current', level=logging.INFO)
    return _runner_class().from_cfg(cfg)


class _ShortStartup(logging.Filter):
    """Shortens mmengine's two longest start-up records unless the log level is DEBUG.

    The whole config (450 lines for the demo) and the table of hooks (70 lines) come before the
    first progress line; each becomes one line saying where to find it.
    """

    SHORT = (('Config:\n', 'Config: not shown (saved in the work dir; all of it with '
              '--cfg-options log_level=DEBUG)'),
             ('Hooks will be executed', 'Hooks: the order is shown with --cfg-options '
              'log_level=DEBUG'))

    def filter(self, record: logging.LogRecord) -> bool:
        if not isinstance(record.msg, str):
            return True
        for prefix, short in self.SHORT:
            if record.msg.startswith(prefix):
                record.msg, record.args = short, ()
        return True


class _HarmlessNotices(logging.Filter):
    """Drops mmengine's deprecation notices about a ``FileClient`` the user never asked for.

    mmengine 0.10 builds one for backward compatibility in ``CheckpointHook.before_train`` and
    in every ``save_checkpoint``, whether or not ``file_client_args`` is set (mmmt's configs use
    ``backend_args``); the notices ('"FileClient" will be deprecated', '"HardDiskBackend" is
    the alias of "LocalBackend"') name nothing a user can change.
    """

    NOTICE = re.compile(r'"(FileClient" will be deprecated in future|'
                        r'HardDiskBackend" is the alias of "LocalBackend")')

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name == 'mmengine' and isinstance(record.msg, str)
                    and self.NOTICE.match(record.msg))


class _CPUProcessCount(logging.Filter):
    """On a machine without CUDA, relabels mmengine's ``GPU number: N`` start-up line as
    ``Processes: N (CPU, no GPU)``: mmengine writes its world size under that label whatever
    the device, and a CPU run read as if it had found a GPU."""

    LINE = re.compile(r'^(\s*)GPU number: (\d+)$', re.M)

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and 'Runtime environment:' in record.msg:
            import torch
            if not torch.cuda.is_available():
                record.msg = self.LINE.sub(r'\1Processes: \2 (CPU, no GPU)', record.msg)
        return True


def pipeline_seed_offset(rank: int, world_size: int, num_workers: Optional[int],
                         diff_rank_seed: bool) -> int:
    """What to add to the seed of this process's ``random`` and ``np.random`` so that
    distributed ranks without dataloader workers augment differently; 0 where nothing is to
    change.

    The training pipeline draws its crops, scales and flips from ``np.random`` (as mmcv's and
    mmseg's transforms do). mmengine seeds every dataloader worker from its rank
    (``worker_init_fn``), but with ``num_workers=0`` the pipeline runs in the rank's own
    process, which ``randomness.diff_rank_seed=False`` (the default) seeds alike on every
    rank: all ranks cropped and flipped their different images the same way. Only the data
    streams are offset (torch's seed, and so the model's draws, stay those of the config);
    rank 0 and single-process runs are unchanged.

    Args:
        rank (int): The process's rank.
        world_size (int): The number of processes.
        num_workers (int, optional): ``train_dataloader.num_workers`` (None: no training
            dataloader config).
        diff_rank_seed (bool): ``randomness.diff_rank_seed`` (mmengine then already seeds
            every rank differently).

    Returns:
        int: The rank, or 0.
    """
    if world_size > 1 and num_workers == 0 and not diff_rank_seed:
        return rank
    return 0


_RUNNER_CLASS = None


def _runner_class() -> type:
    """mmengine's Runner whose log is short at start-up (:class:`_ShortStartup`), free of
    :class:`_HarmlessNotices`, names a CPU run's processes as such (:class:`_CPUProcessCount`),
    and which never replaces another run's config copy."""
    global _RUNNER_CLASS
    if _RUNNER_CLASS is None:
        import numpy as np
        from mmengine.dist import broadcast_object_list, is_main_process, master_only
        from mmengine.runner import Runner

        from .fileio import atomic_write

        class ToolRunner(Runner):

            def setup_env(self, env_cfg: dict) -> None:
                super().setup_env(env_cfg)
                # mmengine's timestamp may name another run's log folder: rank 0 claims one
                # of its own (claim_log_stamp) and every rank takes its name
                if self.cfg.get('experiment_name'):
                    experiment = self.cfg.experiment_name
                else:
                    experiment = osp.splitext(osp.basename(self.cfg.filename))[0] \
                        if self.cfg.filename else None
                stamp = [claim_log_stamp(self.work_dir, experiment)
                         if self.rank == 0 else None]
                broadcast_object_list(stamp)
                self._timestamp = stamp[0]

            def _config_copy(self) -> Tuple[str, str, bool]:
                """(path of the work dir's config copy, this run's config text, whether
                the copy there holds that text)."""
                name = osp.basename(self.cfg.filename) if self.cfg.filename \
                    else f'{self.timestamp}.py'
                path, text = osp.join(self.work_dir, name), self.cfg.dump()
                if not osp.exists(path):
                    return path, text, False
                with open(path, encoding='utf-8', errors='replace') as f:
                    return path, text, f.read() == text

            @master_only
            def dump_config(self) -> None:
                # mmengine writes <work_dir>/<config name> over whatever is there: a test run
                # (or a resume with other options) in a training's work dir would replace the
                # training's copy. A different copy is kept; this run's own goes into its log
                # dir <work_dir>/<timestamp>/ (beside the visualizer's vis_data/config.py).
                path, text, same = self._config_copy()
                if same:
                    return
                if osp.exists(path):
                    path = osp.join(self.log_dir, osp.basename(path))
                atomic_write(text, path, fsync=False)

            def save_checkpoint(self, *args, **kwargs) -> None:
                super().save_checkpoint(*args, **kwargs)
                if not getattr(self, '_config_adopted', False) and is_main_process():
                    self._config_adopted = True
                    self._adopt_config_copy()

            def _adopt_config_copy(self) -> None:
                """At a new training's first checkpoint, make the work dir's config copy
                this training's: the copy kept at start-up was of an earlier run without
                checkpoints (one that failed to start), or of the training whose checkpoints
                ``--force`` replaces, and ``test.py <work_dir>/<config>.py CKPT`` took those
                settings for these checkpoints. A resume keeps the copy (its training's), and
                never is the config file this run was started from replaced; every run's
                config stays in its log dir (``vis_data/config.py``)."""
                if self._resume:
                    return
                path, text, same = self._config_copy()
                source = self.cfg.filename
                if same or (source and osp.exists(path) and osp.exists(source)
                            and osp.samefile(path, source)):
                    return
                atomic_write(text, path, fsync=False)
                self.logger.info(f'{path}: now the config of this training (the earlier copy '
                                 "there was of a run whose checkpoints are not this work dir's)")

            def set_randomness(self, seed, diff_rank_seed: bool = False,
                               deterministic: bool = False) -> None:
                if deterministic:
                    deterministic_cuda_setup()  # before mmengine's use_deterministic_algorithms
                super().set_randomness(seed, diff_rank_seed, deterministic)
                if deterministic:
                    deterministic_cuda_setup(after=True)
                loader = self.cfg.get('train_dataloader')
                workers = loader.get('num_workers', 0) if isinstance(loader, dict) else None
                offset = pipeline_seed_offset(self.rank, self.world_size, workers,
                                              diff_rank_seed)
                if offset:
                    random.seed(self.seed + offset)
                    np.random.seed((self.seed + offset) % 2**32)

            def build_logger(self, log_level='INFO', *args, **kwargs):
                logger = super().build_logger(log_level, *args, **kwargs)
                level = logging.getLevelName(log_level) if isinstance(log_level, str) \
                    else log_level
                # mmengine hands back the same logger to runners built within one second
                # (same experiment name), so a filter of an earlier run is removed for DEBUG
                short = [f for f in logger.filters if isinstance(f, _ShortStartup)]
                if level == logging.DEBUG:
                    for f in short:
                        logger.removeFilter(f)
                elif not short:
                    logger.addFilter(_ShortStartup())
                for kind in (_HarmlessNotices, _CPUProcessCount):
                    if not any(isinstance(f, kind) for f in logger.filters):
                        logger.addFilter(kind())
                return logger

        _RUNNER_CLASS = ToolRunner
    return _RUNNER_CLASS


#: cuBLAS workspace setting under which its matmuls are deterministic (CUDA >= 10.2); without
#: it ``torch.use_deterministic_algorithms(True)`` stops at the first matmul on a GPU.
CUBLAS_DETERMINISTIC = ':4096:8'


def deterministic_cuda_setup(after: bool = False) -> None:
    """Make ``randomness=dict(deterministic=True)`` (``--deterministic``) runnable on a GPU.

    mmengine only calls ``torch.use_deterministic_algorithms(True)``. On CUDA that raises a
    ``RuntimeError`` at the first matmul unless ``CUBLAS_WORKSPACE_CONFIG`` is set, and at the
    first backward pass of the bilinear upsampling the heads and the segmentor use (CUDA has
    no deterministic kernel for it), so such a run could not train at all. Before mmengine's
    call (``after=False``) this sets ``CUBLAS_WORKSPACE_CONFIG`` where the user has not (it
    must be set before cuBLAS' first use, which comes later, when the model runs); after it
    (``after=True``) the ops without a deterministic CUDA kernel warn instead of raising, and
    the log says so once. Nothing happens without CUDA: the CPU has neither restriction.
    """
    import torch
    if not torch.cuda.is_available():
        return
    if not after:
        os.environ.setdefault('CUBLAS_WORKSPACE_CONFIG', CUBLAS_DETERMINISTIC)
        return
    from mmengine.logging import print_log
    torch.use_deterministic_algorithms(True, warn_only=True)
    print_log('randomness.deterministic on CUDA: deterministic algorithms where CUDA has '
              'them; the ops that have none (the backward pass of the bilinear upsampling) '
              'warn instead of stopping the run, and their results vary in the last bits',
              logger='current', level=logging.WARNING)


def shutdown_distributed() -> None:
    """Wait for every rank, then destroy the process group.

    Without this a rank that finishes first exits and closes its gloo connections while
    another is still writing its last checkpoint; the slower rank then aborts at exit
    ('terminate called without an active exception') and the launcher reports a failed run
    although training completed.
    """
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def add_json_output_args(parser: argparse.ArgumentParser, what: str = 'results') -> None:
    """Add a measuring tool's ``--json FILE`` and the ``--force`` that lets it replace one
    (checked by :func:`check_output_file`, written by :func:`write_output_file`)."""
    parser.add_argument('--json', default=None, help=f'also write the {what} to this new file')
    parser.add_argument('--force', action='store_true', help='replace an existing --json file')


def check_output_file(path: Optional[str], force: bool, option: Optional[str] = '--json') -> None:
    """Stop a tool before its work if its output file ``path`` exists, unless ``force``.

    The benchmarks and the GPU check's tools write their results at the end of minutes of
    work: refused there, the numbers would be lost with the old file kept; a folder given as
    the file is refused as well (with ``force`` it would fail only at the end too).

    Args:
        path (str, optional): The output file; None: the option was not given, nothing to check.
        force (bool): The tool's ``--force``: an existing file will be replaced.
        option (str, optional): The option that named the file, for the message; None for a
            file of a fixed name (it cannot be chosen, only replaced). Defaults to '--json'.

    Raises:
        UserInputError: ``path`` exists (without ``force``) or is a folder; the message names it
            and the way out.
    """
    if path is None:
        return
    named = f'{option} {path}' if option else path
    if osp.isdir(path):
        raise UserInputError(f'{named} is a folder; give a file name')
    from .fileio import output_path_problem
    problem = output_path_problem(path)  # a file above it, a folder not writable
    if problem:
        raise UserInputError(f'{option + ": " if option else ""}{problem}')
    if osp.lexists(path) and not force:
        other = 'choose another name or ' if option else ''
        raise UserInputError(f'{named} exists; {other}pass --force to replace it')


def write_output_file(data: Any, path: str, force: bool, option: Optional[str] = '--json') -> None:
    """Write a tool's output file checked by :func:`check_output_file`, atomically.

    With ``force`` an existing file is replaced; without, the file is written exclusively: one
    that appeared since the check (another run writing the same file) is kept and named.

    Args:
        data (bytes | str | callable): As for :func:`~mmmt.utils.fileio.atomic_write`.
        path (str): The output file.
        force (bool): The tool's ``--force``.
        option (str, optional): As for :func:`check_output_file`. Defaults to '--json'.

    Raises:
        UserInputError: ``path`` appeared meanwhile (without ``force``); it is kept.
    """
    from .fileio import atomic_write, keep_existing_files
    with keep_existing_files(f'Choose another {option} or pass --force' if option else
                             'Pass --force to replace it', error_type=UserInputError):
        atomic_write(data, path, overwrite=force, fsync=False)  # a measurement log: no fsync
