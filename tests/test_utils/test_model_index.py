"""Model names of model-index.yml: the inferencer takes them, the tools' errors point to them."""
import os.path as osp
import re

import pytest

from mmmt.utils.cli import check_config_file
from mmmt.utils.errors import InputFileNotFoundError
from mmmt.utils.model_index import config_of_model, model_configs, model_entries, model_index_file

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
NYUD = osp.join(REPO, 'configs', 'mtmamba', 'mtmamba_swin-l_8xb1-50k_nyudv2-448x576.py')


def test_the_clones_index_and_its_names():
    assert model_index_file() == osp.join(REPO, 'model-index.yml')
    configs = model_configs()
    assert configs['mtmamba_swin-l_8xb1-50k_nyudv2-448x576'] == NYUD
    assert configs['mtmamba_swin-l_nyud'] == NYUD  # the former (alias config) name
    assert all(osp.isfile(path) for path in configs.values())
    assert config_of_model('MTMamba_Swin-L_NYUD') == NYUD  # case-insensitive, as mmengine's
    assert config_of_model('mtmamba_swin-l_nyd') is None
    entry = model_entries()['mtmamba_swin-l_8xb1-50k_nyudv2-448x576']
    assert entry['Metadata']['Parameters'] == 307999137


def test_a_config_that_is_no_file_names_the_model_or_the_closest_file(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    with pytest.raises(InputFileNotFoundError, match=re.escape(
            'config file not found: mtmamba_swin-l_nyud (it is the name of a model of '
            'model-index.yml: its config is configs/mtmamba/'
            'mtmamba_swin-l_8xb1-50k_nyudv2-448x576.py)')):
        check_config_file('mtmamba_swin-l_nyud')
    with pytest.raises(InputFileNotFoundError, match=re.escape(
            "config file not found: configs/mtmamba_swin-l_nyd.py; did you mean "
            "'configs/mtmamba_swin-l_nyud.py'?")):
        check_config_file('configs/mtmamba_swin-l_nyd.py')
    with pytest.raises(InputFileNotFoundError, match=r'^config file not found: '
                                                     r'configs/zzz\.py$'):
        check_config_file('configs/zzz.py')
    with pytest.raises(InputFileNotFoundError, match=r'^config file not found: no/such/x\.py$'):
        check_config_file('no/such/x.py')


def test_the_inferencer_takes_model_names():
    from mmmt.apis.multitask_inferencer import MultiTaskInferencer, _config_of_model_name
    assert _config_of_model_name('mtmamba_swin-l_8xb1-50k_nyudv2-448x576') == NYUD
    assert _config_of_model_name('MTMamba_swin-l_nyud') == NYUD
    with pytest.raises(InputFileNotFoundError, match=re.escape(
            "'mtmamba_swin-l_8xb1-50k_nyudv2-448x567' is neither a config file nor a model "
            "name of model-index.yml; did you mean 'mtmamba_swin-l_8xb1-50k_nyudv2-448x576'?")):
        MultiTaskInferencer('mtmamba_swin-l_8xb1-50k_nyudv2-448x567')


def test_the_inferencer_is_registered_under_its_name():
    # a helper put between the decorator and the class took its place in the registry
    import mmmt.apis
    from mmmt.registry import INFERENCERS
    assert INFERENCERS.get('MultiTaskInferencer') is mmmt.apis.MultiTaskInferencer
    assert sorted(INFERENCERS.module_dict) == ['MultiTaskInferencer']
