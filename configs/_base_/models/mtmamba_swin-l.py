# MTMamba (ECCV 2024) with an ImageNet-22K-pretrained Swin-L encoder.
# The task list is set by each dataset config (model.decode_head.tasks).
# ImageNet-22K pre-trained, ImageNet-1K fine-tuned at 384 (OpenMMLab's conversion of Microsoft's
# swin_large_patch4_window12_384_22kto1k.pth); the classifier head is ignored.
swin_l_checkpoint = 'https://download.openmmlab.com/mmclassification/v0/swin-transformer/convert/swin_large_patch4_window12_384_22kto1k-0a40944b.pth'  # noqa: E501

model = dict(
    type='MultiTaskEncoderDecoder',
    data_preprocessor=dict(type='MultiTaskDataPreProcessor', size_divisor=32),
    backbone=dict(
        # mmpretrain's SwinTransformer; its output norms start from identity after the
        # ImageNet weights are loaded, as in the reference (mmmt/models/backbones/swin_encoder.py)
        type='SwinEncoder',
        arch='large',
        img_size=384,
        window_size=12,
        drop_path_rate=0.1,
        out_indices=(0, 1, 2, 3),
        # pad feature maps smaller than a window instead of shrinking the window, which is how
        # mmseg's Swin (used by the reference) behaves at every input size
        pad_small_map=True,
        with_cp=False,
        init_cfg=dict(type='Pretrained', checkpoint=swin_l_checkpoint, prefix='backbone.')),
    decode_head=dict(
        type='MultiTaskMambaDecodeHead',
        in_channels=(192, 384, 768, 1536),
        # tasks=dict(name=channels, ...) is set by the dataset-specific config
        d_state=16,
        ssm_ratio=2,
        dt_rank='auto',
        num_stm_blocks=2,
        use_ctm=True,
        drop_path_rate=0.2,
        with_cp=False,
        loss_combiner=dict(type='MultiTaskLoss', scheme='log')),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
