# The former name of
# configs/mtmamba/mtmamba_swin-t_8xb1-50k_nyudv2-448x576.py:
# kept so that commands and configs using this name keep working (an mmengine `_base_` alias;
# everything but the default work_dir, named after the file, is the same).
_base_ = ['./mtmamba/mtmamba_swin-t_8xb1-50k_nyudv2-448x576.py']
