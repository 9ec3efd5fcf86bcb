"""Defaults and layouts that the documentation states, read from the docs and compared with the
code: the gradient balancers' defaults (docs/multi_task_balancing.md), the boundary protocols
(docs/metrics.md), the launchers' environment defaults (docs/tools.md), the depth limits
(docs/tools.md, docs/how_to_add_a_dataset.md), the dataset layouts and split sizes (README.md)
and the versions, Python bounds and extras of the install docs (README.md,
docs/installation.md) against requirements/ and setup.py.

Each doc repeats a value the code defines elsewhere; a changed default otherwise leaves the doc
stating the old one.
"""
import ast
import inspect
import os.path as osp
import re
from typing import Dict, List, Set

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _read(path: str) -> str:
    with open(osp.join(REPO, path), encoding='utf-8') as f:
        return f.read()


def table_rows(markdown: str, first_header: str) -> List[List[str]]:
    """The body rows (cells stripped) of the table whose header row starts with the cell
    ``first_header``."""
    lines = markdown.splitlines()
    for i, line in enumerate(lines):
        cells = [c.strip() for c in line.strip().strip('|').split('|')]
        if line.startswith('|') and cells[0] == first_header:
            rows = []
            for body in lines[i + 2:]:
                if not body.startswith('|'):
                    break
                rows.append([c.strip() for c in body.strip().strip('|').split('|')])
            return rows
    raise AssertionError(f'no table with the header {first_header!r}')


def keyword_defaults(cell: str) -> Dict[str, object]:
    """``name=value`` pairs written as code in a table cell: ``c=0.4``, ``max_norm=None``."""
    pairs = {}
    for code in re.findall(r'`([^`]+)`', cell):
        found = re.fullmatch(r'(\w+)=(.+)', code)
        if found:
            pairs[found.group(1)] = ast.literal_eval(found.group(2))
    return pairs


def test_table_helpers_read_cells_and_defaults():
    text = ('intro\n\n| `type` | defaults |\n|---|---|\n| `A` | `c=0.4`, `rescale=False` (x) |\n'
            '| `B` | `normalization=\'none\'`, `task_weights` all 1 |\n\nafter\n| x |\n')
    rows = table_rows(text, '`type`')
    assert rows == [['`A`', '`c=0.4`, `rescale=False` (x)'],
                    ['`B`', "`normalization='none'`, `task_weights` all 1"]]
    assert keyword_defaults(rows[0][1]) == dict(c=0.4, rescale=False)
    assert keyword_defaults(rows[1][1]) == dict(normalization='none')
    with pytest.raises(AssertionError, match='no table'):
        table_rows(text, 'method')


# -- docs/multi_task_balancing.md: the defaults column ------------------------------------------


def test_balancer_defaults_table_matches_the_balancers_signatures():
    import mmmt.engine  # noqa: F401 (registers the balancers)
    from mmmt.registry import BALANCERS

    rows = table_rows(_read('docs/multi_task_balancing.md'), '`type`')
    names = [row[0].strip('`') for row in rows]
    # every registered balancer has its row, and every row names one
    assert sorted(names) == sorted(BALANCERS.module_dict), names
    checked = 0
    wrong = []
    for row in rows:
        name, stated = row[0].strip('`'), keyword_defaults(row[-1])
        params = inspect.signature(BALANCERS.get(name).__init__).parameters
        for key, value in stated.items():
            if key not in params:
                wrong.append(f'{name}: no argument {key!r}')
            elif params[key].default != value or type(params[key].default) is not type(value):
                wrong.append(f'{name}: the table says {key}={value!r}, the code '
                             f'{key}={params[key].default!r}')
            checked += 1
    assert not wrong, '\n'.join(wrong)
    assert checked >= 10  # the table's name=value defaults were read (not an empty parse)


def test_the_default_loss_combination_named_by_multi_task_balancing_md():
    """"By default the task losses are log-summed (`MultiTaskLoss(scheme='log')`...": the
    head's default combiner and MultiTaskLoss's own default scheme."""
    from mmmt.models.decode_heads.mtmamba_head import MTMambaHead
    from mmmt.models.losses import MultiTaskLoss

    text = re.sub(r'\s+', ' ', _read('docs/multi_task_balancing.md'))
    stated = re.search(
        r"By default the task losses are ([\w-]+) \(`MultiTaskLoss\(scheme='(\w+)'\)`", text)
    assert stated and stated.group(1) == f'{stated.group(2)}-summed', 'the sentence changed'
    head = inspect.signature(MTMambaHead).parameters['loss_combiner'].default
    assert head == dict(type='MultiTaskLoss', scheme=stated.group(2))
    assert inspect.signature(MultiTaskLoss).parameters['scheme'].default == stated.group(2)


# -- docs/metrics.md: the boundary protocols ----------------------------------------------------


def test_edge_protocol_table_matches_the_protocol_settings():
    from mmmt.evaluation.functional.boundary import (DEFAULT_EDGE_PROTOCOL, EDGE_PROTOCOLS,
                                                     resolve_edge_thresholds)
    from mmmt.evaluation.metrics.boundary_evaluator import BoundaryEvaluator

    rows = table_rows(_read('docs/metrics.md'), 'protocol')
    table = {re.match(r"`'([^']+)'`", row[0]).group(1): row for row in rows}
    assert sorted(table) == sorted(EDGE_PROTOCOLS)
    defaults = [name for name, row in table.items() if '(default' in row[0]]
    assert defaults == [DEFAULT_EDGE_PROTOCOL]
    assert inspect.signature(BoundaryEvaluator).parameters['protocol'].default == \
        DEFAULT_EDGE_PROTOCOL
    for name, (_, _, suppression, thresholds, ground_truth) in table.items():
        settings = EDGE_PROTOCOLS[name]
        assert (suppression == 'structured-edge NMS') == (settings['nms'] == 'seism'), name
        assert (suppression == 'none') == (settings['nms'] is False), name
        count = int(re.match(r'\d+', thresholds).group())
        assert len(resolve_edge_thresholds(settings['thresholds'])) == count, name
        # the protocol's own ground truth, before any config's override after ';'
        own = ground_truth.split(';')[0]
        expected = dict(seg2bmap_thin='thinned `seg2bmap`', thin='thinned `gt_edge`')
        assert own.startswith(expected[settings['gt_mode']]), (name, own)


def test_shipped_dataset_configs_use_the_edge_protocol_the_table_names():
    """"(default, all configs)" and "PASCAL configs: thinned `gt_edge`" of the table."""
    from mmengine.config import Config

    from mmmt.evaluation.functional.boundary import DEFAULT_EDGE_PROTOCOL
    rows = table_rows(_read('docs/metrics.md'), 'protocol')
    default_row = next(row for row in rows if '(default, all configs)' in row[0])
    assert 'PASCAL configs: thinned `gt_edge`' in default_row[-1]
    for name in ('nyud_mt', 'pascal_mt'):
        edge = Config.fromfile(osp.join(REPO, 'configs', '_base_', 'datasets', f'{name}.py')
                               ).test_evaluator.tasks.edge
        assert edge.get('protocol', DEFAULT_EDGE_PROTOCOL) == DEFAULT_EDGE_PROTOCOL, name
        if name == 'pascal_mt':
            assert edge.gt_mode == 'thin'


# -- docs/tools.md: the launchers' environment defaults -----------------------------------------


def test_slurm_launcher_defaults_in_tools_md_match_the_scripts():
    from mmmt.utils import dist_utils

    rows = table_rows(_read('docs/tools.md'), 'script')
    slurm = next(row[1] for row in rows if 'slurm_train.sh' in row[0])
    stated = dict(re.findall(r'`([A-Z_]+)` \((\d+)\)', slurm))
    assert set(stated) == {'GPUS', 'GPUS_PER_NODE', 'CPUS_PER_TASK', 'MASTER_PORT'}, stated
    for script in ('tools/slurm_train.sh', 'tools/slurm_test.sh'):
        text = _read(script)
        for var in ('GPUS', 'GPUS_PER_NODE', 'CPUS_PER_TASK'):
            found = re.search(r'^' + var + r'=\$\{' + var + r':-(\w+)\}$', text, re.M)
            assert found and found.group(1) == stated[var], (script, var)
    # srun sets no MASTER_PORT: mmmt's rendezvous sets its default
    source = inspect.getsource(dist_utils._slurm_rendezvous_env)
    assert f"os.environ.setdefault('MASTER_PORT', '{stated['MASTER_PORT']}')" in source


# -- docs/tools.md, docs/how_to_add_a_dataset.md: the depth limits ------------------------------


def test_depth_limits_in_the_docs_match_the_decoder_and_nyud():
    from mmmt.datasets import NYUDv2MultiTaskDataset
    from mmmt.datasets.nyud import NYUD_MAX_DEPTH
    from mmmt.datasets.transforms.decoders import MAX_DEPTH

    tools = re.search(r"values above the dataset's `max_depth` \((\S+) m for NYUD, (\S+) m by "
                      r'default\)', re.sub(r'\s+', ' ', _read('docs/tools.md')))
    assert tools, "docs/tools.md no longer states the depth limits as the test reads them"
    assert float(tools.group(1)) == NYUD_MAX_DEPTH
    assert float(tools.group(2)) == MAX_DEPTH
    assert inspect.signature(NYUDv2MultiTaskDataset).parameters['max_depth'].default == \
        NYUD_MAX_DEPTH
    row = next(r for r in table_rows(_read('docs/how_to_add_a_dataset.md'), 'encoding')
               if r[0] == '`depth_npy`')
    decoder = re.search(r'`max_depth` \(default (\S+) m\)', row[2])
    assert decoder and float(decoder.group(1)) == MAX_DEPTH


# -- README.md: the dataset layouts and split sizes ---------------------------------------------


def _layout_paths(code_block: str) -> Set[str]:
    """The file patterns of a layout block (``images/<id>.png``), without the dataset roots."""
    return {token for token in code_block.split()
            if '/' in token and not token.endswith('/') and not token.startswith('(')}


def _readme_layout_blocks() -> List[str]:
    data = _read('README.md').split('\n## Data\n', 1)[1].split('\n## ', 1)[0]
    return re.findall(r'```\n(data/.*?)```', data, re.S)


def _code_patterns(layout: str, tmp_path) -> Set[str]:
    """The file patterns the dataset class of ``layout`` reads: its split list (or image
    folder) and every file of one sample with all its tasks, ids replaced by ``<id>``."""
    from mmmt.datasets import LAYOUTS

    cls = LAYOUTS[layout]
    root = tmp_path / layout
    img_id = 'city/city_000000_000019' if layout == 'cityscapes' else '0001'
    patterns = set()
    if cls.SPLIT_FILE:
        for split in ('train', 'val'):
            split_file = root / cls.SPLIT_FILE.format(split=split)
            split_file.parent.mkdir(parents=True, exist_ok=True)
            split_file.write_text(img_id + '\n')
        patterns.add(cls.SPLIT_FILE.format(split='{train,val}'))
    else:  # Cityscapes: the images under leftImg8bit/<split>/ are the split
        for split in ('train', 'val'):
            image = root / 'leftImg8bit' / split / f'{img_id}_leftImg8bit.png'
            image.parent.mkdir(parents=True, exist_ok=True)
            image.write_bytes(b'')
    if layout == 'pascal':  # the VOC12 label is read where it exists, else the Context one
        (root / 'semseg' / 'VOC12').mkdir(parents=True)
        (root / 'semseg' / 'VOC12' / f'{img_id}.png').write_bytes(b'')
    for split in ('train', 'val'):
        ds = cls(data_root=str(root), split=split, check_files=False, serialize_data=False)
        info = ds.get_data_info(0)
        paths = [info['img_path']] + [a['path'] for a in info['ann_info'].values()]
        paths += [a[k] for a in info['ann_info'].values() for k in ('context_path', 'label_path')
                  if k in a]
        for path in paths:
            rel = osp.relpath(path, str(root)).replace(osp.sep, '/')
            if layout == 'cityscapes':
                rel = rel.replace(f'/{split}/city/', '/{train,val}/<city>/').replace(
                    'city_000000_000019', '<id>')
            else:
                rel = rel.replace(img_id, '<id>')
            patterns.add(rel)
    return patterns


def test_readme_layouts_are_the_files_the_datasets_read(tmp_path):
    nyud_pascal, cityscapes = _readme_layout_blocks()
    code = {layout: _code_patterns(layout, tmp_path)
            for layout in ('nyud', 'pascal', 'cityscapes')}
    # PASCAL's fallback label folder, read when semseg/VOC12/<id>.png does not exist
    code['pascal'].add('semseg/pascal-context/<id>.png')
    assert _layout_paths(nyud_pascal) == code['nyud'] | code['pascal']
    assert _layout_paths(cityscapes) == code['cityscapes']


def test_layout_paths_read_a_two_column_block():
    block = ('data/NYUDv2/           data/PASCALContext/\n'
             '  images/<id>.png  (0..40)    semseg/a.png | semseg/b.png\n'
             '  disparity/x.png  (uint16, (d - 1) / 256, 0 invalid)\n')
    assert _layout_paths(block) == {'images/<id>.png', 'semseg/a.png', 'semseg/b.png',
                                    'disparity/x.png'}


def test_readme_split_sizes_match_the_standard_split_sizes():
    from mmmt.datasets import STANDARD_SPLIT_SIZES

    text = re.sub(r'\s+', ' ', _read('README.md'))

    def number(s: str) -> int:
        return int(s.replace(',', ''))

    nyud = re.search(r'NYUDv2 has ([\d,]+) train / ([\d,]+) val ids, PASCAL-Context ([\d,]+) / '
                     r'([\d,]+)', text)
    city = re.search(r'\(([\d,]+) train / ([\d,]+) val images; the `depth` task is disparity',
                     text)
    assert nyud and city, 'README.md no longer states the split sizes as the test reads them'
    assert dict(train=number(nyud.group(1)), val=number(nyud.group(2))) == \
        STANDARD_SPLIT_SIZES['nyud']
    assert dict(train=number(nyud.group(3)), val=number(nyud.group(4))) == \
        STANDARD_SPLIT_SIZES['pascal']
    assert dict(train=number(city.group(1)), val=number(city.group(2))) == \
        STANDARD_SPLIT_SIZES['cityscapes']


# -- README.md, docs/installation.md: version pins and install facts ----------------------------


def requirement_pins(path: str) -> Dict[str, str]:
    """``name -> version`` of the ``name==version`` lines of a requirements file."""
    pins = {}
    for line in _read(path).splitlines():
        found = re.fullmatch(r'([A-Za-z0-9_.-]+)==(\S+)', line.split('#', 1)[0].strip())
        if found:
            pins[found.group(1).lower()] = found.group(2)
    return pins


def stated_versions(text: str, names) -> List[tuple]:
    """``(name, version)`` wherever the text gives one of ``names`` a version: ``torch==2.14.1``
    or ``torch 2.14.1`` (not ``torch >= 2.6``, a bound)."""
    pattern = (r'(?<![\w.-])(' + '|'.join(re.escape(n) for n in names) +
               r')(?:==| )(\d+(?:\.\d+)+)(?![\w.])')
    return re.findall(pattern, re.sub(r'\s+', ' ', text))


def test_stated_versions_reads_pins_not_bounds():
    text = 'pip install torch==2.14.1 and mmcv-lite 2.1.0; torch >= 2.6; mmcv==2.1.0 torch\n2.0'
    assert stated_versions(text, ['torch', 'mmcv-lite']) == [
        ('torch', '2.14.1'), ('mmcv-lite', '2.1.0'), ('torch', '2.0')]


def test_the_versions_the_install_docs_give_are_the_ci_pins():
    pins = requirement_pins('requirements/ci.txt')
    assert {'torch', 'torchvision', 'mmengine', 'mmcv-lite', 'mmsegmentation'} <= set(pins)
    wrong, seen = [], set()
    for doc in ('README.md', 'docs/installation.md'):
        for name, version in stated_versions(_read(doc), pins):
            seen.add(name)
            if version != pins[name]:
                wrong.append(f'{doc}: {name} {version}, requirements/ci.txt pins {pins[name]}')
    assert not wrong, '\n'.join(wrong)
    assert {'torch', 'torchvision', 'mmengine', 'mmcv-lite', 'mmsegmentation'} <= seen


def test_install_docs_state_the_runtime_bounds_python_and_extras():
    text = re.sub(r'\s+', ' ', _read('docs/installation.md'))
    setup = _read('setup.py')
    runtime = _read('requirements/runtime.txt')
    # torch's lower bound
    oldest = re.search(r'torch older than (\S+) is not supported', text).group(1)
    assert re.search(r'^torch>=' + re.escape(oldest) + '$', runtime, re.M)
    # Python: what setup.py declares, and what the pins were measured on
    declared = re.search(r"python_requires='>=([\d.]+)'", setup).group(1)
    assert f'mmmt itself declares Python >= {declared} (`setup.py`)' in text
    measured = re.search(r'with Python ([\d.]+)', _read('requirements/ci.txt')).group(1)
    assert f'These pins need Python {measured} or later' in text
    # every extra the docs install is one setup.py defines
    extras = set(re.findall(r"'(\w+)': parse_requirements\(", setup))
    assert 'cuda' in extras
    for doc in ('README.md', 'docs/installation.md'):
        used = set(re.findall(r'\.\[(\w+)\]', _read(doc)))
        assert used and used <= extras, (doc, used, extras)
