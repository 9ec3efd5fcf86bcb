"""Packaging for mmmt, an OpenMMLab plugin for multi-task dense prediction with Mamba decoders."""
import os.path as osp
import re

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


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


setup(
    name='mmmt',
    version=read_version(),
    description='Multi-task dense scene understanding with Mamba decoders '
    '(MTMamba, MTMamba++) for OpenMMLab',
    long_description=read_readme(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    packages=find_packages(exclude=('tests', 'tests.*', 'configs', 'tools')),
    package_data={'mmmt.ops': ['csrc/*.cpp', 'csrc/*.h']},
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
