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


def _shipped_sources():
    import glob
    for path in PATHS:
        full = osp.join(REPO, path)
        yield from [full] if full.endswith('.py') else sorted(
            glob.glob(osp.join(full, '**', '*.py'), recursive=True))


def _runtime_unions(tree):
    """PEP 604 ``X | Y`` in annotations, which Python 3.9 evaluates at definition time."""
    import ast
    for node in ast.walk(tree):
        annotations = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            annotations += [a.annotation for a in args.posonlyargs + args.args
                            + args.kwonlyargs + [args.vararg, args.kwarg] if a is not None]
            annotations.append(node.returns)
        elif isinstance(node, ast.AnnAssign):
            annotations.append(node.annotation)
        for annotation in filter(None, annotations):
            if any(isinstance(n, ast.BinOp) and isinstance(n.op, ast.BitOr)
                   for n in ast.walk(annotation)):
                yield annotation.lineno


def test_sources_fit_the_oldest_python_of_setup_py():
    """``python_requires='>=3.9'`` (setup.py): no 3.10+ syntax (``match``, parenthesised
    context managers, ``except*``) and no ``int | None`` annotations evaluated at import.
    Checked with ``ast``'s grammar of 3.9 because CI runs one newer interpreter only."""
    import ast
    import re
    setup_py = open(osp.join(REPO, 'setup.py'), encoding='utf-8').read()
    oldest = tuple(int(v) for v in re.search(
        r"python_requires='>=(\d+)\.(\d+)'", setup_py).groups())
    assert oldest == (3, 9), 'update this check with python_requires'
    problems = []
    for path in _shipped_sources():
        source = open(path, encoding='utf-8').read()
        name = osp.relpath(path, REPO)
        try:
            tree = ast.parse(source, name, feature_version=oldest)
        except SyntaxError as e:
            problems.append(f'{name}:{e.lineno}: not Python {oldest[0]}.{oldest[1]} syntax '
                            f'({e.msg})')
            continue
        if 'from __future__ import annotations' not in source:
            problems += [f'{name}:{line}: an X | Y annotation (Optional/Union for 3.9)'
                         for line in _runtime_unions(tree)]
    assert not problems, '\n'.join(problems)
