# 1x STM per task and stage followed by the CTM (the "with CTM" counterpart of
# mtmamba-1xstm_swin-l_nyud.py; 2x STM + CTM is the default,
# configs/mtmamba/mtmamba_swin-l_8xb1-50k_nyudv2-448x576.py).
# Not a row of the paper's tables.
_base_ = ['../mtmamba/mtmamba_swin-l_8xb1-50k_nyudv2-448x576.py']

model = dict(decode_head=dict(num_stm_blocks=1, use_ctm=True))
