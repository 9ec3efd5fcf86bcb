# Paper Table 5, g^t = 1: the CTM gate is the constant 1 (shared feature only; the
# reference code puts g on the shared term, see CTMBlock). The gate's Linear is not built.
_base_ = ['../mtmamba/mtmamba_swin-l_8xb1-50k_nyudv2-448x576.py']

model = dict(decode_head=dict(ctm_gate=1.0))
