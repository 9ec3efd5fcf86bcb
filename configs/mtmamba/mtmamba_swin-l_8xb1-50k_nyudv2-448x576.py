# MTMamba, Swin-L, NYUDv2 (4 tasks), the paper's recipe: 8 GPUs x 1 image, 50k iterations.
#   tools/dist_train.sh configs/mtmamba/mtmamba_swin-l_8xb1-50k_nyudv2-448x576.py 8
_base_ = [
    '../_base_/models/mtmamba_swin-l.py', '../_base_/datasets/nyud_mt.py',
    '../_base_/schedules/schedule_50k.py', '../_base_/default_runtime.py'
]

model = dict(decode_head=dict(tasks=dict(semseg=40, depth=1, normals=3, edge=1)))
