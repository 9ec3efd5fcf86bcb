"""setup.py's add_mim_extension: links for an editable install, copies for sdists and wheels."""
import importlib.util
import os
import os.path as osp
import shutil
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A copy of setup.py beside small configs/, tools/ and model-index.yml; its module."""
    shutil.copy(osp.join(REPO, 'setup.py'), tmp_path / 'setup.py')
    (tmp_path / 'mmmt').mkdir()
    (tmp_path / 'configs' / 'demo').mkdir(parents=True)
    (tmp_path / 'configs' / 'demo' / 'a.py').write_text('x = 1\n')
    (tmp_path / 'configs' / '__pycache__').mkdir()
    (tmp_path / 'configs' / '__pycache__' / 'a.cpython-311.pyc').write_bytes(b'\0')
    (tmp_path / 'tools').mkdir()
    (tmp_path / 'tools' / 'train.py').write_text('print(1)\n')
    (tmp_path / 'model-index.yml').write_text('Import: []\n')
    spec = importlib.util.spec_from_file_location('_mmmt_setup', tmp_path / 'setup.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # setup() only runs as __main__

    def run(command):
        monkeypatch.setattr(sys, 'argv', ['setup.py', command])
        module.add_mim_extension()
        return tmp_path / 'mmmt' / '.mim'

    return tmp_path, run


def test_editable_install_links_and_a_wheel_copies(project):
    root, run = project
    mim = run('editable_wheel')
    for name in ('configs', 'tools', 'model-index.yml'):
        assert osp.islink(mim / name)
        assert os.readlink(mim / name) == osp.join('..', '..', name)  # relative: tree can move
    assert (mim / 'configs' / 'demo' / 'a.py').read_text() == 'x = 1\n'

    mim = run('bdist_wheel')
    for name in ('configs', 'tools', 'model-index.yml'):
        assert not osp.islink(mim / name)
    assert (mim / 'configs' / 'demo' / 'a.py').read_text() == 'x = 1\n'
    assert not (mim / 'configs' / '__pycache__').exists()
    assert (root / 'configs' / 'demo' / 'a.py').exists()  # the link was removed, not followed

    (root / 'configs' / 'demo' / 'a.py').write_text('x = 2\n')
    mim = run('sdist')  # a fresh copy, not the stale one
    assert (mim / 'configs' / 'demo' / 'a.py').read_text() == 'x = 2\n'


def test_metadata_commands_and_missing_sources_leave_mim_alone(project):
    root, run = project
    mim = run('egg_info')
    assert not mim.exists()
    mim = run('bdist_wheel')
    shutil.rmtree(root / 'configs')  # as in an unpacked sdist that ships only mmmt/.mim
    mim = run('bdist_wheel')
    assert (mim / 'configs' / 'demo' / 'a.py').read_text() == 'x = 1\n'


def test_tools_share_code_through_mmmt_not_sys_path():
    # the tools run from mmmt/.mim/tools too (mim), where a sibling module need not exist
    offenders = []
    for folder, _, files in os.walk(osp.join(REPO, 'tools')):
        for name in files:
            if name.endswith('.py'):
                with open(osp.join(folder, name), encoding='utf-8') as f:
                    if 'sys.path.insert' in f.read():
                        offenders.append(osp.relpath(osp.join(folder, name), REPO))
    assert offenders == []
