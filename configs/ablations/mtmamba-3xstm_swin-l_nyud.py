# Paper Table 2 (■): 3x STM per task and stage, no CTM. Paper: 252.51 / 276.48 / 300.45 M
# parameters for 1 / 2 / 3 STM (see docs/complexity.md).
_base_ = ['../mtmamba/mtmamba_swin-l_8xb1-50k_nyudv2-448x576.py']

model = dict(decode_head=dict(num_stm_blocks=3, use_ctm=False))
