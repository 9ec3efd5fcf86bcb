"""mmmt: multi-task dense scene understanding with Mamba decoders, for OpenMMLab.

Importing ``mmmt`` changes nothing outside it, so ``custom_imports=['mmmt']`` in another
project's config leaves that process as it was. The process-wide set-up mmmt's own tools need
(the ``mmcv._ext`` placeholder for mmcv-lite, the safe checkpoint loaders) is done by
:func:`mmmt.utils.register_all_modules`; see docs/installation.md.
"""
from .version import __version__

__all__ = ['__version__']
