# MTMamba++, Swin-L, PASCAL-Context (5 tasks), the reference implementation's recipe: 8 GPUs x 1
# image, 40k iterations, AdamW lr 8e-5 / wd 1e-6, 'log' loss scheme with unit weights, SyncBN in
# the heads.
#   tools/dist_train.sh \
#       configs/mtmamba_plus/mtmamba-plus_swin-l_8xb1-40k_pascal-context-512x512.py 8
_base_ = [
    '../_base_/models/mtmamba-plus_swin-l.py', '../_base_/datasets/pascal_mt.py',
    '../_base_/schedules/schedule_40k.py', '../_base_/default_runtime.py'
]

model = dict(
    decode_head=dict(
        tasks=dict(semseg=21, human_parts=7, sal=2, normals=3, edge=1),
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        loss_combiner=dict(type='MultiTaskLoss', scheme='log')))

optim_wrapper = dict(optimizer=dict(lr=8e-5, weight_decay=1e-6))
