# PASCAL-Context multi-task data (semseg 21, human_parts 7, sal, normals, edge): the reference
# pipelines (docs/differences.md).
# Layout under data_root: see mmmt.datasets.PascalContextMultiTaskDataset. Without the real data:
#   python tools/dataset_converters/synthetic_mt.py pascal data/PASCALContext --train 20 --val 10
dataset_type = 'PascalContextMultiTaskDataset'
data_root = 'data/PASCALContext'
tasks = ['semseg', 'human_parts', 'sal', 'normals', 'edge']
crop_size = (512, 512)  # TRAIN.SCALE = TEST.SCALE (images are at most 500x500)
# x/255 - mean, / std with the ImageNet RGB statistics, written on the 0..255 scale.
# Normalised here in the pipeline, not in the data preprocessor as mmseg 1.x configs do: the
# reference normalises and then centre-pads with 0 (CenterPad below), so the padded border the
# network sees is 0. With mean/std in the preprocessor the pad would come first and the border
# would become -mean/std, changing the outputs; keep it here unless that is shown identical.
img_norm_cfg = dict(
    mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=False)

train_pipeline = [
    dict(type='LoadMultiTaskImage'),
    dict(type='LoadMultiTaskAnnotations'),
    dict(type='RandomScaling', scale_range=(0.5, 2.0)),
    dict(type='MultiTaskRandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='MultiTaskRandomFlip', prob=0.5),
    dict(type='MultiTaskPhotoMetricDistortion'),
    dict(type='mmcv.Normalize', **img_norm_cfg),
    dict(type='CenterPad', size=crop_size),
    dict(type='AddIgnoreRegions'),
    dict(type='PackMultiTaskInputs'),
]
# No resize: the image is centre-padded (fill 0 = mean colour) and the padding recorded in
# img_padding_size; labels stay at the original size and predictions are cropped back.
test_pipeline = [
    dict(type='LoadMultiTaskImage'),
    dict(type='LoadMultiTaskAnnotations'),
    dict(type='mmcv.Normalize', **img_norm_cfg),
    dict(type='CenterPad', size=crop_size, pad_gt=False),
    dict(type='AddIgnoreRegions'),
    dict(type='PackMultiTaskInputs'),
]

# tools/test.py --tta: every image at 3 scales x {plain, mirrored}; each view's prediction is
# mapped back to the original frame (labels are never transformed: ImageOnly) and the views are
# merged per task by MultiTaskTTAModel (probabilities averaged, normals re-normalised).
tta_scales = (0.75, 1.0, 1.25)
tta_model = dict(type='MultiTaskTTAModel')
tta_pipeline = [
    dict(type='LoadMultiTaskImage'),
    dict(type='LoadMultiTaskAnnotations'),
    dict(type='TestTimeAug', transforms=[
        [dict(type='ImageOnly', transforms=[dict(type='RandomScaling', scale_range=(s, s))])
         for s in tta_scales],
        [dict(type='ImageOnly', transforms=[dict(type='MultiTaskRandomFlip', prob=p)])
         for p in (0.0, 1.0)],
        [dict(type='mmcv.Normalize', **img_norm_cfg)],
        [dict(type='CenterPad', size=crop_size, pad_gt=False)],
        [dict(type='AddIgnoreRegions')],
        [dict(type='PackMultiTaskInputs')],
    ])
]

# The reference trains with 1 image per GPU on 8 GPUs (global batch 8).
train_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
        tasks=tasks,
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='val',
        tasks=tasks,
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader

# Boundaries as SEISM evaluates PASCAL-Context (docs/metrics.md): structured-edge NMS, 101
# thresholds, tolerance 0.0075 of the diagonal; gt_edge already holds the thinned label
# transitions of the Context LabelMap, so it is thinned rather than passed through seg2bmap
# (closer to SEISM's thinned seg2bmap of the LabelMap). Saliency maxF with the
# double sigmoid of the reference meter so that numbers compare with the published ones
# (set legacy_double_sigmoid=False for the correct maxF; see docs/metrics.md).
val_evaluator = dict(
    type='MultiTaskMetric',
    tasks=dict(
        semseg=None,
        human_parts=None,
        sal=dict(legacy_double_sigmoid=True),
        normals=None,
        edge=dict(max_dist=0.0075, protocol='seism', gt_mode='thin')))
test_evaluator = val_evaluator
