# MTMamba, Swin-L, NYUDv2 (4 tasks), the paper's recipe.
_base_ = ['./_base_/models/mtmamba_swin-l.py']

custom_imports = dict(imports=['mmmt'], allow_failed_imports=False)
default_scope = 'mmmt'

model = dict(decode_head=dict(tasks=dict(semseg=40, depth=1, normals=3, edge=1)))
