# A small MTMamba trained from scratch on the synthetic NYUD layout, on the CPU (`make demo`).
#   python tools/dataset_converters/synthetic_mt.py nyud data/synthetic_nyud \
#       --train 200 --val 24 --size 128 160
#   python tools/train.py configs/demo/mtmamba-tiny_synthetic-nyud.py
_base_ = ['../_base_/datasets/nyud_mt.py', '../_base_/default_runtime.py']

data_root = 'data/synthetic_nyud'
crop_size = (128, 160)
tasks = ['semseg', 'depth', 'normals', 'edge']

model = dict(
    type='MultiTaskEncoderDecoder',
    data_preprocessor=dict(type='MultiTaskDataPreProcessor', size_divisor=32),
    backbone=dict(
        type='mmpretrain.SwinTransformer',
        arch=dict(embed_dims=32, depths=[1, 1, 2, 1], num_heads=[1, 2, 4, 8]),
        window_size=5,
        drop_path_rate=0.0,
        out_indices=(0, 1, 2, 3),
        pad_small_map=True),
    decode_head=dict(
        type='MultiTaskMambaDecodeHead',
        in_channels=(32, 64, 128, 256),
        tasks=dict(semseg=40, depth=1, normals=3, edge=1),
        num_stm_blocks=1,
        drop_path_rate=0.0,
        loss_combiner=dict(type='MultiTaskLoss', scheme='log')),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))

img_norm_cfg = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=False)
train_pipeline = [
    dict(type='LoadMultiTaskImage'),
    dict(type='LoadMultiTaskAnnotations'),
    dict(type='RandomScaling', scale_range=(0.75, 1.5)),
    dict(type='MultiTaskRandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='MultiTaskRandomFlip', prob=0.5),
    dict(type='MultiTaskPhotoMetricDistortion'),
    dict(type='mmcv.Normalize', **img_norm_cfg),
    dict(type='CenterPad', size=crop_size),
    dict(type='AddIgnoreRegions'),
    dict(type='PackMultiTaskInputs'),
]
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

train_dataloader = dict(
    batch_size=4,
    num_workers=1,
    persistent_workers=True,
    dataset=dict(data_root=data_root, tasks=tasks, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4,
    num_workers=1,
    persistent_workers=True,
    dataset=dict(data_root=data_root, tasks=tasks, pipeline=test_pipeline))
test_dataloader = val_dataloader
# no delta_m: the paper's NYUD single-task baselines do not apply to synthetic rooms
val_evaluator = dict(type='MultiTaskMetric', tasks=tasks, delta_m_baselines=None)
test_evaluator = val_evaluator

max_iters = 600
optim_wrapper = dict(
    type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3, weight_decay=1e-4))
param_scheduler = [
    # end = max_iters + 1: the last update keeps a non-zero lr, as in schedule_50k.py
    dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=max_iters + 1, by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    # the first progress line within a minute even on a busy machine (about 4 s per
    # iteration there; 1 s idle)
    logger=dict(interval=10),
    checkpoint=dict(interval=max_iters, max_keep_ckpts=1))
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
