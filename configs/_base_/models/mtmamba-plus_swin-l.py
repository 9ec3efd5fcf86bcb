# MTMamba++ (docs/differences.md) with the ImageNet-22K-pretrained Swin-L encoder of MTMamba.
# The task list is set by each dataset config (model.decode_head.tasks).
_base_ = ['./mtmamba_swin-l.py']

model = dict(
    decode_head=dict(
        _delete_=True,
        type='MTMambaPlusDecodeHead',
        in_channels=(192, 384, 768, 1536),
        # tasks=dict(name=channels, ...) is set by the dataset-specific config
        d_state=16,
        ssm_ratio=2,
        dt_rank='auto',
        num_stm_blocks=2,
        head_channels=96,
        # BN of the conv heads; the multi-GPU recipes switch to SyncBN as the reference does
        norm_cfg=dict(type='BN', requires_grad=True),
        drop_path_rate=0.2,
        with_cp=False,
        loss_combiner=dict(type='MultiTaskLoss', scheme='log')))
