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
