"""An optim wrapper that balances the task gradients of the shared encoder."""
from collections import OrderedDict
from contextlib import contextmanager, nullcontext
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.dist import all_reduce, get_world_size
from mmengine.logging import MessageHub
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapper
from torch import Tensor
from torch.optim import Optimizer

from mmmt.registry import BALANCERS, OPTIM_WRAPPERS
from mmmt.utils.errors import InvalidOptionError, UserInputError
from .balancers import BaseBalancer

__all__ = ['MultiTaskOptimWrapper', 'task_objectives']


def task_objectives(losses: Dict[str, Union[Tensor, List[Tensor]]]) -> 'OrderedDict[str, Tensor]':
    """The terms mmengine's ``parse_losses`` would add up, one per task, as scalars.

    Every entry whose key contains ``'loss'`` is an objective (``loss_<task>`` from
    ``MultiTaskLoss``; logging-only entries such as ``raw_<task>`` are skipped), reduced the
    way ``BaseModel.parse_losses`` reduces it (mean, and a list summed).
    """
    objectives = OrderedDict()
    for name, value in losses.items():
        if 'loss' not in name:
            continue
        if isinstance(value, Tensor):
            objectives[name] = value.mean()
        elif isinstance(value, (list, tuple)):
            objectives[name] = sum(v.mean() for v in value)
        else:
            raise TypeError(f'loss {name!r} is a {type(value).__name__}, expected a tensor or '
                            'a list of tensors')
    if not objectives:
        raise ValueError(f'MultiTaskOptimWrapper: the model returned no loss terms (keys '
                         f'{sorted(losses)}); a balancer needs one `loss_<task>` per task')
    return objectives


def _flatten(grads: Sequence[Optional[Tensor]], like: Sequence[Tensor]) -> Tensor:
    """Concatenate gradients into one vector; a missing gradient (unused tensor) is zero."""
    return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1)
                      for g, p in zip(grads, like)])


def _reduced(tensor: Tensor, op: str) -> Tensor:
    """``tensor`` all-reduced across ranks (itself without a process group)."""
    all_reduce(tensor, op=op)  # in place
    return tensor


def _unflatten(flat: Tensor, like: Sequence[Tensor]) -> List[Tensor]:
    return [chunk.view_as(p) for chunk, p in zip(flat.split([p.numel() for p in like]), like)]


@OPTIM_WRAPPERS.register_module()
class MultiTaskOptimWrapper(OptimWrapper):
    """Update the shared parameters along a balanced combination of the task gradients.

    Use it from any mmmt config::

        optim_wrapper = dict(type='MultiTaskOptimWrapper',
                             optimizer=dict(type='AdamW', lr=1e-4),
                             balancer=dict(type='PCGrad'))

    How it gets the per-task losses without a change to the model: mmengine's ``train_step``
    (``BaseModel``'s, and ``MMDistributedDataParallel``'s under DDP) runs the ``mode='loss'``
    forward inside :meth:`optim_context`, which records that forward's loss dict with a forward
    hook; :meth:`update_params` then ignores the summed loss it is given and uses the recorded
    terms (:func:`task_objectives`), one per task.

    Each step:

    1. ``g_t``: the gradient of task t's loss w.r.t. the shared parameters (the modules named
       in ``shared_modules``: the backbone, and a neck if any), by ``torch.autograd.grad``; the
       task-specific parameters (everything else) get the sum of the task gradients, i.e.
       exactly their usual gradient.
    2. Under DDP the model runs in ``no_sync()`` and every rank's ``g_t``, task-specific
       gradients and loss values are **averaged across ranks before balancing**, so every rank
       balances the same (global-batch) gradients and stays in sync. The averaged ``g_t`` is
       what a single process would compute on the whole global batch (each rank's loss is a
       mean over its images and ranks have equal batches).
    3. The balancer turns the Gram matrix ``g_i . g_j`` (and the losses) into coefficients w;
       the shared parameters' gradient is ``sum_t w_t g_t``. ``w`` is logged per task as
       ``weight_<task>``.

    Balancers that use the shared representation (MGDA-UB) get, instead of step 1's ``g_t``,
    the gradients w.r.t. the output of the last shared module; the Gram matrix is then summed
    over ranks and divided by the squared world size (the ranks' features are disjoint
    coordinates of the global batch's representation, and each rank's loss is R times the
    global loss's share of its images, so this is the global batch's Gram matrix exactly), and
    ``sum_t w_t dL_t/dZ`` is back-propagated through the encoder once.

    Gradients are added to ``.grad``, so ``clip_grad`` works as in
    :class:`~mmengine.optim.OptimWrapper`. With ``accumulative_counts`` the task gradients and
    losses of the window's micro-batches are averaged and balanced once, at its last one (as
    one batch of all their images; MGDA-UB balances each micro-batch, see
    :meth:`backward_balanced`); the balancer's state (GradNorm's weights, PCGrad's
    generator, ...) is part of :meth:`state_dict` and so of checkpoints and ``--resume``.
    Mixed precision is not supported.

    Args:
        optimizer (Optimizer): The optimizer.
        balancer (dict | BaseBalancer): A ``BALANCERS`` config, e.g. ``dict(type='PCGrad')``.
        shared_modules (Sequence[str], optional): Modules of the model holding the shared
            parameters: attribute names or dotted paths (``'backbone.stages.0'``). Each one
            given must exist (a misspelt name would silently leave its parameters
            unbalanced). Defaults to ``('backbone', 'neck')``, where the neck may be absent.
        **kwargs: ``accumulative_counts``, ``clip_grad`` of ``OptimWrapper``.
    """

    def __init__(self,
                 optimizer: Optimizer,
                 balancer: Union[dict, BaseBalancer],
                 shared_modules: Optional[Sequence[str]] = None,
                 **kwargs) -> None:
        super().__init__(optimizer, **kwargs)
        if isinstance(balancer, dict):
            balancer = BALANCERS.build(balancer)
        if not isinstance(balancer, BaseBalancer):
            raise InvalidOptionError(f'MultiTaskOptimWrapper: balancer must be a BALANCERS '
                                     f'config or a BaseBalancer, got {type(balancer).__name__}')
        self.balancer = balancer
        self._shared_optional = () if shared_modules is not None else ('neck', )
        self.shared_modules = tuple(shared_modules if shared_modules is not None
                                    else ('backbone', 'neck'))
        self._model: Optional[nn.Module] = None
        self._losses: Optional[dict] = None
        self._features: Optional[List[Tensor]] = None
        # (task gradients, losses) of the accumulation window so far, each scaled by
        # 1 / accumulative_counts: balanced once, at the window's last micro-batch
        self._window: Optional[Tuple[Tensor, Tensor]] = None

    # -- model structure ------------------------------------------------------------------------
    def _shared_parts(self, model: nn.Module) -> List[nn.Module]:
        parts, missing = [], []
        for name in self.shared_modules:
            try:
                parts.append(model.get_submodule(name))
            except AttributeError:  # no such attribute, or not a module (neck=None)
                if name not in self._shared_optional:
                    missing.append(name)
        if missing:
            children = [n for n, _ in model.named_children()]
            raise UserInputError(f'MultiTaskOptimWrapper: shared_modules {missing} are not '
                                 f'modules of {type(model).__name__} (its modules: {children}; '
                                 'dotted paths reach deeper ones)')
        if not parts:
            raise UserInputError(f'MultiTaskOptimWrapper: {type(model).__name__} has none of '
                                 f'the shared_modules {self.shared_modules}')
        return parts

    def _split_params(self, model: nn.Module) -> Tuple[List[Tensor], List[Tensor]]:
        """(shared, task-specific) trainable parameters."""
        shared, seen = [], set()
        for part in self._shared_parts(model):
            for p in part.parameters():
                if p.requires_grad and id(p) not in seen:
                    shared.append(p)
                    seen.add(id(p))
        specific = [p for p in model.parameters() if p.requires_grad and id(p) not in seen]
        return shared, specific

    # -- capture of the forward's outputs -------------------------------------------------------
    def _record_losses(self, module, args, output) -> None:
        if isinstance(output, dict):
            self._losses = output

    def _record_features(self, module, args, output) -> None:
        outputs = list(output) if isinstance(output, (list, tuple)) else [output]
        self._features = [x for x in outputs if isinstance(x, Tensor) and x.requires_grad]

    @contextmanager
    def optim_context(self, model: nn.Module):
        """Record the forward's loss dict (and the shared representation, for MGDA-UB).

        DDP's gradient reduction is disabled (``no_sync``): the wrapper averages the per-task
        gradients itself (see the class doc).
        """
        module = model.module if is_model_wrapper(model) else model
        self._model, self._losses, self._features = module, None, None
        handles = [module.register_forward_hook(self._record_losses)]
        if self.balancer.uses_representation:
            handles.append(
                self._shared_parts(module)[-1].register_forward_hook(self._record_features))
        try:
            with model.no_sync() if hasattr(model, 'no_sync') else nullcontext():
                yield
        finally:
            for handle in handles:
                handle.remove()

    # -- the update -----------------------------------------------------------------------------
    def update_params(self,
                      loss: Tensor,
                      step_kwargs: Optional[Dict] = None,
                      zero_kwargs: Optional[Dict] = None) -> None:
        """Balance and accumulate the gradients of the recorded losses, then maybe step.

        Args:
            loss (Tensor): The summed loss from ``parse_losses``; not used (its per-task terms
                were recorded in :meth:`optim_context`).
            step_kwargs (dict, optional): Passed to ``optimizer.step``.
            zero_kwargs (dict, optional): Passed to ``optimizer.zero_grad``.
        """
        if self._losses is None:
            raise RuntimeError(
                'MultiTaskOptimWrapper.update_params: no loss dict was recorded. It must be '
                'called after the model\'s forward(mode="loss") ran inside '
                'optim_wrapper.optim_context(model), as mmengine\'s train_step does')
        losses, self._losses = self._losses, None
        features, self._features = self._features, None
        self.backward_balanced(self._model, losses, features)
        if self.should_update():
            self.step(**(step_kwargs or {}))
            self.zero_grad(**(zero_kwargs or {}))

    def backward_balanced(self, model: nn.Module, losses: dict,
                          features: Optional[List[Tensor]] = None) -> Optional[Tensor]:
        """Add the balanced gradients of ``losses`` to the parameters' ``.grad``.

        With ``accumulative_counts = k`` the balancers on the shared parameters' gradients
        see the window's mean task gradients and losses, once, at its last micro-batch: the
        update of k micro-batches of b images is that of one batch of k * b (as under DDP),
        and stateful balancers (GradNorm's weights, Nash-MTL's ``update_weights_every``)
        advance once per update. The representation's balancers (MGDA-UB) need each
        micro-batch's graph to back-propagate their weights, so they balance every
        micro-batch on its own and the balanced gradients are averaged.

        Args:
            model (nn.Module): The (unwrapped) model that produced ``losses``.
            losses (dict): The model's loss dict.
            features (list[Tensor], optional): The shared representation, for balancers with
                ``uses_representation``.

        Returns:
            Tensor or None: The (T,) task weights w; None at a micro-batch before the last of
            an accumulation window (nothing balanced yet).
        """
        objectives = task_objectives(losses)
        names = [n[len('loss_'):] if n.startswith('loss_') else n for n in objectives]
        shared, specific = self._split_params(model)
        use_repr = self.balancer.uses_representation
        if use_repr and not features:
            raise RuntimeError(f'{type(self.balancer).__name__} balances the representation\'s '
                               'gradients but no output of the shared module needing a '
                               'gradient was recorded')
        first = features if use_repr else shared
        task_grads, specific_grads = [], [None] * len(specific)
        for i, objective in enumerate(objectives.values()):
            if not objective.requires_grad:  # e.g. a task without valid pixels in the batch
                grads = [None] * (len(first) + len(specific))
            else:
                grads = torch.autograd.grad(objective, first + specific, allow_unused=True,
                                            retain_graph=use_repr or i < len(objectives) - 1)
            task_grads.append(_flatten(grads[:len(first)], first))
            for k, g in enumerate(grads[len(first):]):
                if g is not None:
                    specific_grads[k] = g if specific_grads[k] is None else specific_grads[k] + g
        task_grads = torch.stack(task_grads)
        loss_values = torch.stack([o.detach().double() for o in objectives.values()])
        # 1 / accumulative_counts (1 without accumulation), as OptimWrapper.scale_loss applies;
        # taken before this micro-batch is counted, as OptimWrapper.update_params does
        factor = float(self.scale_loss(torch.ones(())))
        self._inner_count += 1
        self.balancer.task_names = names
        self.balancer.grad_dtype = task_grads.dtype
        specific_flat = _reduced(_flatten(specific_grads, specific), op='mean')
        if use_repr:
            loss_values = _reduced(loss_values, op='mean')
            # each rank's loss is the mean over its 1/R of the global batch, so its gradient
            # w.r.t. its images' features is R times that of the global batch's loss: the sum of
            # the ranks' Gram matrices over R^2 is the global batch's Gram matrix itself (a
            # multiple of it would change normalised or norm-dependent weights, e.g. MGDA's 'l2')
            gram = _reduced((task_grads @ task_grads.T).double(), op='sum') / get_world_size()**2
            weights = self._balanced_weights(gram, loss_values)
            repr_grad = _unflatten(weights.to(task_grads.dtype) @ task_grads, features)
            shared_grad = _flatten(
                torch.autograd.grad(features, shared, grad_outputs=repr_grad,
                                    allow_unused=True), shared)
            shared_grad = _reduced(shared_grad, op='mean') * factor
        else:
            if self._window is None:  # in place: no second (T, P) copy of the gradients
                window = (task_grads.mul_(factor), loss_values * factor)
            else:
                window = (self._window[0].add_(task_grads, alpha=factor),
                          self._window[1] + loss_values * factor)
            self._window = None
            if not self.should_update():  # more micro-batches of this window to come
                self._window = window
                self._add_grads(specific, specific_flat, factor)
                return None
            # averaged across ranks once per update (the sum is linear: the same result)
            task_grads, loss_values = (_reduced(t, op='mean') for t in window)
            weights = self._balanced_weights((task_grads @ task_grads.T).double(), loss_values)
            shared_grad = weights.to(task_grads.dtype) @ task_grads
        self._add_grads(shared, shared_grad, 1.0)
        self._add_grads(specific, specific_flat, factor)
        hub = MessageHub.get_current_instance()
        for name, w in zip(names, weights.tolist()):
            hub.update_scalar(f'train/weight_{name}', w)
        return weights

    def _balanced_weights(self, gram: Tensor, loss_values: Tensor) -> Tensor:
        """The balancer's weights; all 1 (the plain sum) for a non-finite loss or gradient,
        which NonFiniteLossHook then stops at after this iteration, naming the batch's files
        (the balancers' solvers failed inside torch first, e.g. lstsq's INTERNAL ASSERT)."""
        if not (torch.isfinite(gram).all() and torch.isfinite(loss_values).all()):
            return torch.ones(gram.shape[0], dtype=torch.float64, device=gram.device)
        return self.balancer.weights(gram, loss_values)

    @staticmethod
    def _add_grads(params: List[Tensor], flat: Tensor, factor: float) -> None:
        for p, g in zip(params, _unflatten(flat, params)):
            if p.grad is None:
                p.grad = g.detach() * factor
            else:
                p.grad.add_(g.detach(), alpha=factor)

    # -- checkpoints ----------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """The optimizer's state dict plus ``'balancer'``: the balancer's state."""
        state = super().state_dict()
        state['balancer'] = self.balancer.state_dict()
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        state_dict = dict(state_dict)
        balancer_state = state_dict.pop('balancer', None)
        super().load_state_dict(state_dict)
        if balancer_state is not None:
            try:
                self.balancer.load_state_dict(balancer_state)
            except (KeyError, TypeError, ValueError) as e:  # a bare KeyError of a key name
                raise UserInputError(
                    f'the checkpoint holds balancer state {sorted(balancer_state)}, which '
                    f'{type(self.balancer).__name__} cannot take ({e}): it was saved with '
                    'another optim_wrapper.balancer. Resume with that balancer, or start a new '
                    'training from its weights (load_from=CHECKPOINT, without --resume)') \
                    from None

    def __repr__(self) -> str:
        return f'{type(self).__name__}(balancer={self.balancer!r}, ' \
               f'shared_modules={self.shared_modules})'
