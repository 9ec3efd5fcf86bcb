"""The config rewrite behind ``tools/test.py --tta``."""
from mmengine.config import Config

from .errors import UserInputError

__all__ = ['enable_tta']


def enable_tta(cfg: Config) -> Config:
    """Test with the config's ``tta_pipeline`` and a TTA model around ``cfg.model``.

    The test dataset's pipeline becomes ``cfg.tta_pipeline`` and the model becomes
    ``cfg.tta_model`` (default ``dict(type='MultiTaskTTAModel')``) with ``module=cfg.model``,
    the way mmseg's ``tools/test.py --tta`` does it.

    Args:
        cfg (Config): The test config; changed in place.

    Returns:
        Config: ``cfg``.

    Raises:
        UserInputError: The config has no ``tta_pipeline`` (a ``ValueError``).
    """
    if not cfg.get('tta_pipeline'):
        raise UserInputError(f'--tta needs `tta_pipeline` in the config {cfg.filename or ""} '
                             '(see configs/_base_/datasets/nyud_mt.py for one)')
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    tta_model = dict(cfg.get('tta_model') or dict(type='MultiTaskTTAModel'))
    tta_model['module'] = cfg.model
    cfg.model = tta_model
    return cfg
