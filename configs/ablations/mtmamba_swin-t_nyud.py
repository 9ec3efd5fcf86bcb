# Paper Table 6, Swin-Tiny encoder (the paper does not say which checkpoint; this is
# configs/mtmamba/mtmamba_swin-t_8xb1-50k_nyudv2-448x576.py: ImageNet-1K, window 7).
_base_ = ['../mtmamba/mtmamba_swin-t_8xb1-50k_nyudv2-448x576.py']
