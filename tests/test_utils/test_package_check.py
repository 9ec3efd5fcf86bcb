"""The clone folder `mmmt/` must not pass for the package (Python run from its parent folder).

An editable install serves the subpackages through a finder on ``sys.meta_path``, but the
current folder comes first on ``sys.path``: the clone folder (no ``__init__.py``) becomes an
empty namespace package ``mmmt`` whose ``__init__`` never ran. The subprocess rebuilds that
situation with a finder like setuptools' editable one.
"""
import os
import os.path as osp
import subprocess
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

_SCRIPT = '''
import importlib.machinery, importlib.util, sys
PKG = sys.argv[1]
# drop the installed editable finder (it may point at another checkout) and the repository
sys.meta_path[:] = [f for f in sys.meta_path
                    if not getattr(f, '__module__', '').startswith('__editable__')]
sys.path[:] = [p for p in sys.path if p not in ('', sys.argv[2])]
sys.path.insert(0, '.')

class EditableFinder:  # what setuptools' __editable___*_finder does for `pip install -e`
    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        if fullname == 'mmmt':
            return importlib.util.spec_from_file_location(
                'mmmt', PKG + '/__init__.py', submodule_search_locations=[PKG])
        if fullname.startswith('mmmt.') and fullname.count('.') == 1:
            return importlib.machinery.PathFinder.find_spec(fullname, [PKG])
        return None

sys.meta_path.append(EditableFinder)
import mmmt
print('namespace' if getattr(mmmt, '__file__', None) is None else 'package')
try:
    from mmmt.apis import MultiTaskInferencer  # the README's snippet
except ImportError as e:
    print('ImportError:', e)
else:
    print('imported')
'''


def run_from(folder):
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    return subprocess.run(
        [sys.executable, '-c', _SCRIPT, osp.join(REPO, 'mmmt'), REPO], cwd=folder,
        capture_output=True, text=True, timeout=300, env=env)


def test_clone_folder_is_named_not_imported(tmp_path):
    (tmp_path / 'mmmt').mkdir()  # the clone, as seen from its parent folder
    result = run_from(tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert lines[0] == 'namespace'
    assert lines[1].startswith('ImportError: `mmmt` was imported from')
    assert str(tmp_path / 'mmmt') in lines[1] and 'without __init__.py' in lines[1]
    assert 'docs/installation.md' in lines[1]
