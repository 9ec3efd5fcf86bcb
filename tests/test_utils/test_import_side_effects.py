"""``import mmmt`` changes nothing outside mmmt; ``register_all_modules()`` does the set-up.

Each check runs in a fresh interpreter: the test session itself has already called
``register_all_modules()`` (tests/conftest.py).
"""
import os.path as osp
import subprocess
import sys
import textwrap

from mmmt.utils.mmcv_compat import mmcv_has_compiled_ops

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

# Prints what mmmt may have changed: whether `mmcv._ext` is loaded (and if it is the placeholder),
# and for each mmengine checkpoint scheme the module of its loader.
REPORT = """
import sys
from mmengine.runner.checkpoint import CheckpointLoader
ext = sys.modules.get('mmcv._ext')
print('EXT', 'none' if ext is None else getattr(ext, 'is_mmmt_placeholder', 'real'))
for prefix in ('', 'http://', 'https://'):
    print('LOADER', repr(prefix), CheckpointLoader._schemes[prefix].__module__)
"""


def run_python(code: str) -> dict:
    result = subprocess.run([sys.executable, '-c', textwrap.dedent(code) + REPORT],
                            capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr
    lines = [line.split(' ', 1) for line in result.stdout.splitlines()
             if line.startswith(('EXT', 'LOADER'))]
    return dict(ext=[v for k, v in lines if k == 'EXT'][0],
                loaders={v for k, v in lines if k == 'LOADER'})


def expected_ext() -> str:
    """'real' beside a full mmcv, else the placeholder's marker."""
    return 'real' if mmcv_has_compiled_ops() else 'True'


def test_import_mmmt_changes_nothing():
    state = run_python("""
        import mmmt, mmmt.registry, mmmt.utils, mmmt.structures, mmmt.evaluation, mmmt.apis
    """)
    assert state['ext'] == 'none'
    assert state['loaders'] == {"'' mmengine.runner.checkpoint",
                                "'http://' mmengine.runner.checkpoint",
                                "'https://' mmengine.runner.checkpoint"}


def test_register_all_modules_installs_placeholder_and_safe_loaders():
    state = run_python("""
        from mmmt.utils import register_all_modules
        register_all_modules()
    """)
    assert state['ext'] == expected_ext()
    assert state['loaders'] == {"'' mmmt.utils.checkpoint", "'http://' mmmt.utils.checkpoint",
                                "'https://' mmmt.utils.checkpoint"}


def test_mmseg_config_importing_mmmt_models_keeps_mmengine_loaders():
    # What mmseg's tools/train.py does with configs/mmseg_examples/: read the config (which runs
    # its custom_imports), then build the model in mmseg's scope, importing mmseg.models.
    state = run_python("""
        from mmengine.config import Config
        from mmengine.registry import init_default_scope
        cfg = Config.fromfile('configs/mmseg_examples/mtmamba_swin-t_ade20k-512x512.py')
        init_default_scope('mmseg')
        import mmseg.models  # fails under mmcv-lite without the placeholder
        from mmseg.registry import MODELS
        head = MODELS.build(dict(cfg.model.decode_head, in_channels=(8, 16, 32, 64),
                                 num_stm_blocks=1))
        assert type(head).__module__.startswith('mmmt.models'), type(head)
    """)
    assert state['ext'] == expected_ext()
    assert all(loader.endswith('mmengine.runner.checkpoint') for loader in state['loaders'])
