from .checkpoint_fit_hook import CheckpointFitHook
from .checkpoint_meta_hook import CheckpointMetaHook
from .iteration_seed_hook import IterationSeedHook, iteration_seed
from .non_finite_loss_hook import NonFiniteLossHook
from .safe_checkpoint_hook import SafeCheckpointHook, remove_stale_temporaries
from .visualization_hook import MultiTaskVisualizationHook

__all__ = ['SafeCheckpointHook', 'remove_stale_temporaries', 'NonFiniteLossHook',
           'CheckpointFitHook', 'MultiTaskVisualizationHook', 'IterationSeedHook', 'iteration_seed',
           'CheckpointMetaHook']
