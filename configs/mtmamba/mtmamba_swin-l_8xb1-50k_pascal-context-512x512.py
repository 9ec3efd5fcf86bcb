# MTMamba, Swin-L, PASCAL-Context (5 tasks), the paper's recipe: 8 GPUs x 1 image, 50k
# iterations.
#   tools/dist_train.sh configs/mtmamba/mtmamba_swin-l_8xb1-50k_pascal-context-512x512.py 8
_base_ = [
    '../_base_/models/mtmamba_swin-l.py', '../_base_/datasets/pascal_mt.py',
    '../_base_/schedules/schedule_50k.py', '../_base_/default_runtime.py'
]

model = dict(
    decode_head=dict(tasks=dict(semseg=21, human_parts=7, sal=2, normals=3, edge=1)))
