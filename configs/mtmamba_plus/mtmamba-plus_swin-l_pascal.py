# The former name of
# configs/mtmamba_plus/mtmamba-plus_swin-l_8xb1-40k_pascal-context-512x512.py:
# kept so that commands and configs using this name keep working (an mmengine `_base_` alias;
# everything but the default work_dir, named after the file, is the same).
_base_ = ['./mtmamba-plus_swin-l_8xb1-40k_pascal-context-512x512.py']
