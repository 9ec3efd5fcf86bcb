import subprocess
import sys
import textwrap

import pytest


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-c', textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize('setup', ['from mmmt.utils import register_all_modules; '
                                   'register_all_modules()', 'import mmmt.models'])
def test_mmmt_set_up_makes_mmseg_models_importable_with_mmcv_lite(setup):
    result = run_python(f"""
        import importlib.util, sys
        real = importlib.util.find_spec('mmcv._ext') is not None
        {setup}
        import mmseg.models  # fails with mmcv-lite unless mmmt provided the placeholder
        ext = sys.modules['mmcv._ext']
        print('REAL' if real else 'PLACEHOLDER', getattr(ext, 'is_mmmt_placeholder', False),
              ext.__spec__.name)
        if not real:
            from mmcv.ops import sigmoid_focal_loss
            import torch
            try:
                sigmoid_focal_loss(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long))
            except RuntimeError as e:
                print('ERR', e)
    """)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    if out.startswith('REAL'):
        assert 'REAL False' in out
    else:
        assert 'PLACEHOLDER True mmcv._ext' in out
        assert 'mmcv==2.1.0' in out and 'sigmoid_focal_loss' in out


def test_full_mmcv_extension_is_left_untouched():
    # Simulate a full mmcv: a real `mmcv._ext` module already present.
    result = run_python("""
        import sys, types, importlib.machinery
        ext = types.ModuleType('mmcv._ext')
        ext.__spec__ = importlib.machinery.ModuleSpec('mmcv._ext', loader=None)
        sys.modules['mmcv._ext'] = ext
        import mmmt
        from mmmt.utils import install_mmcv_ext_placeholder, mmcv_has_compiled_ops
        assert sys.modules['mmcv._ext'] is ext
        assert install_mmcv_ext_placeholder() is False
        assert mmcv_has_compiled_ops()
        print('OK')
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == 'OK'


def test_placeholder_hides_dunder_attributes():
    from mmmt.utils.mmcv_compat import _MissingMMCVExtension
    ext = _MissingMMCVExtension('mmcv._ext')
    with pytest.raises(AttributeError):
        ext.__path__  # noqa: B018
    with pytest.raises(RuntimeError, match='nms'):
        ext.nms()


@pytest.mark.parametrize('setup', ['from mmmt.utils import register_all_modules; '
                                   'register_all_modules()', 'import mmmt.models',
                                   'import mmmt.datasets'])
def test_no_mmcv_at_all_is_named_with_what_to_install(setup):
    # None in sys.modules: `import mmcv` fails and find_spec says it is not there, as in an
    # environment where neither mmcv nor mmcv-lite is installed
    result = run_python(f"""
        import sys
        sys.modules['mmcv'] = None
        try:
            {setup}
        except ModuleNotFoundError as e:
            print('NAME', e.name)
            print('MSG', e)
    """)
    assert result.returncode == 0, result.stderr
    assert 'NAME mmcv' in result.stdout
    assert 'pip install mmcv-lite==2.1.0' in result.stdout
    assert 'mmcv==2.1.0' in result.stdout
