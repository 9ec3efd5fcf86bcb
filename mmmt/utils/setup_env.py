"""Registration helpers, as in mmpretrain/mmseg ``utils.setup_env``.

:func:`register_all_modules` is also where mmmt changes the process, so that ``import mmmt``
does not: it installs the ``mmcv._ext`` placeholder (mmcv-lite only) and the safe checkpoint
loaders. mmmt's tools, demo and inferencer call it; a user script that builds mmmt models
through mmengine should call it too.
"""
import datetime
import warnings

from mmengine import DefaultScope

from .checkpoint import register_safe_checkpoint_loaders
from .mmcv_compat import install_mmcv_ext_placeholder

__all__ = ['register_all_modules']


def register_all_modules(init_default_scope: bool = True) -> None:
    """Set up the process for mmmt, import every module that registers something, set the scope.

    The set-up: with mmcv-lite, the raising ``mmcv._ext`` placeholder that lets mmseg's models
    import (:func:`~mmmt.utils.mmcv_compat.install_mmcv_ext_placeholder`, a no-op beside a full
    mmcv); and mmengine's local and http(s) checkpoint loaders replaced by the safe ones
    (:func:`~mmmt.utils.checkpoint.register_safe_checkpoint_loaders`), so that ``load_from``,
    ``--resume`` and ``Pretrained`` init load with ``weights_only=True`` and an allow-list.

    Args:
        init_default_scope (bool): Whether to make ``mmmt`` the current default scope, so that
            un-prefixed ``type=`` names are first looked up in mmmt's registries.
            Defaults to True.
    """
    install_mmcv_ext_placeholder()  # before anything imports mmseg's models
    register_safe_checkpoint_loaders()
    import mmmt.datasets  # noqa: F401,F403
    import mmmt.engine  # noqa: F401,F403
    import mmmt.evaluation  # noqa: F401,F403
    import mmmt.models  # noqa: F401,F403
    import mmmt.structures  # noqa: F401,F403
    import mmmt.visualization  # noqa: F401,F403

    if not init_default_scope:
        return
    never_created = DefaultScope.get_current_instance() is None \
        or not DefaultScope.check_instance_created('mmmt')
    if never_created:
        DefaultScope.get_instance('mmmt', scope_name='mmmt')
        return
    current_scope = DefaultScope.get_current_instance()
    if current_scope.scope_name != 'mmmt':
        warnings.warn('The current default scope '
                      f'"{current_scope.scope_name}" is not "mmmt", '
                      '`register_all_modules` will force the current'
                      'default scope to be "mmmt". If this is not '
                      'expected, please set `init_default_scope=False`.')
        # avoid name conflicts
        new_instance_name = f'mmmt-{datetime.datetime.now()}'
        DefaultScope.get_instance(new_instance_name, scope_name='mmmt')
