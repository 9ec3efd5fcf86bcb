# Cityscapes multi-task data (semseg 19 classes, disparity as `depth`), the reference's recipe:
# the image is resized to 512x1024 for training and testing, with no other augmentation; the
# labels keep their 1024x2048 (the loss and the metrics compare at full resolution, predictions
# are upsampled to it), as the reference does (docs/differences.md, Cityscapes).
# Layout under data_root: see mmmt.datasets.CityscapesMultiTaskDataset. Without the real data:
#   python tools/dataset_converters/synthetic_mt.py cityscapes data/cityscapes --train 20 --val 10
dataset_type = 'CityscapesMultiTaskDataset'
data_root = 'data/cityscapes'
tasks = ['semseg', 'depth']
img_scale = (1024, 512)  # (w, h): TRAIN.SCALE = TEST.SCALE = 512x1024
# Raw label id whose disparity is set to 0 (invalid): 23 = sky. The reference uses 10 (rail
# track, by mistake); set sky_label_id = 10 to reproduce it, None to keep every disparity.
sky_label_id = 23
# x/255 - mean, / std with the ImageNet RGB statistics, written on the 0..255 scale.
img_norm_cfg = dict(
    mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=False)

# The image only is resized (mmcv's Resize touches `gt_seg_map`, none of mmmt's gt keys);
# ori_shape stays the full size, to which predictions are resized back.
pipeline = [
    dict(type='LoadMultiTaskImage'),
    dict(type='LoadMultiTaskAnnotations'),
    dict(type='mmcv.Resize', scale=img_scale, keep_ratio=False, interpolation='bilinear'),
    dict(type='mmcv.Normalize', **img_norm_cfg),
    dict(type='AddIgnoreRegions'),
    dict(type='PackMultiTaskInputs'),
]
train_pipeline = pipeline
test_pipeline = pipeline

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
        sky_label_id=sky_label_id,
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
        sky_label_id=sky_label_id,
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader

# Disparity is scored on 0 < gt < 80 as the reference. delta_m against the baselines of the
# reference's model-selection score (semseg mIoU 80 %, depth RMSE 1): its "weight 0" for depth
# is the sign exponent of lower-is-better, i.e. the usual delta_m (docs/differences.md).
val_evaluator = dict(
    type='MultiTaskMetric',
    tasks=dict(semseg=None, depth=dict(min_depth=0.0, max_depth=80.0)),
    delta_m_baselines=dict(semseg=80.0, depth=1.0))
test_evaluator = val_evaluator
