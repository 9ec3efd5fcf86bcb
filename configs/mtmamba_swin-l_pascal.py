# MTMamba, Swin-L, PASCAL-Context (5 tasks), the paper's recipe.
_base_ = ['./_base_/models/mtmamba_swin-l.py']

custom_imports = dict(imports=['mmmt'], allow_failed_imports=False)
default_scope = 'mmmt'

model = dict(
    decode_head=dict(tasks=dict(semseg=21, human_parts=7, sal=2, normals=3, edge=1)))
