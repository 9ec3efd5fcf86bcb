"""The sdist builds a wheel, the wheel installs, and mmmt works from it outside the source tree.

One end-to-end run (about a minute on 2 cores, most of it building Swin-L and compiling the C++
scan): the tracked files are copied away from the checkout, ``setup.py sdist`` packs them, the
unpacked sdist gives a wheel (``pip wheel --no-deps --no-build-isolation``), and the wheel is
installed into a scratch venv. In another directory that venv's python then finds the configs
in ``mmmt/.mim`` (where OpenMIM's ``mim train/test/search`` look), builds the NYUD model from
them, compiles the C++ scan from the installed sources (with no ninja on PATH, as in a venv that
is not activated: the ``ninja`` requirement's binary must be found) and runs the installed
tools.

The scratch venv reaches the test interpreter's packages (torch, mmseg, ...) through a ``.pth``
line instead of ``--system-site-packages``, which would give the base interpreter's packages,
not this venv's. pip is this environment's (``python -m pip`` finds it through that line);
``--ignore-installed`` keeps it from touching an mmmt installed there.
"""
import glob
import os
import os.path as osp
import shutil
import site
import subprocess
import sys
import tarfile
import textwrap
import venv
import zipfile

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

CHECK = r'''
import os, os.path as osp, subprocess, sys
import torch
import mmmt
from mmengine.config import Config

site_dir = sys.argv[1]
assert osp.dirname(osp.dirname(mmmt.__file__)) == site_dir, mmmt.__file__
mim = osp.join(osp.dirname(mmmt.__file__), '.mim')
for name in ('model-index.yml', 'configs/_base_/default_runtime.py', 'tools/train.py',
             'tools/test.py'):
    assert osp.isfile(osp.join(mim, name)), name

# what `mim search mmmt` reads: the index, the metafiles it imports, the configs they name
import yaml
with open(osp.join(mim, 'model-index.yml')) as f:
    imports = yaml.safe_load(f)['Import']
n_models = 0
for metafile in imports:
    with open(osp.join(mim, metafile)) as f:
        for model in yaml.safe_load(f)['Models']:
            assert osp.isfile(osp.join(mim, model['Config'])), (metafile, model['Config'])
            n_models += 1
print('INDEXED', n_models)
# the inferencer's model names resolve into the installed copy
from mmmt.utils.model_index import config_of_model, model_index_file
assert model_index_file() == osp.join(mim, 'model-index.yml'), model_index_file()
assert config_of_model('mtmamba_swin-l_nyud') == osp.join(
    mim, 'configs', 'mtmamba', 'mtmamba_swin-l_8xb1-50k_nyudv2-448x576.py')

from mmmt.utils import register_all_modules
from mmmt.registry import MODELS
register_all_modules()
cfg = Config.fromfile(
    osp.join(mim, 'configs', 'mtmamba', 'mtmamba_swin-l_8xb1-50k_nyudv2-448x576.py'))
cfg.model.backbone.init_cfg = None
model = MODELS.build(cfg.model).eval()
print('PARAMS', sum(p.numel() for p in model.parameters()))

from mmmt.ops import cpp_loader, selective_scan_cpu, selective_scan_torch
assert cpp_loader.SOURCE.startswith(site_dir), cpp_loader.SOURCE
cpp_loader.load_scan_ops()  # raises if the build fails
g = torch.Generator().manual_seed(0)
u, delta, z = (torch.randn(2, 8, 33, generator=g) for _ in range(3))
A = -torch.rand(8, 4, generator=g)
B, C = torch.randn(2, 4, 33, generator=g), torch.randn(2, 4, 33, generator=g)
D = torch.randn(8, generator=g)
fast = selective_scan_cpu(u, delta, A, B, C, D, z, None, True, False)
ref = selective_scan_torch(u, delta, A, B, C, D, z, None, True, False)
print('SCAN_MAX_DIFF', float((fast - ref).abs().max()), float(ref.abs().max()))

os.environ['MMMT_SCAN_BACKEND'] = 'cpp'
with torch.no_grad():
    out = model(torch.randn(1, 3, 64, 64, generator=g), mode='tensor')
print('OUT', sorted((k, tuple(v.shape)) for k, v in out.items()))

for tool in ('train.py', 'test.py'):
    help_text = subprocess.run([sys.executable, osp.join(mim, 'tools', tool), '-h'],
                               capture_output=True, text=True, check=True).stdout
    assert 'config' in help_text, help_text
print('TOOLS OK')
'''


def run(cmd, cwd, env=None, timeout=300):
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, f'{cmd} failed:\n{result.stdout}\n{result.stderr}'
    return result.stdout


def path_without_ninja(farm) -> str:
    """A PATH with every program of this one but ``ninja``: as in a venv that is not
    activated, where the ``ninja`` pip package's binary is not on PATH."""
    os.makedirs(farm)
    for folder in os.environ.get('PATH', '').split(os.pathsep):
        if not osp.isdir(folder):
            continue
        for name in os.listdir(folder):
            if name != 'ninja' and not osp.lexists(osp.join(farm, name)):
                os.symlink(osp.join(folder, name), osp.join(farm, name))
    return str(farm)


def copy_checkout(dst):
    """The files git would commit (tracked or new, not ignored), else the tree minus builds."""
    try:
        listed = subprocess.run(['git', 'ls-files', '-co', '--exclude-standard', '-z'], cwd=REPO,
                                capture_output=True, check=True).stdout.decode().split('\0')
    except (OSError, subprocess.CalledProcessError):
        shutil.copytree(REPO, dst, ignore=shutil.ignore_patterns(
            '.git', '.venv', 'data', 'work_dirs', 'build', '*.egg-info', '.mim', '__pycache__'))
        return
    for rel in filter(None, listed):
        if osp.isfile(osp.join(REPO, rel)):
            os.makedirs(osp.dirname(osp.join(dst, rel)), exist_ok=True)
            shutil.copy2(osp.join(REPO, rel), osp.join(dst, rel))


@pytest.mark.skipif(shutil.which(os.environ.get('CXX', 'c++')) is None, reason='no C++ compiler')
def test_wheel_from_sdist_installs_and_runs_outside_the_source_tree(tmp_path):
    src, dist, wheels = tmp_path / 'src', tmp_path / 'dist', tmp_path / 'wheels'
    copy_checkout(src)
    run([sys.executable, 'setup.py', '-q', 'sdist', '-d', str(dist)], cwd=src)
    (sdist, ) = dist.iterdir()
    with tarfile.open(sdist) as tar:
        safe = {'filter': 'data'} if hasattr(tarfile, 'data_filter') else {}
        tar.extractall(tmp_path / 'unpacked', **safe)
    (unpacked, ) = (tmp_path / 'unpacked').iterdir()
    assert not (unpacked / '.git').exists()
    # the licence (Apache-2.0 asks for a copy with every distribution), the Makefile and demo
    # the README points to, and the whole test suite with its data
    expected = ['LICENSE', 'Makefile'] + [
        osp.relpath(f, src) for f in glob.glob(str(src / '**' / '*'), recursive=True)
        if osp.isfile(f) and osp.relpath(f, src).split(os.sep)[0] in ('demo', 'tests')]
    assert any(name.startswith('tests/') for name in expected)
    missing = [name for name in expected if not (unpacked / name).is_file()]
    assert not missing, f'not in the sdist: {missing}'

    env_dir = tmp_path / 'venv'
    venv.create(env_dir, with_pip=False)
    python = str(env_dir / 'bin' / 'python')
    site_dir = run([python, '-c', 'import sysconfig; print(sysconfig.get_path("purelib"))'],
                   cwd=tmp_path).strip()
    with open(osp.join(site_dir, '_test_env.pth'), 'w') as f:
        f.write('\n'.join(site.getsitepackages()) + '\n')
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}  # no source-tree mmmt
    env.update(MMMT_EXT_DIR=str(tmp_path / 'ext'), OMP_NUM_THREADS='1', PIP_NO_INDEX='1',
               PIP_DISABLE_PIP_VERSION_CHECK='1')
    run([python, '-m', 'pip', 'wheel', '-q', '--no-deps', '--no-build-isolation', '-w',
         str(wheels), '.'], cwd=unpacked, env=env)
    (wheel, ) = wheels.iterdir()
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        metadata = zf.read(next(n for n in names if n.endswith('.dist-info/METADATA'))).decode()
    assert [n for n in names if '.dist-info/' in n and n.endswith('/LICENSE')], names
    assert 'License-Expression: Apache-2.0' in metadata.splitlines()
    run([python, '-m', 'pip', 'install', '-q', '--no-deps', '--ignore-installed', str(wheel)],
        cwd=tmp_path, env=env)

    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    (elsewhere / 'check.py').write_text(textwrap.dedent(CHECK))
    # The ninja requirement's binary lives in the bin folder of the venv it is installed in
    # (here the test's); link it into the scratch venv's, then take ninja off PATH: the build
    # must find it anyway.
    import ninja
    os.symlink(osp.join(ninja.BIN_DIR, 'ninja'), env_dir / 'bin' / 'ninja')
    env['PATH'] = path_without_ninja(tmp_path / 'bin')
    out = run([python, 'check.py', site_dir], cwd=elsewhere, env=env)
    lines = dict(line.split(' ', 1) for line in out.splitlines()
                 if line.startswith(('INDEXED', 'PARAMS', 'SCAN_MAX_DIFF', 'OUT', 'TOOLS')))
    assert int(lines['INDEXED']) >= 4
    assert int(lines['PARAMS']) == 307_999_137  # as tests/test_models/test_mtmamba_head.py
    diff, scale = map(float, lines['SCAN_MAX_DIFF'].split())
    assert scale > 1 and diff <= 1e-4 * scale
    assert lines['OUT'] == str([('depth', (1, 1, 64, 64)), ('edge', (1, 1, 64, 64)),
                                ('normals', (1, 3, 64, 64)), ('semseg', (1, 40, 64, 64))])
    assert lines['TOOLS'] == 'OK'
    assert glob.glob(str(tmp_path / 'ext' / 'mmmt_scan_*' / 'mmmt_scan_*.so'))  # built here
