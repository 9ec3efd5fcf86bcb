"""Stop training at the first non-finite loss, before a broken checkpoint is written."""
import math
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.dist import all_reduce, get_world_size
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmmt.registry import HOOKS

__all__ = ['NonFiniteLossHook']

#: Prefixes of the per-task entries of the segmentor's log_vars (loss_depth, raw_depth, ...).
_TASK_PREFIXES = ('loss_', 'raw_')


def _value(v) -> Optional[float]:
    if isinstance(v, torch.Tensor):
        return float(v.detach().float().sum()) if v.numel() else None
    if isinstance(v, (int, float)):
        return float(v)
    return None


def _non_finite(values) -> Dict[str, float]:
    """The entries of ``values`` that are NaN or infinite."""
    found = {k: _value(v) for k, v in values.items()}
    return {k: v for k, v in found.items() if v is not None and not math.isfinite(v)}


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Raise ``FloatingPointError`` when a loss of the iteration is NaN or infinite.

    Without it a NaN (one bad depth pixel is enough) trains on silently, the run exits with
    status 0 and every later checkpoint holds NaN weights. The error names the iteration, the
    tasks whose losses are not finite and the files of the batch (images and, where the
    dataset lists them, the annotation files of those tasks). It runs before the
    ``CheckpointHook`` of the same iteration (higher priority), so nothing non-finite is
    saved. In distributed runs every rank stops together (one ``all_reduce`` of a flag per
    iteration), instead of the healthy ranks waiting for the stopped one until a timeout.
    """

    priority = 'ABOVE_NORMAL'

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        outputs = outputs or {}
        # mmmt's segmentor logs the mean over the ranks (one rank's NaN makes every rank's
        # NaN) and keeps this rank's own values, which tell whose batch to name
        model = getattr(runner, 'model', None)
        model = model.module if is_model_wrapper(model) else model
        own = getattr(model, 'rank_log_vars', None) or outputs
        bad = _non_finite(own)
        stop = bool(bad) or bool(_non_finite(outputs))
        if get_world_size() > 1:
            device = next((v.device for v in outputs.values() if isinstance(v, torch.Tensor)),
                          torch.device('cpu'))
            flag = torch.tensor([float(stop)], device=device)
            all_reduce(flag, op='max')
            stop = bool(flag.item())
        if stop:
            raise FloatingPointError(self._message(runner, bad, data_batch))

    def _message(self, runner, bad: Dict[str, float], data_batch) -> str:
        step = runner.iter + 1
        if not bad:
            return (f'Non-finite loss on another rank at iteration {step}; training stopped '
                    '(that rank names the files)')
        tasks = sorted({k[len(p):] for k in bad for p in _TASK_PREFIXES if k.startswith(p)})
        images = self._batch_images(data_batch)
        annotations = self._annotation_files(runner, images, tasks)
        values = ', '.join(f'{k}={v}' for k, v in bad.items())
        text = (f'Non-finite loss at iteration {step} ({values}); task(s): '
                f'{", ".join(tasks) or "the total only"}; images of the batch: '
                f'{", ".join(images) or "unknown"}')
        if annotations:
            text += f'; their annotations of those tasks: {", ".join(annotations)}'
        return text + ('. Training stopped before a checkpoint with non-finite weights is '
                       'written. Check the files (tools/dataset_converters/check_dataset.py), '
                       'or lower the learning rate / clip gradients (--clip-grad).')

    @staticmethod
    def _batch_images(data_batch) -> List[str]:
        if not isinstance(data_batch, dict):
            return []
        samples = data_batch.get('data_samples') or []
        names = []
        for sample in samples:
            meta = getattr(sample, 'metainfo', {}) or {}
            name = meta.get('img_path') or meta.get('img_id')
            if name is not None:
                names.append(str(name))
        return names

    @staticmethod
    def _annotation_files(runner, images: Sequence[str], tasks: Sequence[str]) -> List[str]:
        """The tasks' annotation paths of ``images`` from the dataset's data list (best effort:
        only for datasets that keep ``ann_info`` per sample, as mmmt's do)."""
        try:
            dataset = runner.train_dataloader.dataset
        except Exception:  # no train dataloader built (e.g. a test of the hook)
            return []
        while hasattr(dataset, 'dataset'):  # dataset wrappers
            dataset = dataset.dataset
        wanted, found = set(images), []
        for info in getattr(dataset, 'data_list', None) or []:
            if not isinstance(info, dict) or info.get('img_path') not in wanted:
                continue
            for task in tasks:
                path = ((info.get('ann_info') or {}).get(task) or {}).get('path')
                if path:
                    found.append(str(path))
        return found
