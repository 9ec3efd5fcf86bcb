# Paper Table 6, Swin-Small encoder. The paper does not say which checkpoint; this uses
# Microsoft's ImageNet-1K Swin-S (window 7, 224) as converted by OpenMMLab.
_base_ = ['../mtmamba/mtmamba_swin-l_8xb1-50k_nyudv2-448x576.py']

swin_s_checkpoint = 'https://download.openmmlab.com/mmclassification/v0/swin-transformer/convert/swin_small_patch4_window7_224-cc7a01c9.pth'  # noqa: E501

model = dict(
    backbone=dict(
        arch='small',
        img_size=224,
        window_size=7,
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint=swin_s_checkpoint, prefix='backbone.')),
    decode_head=dict(in_channels=(96, 192, 384, 768)))
