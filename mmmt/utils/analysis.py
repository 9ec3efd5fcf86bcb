"""Helpers of the analysis tools (``tools/analysis_tools/``): the model of a timing run,
progress output, device sync, machine name, mmengine JSON-lines logs."""
import contextlib
import json
import os
import os.path as osp
import platform
import sys
from typing import Dict, Iterator, List, Optional

__all__ = [
    'build_model', 'log', 'sync', 'cpu_name', 'read_json_lines', 'scan_backend_env',
    'scan_backend_names', 'forced_scan_backend'
]


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
    from .setup_env import register_all_modules
    register_all_modules()
    cfg = config if isinstance(config, Config) else Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    cfg.model.pop('pretrained', None)
    if cfg.model.get('backbone') is not None:
        cfg.model.backbone.init_cfg = None
    return MODELS.build(cfg.model).to(device)


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
    ``triton-<kernel>:STEPS:TILE:WARPS`` (``MMMT_TRITON_SCAN_KERNEL``)."""
    from mmmt.ops import selective_scan_triton as triton_scan
    backend, _, kernel = name.partition('-')
    try:
        if kernel and backend != 'triton':
            raise ValueError('only triton has kernel pairs')
        if kernel:
            triton_scan.parse_kernel(kernel)
    except ValueError as e:
        raise ValueError(f'scan backend {name!r}: expected torch, cpp, cuda, triton or '
                         f'triton-<kernel>[:STEPS:TILE:WARPS] with a kernel of '
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
