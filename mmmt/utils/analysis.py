"""Helpers of the analysis tools (``tools/analysis_tools/``): the model of a timing run,
progress output, device sync, machine name, mmengine JSON-lines logs, the test split paired
with saved predictions, and what the scan tools share (the scan shapes and their inputs, the
benchmark names of the scan backends)."""
import contextlib
import json
import os
import os.path as osp
import platform
import sys
from typing import Any, Dict, Iterator, List, Optional, Tuple

from .errors import InputFileNotFoundError, UserInputError, name_some

__all__ = [
    'build_model', 'log', 'sync', 'cpu_name', 'read_json_lines', 'match_predictions',
    'samples_with_predictions', 'predictions_and_test_dataset', 'scan_backend_env',
    'scan_backend_names', 'forced_scan_backend', 'select_scan_backends', 'scan_inputs',
    'rel_err', 'scan_outputs_and_grads', 'SCAN_SHAPES', 'SCAN_STATES', 'SCAN_GROUPS',
    'SCAN_GRAD_NAMES'
]

# The scans of Swin-L MTMamba on NYUDv2 (448x576 input) that the scan tools time and check, and
# one small one: (name, channels = 4 directions x d_inner, (H, W) of the scanned map); N = 16
# states, B/C grouped by direction; the input gradients they compare.
SCAN_SHAPES = [
    ('small', 4 * 96, (14, 18)),
    ('swin-l stage 1', 4 * 1536, (28, 36)),
    ('swin-l stage 2', 4 * 768, (56, 72)),
    ('swin-l stage 3', 4 * 384, (112, 144)),
]
SCAN_STATES = 16
SCAN_GROUPS = 4
SCAN_GRAD_NAMES = ('u', 'delta', 'A', 'B', 'C', 'D', 'delta_bias')


def build_model(config, device='cpu',
                cfg_options: Optional[dict] = None) -> 'torch.nn.Module':  # noqa: F821
    """The model of ``config`` (a path or a :class:`~mmengine.config.Config`) with random
    weights, on ``device``; ``cfg_options`` are merged into the config first.

    Timing and complexity runs never fetch a pretrained checkpoint: ``pretrained`` and the
    backbone's ``init_cfg`` are dropped.
    """
    # imported here: the tools using this module answer --help without torch
    from mmengine.config import Config

    from mmmt.registry import MODELS
    from mmmt.structures import register_tasks
    from .cli import read_config
    from .setup_env import register_all_modules
    register_all_modules()
    cfg = config if isinstance(config, Config) else read_config(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    register_tasks(cfg.get('custom_tasks'))  # tasks defined in the config itself
    cfg.model.pop('pretrained', None)
    if cfg.model.get('backbone') is not None:
        cfg.model.backbone.init_cfg = None
    return MODELS.build(cfg.model).to(device)


def match_predictions(records: List[dict], image_ids: List[str], path: str) -> Dict[str, dict]:
    """``img_id`` -> record of a predictions file (``tools/test.py --out``).

    Raises:
        UserInputError: A record without ``img_id``, two records of one image, an image of
            ``image_ids`` without a prediction, or predictions of images not in it (each names
            ``path`` and a few ``img_id``).
    """
    by_id: Dict[str, dict] = {}
    for i, record in enumerate(records):
        img_id = record.get('img_id')
        if img_id is None:
            raise UserInputError(f'{path}: record {i} has no img_id to match it to an image')
        if img_id in by_id:
            raise UserInputError(f'{path}: two predictions of img_id {img_id!r}')
        by_id[img_id] = record
    missing = [i for i in image_ids if i not in by_id]
    extra = sorted(set(by_id) - set(image_ids))
    if missing:
        raise UserInputError(
            f'{path} has no prediction of {len(missing)} of the {len(image_ids)} test images '
            f'({name_some(missing)}); predict the whole test split of this config')
    if extra:
        raise UserInputError(
            f'{path} holds predictions of {len(extra)} images that are not in the test split '
            f'({name_some(extra)}): another split or dataset?')
    return by_id


def predictions_and_test_dataset(config: str, predictions: str,
                                 cfg_options: Optional[dict] = None,
                                 data_root: Optional[str] = None) -> Tuple[Any, list, Any]:
    """What the tools that read ``tools/test.py --out`` files start from.

    Args:
        config (str): The config file (checked to exist by the caller).
        predictions (str): The predictions file, read first (a bad file ends at once).
        cfg_options (dict, optional): ``--cfg-options``.
        data_root (str, optional): ``--data-root``.

    Returns:
        tuple: The config (options applied, its own tasks registered, its scope the default),
        the records (:func:`mmmt.evaluation.load_predictions`) and its test dataset.

    Raises:
        UserInputError: An unsafe or malformed predictions file, or no ``test_dataloader``.
            A missing relative predictions file is named with where ``tools/test.py``
            writes ``--out`` for this config (under its work dir).
    """
    from mmengine.registry import init_default_scope

    from mmmt.evaluation import load_predictions
    from mmmt.registry import DATASETS
    from mmmt.structures import register_tasks
    from .cli import config_from_file, merge_cfg_options
    from .setup_env import register_all_modules
    register_all_modules(init_default_scope=False)
    try:
        records = load_predictions(predictions)
    except InputFileNotFoundError as e:
        cfg = merge_cfg_options(config_from_file(config), cfg_options, data_root)
        raise InputFileNotFoundError(f'{e}{_work_dir_hint(cfg, config, predictions)}') from None
    cfg = merge_cfg_options(config_from_file(config), cfg_options, data_root)
    register_tasks(cfg.get('custom_tasks'))  # tasks defined in the config itself
    init_default_scope(cfg.get('default_scope', 'mmmt'))
    if not cfg.get('test_dataloader'):
        raise UserInputError(f'{config} has no test_dataloader')
    return cfg, records, DATASETS.build(cfg.test_dataloader.dataset)


def _work_dir_hint(cfg: Any, config: str, predictions: str) -> str:
    """Where ``tools/test.py CONFIG CKPT --out <predictions>`` put the file, as a message tail.

    ``tools/test.py`` writes a relative ``--out`` under its work dir, so the file named in its
    command line is not in the current folder; say where it is (or would be).
    """
    if osp.isabs(predictions) or '://' in predictions:
        return ''
    work_dir = cfg.get('work_dir') or osp.join(
        'work_dirs', osp.splitext(osp.basename(config))[0])
    candidate = osp.join(work_dir, predictions)
    if osp.isfile(candidate):
        return (f'; tools/test.py writes a relative --out under its work dir: did you mean '
                f'{candidate}?')
    if osp.dirname(predictions):  # a path of its own, e.g. already under work_dirs/
        return ''
    return (f' (tools/test.py writes a relative --out under its work dir: {candidate} for '
            'this config unless --work-dir was given)')


def samples_with_predictions(dataset: Any, records: List[dict],
                             path: str) -> Iterator[Tuple[Any, dict]]:
    """Each image of ``dataset`` as its pipeline gives it (with the test pipeline, the ground
    truth as ``tools/test.py`` evaluates it), with the predictions of ``records`` set as
    ``pred_<task>`` fields.

    Args:
        dataset (BaseDataset): The dataset the predictions were made on.
        records (list[dict]): :func:`mmmt.evaluation.load_predictions` of ``path``.
        path (str): The predictions file (for messages).

    Yields:
        tuple: ``(data_sample, record)`` in dataset order. A progress bar goes to stdout.

    Raises:
        UserInputError: Predictions that do not fit the dataset (:func:`match_predictions`).
    """
    from mmengine.structures import PixelData

    from mmmt.structures import array_to_pred
    from .progress import ProgressBar
    image_ids = [dataset.get_data_info(i)['img_id'] for i in range(len(dataset))]
    by_id = match_predictions(records, image_ids, path)
    progress = ProgressBar(len(dataset), file=sys.stdout, description='images')
    for i, img_id in enumerate(image_ids):
        sample = dataset[i]['data_samples']
        for task, array in by_id[img_id]['pred'].items():
            try:
                pred = array_to_pred(array)
            except ValueError as e:
                raise UserInputError(f'{path}: image {img_id!r}, {task}: {e}') from None
            sample.set_field(PixelData(data=pred), f'pred_{task}')
        progress.update()
        yield sample, by_id[img_id]
    progress.finish()


def log(msg: str) -> None:
    """Progress output on stderr (stdout carries the results)."""
    print(msg, file=sys.stderr, flush=True)


def sync(device) -> None:
    """Wait for queued CUDA work, so that wall-clock timings include it."""
    import torch  # here: the tools of this folder answer --help without torch
    device = torch.device(device)
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def cpu_name() -> str:
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def read_json_lines(path: str) -> List[dict]:
    """The records of an mmengine JSON-lines log (``scalars.json``, ``<timestamp>.json``).

    Raises:
        SystemExit: The file is missing or a line is not JSON (the message names it).
    """
    if not osp.isfile(path):
        raise SystemExit(f'not found: {path}')
    records = []
    with open(path, encoding='utf-8') as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise SystemExit(f'{path}:{n}: not a JSON line ({e})')
    return records


def scan_backend_env(name: str) -> Dict[str, str]:
    """The environment that forces the scan backend called `name` in the benchmarks: a
    backend of ``MMMT_SCAN_BACKEND`` (``torch``, ``cpp``, ``cuda``, ``triton``), or
    ``triton-<kernel>`` for one of the Triton kernel pairs, with other launch sizes as
    ``triton-<kernel>:STEPS:TILE:WARPS[:prefetch]`` (``MMMT_TRITON_SCAN_KERNEL``)."""
    from mmmt.ops import selective_scan_triton as triton_scan
    backend, _, kernel = name.partition('-')
    try:
        if kernel and backend != 'triton':
            raise ValueError('only triton has kernel pairs')
        if kernel:
            triton_scan.parse_kernel(kernel)
    except ValueError as e:
        raise ValueError(f'scan backend {name!r}: expected torch, cpp, cuda, triton or '
                         f'triton-<kernel>[:STEPS:TILE:WARPS[:prefetch]] with a kernel of '
                         f'{sorted(triton_scan.CONFIGS)} ({e})') from None
    env = {'MMMT_SCAN_BACKEND': backend}
    if kernel:
        env[triton_scan.KERNEL_ENV] = kernel
    return env


def scan_backend_names(backends) -> List[str]:
    """Benchmark names of the available `backends`: ``triton`` becomes one
    ``triton-<kernel>`` per Triton kernel pair, the default pair first."""
    from mmmt.ops import selective_scan_triton as triton_scan
    names = []
    for b in backends:
        if b == 'triton':
            kernels = sorted(triton_scan.CONFIGS, key=lambda k: k != triton_scan.DEFAULT)
            names += [f'triton-{k}' for k in kernels]
        else:
            names.append(b)
    return names


@contextlib.contextmanager
def forced_scan_backend(name: str) -> Iterator[None]:
    """Force the scan backend `name` (see :func:`scan_backend_env`) inside the block."""
    env = scan_backend_env(name)
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def select_scan_backends(available: List[str], wanted: List[str]) -> List[str]:
    """The `wanted` ones among the `available` backend names (:func:`scan_backend_names`), in
    the order asked: ``triton`` selects every Triton kernel pair, and
    ``triton-<kernel>:STEPS:TILE:WARPS`` other launch sizes of one (where Triton is
    available)."""
    chosen = []
    for want in wanted:
        base = want.partition('-')[0]
        if want in available or (want != base and base in {b.partition('-')[0]
                                                           for b in available}):
            scan_backend_env(want)  # a wrong kernel name or size fails here
            chosen.append(want)
        else:
            chosen += [b for b in available if b.partition('-')[0] == want]
    return list(dict.fromkeys(chosen))


def scan_inputs(channels: int, length: int, device, seed: int = 0) -> dict:
    """Selective-scan inputs (batch 1, :data:`SCAN_GROUPS` B/C groups, :data:`SCAN_STATES`
    states) distributed as SS2D feeds them at initialisation."""
    import torch
    g = torch.Generator().manual_seed(seed)
    dt = torch.exp(
        torch.rand(channels, generator=g) * (torch.log(torch.tensor(0.1)) -
                                             torch.log(torch.tensor(1e-3))) +
        torch.log(torch.tensor(1e-3))).clamp(min=1e-4)
    x = dict(
        u=torch.randn(1, channels, length, generator=g),
        delta=torch.randn(1, channels, length, generator=g) * 0.1,
        A=-torch.arange(1, SCAN_STATES + 1, dtype=torch.float32).repeat(channels, 1),
        B=torch.randn(1, SCAN_GROUPS, SCAN_STATES, length, generator=g),
        C=torch.randn(1, SCAN_GROUPS, SCAN_STATES, length, generator=g),
        D=torch.ones(channels),
        delta_bias=dt + torch.log(-torch.expm1(-dt)),
    )
    return {k: v.to(device) for k, v in x.items()}


def scan_outputs_and_grads(fn, x: dict, grad_out, dtype=None):
    """Output and input gradients of the scan ``fn`` on inputs `x` (softplus on) for the output
    gradient `grad_out`; the gradients are those of :data:`SCAN_GRAD_NAMES`. With `dtype`, u,
    delta, B and C enter as that dtype (activations under AMP; the gradients stay those of the
    inputs as given)."""
    leaves = {k: v.detach().clone().requires_grad_(k in SCAN_GRAD_NAMES) for k, v in x.items()}
    inputs = dict(leaves)
    if dtype is not None:
        inputs.update({k: inputs[k].to(dtype) for k in ('u', 'delta', 'B', 'C')})
    out = fn(**inputs, delta_softplus=True)
    out.backward(grad_out.to(out.dtype))
    return out.detach(), {k: leaves[k].grad for k in SCAN_GRAD_NAMES}


def rel_err(a, b) -> float:
    """max |a - b| / max |b|, in float64 on the CPU."""
    a, b = a.double().cpu(), b.double().cpu()
    return ((a - b).abs().max() / b.abs().max().clamp(min=1e-30)).item()
