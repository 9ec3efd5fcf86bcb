# MTMamba with a Swin-T encoder (ImageNet-1K) on NYUDv2: small enough for CPU development.
_base_ = [
    '../_base_/models/mtmamba_swin-t.py', '../_base_/datasets/nyud_mt.py',
    '../_base_/schedules/schedule_50k.py', '../_base_/default_runtime.py'
]

model = dict(decode_head=dict(tasks=dict(semseg=40, depth=1, normals=3, edge=1)))
