# MTMamba++, Swin-L, NYUDv2 (4 tasks), the reference implementation's recipe: 8 GPUs x 1 image,
# 40k iterations, AdamW lr 2e-5 / wd 1e-6, weighted-sum loss (semseg 1, depth 1, normals 10,
# edge 50), SyncBN in the heads.
#   tools/dist_train.sh configs/mtmamba_plus/mtmamba-plus_swin-l_8xb1-40k_nyudv2-448x576.py 8
_base_ = [
    '../_base_/models/mtmamba-plus_swin-l.py', '../_base_/datasets/nyud_mt.py',
    '../_base_/schedules/schedule_40k.py', '../_base_/default_runtime.py'
]

model = dict(
    decode_head=dict(
        tasks=dict(semseg=40, depth=1, normals=3, edge=1),
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        loss_combiner=dict(
            type='MultiTaskLoss',
            scheme='sum',
            weights=dict(semseg=1.0, depth=1.0, normals=10.0, edge=50.0))))

optim_wrapper = dict(optimizer=dict(lr=2e-5, weight_decay=1e-6))
