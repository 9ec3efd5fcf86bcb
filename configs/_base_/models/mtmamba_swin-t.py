# A small MTMamba (Swin-T encoder) for CPU development and tests.
_base_ = ['./mtmamba_swin-l.py']

swin_t_checkpoint = 'https://download.openmmlab.com/mmclassification/v0/swin-transformer/swin_tiny_224_b16x64_300e_imagenet_20210616_090925-66df6be6.pth'  # noqa: E501

model = dict(
    backbone=dict(
        arch='tiny',
        img_size=224,
        window_size=7,
        drop_path_rate=0.1,  # as the Swin-L/S/B configs (mmseg's Swin default, reference)
        init_cfg=dict(type='Pretrained', checkpoint=swin_t_checkpoint, prefix='backbone.')),
    decode_head=dict(in_channels=(96, 192, 384, 768)))
