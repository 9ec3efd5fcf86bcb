# The MTMamba decoder as a plain mmseg decode head: single-task semantic segmentation on ADE20K
# with mmseg's own EncoderDecoder, SegDataPreProcessor, pipeline (PackSegInputs), ADE20KDataset,
# IoUMetric, runtime and 160k schedule. mmmt only contributes the head, through `custom_imports`
# and the `mmmt.` scope prefix. `mmmt.models` (not just `mmmt`, whose import changes nothing):
# importing it registers the head and, under mmcv-lite, installs the `mmcv._ext` placeholder that
# mmseg's own model package needs (docs/installation.md).
#
#   python tools/train.py configs/mmseg_examples/mtmamba_swin-t_ade20k-512x512.py
# or with mmsegmentation's own tools/train.py (the config is an ordinary mmseg config).
#
# Data: mmseg's ADE20K layout under data/ade/ADEChallengeData2016
# (images/{training,validation}/*.jpg, annotations/{training,validation}/*.png; label 0 =
# "other", dropped by reduce_zero_label). See mmseg's docs/en/user_guides/2_dataset_prepare.md.
_base_ = [
    'mmseg::_base_/datasets/ade20k.py', 'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py'
]
custom_imports = dict(imports=['mmmt.models'], allow_failed_imports=False)
default_scope = 'mmseg'

crop_size = (512, 512)
# ImageNet-1K Swin-T of mmpretrain (OpenMMLab's conversion of Microsoft's weights).
swin_t_checkpoint = 'https://download.openmmlab.com/mmclassification/v0/swin-transformer/swin_tiny_224_b16x64_300e_imagenet_20210616_090925-66df6be6.pth'  # noqa: E501

data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size=crop_size)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='mmpretrain.SwinTransformer',
        arch='tiny',
        img_size=224,
        window_size=7,
        drop_path_rate=0.3,
        out_indices=(0, 1, 2, 3),
        # pad feature maps smaller than a window instead of shrinking the window
        pad_small_map=True,
        init_cfg=dict(type='Pretrained', checkpoint=swin_t_checkpoint, prefix='backbone.')),
    decode_head=dict(
        # the MTMamba decoder under mmseg's EncoderDecoder contract (logits tensor from
        # forward/predict, loss_decode on gt_sem_seg)
        type='mmmt.MTMambaSegHead',
        in_channels=(96, 192, 384, 768),
        num_classes=150,
        num_stm_blocks=2,
        use_ctm=False,  # no other task to exchange information with
        drop_path_rate=0.2,
        ignore_index=255,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0, avg_non_ignore=True)),
    train_cfg=dict(),
    # images are resized to a short side of 512 (test_pipeline); slide 512x512 windows over them
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(341, 341)))

# AdamW with the usual transformer settings for Swin backbones in mmseg
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(
        custom_keys={
            'absolute_pos_embed': dict(decay_mult=0.),
            'relative_position_bias_table': dict(decay_mult=0.),
            'norm': dict(decay_mult=0.)
        }))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=160000, by_epoch=False)
]
# 8 GPUs x 2 images
train_dataloader = dict(batch_size=2)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader
