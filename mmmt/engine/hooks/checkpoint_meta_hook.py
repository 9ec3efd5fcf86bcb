"""Record the mmmt version, the data-parallel layout and the gradient balancer in every
checkpoint's meta."""
from typing import Optional

from mmengine.hooks import Hook

from mmmt.registry import HOOKS
from mmmt.version import __version__

__all__ = ['CheckpointMetaHook']


def _batch_size_per_rank(runner) -> Optional[int]:
    """The training dataloader's batch size (per process), or None when it has none."""
    try:
        loader = runner.train_dataloader
    except Exception:  # no train loop (a runner built for testing)
        return None
    size = getattr(loader, 'batch_size', None)
    if size is None:  # a batch sampler of its own
        size = getattr(getattr(loader, 'batch_sampler', None), 'batch_size', None)
    return size if isinstance(size, int) else None


def _balancer_name(runner) -> str:
    """The class name of the optim wrapper's gradient balancer, or ``'none'`` (a plain
    optimizer step on the summed loss)."""
    balancer = getattr(getattr(runner, 'optim_wrapper', None), 'balancer', None)
    return type(balancer).__name__ if balancer is not None else 'none'


@HOOKS.register_module()
class CheckpointMetaHook(Hook):
    """Add ``meta['mmmt_version']``, ``meta['world_size']``, ``meta['batch_size_per_rank']``
    and ``meta['balancer']`` to each checkpoint the Runner saves, and warn on ``--resume`` when
    this run's world size, batch size or gradient balancer differs from the checkpoint's.

    mmengine's meta names its own version (``mmengine_version``), the config and the seed,
    but not the plugin's whose code the weights belong to; the converters of
    ``tools/model_converters`` already write ``mmmt_version``, trained checkpoints now too.

    The number of processes is not in mmengine's meta either, and a resume on another number
    of GPUs changed two things silently: the data order (the sampler splits its shuffled
    indices by the world size, so every iteration after the resume trains on other images than
    the interrupted run would have) and the effective batch size (world size x batch size per
    rank), which the learning rate was tuned for. Checkpoints without the fields (saved before
    they were recorded) resume without a warning.

    A resume under another ``optim_wrapper.balancer`` (or none) continued silently with other
    gradients than the interrupted run's, dropping the saved balancer's state (PCGrad's
    generator, Nash-MTL's weights); where that state does not fit the new balancer,
    :class:`MultiTaskOptimWrapper` stops instead.
    """

    priority = 'VERY_LOW'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        meta = checkpoint.setdefault('meta', {})
        meta['mmmt_version'] = __version__
        meta['world_size'] = runner.world_size
        batch_size = _batch_size_per_rank(runner)
        if batch_size is not None:
            meta['batch_size_per_rank'] = batch_size
        meta['balancer'] = _balancer_name(runner)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        # mmengine calls this for load_from too, where only the weights are taken: a resume
        # alone continues the training whose layout the checkpoint records (mmengine keeps
        # whether it resumes in a private flag only)
        if not getattr(runner, '_resume', False):
            return
        message = self.layout_change(checkpoint.get('meta') or {}, runner.world_size,
                                     _batch_size_per_rank(runner))
        if message:
            runner.logger.warning(message)
        message = self.balancer_change(checkpoint.get('meta') or {}, _balancer_name(runner))
        if message:
            runner.logger.warning(message)

    @staticmethod
    def balancer_change(meta: dict, balancer: str) -> Optional[str]:
        """A warning when ``balancer`` (a class name, or ``'none'``) differs from the
        checkpoint's ``meta['balancer']``, else None (also for a checkpoint without it).

        Args:
            meta (dict): The checkpoint's meta.
            balancer (str): This run's balancer.

        Returns:
            str or None: The warning.
        """
        saved = meta.get('balancer')
        if saved is None or saved == balancer:
            return None

        def described(name):
            return ('no balancer (the summed task losses)' if name == 'none'
                    else f'the {name} balancer')

        text = (f'--resume: the checkpoint was trained with {described(saved)}, this run has '
                f'{described(balancer)} (optim_wrapper.balancer): its gradients differ from '
                "the interrupted run's from here on")
        if saved != 'none' and balancer == 'none':
            text += f', and the state of {saved} in the checkpoint is not restored'
        return text

    @staticmethod
    def layout_change(meta: dict, world_size: int,
                      batch_size: Optional[int]) -> Optional[str]:
        """A warning when ``world_size`` or ``batch_size`` (per rank) differs from the
        checkpoint's ``meta``, else None (also for a checkpoint that records neither).

        Args:
            meta (dict): The checkpoint's meta.
            world_size (int): This run's number of processes.
            batch_size (int, optional): This run's training batch size per process.

        Returns:
            str or None: The warning.
        """
        saved_world = meta.get('world_size')
        saved_batch = meta.get('batch_size_per_rank')
        if saved_world is None:
            return None
        if saved_batch is None or batch_size is None:
            saved_batch = batch_size = None  # compare the world sizes alone
        if saved_world == world_size and saved_batch == batch_size:
            return None

        def layout(world, batch):
            if batch is None:
                return f'world size {world}'
            return (f'world size {world} x batch size {batch} per rank ({world * batch} '
                    'images per iteration)')

        text = (f'--resume: the checkpoint was trained with {layout(saved_world, saved_batch)}, '
                f'this run has {layout(world_size, batch_size)}: the data order differs from '
                "the interrupted run's (the sampler splits its shuffle over the ranks, and each "
                'iteration takes world size x batch size images of it)')
        if batch_size is None:
            text += (', and so does the effective batch size, which the learning rate was '
                     'tuned for')
        elif saved_world * saved_batch != world_size * batch_size:
            text += (f', and the effective batch size changes from {saved_world * saved_batch}'
                     f' to {world_size * batch_size} images, which the learning rate was tuned '
                     'for')
        return text
