"""Config names and the model index: OpenMMLab names, former names as aliases, metafiles that
``mim search`` / ``modelindex`` read."""
import glob
import os.path as osp
import re

import pytest
import yaml
from mmengine.config import Config

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

ALIASES = {
    'configs/mtmamba_swin-l_nyud.py': 'configs/mtmamba/mtmamba_swin-l_8xb1-50k_nyudv2-448x576.py',
    'configs/mtmamba_swin-l_pascal.py':
    'configs/mtmamba/mtmamba_swin-l_8xb1-50k_pascal-context-512x512.py',
    'configs/mtmamba_swin-t_nyud.py': 'configs/mtmamba/mtmamba_swin-t_8xb1-50k_nyudv2-448x576.py',
    'configs/mtmamba_plus/mtmamba-plus_swin-l_nyud.py':
    'configs/mtmamba_plus/mtmamba-plus_swin-l_8xb1-40k_nyudv2-448x576.py',
    'configs/mtmamba_plus/mtmamba-plus_swin-l_pascal.py':
    'configs/mtmamba_plus/mtmamba-plus_swin-l_8xb1-40k_pascal-context-512x512.py',
}


def models():
    with open(osp.join(REPO, 'model-index.yml'), encoding='utf-8') as f:
        metafiles = yaml.safe_load(f)['Import']
    for metafile in metafiles:
        with open(osp.join(REPO, metafile), encoding='utf-8') as f:
            meta = yaml.safe_load(f)
        for model in meta['Models']:
            yield metafile, meta, model


@pytest.mark.parametrize('old,new', sorted(ALIASES.items()))
def test_former_names_are_aliases_of_the_same_config(old, new):
    with open(osp.join(REPO, old), encoding='utf-8') as f:
        assert f.read().count('\n') <= 5  # a thin alias, not a copy
    assert Config.fromfile(osp.join(REPO, old)).to_dict() == \
        Config.fromfile(osp.join(REPO, new)).to_dict()


def test_metafiles_name_existing_configs_readmes_and_former_names():
    names, former = set(), set()
    for metafile, meta, model in models():
        config = model['Config']
        assert osp.isfile(osp.join(REPO, config)), (metafile, config)
        assert model['Name'] == osp.splitext(osp.basename(config))[0]  # OpenMMLab: name = stem
        assert model['Name'] not in names
        names.add(model['Name'])
        for name in (model.get('Metadata') or {}).get('Former Names', []):
            former.add(f'{name}.py')
        # modelindex resolves README paths against the metafile's folder
        for collection in meta['Collections']:
            assert osp.isfile(osp.join(REPO, osp.dirname(metafile), collection['README']))
        assert 'Weights' not in model  # none published: never an invented URL
    aliases = {osp.basename(p) for p in ALIASES}
    assert former and former <= aliases  # (the Swin-T config is indexed as an ablation)
    # the families' configs carry schedule and crop: <model>_<backbone>_<gpus>x<batch>-<iters>_...
    for name in names:
        if name.startswith(('mtmamba_swin-l', 'mtmamba-plus')):
            assert '_8xb1-' in name and name.endswith(('-448x576', '-512x512', '-512x1024')), name


def test_mim_finds_every_indexed_config_by_its_file_name():
    # `mim train mmmt NAME.py` searches the installed configs by file name: one match each
    everything = [osp.basename(p) for p in glob.glob(osp.join(REPO, 'configs', '**', '*.py'),
                                                     recursive=True)]
    for _, _, model in models():
        assert everything.count(osp.basename(model['Config'])) == 1, model['Config']


def test_mtmamba_plus_cites_its_own_paper():
    for metafile, meta, _ in models():
        if 'mtmamba_plus' in metafile:
            assert meta['Collections'][0]['Paper']['URL'] == 'https://arxiv.org/abs/2408.15101'
            assert 'MTMamba++' in meta['Collections'][0]['Paper']['Title']


# README column -> metafile metric (the paper's numbers that both repeat)
README_METRICS = {'semseg mIoU': 'semseg/mIoU', 'depth RMSE': 'depth/rmse',
                  'normals mean': 'normals/mean', 'edge odsF': 'edge/odsF',
                  'parts mIoU': 'human_parts/mIoU', 'sal maxF': 'sal/maxF',
                  'Δm (%)': 'multi_task/delta_m'}


def readme_model_rows(path: str) -> dict:
    """Model name -> {column header: cell} for every table row of a README whose first cell
    links a config (``[name](name.py)``)."""
    with open(path, encoding='utf-8') as f:
        lines = f.read().splitlines()
    rows, header = {}, None
    for i, line in enumerate(lines):
        if not line.startswith('|'):
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip('|').split('|')]
        below = lines[i + 1] if i + 1 < len(lines) else ''
        if below.startswith('|') and re.fullmatch(r'[|:\- ]*-[|:\- ]*', below):
            header = cells
            continue
        link = re.fullmatch(r'\[([\w.-]+)\]\(([^)]+\.py)\)', cells[0])
        if header and link:
            assert link.group(1) not in rows, (path, link.group(1))
            rows[link.group(1)] = dict(zip(header, cells))
    return rows


def two_decimals(count: int, unit: int) -> str:
    """``count / unit`` truncated (not rounded) to two decimals, as the paper prints them."""
    hundredths = count * 100 // unit
    return f'{hundredths // 100}.{hundredths % 100:02d}'


def test_two_decimals_truncates():
    assert two_decimals(307999137, 10**6) == '307.99'
    assert two_decimals(540815086944, 10**9) == '540.81'
    assert two_decimals(57589575, 10**6) == '57.58'
    assert two_decimals(4 * 10**7, 10**6) == '40.00'


def test_readme_model_rows_reads_linked_rows_under_their_header(tmp_path):
    readme = tmp_path / 'README.md'
    readme.write_text('| Config | Params (M) |\n|---|---|\n| [a](a.py) | 1.00 |\n'
                      '| plain | 2 |\n| [c](c.py) | 3.00 |\n\n'
                      '| Other | x |\n|:-:|---|\n| [b](../f/b.py) | y |\n',
                      encoding='utf-8')
    assert readme_model_rows(str(readme)) == {
        'a': {'Config': '[a](a.py)', 'Params (M)': '1.00'},
        'c': {'Config': '[c](c.py)', 'Params (M)': '3.00'},
        'b': {'Other': '[b](../f/b.py)', 'x': 'y'}}


def test_every_indexed_model_is_a_row_of_its_readme_with_the_metafile_numbers():
    # the README tables repeat the metafiles' counts and the paper's metrics: a model missing
    # from its README, or a number changed in one of the two, would show two different models
    readmes = {}
    for metafile, meta, model in models():
        readme = osp.join(REPO, osp.dirname(metafile), meta['Collections'][0]['README'])
        if readme not in readmes:
            readmes[readme] = readme_model_rows(readme)
        row = readmes[readme].get(model['Name'])
        assert row is not None, f'{model["Name"]} ({metafile}) has no row in {readme}'
        where = f'{osp.relpath(readme, REPO)}, {model["Name"]}'
        link = re.fullmatch(r'\[[\w.-]+\]\(([^)]+)\)', next(iter(row.values()))).group(1)
        assert osp.normpath(osp.join(osp.dirname(readme), link)) == \
            osp.join(REPO, model['Config']), where
        info = model['Metadata']
        assert row['Params (M)'] == two_decimals(info['Parameters'], 10**6), where
        assert row['FLOPs (G)'] == (two_decimals(info['FLOPs'], 10**9)
                                    if 'FLOPs' in info else '-'), where
        if 'Data' in row:
            assert row['Data'] == info['Training Data'], where
        if 'Paper row' in row:
            assert row['Paper row'] == info['Paper row'], where
        metrics = model['Results'][0]['Metrics'] if 'Results' in model else {}
        for column, key in README_METRICS.items():
            if column in row:
                assert row[column] == ('-' if key not in metrics else row[column]), where
                if key in metrics:
                    assert float(row[column]) == metrics[key], where
        assert set(metrics) <= {README_METRICS[c] for c in row if c in README_METRICS}, where


def test_each_collection_lists_the_training_data_of_its_models():
    data = {}
    for metafile, meta, model in models():
        collection = meta['Collections'][0]
        listed = collection['Metadata']['Training Data']
        data.setdefault(metafile, (set([listed] if isinstance(listed, str) else listed), set()))
        data[metafile][1].add(model['Metadata']['Training Data'])
    for metafile, (listed, used) in data.items():
        assert listed == used, metafile
