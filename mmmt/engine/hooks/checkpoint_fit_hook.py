"""Checks of what ``load_from``, ``--resume`` and ``Pretrained`` init load into the model.

mmengine loads all three non-strictly and only logs what did not fit, so a checkpoint of another
layout trains from random weights with a few log lines; ``--resume`` of a file without optimizer
state silently starts a fresh optimizer; and ``Runner.resume`` runs ``Config.fromstring`` on a
``meta['config']`` string of the file, i.e. Python code stored in it.
"""
import logging
import math
from typing import Iterator, List, Optional, Tuple

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from mmmt.registry import HOOKS
from mmmt.utils.checkpoint import TRUST_ENV, CheckpointMismatchError, check_model_weights, trusted
from mmmt.utils.errors import UserInputError

__all__ = ['CheckpointFitHook', 'latest_iteration_scheduler']

#: Below this share of a module's parameters found in its Pretrained file, it is refused.
_MIN_PRETRAINED_SHARE = 0.5


def _pretrained_modules(model) -> Iterator[Tuple[str, object, dict]]:
    for name, module in model.named_modules():
        cfg = getattr(module, 'init_cfg', None)
        for item in (cfg if isinstance(cfg, list) else [cfg]):
            if isinstance(item, dict) and item.get('type') == 'Pretrained' \
                    and item.get('checkpoint'):
                yield name or 'model', module, item


def latest_iteration_scheduler(schedulers) -> Optional[Tuple[int, dict]]:
    """(index, scheduler) of the iteration-based scheduler that ends last, or None.

    Args:
        schedulers: ``param_scheduler`` of a config (a dict or a list of dicts) or the
            ``param_schedulers`` states of a checkpoint (a list, or one list per optimizer;
            the index then counts through them in order). A missing ``end`` is infinite, as
            in mmengine.
    """
    if isinstance(schedulers, dict) and 'type' not in schedulers and 'end' not in schedulers:
        schedulers = [s for group in schedulers.values() for s in group]  # one per optimizer
    schedulers = [schedulers] if isinstance(schedulers, dict) else list(schedulers or [])
    stepped = [(i, s) for i, s in enumerate(schedulers)
               if isinstance(s, dict) and s.get('by_epoch') is False]
    return max(stepped, key=lambda item: item[1].get('end', math.inf)) if stepped else None


def _latest_iteration_end(schedulers) -> Optional[float]:
    latest = latest_iteration_scheduler(schedulers)
    return None if latest is None else latest[1].get('end', math.inf)


def _check_resumed_schedule(cfg, checkpoint: dict, source: str) -> None:
    """Stop a resume whose saved lr schedule ends before ``train_cfg.max_iters`` when the
    config's schedule does not: mmengine restores the checkpoint's schedulers whole (their
    ``end`` included), so raising ``max_iters`` and ``end`` to train a finished run further
    would train the added iterations at the schedule's final learning rate (0 for the
    shipped PolyLR) without a word."""
    max_iters = (cfg.get('train_cfg') or {}).get('max_iters')
    saved_end = _latest_iteration_end(checkpoint.get('param_schedulers'))
    config_end = _latest_iteration_end(cfg.get('param_scheduler'))
    if not max_iters or saved_end is None or saved_end >= max_iters or saved_end == config_end:
        return  # (a config schedule that ends early is train.py's warning, not this error)
    raise UserInputError(
        f'--resume {source}: the lr schedule saved in it ends at iteration {saved_end}, and '
        f'mmengine restores it whatever param_scheduler says (end={config_end}); so iterations '
        f'{saved_end}-{max_iters} (train_cfg.max_iters) would train at its final learning '
        'rate (0 for PolyLR with eta_min=0). To train further with a new schedule, start '
        f'from its weights instead: --cfg-options load_from={source} without --resume, in a '
        'new --work-dir')


@HOOKS.register_module()
class CheckpointFitHook(Hook):
    """Refuse (or, with ``allow_partial``, loudly warn about) checkpoints that do not fit.

    - ``load_from`` / ``--resume``: any missing, unexpected or reshaped weight is an error
      naming examples (:func:`~mmmt.utils.check_model_weights`), before anything is loaded.
    - ``--resume`` of a file without ``optimizer`` state (a published model) warns that the
      optimizer starts fresh; one without ``meta.iter`` is an error; so is one whose saved
      lr schedule ends before ``max_iters`` where the config's does not (mmengine restores
      the saved schedule: the added iterations would train at its final learning rate).
    - A ``meta['config']`` string is dropped unless checkpoints are trusted (mmengine would
      execute it to compare GPU counts).
    - Modules with ``init_cfg=dict(type='Pretrained')``: after initialisation, the file is
      read again and compared with the module; fewer than half of its parameters found is an
      error, any missing parameter a warning.

    Args:
        allow_partial (bool): Only warn about mismatches (``tools/train.py --partial-load``).
            Defaults to False.
    """

    priority = 'VERY_HIGH'

    def __init__(self, allow_partial: bool = False) -> None:
        self.allow_partial = allow_partial

    def _refuse(self, message: str) -> None:
        if not self.allow_partial:
            raise CheckpointMismatchError(
                message + ' (tools/train.py --partial-load loads what fits anyway)')
        print_log(message + ' Loading what fits (--partial-load).', logger='current',
                  level=logging.WARNING)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        resume = bool(getattr(runner, '_resume', False))
        source = str(getattr(runner, '_load_from', None) or 'the checkpoint')
        meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
        if isinstance(meta, dict) and 'config' in meta and not trusted():
            meta.pop('config')
            print_log(f'{source}: its meta.config (Python code) is not executed; set '
                      f'{TRUST_ENV}=1 to allow it', logger='current', level=logging.WARNING)
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        try:
            check_model_weights(model, checkpoint, source)
        except CheckpointMismatchError as e:
            self._refuse(str(e))
        if not resume:
            return
        known = meta if isinstance(meta, dict) else {}
        lacking = [f'meta.{k}' for k in ('iter', 'epoch') if k not in known]
        lacking += [k for k in ('message_hub', ) if k not in checkpoint]
        if lacking:
            raise CheckpointMismatchError(
                f'--resume {source}: it has no {", ".join(lacking)} (not a training checkpoint '
                'of mmengine); use load_from to start a new training from its weights')
        if 'optimizer' not in checkpoint:
            print_log(f'--resume {source}: it holds no optimizer state (a published model?); '
                      'the optimizer starts fresh, so training does not continue exactly',
                      logger='current', level=logging.WARNING)
        _check_resumed_schedule(runner.cfg, checkpoint, source)

    def before_train(self, runner) -> None:
        from mmengine.runner.checkpoint import CheckpointLoader
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if getattr(runner, '_resume', False) or getattr(runner, '_has_loaded', False):
            return  # weights came from the checkpoint, not from the init
        for name, module, cfg in _pretrained_modules(model):
            state = CheckpointLoader.load_checkpoint(cfg['checkpoint'], map_location='cpu')
            state = state.get('state_dict', state) if isinstance(state, dict) else {}
            prefix = cfg.get('prefix') or ''
            state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            params = dict(module.named_parameters())
            # mmengine skips reshaped weights too; mmpretrain's Swin resizes its bias tables
            missing: List[str] = [
                k for k, v in params.items() if k not in state or (
                    tuple(getattr(state[k], 'shape', ())) != tuple(v.shape)
                    and 'relative_position_bias_table' not in k)]
            found = len(params) - len(missing)
            if not params or not missing:
                continue
            text = (f'{name}: init_cfg Pretrained {cfg["checkpoint"]} (prefix {prefix!r}) '
                    f'has {found} of its {len(params)} parameters; missing or reshaped e.g. '
                    f'{", ".join(missing[:3])}')
            if found < _MIN_PRETRAINED_SHARE * len(params):
                self._refuse(text + '. Is it a checkpoint of another architecture or layout '
                             '(see tools/model_converters/swin2mmpretrain.py)?')
            else:
                print_log(text + ' (these stay randomly initialised)', logger='current',
                          level=logging.WARNING)
