"""Name mapping between the reference MTMamba decoder state_dict and mmmt's.

The single place that knows both naming schemes; the checkpoint converter and the key tests use
it. Reference names (see ``shared/spec/keys``)::

    expand_layers.{task}_{stage}.*     ->  stages.{stage}.upsample.{task}.*
    concat_layers.{task}_{stage}.*     ->  stages.{stage}.skip_fuse.{task}.*
    block_{i}.{task}_{stage}.*  (i=1,2) -> stages.{stage}.stm_blocks.{task}.{i-1}.*
    block_3.{stage}.*                  ->  stages.{stage}.ctm.*
    final_expand.{task}.*              ->  final_expand.{task}.*
    final_project.{task}.*             ->  final_project.{task}.*
"""
import re

__all__ = ['reference_to_mmmt_key', 'mmmt_to_reference_key']

_TASK_STAGE = r'(?P<task>[a-z_]+)_(?P<stage>\d+)'
_RULES = [
    (re.compile(rf'^expand_layers\.{_TASK_STAGE}\.(?P<rest>.+)$'),
     'stages.{stage}.upsample.{task}.{rest}'),
    (re.compile(rf'^concat_layers\.{_TASK_STAGE}\.(?P<rest>.+)$'),
     'stages.{stage}.skip_fuse.{task}.{rest}'),
    (re.compile(rf'^block_(?P<block>[12])\.{_TASK_STAGE}\.(?P<rest>.+)$'),
     'stages.{stage}.stm_blocks.{task}.{block_index}.{rest}'),
    (re.compile(r'^block_3\.(?P<stage>\d+)\.(?P<rest>.+)$'), 'stages.{stage}.ctm.{rest}'),
    (re.compile(r'^(?P<head>final_expand|final_project)\.(?P<rest>.+)$'), '{head}.{rest}'),
]
_REVERSE_RULES = [
    (re.compile(r'^stages\.(?P<stage>\d+)\.upsample\.(?P<task>[a-z_]+)\.(?P<rest>.+)$'),
     'expand_layers.{task}_{stage}.{rest}'),
    (re.compile(r'^stages\.(?P<stage>\d+)\.skip_fuse\.(?P<task>[a-z_]+)\.(?P<rest>.+)$'),
     'concat_layers.{task}_{stage}.{rest}'),
    (re.compile(r'^stages\.(?P<stage>\d+)\.stm_blocks\.(?P<task>[a-z_]+)\.(?P<index>[01])\.'
                r'(?P<rest>.+)$'), 'block_{block}.{task}_{stage}.{rest}'),
    (re.compile(r'^stages\.(?P<stage>\d+)\.ctm\.(?P<rest>.+)$'), 'block_3.{stage}.{rest}'),
    (re.compile(r'^(?P<head>final_expand|final_project)\.(?P<rest>.+)$'), '{head}.{rest}'),
]


def reference_to_mmmt_key(key: str) -> str:
    """Map a reference MTMamba decoder key (without ``module.``) to the mmmt head's key."""
    for pattern, template in _RULES:
        m = pattern.match(key)
        if m:
            groups = m.groupdict()
            if 'block' in groups:
                groups['block_index'] = int(groups['block']) - 1
            return template.format(**groups)
    raise KeyError(f'not a reference MTMamba decoder key: {key!r}')


def mmmt_to_reference_key(key: str) -> str:
    """Inverse of :func:`reference_to_mmmt_key`."""
    for pattern, template in _REVERSE_RULES:
        m = pattern.match(key)
        if m:
            groups = m.groupdict()
            if 'index' in groups:
                groups['block'] = int(groups['index']) + 1
            return template.format(**groups)
    raise KeyError(f'no reference MTMamba name for mmmt decoder key: {key!r}')
