# MTMamba++, Swin-L, Cityscapes (semseg 19 + disparity), the reference recipe: 8 GPUs x 1 image,
# 40k iterations, AdamW lr 1e-4 / wd 1e-6, poly, 'log' loss scheme with weights 1 / 1, SyncBN
# in the heads.
#   tools/dist_train.sh configs/mtmamba_plus/mtmamba-plus_swin-l_8xb1-40k_cityscapes-512x1024.py 8
_base_ = [
    '../_base_/models/mtmamba-plus_swin-l.py', '../_base_/datasets/cityscapes_mt.py',
    '../_base_/schedules/schedule_40k.py', '../_base_/default_runtime.py'
]

model = dict(
    decode_head=dict(
        tasks=dict(semseg=19, depth=1),
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        loss_combiner=dict(
            type='MultiTaskLoss', scheme='log', weights=dict(semseg=1.0, depth=1.0))))

optim_wrapper = dict(optimizer=dict(lr=1e-4, weight_decay=1e-6))
