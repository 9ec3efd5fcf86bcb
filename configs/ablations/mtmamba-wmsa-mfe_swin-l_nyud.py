# Paper Table 3, "MFE -> W-MSA": every MFE of the STM and CTM blocks (linear expansion, conv,
# SS2D, LayerNorm) becomes the linear expansion followed by window attention at the expanded
# width. Window 8 and the encoder's head count (24, 12, 6) reproduce the paper's 451.81 M
# parameters exactly; the paper does not state them (docs/complexity.md).
_base_ = ['../mtmamba/mtmamba_swin-l_8xb1-50k_nyudv2-448x576.py']

model = dict(
    decode_head=dict(type='MTMambaVariantHead', mixer='wmsa', gate='linear', window_size=8))
