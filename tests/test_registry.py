from mmmt.registry import DATASETS, METRICS, MODELS, TRANSFORMS


def test_registries_have_mmmt_scope_and_mmengine_parents():
    from mmengine.registry import MODELS as ROOT_MODELS
    for registry in (MODELS, DATASETS, TRANSFORMS, METRICS):
        assert registry.scope == 'mmmt'
        assert registry.parent is not None and registry.parent.scope == 'mmengine'
    assert MODELS.parent is ROOT_MODELS


def test_cross_scope_lookup_both_ways():
    from mmseg.registry import MODELS as MMSEG_MODELS
    assert MODELS.get('mmpretrain.SwinTransformer').__name__ == 'SwinTransformer'
    head_cls = MMSEG_MODELS.get('mmmt.MultiTaskMambaDecodeHead')
    assert head_cls is MODELS.get('MultiTaskMambaDecodeHead')
    assert MODELS.get('MultiTaskEncoderDecoder') is not None
