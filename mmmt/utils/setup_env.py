"""Registration helpers, as in mmpretrain/mmseg ``utils.setup_env``."""
import datetime
import warnings

from mmengine import DefaultScope

__all__ = ['register_all_modules']


def register_all_modules(init_default_scope: bool = True) -> None:
    """Import every mmmt module that registers something, and optionally set the scope.

    Args:
        init_default_scope (bool): Whether to make ``mmmt`` the current default scope, so that
            un-prefixed ``type=`` names are first looked up in mmmt's registries.
            Defaults to True.
    """
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
