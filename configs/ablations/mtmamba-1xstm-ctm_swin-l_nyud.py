# 1x STM per task and stage followed by the CTM (the "with CTM" counterpart of
# mtmamba-1xstm_swin-l_nyud.py; 2x STM + CTM is the default, configs/mtmamba_swin-l_nyud.py).
# Not a row of the paper's tables.
_base_ = ['../mtmamba_swin-l_nyud.py']

model = dict(decode_head=dict(num_stm_blocks=1, use_ctm=True))
