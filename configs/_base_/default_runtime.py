# Runtime defaults shared by every mmmt config.
default_scope = 'mmmt'
custom_imports = dict(imports=['mmmt'], allow_failed_imports=False)

env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # mmmt's hook writes each checkpoint atomically (temporary file + rename), then
    # last_checkpoint, and only then deletes outdated ones: a crash never leaves a work dir
    # without a complete checkpoint (mmmt/engine/hooks/safe_checkpoint_hook.py)
    checkpoint=dict(
        type='SafeCheckpointHook',
        by_epoch=False,
        interval=5000,
        max_keep_ckpts=3,
        backend_args=dict(backend='mmmt_atomic_local')),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # torch reseeded from (seed, iteration) before each iteration: --resume draws the same
    # drop-path masks as the uninterrupted run (mmmt/engine/hooks/iteration_seed_hook.py)
    iteration_seed=dict(type='IterationSeedHook'),
    # meta['mmmt_version'], the world size and batch size per rank in every checkpoint
    # (mmengine records neither); a --resume on another layout is warned about
    checkpoint_meta=dict(type='CheckpointMetaHook'),
    # stops at the first NaN/inf loss, naming the batch's files, before a checkpoint is saved
    non_finite_loss=dict(type='NonFiniteLossHook'),
    # load_from/--resume/Pretrained checkpoints that do not fit the model are refused
    checkpoint_fit=dict(type='CheckpointFitHook'),
    visualization=dict(type='MultiTaskVisualizationHook', draw=False),
)

# pictures named <mode>_<img_id>.png, written atomically (mmmt/visualization)
vis_backends = [dict(type='MultiTaskLocalVisBackend')]
visualizer = dict(type='MultiTaskVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(by_epoch=False, window_size=50)
log_level = 'INFO'
load_from = None
resume = False
# The reference seeds every rank with 0; mmengine offsets per rank when diff_rank_seed=True.
randomness = dict(seed=0, deterministic=False, diff_rank_seed=False)
