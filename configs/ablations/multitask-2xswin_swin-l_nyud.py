# Paper Table 2, "Multi-task 2*Swin": each task's decoder stage has two standard Swin
# Transformer blocks (W-MSA then SW-MSA, window 12, MLP ratio 4, the encoder's head count at that
# resolution) instead of the STM blocks, and there is no CTM. Paper: 303.18 M parameters.
_base_ = ['../mtmamba/mtmamba_swin-l_8xb1-50k_nyudv2-448x576.py']

model = dict(
    decode_head=dict(
        type='MTMambaVariantHead', block='swin', num_stm_blocks=2, use_ctm=False,
        swin_window_size=12))
