# Paper Table 6, Swin-Base encoder. The paper does not say which checkpoint; this uses
# Microsoft's ImageNet-22K-pretrained, 1K-fine-tuned Swin-B at 384 (window 12), like Swin-L.
_base_ = ['../mtmamba/mtmamba_swin-l_8xb1-50k_nyudv2-448x576.py']

swin_b_checkpoint = 'https://download.openmmlab.com/mmclassification/v0/swin-transformer/convert/swin_base_patch4_window12_384_22kto1k-d59b0d1d.pth'  # noqa: E501

model = dict(
    backbone=dict(
        arch='base',
        img_size=384,
        window_size=12,
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint=swin_b_checkpoint, prefix='backbone.')),
    decode_head=dict(in_channels=(128, 256, 512, 1024)))
