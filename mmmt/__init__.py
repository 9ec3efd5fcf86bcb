"""mmmt: multi-task dense scene understanding with Mamba decoders, for OpenMMLab."""
from .utils.mmcv_compat import install_mmcv_ext_placeholder

# Must run before anything imports mmseg: with mmcv-lite (no compiled ops) mmseg's model package
# would fail to import. A no-op when the full mmcv is installed (see mmmt/utils/mmcv_compat.py).
install_mmcv_ext_placeholder()

from .utils.checkpoint import register_safe_checkpoint_loaders  # noqa: E402
from .version import __version__  # noqa: E402

# Checkpoints (load_from, --resume, Pretrained init_cfg) load with weights_only=True and an
# allow-list of mmengine/numpy types; see mmmt/utils/checkpoint.py.
register_safe_checkpoint_loaders()

__all__ = ['__version__']
