"""Import a script of tools/ (or demo/) as a module, to call its functions in tests."""
import importlib.util
import os.path as osp
from types import ModuleType

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def load_tool(*path: str) -> ModuleType:
    """Load ``<repo>/<path...>.py``, e.g. ``load_tool('tools', 'analysis_tools', 'get_flops')``.

    Scripts are not packages, so they cannot be imported by name; each load gives a fresh
    module named after the script.
    """
    file = osp.join(REPO, *path[:-1], path[-1] + '.py')
    spec = importlib.util.spec_from_file_location(f'_tool_{path[-1]}', file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
