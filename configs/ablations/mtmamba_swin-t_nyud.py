# Paper Table 6, Swin-Tiny encoder (the paper does not say which checkpoint; this is
# configs/mtmamba_swin-t_nyud.py: ImageNet-1K, window 7).
_base_ = ['../mtmamba_swin-t_nyud.py']
