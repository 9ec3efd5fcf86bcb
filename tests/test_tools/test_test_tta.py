"""tools/test.py --tta on the tiny demo model, against an in-process merge of its views."""
import pickle
from typing import Dict, List, Tuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from mmengine.config import Config
from PIL import Image
from torch import Tensor

from mmmt.registry import MODELS
from .conftest import python_tool, write_tiny_config

NO_VAL = """
val_cfg = None
val_dataloader = None
val_evaluator = None
"""


def tta_views(path: str, cfg: Config) -> Tuple[List[Tuple[Tensor, tuple]], Tuple[int, int]]:
    """The (input, frame) pairs of the config's tta_pipeline, built by hand.

    Each scale of ``tta_scales`` times {as is, mirrored}: the RGB image resized bilinearly to
    ``int(side * scale)``, flipped left-right, normalised, centred in ``crop_size`` (where
    smaller) and padded at the bottom/right to a multiple of 32 (the data preprocessor). The
    frame says where the view's own pixels are: (top, left, height, width, flipped).
    Returns the views and the image's (height, width).
    """
    img = np.asarray(Image.open(path).convert('RGB'), dtype=np.float32)
    h, w = img.shape[:2]
    norm = cfg.img_norm_cfg
    views = []
    for scale in cfg.tta_scales:
        size = (int(h * scale), int(w * scale))
        scaled = img if scale == 1 else cv2.resize(img, size[::-1],
                                                   interpolation=cv2.INTER_LINEAR)
        for flipped in (False, True):
            x = (scaled[:, ::-1] if flipped else scaled) - np.float32(norm.mean)
            x = x / np.float32(norm.std)
            top = max(cfg.crop_size[0] - size[0], 0) // 2
            left = max(cfg.crop_size[1] - size[1], 0) // 2
            canvas = np.zeros((max(size[0], cfg.crop_size[0]), max(size[1], cfg.crop_size[1]), 3),
                              np.float32)
            canvas[top:top + size[0], left:left + size[1]] = x
            pad_h, pad_w = -canvas.shape[0] % 32, -canvas.shape[1] % 32
            canvas = np.pad(canvas, [(0, pad_h), (0, pad_w), (0, 0)])
            views.append((torch.from_numpy(canvas).permute(2, 0, 1),
                          (top, left, size[0], size[1], flipped)))
    return views, (h, w)


def view_logits(model: torch.nn.Module, views: List[Tensor]) -> List[Dict[str, Tensor]]:
    """The model's logits of every view (mode='tensor'), views of one size in one batch."""
    logits = [None] * len(views)
    for shape in {tuple(v.shape) for v in views}:
        index = [i for i, v in enumerate(views) if tuple(v.shape) == shape]
        with torch.no_grad():
            batch = model(torch.stack([views[i] for i in index]), mode='tensor')
        for j, i in enumerate(index):
            logits[i] = {task: x[j:j + 1] for task, x in batch.items()}
    return logits


def merged_by_hand(model: torch.nn.Module, paths: List[str],
                   cfg: Config) -> List[Tuple[Tensor, Dict[str, Tensor]]]:
    """Each image's views' logits in its frame, merged as MultiTaskTTAModel documents.

    Un-flip (normals' x negated back), resize to the image size; semseg: the argmax of the
    mean softmax; depth: the mean of max(x, 0); normals: the mean of the unit vectors, made
    unit again; edge: the mean sigmoid. Returns per image the mean semseg probabilities and
    the other tasks' maps.
    """
    images = [tta_views(path, cfg) for path in paths]
    logits = view_logits(model, [inputs for views, _ in images for inputs, _ in views])
    merged = []
    for views, ori in images:
        per_task = {}
        for (_, (top, left, h, w, flipped)), view in zip(views, logits[:len(views)]):
            for task, x in view.items():
                x = x[:, :, top:top + h, left:left + w]
                if flipped:
                    x = x.flip(-1)
                    if task == 'normals':
                        x = x * torch.tensor([-1.0, 1.0, 1.0]).view(1, 3, 1, 1)
                x = F.interpolate(x, size=ori, mode='bilinear', align_corners=False)[0]
                per_task.setdefault(task, []).append(x.double())
        logits = logits[len(views):]
        mean = lambda xs: torch.stack(xs).mean(0)  # noqa: E731
        merged.append((mean([x.softmax(0) for x in per_task['semseg']]), dict(
            depth=mean([x.clamp(min=0) for x in per_task['depth']])[0],
            normals=F.normalize(mean([F.normalize(x, dim=0) for x in per_task['normals']]),
                                dim=0).permute(1, 2, 0),
            edge=mean([x.sigmoid() for x in per_task['edge']])[0])))
    return merged


def test_test_py_tta_runs_and_merges_every_view(tmp_path, synthetic_nyud):
    cfg_path = write_tiny_config(tmp_path / 'cfg.py', synthetic_nyud, extra=NO_VAL)
    cfg = Config.fromfile(cfg_path)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).eval()
    ckpt = tmp_path / 'demo.pth'
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), ckpt)
    out_pkl = tmp_path / 'tta.pkl'
    result = python_tool('test.py', cfg_path, ckpt, '--tta', '--out', out_pkl,
                         '--work-dir', tmp_path / 'work')
    assert 'semseg/mIoU' in result.stdout + result.stderr
    with open(out_pkl, 'rb') as f:
        dumped = pickle.load(f)
    assert len(dumped) == 2  # the synthetic layout's 2 val images
    for record, (probs, expected) in zip(
            dumped, merged_by_hand(model, [r['img_path'] for r in dumped], cfg)):
        pred = record['pred']
        assert tuple(record['ori_shape']) == probs.shape[1:] == pred['semseg'].shape
        # the chosen class has the highest mean probability (up to float32 noise: a near-tie
        # may go either way)
        chosen = probs.gather(0, torch.from_numpy(pred['semseg'].astype(np.int64))[None])[0]
        assert (chosen >= probs.max(0).values - 1e-5).all()
        for task in ('depth', 'normals', 'edge'):
            np.testing.assert_allclose(pred[task], expected[task].numpy(), atol=2e-5,
                                       err_msg=task)
