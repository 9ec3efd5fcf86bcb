"""The directions of mmmt's imports that keep its parts replaceable: the scan ops know nothing
of models, the layers nothing of tasks or datasets, the datasets nothing of models, the
metrics nothing of models or datasets, and the task definitions nothing of what uses them.

Every import is counted, also those inside functions (taken lazily, they still tie the parts).
"""
import ast
import glob
import os.path as osp
from typing import Iterator, Tuple

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

#: package -> the mmmt packages none of its modules may import
FORBIDDEN = {
    'mmmt.ops': ('mmmt.models', 'mmmt.datasets', 'mmmt.evaluation', 'mmmt.structures',
                 'mmmt.engine', 'mmmt.apis', 'mmmt.visualization'),
    'mmmt.models.layers': ('mmmt.structures', 'mmmt.datasets', 'mmmt.evaluation'),
    'mmmt.datasets': ('mmmt.models', 'mmmt.evaluation', 'mmmt.engine', 'mmmt.apis'),
    'mmmt.evaluation': ('mmmt.models', 'mmmt.datasets', 'mmmt.engine', 'mmmt.apis'),
    'mmmt.structures': ('mmmt.models', 'mmmt.datasets', 'mmmt.evaluation', 'mmmt.engine',
                        'mmmt.apis', 'mmmt.visualization'),
}


def imports(source: str, module: str, is_package: bool) -> Iterator[str]:
    """The absolute names of the mmmt modules that ``source`` (of ``module``) imports."""
    package = module if is_package else module.rsplit('.', 1)[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split('.')
                base = parts[:len(parts) - node.level + 1]
                names = ['.'.join(base + ([node.module] if node.module else []))]
            else:
                names = [node.module or '']
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        yield from (n for n in names if n == 'mmmt' or n.startswith('mmmt.'))


def _inside(name: str, package: str) -> bool:
    return name == package or name.startswith(package + '.')


def edges() -> Iterator[Tuple[str, str]]:
    for path in glob.glob(osp.join(REPO, 'mmmt', '**', '*.py'), recursive=True):
        rel = osp.relpath(path, REPO)[:-3].replace(osp.sep, '.')
        is_package = rel.endswith('.__init__')
        module = rel[:-len('.__init__')] if is_package else rel
        with open(path, encoding='utf-8') as f:
            source = f.read()
        for target in imports(source, module, is_package):
            yield module, target


def test_relative_and_lazy_imports_are_resolved():
    source = ('from ..layers import STMBlock\nfrom . import stage\n'
              'def f():\n    import mmmt.datasets.nyud\n    from mmmt.structures import TASKS\n'
              'import numpy\n')
    assert list(imports(source, 'mmmt.models.decode_heads.head', False)) == [
        'mmmt.models.layers', 'mmmt.models.decode_heads', 'mmmt.datasets.nyud',
        'mmmt.structures']
    assert list(imports('from .nyud import X\n', 'mmmt.datasets', True)) == [
        'mmmt.datasets.nyud']


def test_the_parts_import_only_in_the_allowed_directions():
    found = list(edges())
    assert ('mmmt.models.decode_heads.mtmamba_head', 'mmmt.models.layers') in found
    wrong = sorted(f'{source} imports {target}' for source, target in found
                   for package, banned in FORBIDDEN.items() if _inside(source, package)
                   for b in banned if _inside(target, b))
    assert not wrong, '\n'.join(wrong)
