"""Config names and the model index: OpenMMLab names, former names as aliases, metafiles that
``mim search`` / ``modelindex`` read."""
import glob
import os.path as osp

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
