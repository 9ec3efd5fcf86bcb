"""Test-time augmentation of a multi-task segmentor: merge flipped and rescaled predictions."""
from typing import List

import torch
import torch.nn.functional as F
from mmengine.model import BaseTTAModel
from mmengine.structures import PixelData
from mmseg.utils import SampleList
from torch import Tensor

from mmmt.registry import MODELS
from .multitask_encoder_decoder import activate

__all__ = ['MultiTaskTTAModel', 'merge_task_predictions']


def merge_task_predictions(logits: List[Tensor], kind: str) -> Tensor:
    """One task's prediction from the (C, H, W) logits of every augmented view.

    The views' logits must already be in the original image's frame (un-flipped, normals' x
    negated back, resized to ``ori_shape``), which ``MultiTaskEncoderDecoder.predict`` does.
    Per activation: 'argmax' averages the softmax probabilities, then takes the argmax;
    'l2_normalize' (normals) averages the unit vectors and normalises again; every other kind
    (probabilities of 'sigmoid' / 'softmax_foreground', depth's 'relu') averages the activated
    predictions, so thresholds apply to averaged probabilities.
    """
    if kind == 'argmax':
        probs = torch.stack([x.softmax(dim=0) for x in logits]).mean(dim=0)
        return probs.argmax(dim=0, keepdim=True)
    mean = torch.stack([activate(x, kind) for x in logits]).mean(dim=0)
    if kind == 'l2_normalize':
        return F.normalize(mean, p=2, dim=0, eps=1e-12)
    return mean


@MODELS.register_module()
class MultiTaskTTAModel(BaseTTAModel):
    """Runs a :class:`MultiTaskEncoderDecoder` on every view of ``tta_pipeline`` and merges.

    ``tools/test.py --tta`` builds it around the config's model (see
    :func:`mmmt.utils.enable_tta`). Each view's ``<task>_logits`` come back in the original
    frame; :func:`merge_task_predictions` combines them per task. The merged sample keeps the
    first view's ground truth and metainfo (with ``flip=False``), ``<task>_logits`` become the
    mean of the views' logits and ``pred_<task>`` the merged prediction.

    The weights are the wrapped model's: ``state_dict``/``load_state_dict`` use the module's
    keys, so a checkpoint of the plain model loads strictly into the TTA model.
    """

    def merge_preds(self, data_samples_list: List[SampleList]) -> SampleList:
        merged = []
        activations = self.module.task_activations
        for views in data_samples_list:
            out = views[0]
            for task, kind in activations.items():
                key = f'{task}_logits'
                if key not in out:
                    continue
                logits = [v.get(key).data for v in views]
                out.set_field(PixelData(data=torch.stack(logits).mean(dim=0)), key)
                out.set_field(PixelData(data=merge_task_predictions(logits, kind)),
                              f'pred_{task}')
            out.set_metainfo(dict(flip=False, flip_direction=None, tta_views=len(views)))
            merged.append(out)
        return merged

    def state_dict(self, *args, **kwargs):
        return self.module.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict, strict: bool = True, **kwargs):
        return self.module.load_state_dict(state_dict, strict=strict, **kwargs)
