"""Runner extensions: hooks."""
from .hooks import *  # noqa: F401,F403
from .hooks import __all__ as _hooks_all

__all__ = list(_hooks_all)
