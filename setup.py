"""Packaging for mmmt, an OpenMMLab plugin for multi-task dense prediction with Mamba decoders.

Laid out like mmsegmentation's setup.py: :func:`add_mim_extension` puts ``configs/``, ``tools/``
and ``model-index.yml`` into ``mmmt/.mim`` (where OpenMIM looks for them, so ``mim train/test/
search mmmt`` work and the configs ship in the wheel), and MANIFEST.in puts everything the
build reads (``requirements/``, the README, the C++ sources) into the sdist.
"""
import os
import os.path as osp
import platform
import re
import setuptools
import shutil
import sys
import warnings
from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))

#: The licence as PEP 639's SPDX ``License-Expression`` where setuptools writes one (77 and
#: later; it deprecates the ``License ::`` classifier), else as the older ``License`` field.
LICENSE = (dict(license_expression='Apache-2.0')
           if int(setuptools.__version__.split('.')[0]) >= 77 else dict(license='Apache-2.0'))

#: What OpenMIM expects inside ``<package>/.mim``.
MIM_FILES = ('configs', 'tools', 'model-index.yml')


def read_version() -> str:
    with open(osp.join(HERE, 'mmmt', 'version.py'), encoding='utf-8') as f:
        return re.search(r"__version__ = '([^']+)'", f.read()).group(1)


def parse_requirements(name: str) -> list:
    """Read `requirements/<name>.txt`, skipping comments and blank lines."""
    path = osp.join(HERE, 'requirements', f'{name}.txt')
    with open(path, encoding='utf-8') as f:
        lines = (line.split('#', 1)[0].strip() for line in f)
        return [line for line in lines if line]


def read_readme() -> str:
    with open(osp.join(HERE, 'README.md'), encoding='utf-8') as f:
        return f.read()


def add_mim_extension() -> None:
    """Put ``MIM_FILES`` into ``mmmt/.mim``: symlinks for an editable install, else copies.

    An editable install (``pip install -e .``: setuptools' ``editable_wheel``, or the legacy
    ``develop``) runs mmmt from this tree, so links keep ``.mim`` in step with the edited files.
    An sdist or a wheel (``pip install .``, ``pip wheel``) gets copies. Other commands (the
    metadata steps pip runs first) change nothing. A source that is absent (a wheel built from
    an sdist, which carries ``mmmt/.mim`` already) leaves its copy as it is.
    """
    if 'develop' in sys.argv or 'editable_wheel' in sys.argv:
        mode = 'copy' if platform.system() == 'Windows' else 'symlink'
    elif 'sdist' in sys.argv or 'bdist_wheel' in sys.argv:
        mode = 'copy'
    else:
        return
    mim_path = osp.join(HERE, 'mmmt', '.mim')
    os.makedirs(mim_path, exist_ok=True)
    for name in MIM_FILES:
        src_path = osp.join(HERE, name)
        tar_path = osp.join(mim_path, name)
        if not osp.exists(src_path):
            continue
        if osp.isfile(tar_path) or osp.islink(tar_path):
            os.remove(tar_path)
        elif osp.isdir(tar_path):
            shutil.rmtree(tar_path)
        if mode == 'symlink':
            os.symlink(osp.relpath(src_path, mim_path), tar_path)
        elif osp.isfile(src_path):
            shutil.copyfile(src_path, tar_path)
        elif osp.isdir(src_path):
            shutil.copytree(src_path, tar_path,
                            ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
        else:
            warnings.warn(f'Cannot copy {src_path} into {mim_path}.')


if __name__ == '__main__':
    add_mim_extension()
    setup(
        name='mmmt',
        version=read_version(),
        description='Multi-task dense scene understanding with Mamba decoders '
        '(MTMamba, MTMamba++) for OpenMMLab',
        long_description=read_readme(),
        long_description_content_type='text/markdown',
        **LICENSE,
        license_files=['LICENSE'],
        # the C++ scan's sources are a data-only package (built on first use, mmmt.ops.cpp_loader):
        # named here, as setuptools asks, so that future versions still ship them
        packages=find_packages(exclude=('tests', 'tests.*', 'configs', 'tools')) +
        ['mmmt.ops.csrc'],
        package_data={'mmmt.ops.csrc': ['*.cpp', '*.h']},
        # and the other files MANIFEST.in names inside mmmt/: mmmt/.mim
        include_package_data=True,
        python_requires='>=3.9',
        install_requires=parse_requirements('runtime'),
        extras_require={
            'cuda': parse_requirements('optional'),
            'tests': parse_requirements('tests'),
        },
        classifiers=[
            'Programming Language :: Python :: 3',
            'Topic :: Scientific/Engineering :: Artificial Intelligence',
        ],
        zip_safe=False,
    )
