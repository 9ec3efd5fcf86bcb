"""The models of mmmt's ``model-index.yml``: names, former names and config files.

OpenMMLab inferencers take a model name as well as a config file
(``MMSegInferencer('pspnet_r50-d8_4xb2-40k_cityscapes-512x1024')``); mmengine's own lookup
needs the package in its ``MODULE2PACKAGE`` table and a ``Weights`` entry, and mmmt publishes
no weights (the reference's convert with ``tools/model_converters/mtmamba2mmmt.py``), so the
index is read here. It is ``mmmt/.mim/model-index.yml`` in an installed package (``setup.py``
puts it there, as mmsegmentation does) and the repository's ``model-index.yml`` in a clone.
"""
import os.path as osp
from typing import Dict, Optional

import yaml

from .errors import UserInputError

__all__ = ['model_index_file', 'model_entries', 'model_configs', 'config_of_model']

_PACKAGE = osp.dirname(osp.dirname(osp.abspath(__file__)))


def model_index_file() -> Optional[str]:
    """The ``model-index.yml`` of this mmmt (the clone's, else the installed copy), or
    None."""
    # the clone's first: its mmmt/.mim may hold copies from an earlier install
    for candidate in (osp.join(osp.dirname(_PACKAGE), 'model-index.yml'),
                      osp.join(_PACKAGE, '.mim', 'model-index.yml')):
        if osp.isfile(candidate):
            return candidate
    return None


def model_entries(model_index: Optional[str] = None) -> Dict[str, dict]:
    """Model name -> its entry (``Name``, ``Config``, ``Metadata``, ``Results``, ...) in the
    metafiles ``model_index`` imports.

    A model is also listed under its ``Former Names`` (metadata): the alias configs it had
    before the OpenMMLab naming, so work dirs named after those still resolve.

    Args:
        model_index (str, optional): The ``model-index.yml``. Defaults to
            :func:`model_index_file`'s (an empty dict when there is none).

    Returns:
        dict[str, dict]: The names and their entries.

    Raises:
        UserInputError: A metafile the index lists is missing or is not a mapping.
    """
    model_index = model_index or model_index_file()
    if model_index is None:
        return {}
    root = osp.dirname(osp.abspath(model_index))
    with open(model_index, encoding='utf-8') as f:
        index = yaml.safe_load(f) or {}
    entries = {}
    for meta in index.get('Import', []):
        path = osp.join(root, meta)
        if not osp.isfile(path):
            raise UserInputError(f'{model_index} imports {meta}, which does not exist')
        with open(path, encoding='utf-8') as f:
            metafile = yaml.safe_load(f)
        if not isinstance(metafile, dict):
            raise UserInputError(f'{path} is not a metafile (a mapping with Models)')
        for model in metafile.get('Models') or []:
            entries[model['Name']] = model
            for name in (model.get('Metadata') or {}).get('Former Names', []):
                entries[name] = model
    return entries


def model_configs(model_index: Optional[str] = None) -> Dict[str, str]:
    """Model name (and former name) -> absolute config path, of :func:`model_entries`."""
    model_index = model_index or model_index_file()
    if model_index is None:
        return {}
    root = osp.dirname(osp.abspath(model_index))
    return {name: osp.join(root, entry['Config'])
            for name, entry in model_entries(model_index).items()}


def config_of_model(name: str, model_index: Optional[str] = None) -> Optional[str]:
    """The config file of the model called ``name`` (case-insensitive, as mmengine's
    inferencers match names), or None when no model has that name."""
    lowered = {key.lower(): value for key, value in model_configs(model_index).items()}
    return lowered.get(name.lower())
