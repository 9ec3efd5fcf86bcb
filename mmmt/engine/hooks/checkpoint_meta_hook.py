"""Record the mmmt version in every checkpoint's meta."""
from mmengine.hooks import Hook

from mmmt.registry import HOOKS
from mmmt.version import __version__

__all__ = ['CheckpointMetaHook']


@HOOKS.register_module()
class CheckpointMetaHook(Hook):
    """Add ``meta['mmmt_version']`` to each checkpoint the Runner saves.

    mmengine's meta names its own version (``mmengine_version``), the config and the seed,
    but not the plugin's whose code the weights belong to; the converters of
    ``tools/model_converters`` already write ``mmmt_version``, trained checkpoints now too.
    """

    priority = 'VERY_LOW'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint.setdefault('meta', {})['mmmt_version'] = __version__
