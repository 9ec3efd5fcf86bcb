"""Name mapping between the reference MTMamba / MTMamba++ checkpoints and mmmt's.

The single place that knows both naming schemes; the checkpoint converter
(``tools/model_converters/mtmamba2mmmt.py``) and the key tests use it. Reference decoder names
(the key lists in ``tests/data/reference_keys/``), MTMamba (``variant='mtmamba'``)::

    expand_layers.{task}_{stage}.*     ->  stages.{stage}.upsample.{task}.*
    concat_layers.{task}_{stage}.*     ->  stages.{stage}.skip_fuse.{task}.*
    block_{i}.{task}_{stage}.*  (i=1,2) -> stages.{stage}.stm_blocks.{task}.{i-1}.*
    block_3.{stage}.*                  ->  stages.{stage}.ctm.*
    final_expand.{task}.*              ->  final_expand.{task}.*
    final_project.{task}.*             ->  final_project.{task}.*

MTMamba++ (``variant='mtmamba_plus'``)::

    expand_layers.{task}_{stage}.*     ->  stages.{stage}.upsample.{task}.*
    concat_layers.{task}_{stage}.*     ->  stages.{stage}.skip_fuse.{task}.*     (1x1 conv)
    block_stm.{task}_{stage}.{i}.*     ->  stages.{stage}.stm_blocks.{task}.{i}.*
    block_ctm.{stage}.0.*              ->  stages.{stage}.ctm.*                  (S-CTM)
    final_expand.{task}.0.*            ->  final_conv.{task}.conv.*              (3x3 conv)
    final_expand.{task}.1.*            ->  final_conv.{task}.bn.*                ((Sync)BN)
    final_project.{task}.*             ->  final_project.{task}.*

Whole checkpoints: the reference saves ``{'model': state_dict}`` from a DDP-wrapped model, so
every key starts with ``module.``; its backbone is mmseg's ``SwinTransformer`` under
``backbone.``. mmpretrain's ``SwinTransformer`` (mmmt's backbone) has the same parameter names,
shapes and the same ``nn.Unfold`` patch-merging layout, and computes the same function with the
same weights (checked in ``tests/test_tools/test_converters.py``), so backbone keys are kept as
they are. A model's keys are ``backbone.*`` and ``decode_head.*`` in mmmt.
"""
import re
from collections import OrderedDict
from typing import Dict, Iterable, List, Mapping, Tuple

__all__ = [
    'REFERENCE_VARIANTS', 'reference_to_mmmt_key', 'mmmt_to_reference_key',
    'detect_reference_variant', 'reference_to_mmmt_state_dict', 'mmmt_to_reference_state_dict',
    'mmseg_swin_to_mmpretrain_key'
]

#: Decoder layouts of the reference implementation.
REFERENCE_VARIANTS = ('mtmamba', 'mtmamba_plus')

_TASK_STAGE = r'(?P<task>[a-z_]+)_(?P<stage>\d+)'
_TASK = r'(?P<task>[a-z_]+)'
_Rules = List[Tuple['re.Pattern', str]]


def _rules(pairs) -> _Rules:
    return [(re.compile(pattern), template) for pattern, template in pairs]


_RULES: Dict[str, _Rules] = {
    'mtmamba': _rules([
        (rf'^expand_layers\.{_TASK_STAGE}\.(?P<rest>.+)$',
         'stages.{stage}.upsample.{task}.{rest}'),
        (rf'^concat_layers\.{_TASK_STAGE}\.(?P<rest>.+)$',
         'stages.{stage}.skip_fuse.{task}.{rest}'),
        (rf'^block_(?P<block>[12])\.{_TASK_STAGE}\.(?P<rest>.+)$',
         'stages.{stage}.stm_blocks.{task}.{index}.{rest}'),
        (r'^block_3\.(?P<stage>\d+)\.(?P<rest>.+)$', 'stages.{stage}.ctm.{rest}'),
        (r'^(?P<head>final_expand|final_project)\.(?P<rest>.+)$', '{head}.{rest}'),
    ]),
    'mtmamba_plus': _rules([
        (rf'^expand_layers\.{_TASK_STAGE}\.(?P<rest>.+)$',
         'stages.{stage}.upsample.{task}.{rest}'),
        (rf'^concat_layers\.{_TASK_STAGE}\.(?P<rest>.+)$',
         'stages.{stage}.skip_fuse.{task}.{rest}'),
        (rf'^block_stm\.{_TASK_STAGE}\.(?P<index>\d+)\.(?P<rest>.+)$',
         'stages.{stage}.stm_blocks.{task}.{index}.{rest}'),
        (r'^block_ctm\.(?P<stage>\d+)\.0\.(?P<rest>.+)$', 'stages.{stage}.ctm.{rest}'),
        (rf'^final_expand\.{_TASK}\.0\.(?P<rest>.+)$', 'final_conv.{task}.conv.{rest}'),
        (rf'^final_expand\.{_TASK}\.1\.(?P<rest>.+)$', 'final_conv.{task}.bn.{rest}'),
        (rf'^final_project\.{_TASK}\.(?P<rest>.+)$', 'final_project.{task}.{rest}'),
    ]),
}

_COMMON_REVERSE = [
    (r'^stages\.(?P<stage>\d+)\.upsample\.(?P<task>[a-z_]+)\.(?P<rest>.+)$',
     'expand_layers.{task}_{stage}.{rest}'),
    (r'^stages\.(?P<stage>\d+)\.skip_fuse\.(?P<task>[a-z_]+)\.(?P<rest>.+)$',
     'concat_layers.{task}_{stage}.{rest}'),
]
_REVERSE_RULES: Dict[str, _Rules] = {
    'mtmamba': _rules(_COMMON_REVERSE + [
        (r'^stages\.(?P<stage>\d+)\.stm_blocks\.(?P<task>[a-z_]+)\.(?P<index>[01])\.'
         r'(?P<rest>.+)$', 'block_{block}.{task}_{stage}.{rest}'),
        (r'^stages\.(?P<stage>\d+)\.ctm\.(?P<rest>.+)$', 'block_3.{stage}.{rest}'),
        (r'^(?P<head>final_expand|final_project)\.(?P<rest>.+)$', '{head}.{rest}'),
    ]),
    'mtmamba_plus': _rules(_COMMON_REVERSE + [
        (r'^stages\.(?P<stage>\d+)\.stm_blocks\.(?P<task>[a-z_]+)\.(?P<index>\d+)\.'
         r'(?P<rest>.+)$', 'block_stm.{task}_{stage}.{index}.{rest}'),
        (r'^stages\.(?P<stage>\d+)\.ctm\.(?P<rest>.+)$', 'block_ctm.{stage}.0.{rest}'),
        (rf'^final_conv\.{_TASK}\.conv\.(?P<rest>.+)$', 'final_expand.{task}.0.{rest}'),
        (rf'^final_conv\.{_TASK}\.bn\.(?P<rest>.+)$', 'final_expand.{task}.1.{rest}'),
        (rf'^final_project\.{_TASK}\.(?P<rest>.+)$', 'final_project.{task}.{rest}'),
    ]),
}


def _check_variant(variant: str) -> None:
    if variant not in REFERENCE_VARIANTS:
        raise ValueError(f'unknown reference variant {variant!r}; expected one of '
                         f'{REFERENCE_VARIANTS}')


def reference_to_mmmt_key(key: str, variant: str = 'mtmamba') -> str:
    """Map a reference decoder key (without ``module.``) to the mmmt head's key."""
    _check_variant(variant)
    for pattern, template in _RULES[variant]:
        m = pattern.match(key)
        if m:
            groups = m.groupdict()
            if 'block' in groups:
                groups['index'] = int(groups['block']) - 1
            return template.format(**groups)
    raise KeyError(f'not a reference {variant} decoder key: {key!r}')


def mmmt_to_reference_key(key: str, variant: str = 'mtmamba') -> str:
    """Inverse of :func:`reference_to_mmmt_key`."""
    _check_variant(variant)
    for pattern, template in _REVERSE_RULES[variant]:
        m = pattern.match(key)
        if m:
            groups = m.groupdict()
            if 'index' in groups:
                groups['block'] = int(groups['index']) + 1
            return template.format(**groups)
    raise KeyError(f'no reference {variant} name for mmmt decoder key: {key!r}')


def mmseg_swin_to_mmpretrain_key(key: str) -> str:
    """mmseg ``SwinTransformer`` key -> mmpretrain ``SwinTransformer`` key: the same name.

    Both name their modules alike (``patch_embed.projection``, ``stages.N.blocks.M.attn.w_msa``,
    ``ffn.layers.0.0`` / ``ffn.layers.1``, ``stages.N.downsample.{norm,reduction}``,
    ``norm0..3``) and both merge patches with ``nn.Unfold``, so no tensor is reordered.
    """
    return key


def _strip(key: str, prefix: str) -> str:
    return key[len(prefix):] if key.startswith(prefix) else key


def detect_reference_variant(keys: Iterable[str]) -> str:
    """'mtmamba_plus' if the keys hold MTMamba++'s ``block_stm``/``block_ctm``, else 'mtmamba'."""
    for key in keys:
        key = _strip(key, 'module.')
        if key.startswith(('block_stm.', 'block_ctm.')):
            return 'mtmamba_plus'
    return 'mtmamba'


def reference_to_mmmt_state_dict(state_dict: Mapping, variant: str = 'auto') -> Tuple[
        'OrderedDict', str]:
    """Convert a reference model state_dict to the keys of mmmt's ``MultiTaskEncoderDecoder``.

    Args:
        state_dict (Mapping): The reference ``model`` dict (keys with or without ``module.``).
        variant (str): 'mtmamba', 'mtmamba_plus' or 'auto' (from the key names).

    Returns:
        (OrderedDict, str): ``backbone.*`` / ``decode_head.*`` tensors (the same objects), and
        the variant used.
    """
    if variant == 'auto':
        variant = detect_reference_variant(state_dict)
    _check_variant(variant)
    out = OrderedDict()
    for key, value in state_dict.items():
        key = _strip(key, 'module.')
        if key.startswith('backbone.'):
            if key.endswith('attn_mask'):  # a constant some Swin versions store
                continue
            new = 'backbone.' + mmseg_swin_to_mmpretrain_key(key[len('backbone.'):])
        else:
            new = 'decode_head.' + reference_to_mmmt_key(key, variant)
        if new in out:
            raise KeyError(f'two reference keys map to {new!r}')
        out[new] = value
    return out, variant


def mmmt_to_reference_state_dict(state_dict: Mapping, variant: str) -> 'OrderedDict':
    """Inverse of :func:`reference_to_mmmt_state_dict`: keys with the ``module.`` prefix."""
    _check_variant(variant)
    out = OrderedDict()
    for key, value in state_dict.items():
        if key.startswith('backbone.'):
            new = key
        elif key.startswith('decode_head.'):
            new = mmmt_to_reference_key(key[len('decode_head.'):], variant)
        else:
            raise KeyError(f'neither a backbone nor a decode_head key: {key!r}')
        out['module.' + new] = value
    return out
