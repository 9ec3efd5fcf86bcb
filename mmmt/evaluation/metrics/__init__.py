"""mmengine metrics of mmmt."""
from .dump_predictions import DumpMultiTaskPredictions
from .load_predictions import PREDICTION_PICKLE_GLOBALS, load_predictions
from .multi_task_metric import MultiTaskMetric
from .task_evaluators import (TASK_EVALUATORS, BoundaryEvaluator, DepthEvaluator, NormalsEvaluator,
                              SaliencyEvaluator, SegmentationEvaluator, TaskEvaluator,
                              build_task_evaluator, meta_for_task)

__all__ = [
    'MultiTaskMetric', 'DumpMultiTaskPredictions', 'load_predictions',
    'PREDICTION_PICKLE_GLOBALS', 'TaskEvaluator', 'SegmentationEvaluator',
    'DepthEvaluator',
    'NormalsEvaluator', 'SaliencyEvaluator', 'BoundaryEvaluator', 'TASK_EVALUATORS',
    'build_task_evaluator', 'meta_for_task'
]
