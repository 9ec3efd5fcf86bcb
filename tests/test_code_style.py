"""The repository passes its own style checks (flake8 and isort with the settings of setup.cfg),
as ``pre-commit run --all-files`` runs them (.pre-commit-config.yaml)."""
import os.path as osp
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
# what the repository ships (a developer's scratch files elsewhere in the tree are not checked)
PATHS = ['mmmt', 'tools', 'tests', 'demo', 'configs', 'setup.py']


@pytest.mark.parametrize('tool, args', [('flake8', []), ('isort', ['--check-only', '--diff'])])
def test_style(tool, args):
    pytest.importorskip(tool, reason=f'{tool} is pinned in requirements/ci.txt')
    result = subprocess.run([sys.executable, '-m', tool, *args, *PATHS], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (f'{tool} (settings in setup.cfg) reports:\n'
                                    + result.stdout[-6000:] + result.stderr[-2000:])


def _mmmt_modules():
    import importlib
    import pkgutil
    import warnings

    import mmmt
    for info in pkgutil.walk_packages(mmmt.__path__, 'mmmt.'):
        with warnings.catch_warnings():  # mmmt.datasets.synthetic: a deprecated alias
            warnings.simplefilter('ignore', DeprecationWarning)
            module = importlib.import_module(info.name)
        yield module, info.ispkg


def test_all_lists_the_exports():
    """Each ``__all__`` names only what its module has, and a package's ``__all__`` only names
    that are in the ``__all__`` of the module defining them (``from <module> import *`` and
    the API docs see the same names as the package)."""
    import importlib
    problems = []
    for module, is_package in _mmmt_modules():
        names = getattr(module, '__all__', None)
        if names is None:
            continue
        problems += [f'{module.__name__}.__all__ lists {n!r}, which it lacks'
                     for n in names if not hasattr(module, n)]
        if not is_package:
            continue
        for n in names:
            home = getattr(getattr(module, n, None), '__module__', None) or ''
            if home.startswith('mmmt.') and home != module.__name__:
                home_all = getattr(importlib.import_module(home), '__all__', ())
                if n not in home_all:
                    problems.append(f'{module.__name__} exports {n!r}, missing from the '
                                    f'__all__ of {home}')
    assert not problems, '\n'.join(problems)
