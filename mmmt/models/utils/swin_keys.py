"""Parameter names and patch-merging layout of Microsoft's Swin checkpoints vs mmpretrain's.

Microsoft's ``SwinTransformer`` (the official release, e.g.
``swin_large_patch4_window12_384_22kto1k.pth``, ``{'model': state_dict}``) and mmpretrain's
``SwinTransformer`` hold the same tensors under other names::

    patch_embed.proj.*                        -> backbone.patch_embed.projection.*
    patch_embed.norm.*                        -> backbone.patch_embed.norm.*
    layers.{i}.blocks.{j}.norm{1,2}.*         -> backbone.stages.{i}.blocks.{j}.norm{1,2}.*
    layers.{i}.blocks.{j}.attn.*              -> backbone.stages.{i}.blocks.{j}.attn.w_msa.*
    layers.{i}.blocks.{j}.mlp.fc1.*           -> backbone.stages.{i}.blocks.{j}.ffn.layers.0.0.*
    layers.{i}.blocks.{j}.mlp.fc2.*           -> backbone.stages.{i}.blocks.{j}.ffn.layers.1.*
    layers.{i}.downsample.{reduction,norm}.*  -> backbone.stages.{i}.downsample.*  (reordered)
    norm.*                                    -> backbone.norm{last}.*
    head.*                                    -> head.fc.*
    absolute_pos_embed                        -> backbone.absolute_pos_embed
    layers.{i}.blocks.{j}.attn_mask           dropped (a constant mmpretrain recomputes)

Patch merging: Microsoft concatenates the 2x2 neighbours as x[0::2, 0::2], x[1::2, 0::2],
x[0::2, 1::2], x[1::2, 1::2] (groups of C channels), while mmpretrain (like mmseg) uses
``nn.Unfold(2, stride=2)``, whose channel ``c * 4 + (2 * row + col)`` is channel-major with the
kernel position (row-major) minor. :func:`merge_order_to_unfold` maps the reduction's input
dimension and the norm's vector from the first layout to the second.
"""
import re
from collections import OrderedDict
from typing import Mapping

import torch

__all__ = [
    'merge_order_to_unfold', 'unfold_to_merge_order', 'microsoft_swin_to_mmpretrain',
    'mmpretrain_swin_to_microsoft'
]

#: Unfold kernel position p = 2*row + col -> Microsoft group: (0,0)->0, (0,1)->2, (1,0)->1,
#: (1,1)->3. The permutation is its own inverse.
_GROUP_OF_POSITION = [0, 2, 1, 3]


def merge_order_to_unfold(x: torch.Tensor) -> torch.Tensor:
    """Reorder the last dimension (4C) from Microsoft's concat layout to the Unfold layout."""
    *lead, c4 = x.shape
    if c4 % 4:
        raise ValueError(f'patch-merging dimension {c4} is not a multiple of 4')
    x = x.reshape(*lead, 4, c4 // 4)[..., _GROUP_OF_POSITION, :]
    return x.transpose(-1, -2).reshape(*lead, c4).contiguous()


def unfold_to_merge_order(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`merge_order_to_unfold`."""
    *lead, c4 = x.shape
    x = x.reshape(*lead, c4 // 4, 4).transpose(-1, -2)[..., _GROUP_OF_POSITION, :]
    return x.reshape(*lead, c4).contiguous()


_BLOCK_RULES = [
    (re.compile(r'^attn\.(?P<rest>.+)$'), 'attn.w_msa.{rest}'),
    (re.compile(r'^mlp\.fc1\.(?P<rest>.+)$'), 'ffn.layers.0.0.{rest}'),
    (re.compile(r'^mlp\.fc2\.(?P<rest>.+)$'), 'ffn.layers.1.{rest}'),
    (re.compile(r'^(?P<rest>norm[12]\..+)$'), '{rest}'),
]


def microsoft_swin_to_mmpretrain(state_dict: Mapping,
                                 backbone_prefix: str = 'backbone.',
                                 keep_head: bool = True) -> 'OrderedDict':
    """Convert an official Swin (v1) state_dict to mmpretrain's ``ImageClassifier`` keys.

    Args:
        state_dict (Mapping): Microsoft's ``model`` dict.
        backbone_prefix (str): Prefix of the backbone keys. Defaults to 'backbone.'.
        keep_head (bool): Keep the classifier as ``head.fc.*``. Defaults to True.
    """
    stages = {int(m.group(1)) for k in state_dict for m in [re.match(r'^layers\.(\d+)\.', k)]
              if m}
    if not stages:
        raise KeyError('no `layers.N.` keys: not a Microsoft Swin checkpoint')
    last = max(stages)
    out = OrderedDict()
    for key, value in state_dict.items():
        if key.endswith('attn_mask'):
            continue
        if key.startswith('head.'):
            if keep_head:
                out['head.fc.' + key[len('head.'):]] = value
            continue
        m = re.match(r'^layers\.(\d+)\.blocks\.(\d+)\.(.+)$', key)
        if m:
            stage, block, rest = m.groups()
            for pattern, template in _BLOCK_RULES:
                r = pattern.match(rest)
                if r:
                    new = f'stages.{stage}.blocks.{block}.' + template.format(**r.groupdict())
                    break
            else:
                raise KeyError(f'unknown Swin block parameter {key!r}')
        elif re.match(r'^layers\.\d+\.downsample\.(reduction\.weight|norm\.(weight|bias))$', key):
            new = 'stages.' + key[len('layers.'):]
            value = merge_order_to_unfold(value)
        elif key.startswith('patch_embed.proj.'):
            new = 'patch_embed.projection.' + key[len('patch_embed.proj.'):]
        elif key.startswith(('patch_embed.norm.', 'absolute_pos_embed')):
            new = key
        elif key.startswith('norm.'):
            new = f'norm{last}.' + key[len('norm.'):]
        else:
            raise KeyError(f'unknown Swin parameter {key!r} (only Swin v1 checkpoints are '
                           'supported)')
        out[backbone_prefix + new] = value
    return out


_REVERSE_BLOCK_RULES = [
    (re.compile(r'^attn\.w_msa\.(?P<rest>.+)$'), 'attn.{rest}'),
    (re.compile(r'^ffn\.layers\.0\.0\.(?P<rest>.+)$'), 'mlp.fc1.{rest}'),
    (re.compile(r'^ffn\.layers\.1\.(?P<rest>.+)$'), 'mlp.fc2.{rest}'),
    (re.compile(r'^(?P<rest>norm[12]\..+)$'), '{rest}'),
]


def mmpretrain_swin_to_microsoft(state_dict: Mapping,
                                 backbone_prefix: str = 'backbone.') -> 'OrderedDict':
    """Inverse of :func:`microsoft_swin_to_mmpretrain` (``norm0..2`` have no Microsoft name
    and are dropped; ``attn_mask`` is not restored)."""
    stages = {int(m.group(1)) for k in state_dict
              for m in [re.match(rf'^{re.escape(backbone_prefix)}stages\.(\d+)\.', k)] if m}
    last = max(stages) if stages else -1
    out = OrderedDict()
    for key, value in state_dict.items():
        if key.startswith('head.fc.'):
            out['head.' + key[len('head.fc.'):]] = value
            continue
        if not key.startswith(backbone_prefix):
            raise KeyError(f'unexpected key {key!r}')
        key = key[len(backbone_prefix):]
        m = re.match(r'^stages\.(\d+)\.blocks\.(\d+)\.(.+)$', key)
        if m:
            stage, block, rest = m.groups()
            for pattern, template in _REVERSE_BLOCK_RULES:
                r = pattern.match(rest)
                if r:
                    out[f'layers.{stage}.blocks.{block}.' +
                        template.format(**r.groupdict())] = value
                    break
            else:
                raise KeyError(f'unknown mmpretrain Swin block parameter {key!r}')
        elif key.startswith('stages.') and '.downsample.' in key:
            out['layers.' + key[len('stages.'):]] = unfold_to_merge_order(value)
        elif key.startswith('patch_embed.projection.'):
            out['patch_embed.proj.' + key[len('patch_embed.projection.'):]] = value
        elif key.startswith(('patch_embed.norm.', 'absolute_pos_embed')):
            out[key] = value
        elif key.startswith(f'norm{last}.'):
            out['norm.' + key[len(f'norm{last}.'):]] = value
        elif re.match(r'^norm\d+\.', key):
            continue
        else:
            raise KeyError(f'unknown mmpretrain Swin parameter {key!r}')
    return out
