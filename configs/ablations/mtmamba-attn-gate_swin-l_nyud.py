# Paper Table 4, "Linear -> W-MSA": every linear gate of the STM and CTM blocks gets window
# attention (at the block width) before its Linear. Window 8 and the encoder's head count
# (24, 12, 6) reproduce the paper's 345.33 M parameters exactly (docs/complexity.md).
_base_ = ['../mtmamba/mtmamba_swin-l_8xb1-50k_nyudv2-448x576.py']

model = dict(
    decode_head=dict(type='MTMambaVariantHead', mixer='mfe', gate='attention', window_size=8))
