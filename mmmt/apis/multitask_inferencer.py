"""Run a trained multi-task model on images of any size and format.

Over 400 lines on purpose: mmengine's ``BaseInferencer`` is one class whose methods
(preprocess, forward, visualize, postprocess) share the pipeline's fit/pad bookkeeping; the
helpers that need no model (output names, collision checks, the fitted size) are module
functions so that ``demo/image_demo.py`` can run them before a model is built.
"""
import contextlib
import math
import os
import os.path as osp
import warnings
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from mmcv.transforms import Compose
from mmengine import DefaultScope
from mmengine.config import Config, ConfigDict
from mmengine.dataset import pseudo_collate
from mmengine.infer import BaseInferencer
from mmengine.logging import print_log
from PIL import Image
from torch import Tensor

from mmmt.registry import INFERENCERS, TRANSFORMS
from mmmt.structures import MultiTaskDataSample, pred_to_array, register_tasks
from mmmt.utils.checkpoint import (TRUST_ENV, UntrustedCheckpointError, describe_non_finite,
                                   load_model_weights, non_finite_tensors, trusted)
from mmmt.utils.errors import (InputFileNotFoundError, InvalidOptionError, UserInputError,
                               did_you_mean, is_int)
from mmmt.utils.fileio import (atomic_write, keep_existing_files, nearest_existing,
                               output_path_problem, removed_leftovers_note)
from .image_io import ImageInput, list_images, pil_to_rgb, read_image_rgb, to_rgb_uint8

__all__ = [
    'MultiTaskInferencer', 'resize_and_activate', 'unique_names', 'fitted_size', 'config_tasks',
    'existing_outputs', 'output_dir_problem'
]

#: Pipeline steps replaced by the inferencer's own image reading (or not needed without labels).
_DROPPED_TRANSFORMS = ('LoadMultiTaskImage', 'LoadImageFromFile', 'LoadMultiTaskAnnotations',
                       'LoadAnnotations', 'AddIgnoreRegions')
#: Padding steps that do not record their offsets (``img_padding_size``), refused.
_UNRECORDED_PADDING = ('Pad', )
#: Bytes of float32 logits resized at once when predictions are upsampled to a large image.
_CHUNK_BYTES = 64 * 2**20


def _type_name(transform: dict) -> str:
    t = transform.get('type', '')
    return t.split('.')[-1] if isinstance(t, str) else getattr(t, '__name__', '')


def _bilinear_rows(n_in: int, n_out: int, align_corners: bool) -> Tuple[Tensor, Tensor, Tensor]:
    """Source indices and weights of 1-D bilinear resizing as ``F.interpolate`` computes them."""
    dst = torch.arange(n_out, dtype=torch.float64)
    if align_corners:
        src = dst * ((n_in - 1) / (n_out - 1)) if n_out > 1 else torch.zeros_like(dst)
    else:
        src = ((dst + 0.5) * (n_in / n_out) - 0.5).clamp(min=0)
    i0 = src.floor().long().clamp(max=n_in - 1)
    i1 = (i0 + 1).clamp(max=n_in - 1)
    return i0, i1, (src - i0).float()


def resize_and_activate(logits: Tensor, size: Tuple[int, int], activation: str,
                        align_corners: bool = False) -> np.ndarray:
    """Bilinearly resize (C, h, w) logits to ``size`` and apply the task's activation.

    The same result as ``activate(F.interpolate(logits[None], size, mode='bilinear')[0])`` (what
    :class:`~mmmt.models.MultiTaskEncoderDecoder` does in ``predict``), computed a band of
    output rows at a time so that the full-resolution logits of many classes never exist at
    once (40 classes at 4000x3000 would be 1.9 GB).

    Args:
        logits (Tensor): (C, h, w) logits of one image and task.
        size (tuple[int, int]): (H, W) of the output.
        activation (str): The task's ``activation`` (see
            :func:`~mmmt.models.segmentors.multitask_encoder_decoder.activate`).
        align_corners (bool): Of the bilinear resize. Defaults to False.

    Returns:
        np.ndarray: (H, W) for one output channel, else (H, W, C'); 0-based class indices for
        'argmax' (uint8 up to 256 classes, :func:`~mmmt.structures.class_map_dtype`), float32
        otherwise.
    """
    from mmmt.models.segmentors.multitask_encoder_decoder import activate
    height, width = int(size[0]), int(size[1])
    channels, h, w = logits.shape
    if (h, w) == (height, width):
        return pred_to_array(activate(logits, activation), num_classes=channels)
    # width first (an identity along the height), then bands of rows
    cols = F.interpolate(logits[None].float(), size=(h, width), mode='bilinear',
                         align_corners=align_corners)[0]
    i0, i1, lam = (t.to(logits.device) for t in _bilinear_rows(h, height, align_corners))
    band = max(1, _CHUNK_BYTES // max(1, 4 * channels * width))
    out = None
    for r0 in range(0, height, band):
        r1 = min(height, r0 + band)
        rows = torch.lerp(cols.index_select(1, i0[r0:r1]), cols.index_select(1, i1[r0:r1]),
                          lam[r0:r1].view(1, -1, 1))
        pred = pred_to_array(activate(rows, activation), num_classes=channels)
        if out is None:
            out = np.empty((height, ) + pred.shape[1:], dtype=pred.dtype)
        out[r0:r1] = pred
    return out


def unique_names(stems: Sequence[str]) -> List[str]:
    """One output name per input: its stem, or ``<stem>_<k>`` for repeats of a stem.

    ``k`` skips every stem of the inputs and every name already given, so ``a.jpg``,
    ``a.png``, ``a_1.png`` become ``a``, ``a_2``, ``a_1``; names differing only in case
    count as the same (case-insensitive file systems would merge them).
    """
    taken = {s.casefold() for s in stems}
    given, names = set(), []
    for stem in stems:
        name, k = stem, 0
        while name.casefold() in given or (k and name.casefold() in taken):
            k += 1
            name = f'{stem}_{k}'
        given.add(name.casefold())
        names.append(name)
    return names


def fitted_size(height: int, width: int,
                max_size: Optional[Tuple[int, int]]) -> Tuple[int, int]:
    """The (h, w) an image of ``height x width`` is fed at: shrunk, keeping its aspect ratio,
    to fit ``max_size`` (never enlarged; None = unchanged)."""
    if max_size is None:
        return height, width
    scale = min(max_size[0] / height, max_size[1] / width)
    if scale >= 1:
        return height, width
    return (max(1, min(max_size[0], int(round(height * scale)))),
            max(1, min(max_size[1], int(round(width * scale)))))


def config_tasks(cfg: Union[Config, dict]) -> List[str]:
    """The task names of a multi-task model config (``model.decode_head.tasks``), without
    building it; empty when the config does not say."""
    tasks = ((cfg.get('model') or {}).get('decode_head') or {}).get('tasks') or []
    return list(tasks)


def existing_outputs(names: Sequence[str], out_dir: str, tasks: Sequence[str],
                     save_pred: bool = True) -> List[str]:
    """The files under ``out_dir`` that predicting images ``names`` would replace.

    Needs only the task names (:func:`config_tasks`), so a run can be refused before its
    model is built; both extensions of a prediction are checked (which one a task writes
    depends on the built model's activations).
    """
    found = []
    for name in names:
        files = [osp.join(out_dir, 'vis', f'{name}.png')]
        if save_pred:
            files += [osp.join(out_dir, 'pred', f'{name}_{task}.{ext}')
                      for task in tasks for ext in ('png', 'npy')]
        found += [f for f in files if osp.exists(f)]
    return found


def output_dir_problem(out_dir: str, names: Sequence[str], tasks: Sequence[str],
                       save_pred: bool = True) -> Optional[str]:
    """Why the outputs of images ``names`` cannot be written under ``out_dir``, or None.

    Checked before a model is built or an image predicted (otherwise the first write fails
    after the first outputs): ``out_dir``, ``vis/`` or ``pred/`` being a file, the nearest
    existing folder above them not writable (permissions, a read-only file system), and output
    file names longer than the file system allows.
    """
    folders = [out_dir, osp.join(out_dir, 'vis')] + (
        [osp.join(out_dir, 'pred')] if save_pred else [])
    for folder in folders:
        problem = output_path_problem(folder, folder=True)
        if problem:
            return f'{problem}; choose another out_dir'
    try:
        name_max = os.pathconf(nearest_existing(out_dir), 'PC_NAME_MAX')
    except (OSError, ValueError, AttributeError):  # no pathconf (Windows) or unknown
        name_max = 255
    longest = max(tasks, key=len, default='') if save_pred else ''
    for name in names:
        file = f'{name}_{longest}.npy' if save_pred else f'{name}.png'
        if len(os.fsencode(file)) > name_max:
            return (f'the output file name {file!r} is longer than the {name_max} bytes the '
                    f'file system of {out_dir} allows; rename that input')
    return None


def _check_max_size(max_size: Any) -> Tuple[int, int]:
    """``max_size`` given as (h, w) or one int, as an (h, w) pair of positive ints."""
    pair = (max_size, max_size) if is_int(max_size) else max_size
    if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and all(map(is_int, pair))
            and min(pair) >= 1):
        raise UserInputError(f"max_size: expected (h, w) or one size in pixels (positive "
                             f"integers), 'auto' or None, got {max_size!r}")
    return int(pair[0]), int(pair[1])


class _InferencePipeline:
    """Read an input as 8-bit RGB, fit it into the model's frame, then the config's test steps."""

    def __init__(self, transforms: List[dict], max_size: Optional[Tuple[int, int]]) -> None:
        self.transforms = Compose([TRANSFORMS.build(t) for t in transforms])
        self.max_size = max_size

    def __call__(self, item: Tuple[str, ImageInput]) -> Tuple[dict, np.ndarray]:
        name, source = item
        if isinstance(source, str):
            img = read_image_rgb(source)
        else:
            img = to_rgb_uint8(source, name)
        h, w = img.shape[:2]
        results = dict(img=img.astype(np.float32), img_id=name, ori_shape=(h, w),
                       img_shape=(h, w), tasks=[], seg_fields=[])
        if isinstance(source, str):
            results['img_path'] = source
        nh, nw = fitted_size(h, w, self.max_size)
        if (nh, nw) != (h, w):
            results['img'] = cv2.resize(results['img'], (nw, nh), interpolation=cv2.INTER_AREA)
            results['img_shape'] = (nh, nw)
            results['scale_factor'] = (nw / w, nh / h)
        return self.transforms(results), img


def _config_of_model_name(name: str) -> str:
    """The config file of the model-index.yml model ``name`` (as OpenMMLab inferencers take
    model names), or an error naming the closest names."""
    from mmmt.utils.model_index import model_configs
    configs = {key.lower(): value for key, value in model_configs().items()}
    if name.lower() in configs:
        return configs[name.lower()]
    hint = did_you_mean(name.lower(), configs)
    raise InputFileNotFoundError(
        f'{name!r} is neither a config file nor a model name of model-index.yml'
        + (f'; {hint}' if hint else ''))


@INFERENCERS.register_module()
class MultiTaskInferencer(BaseInferencer):
    """Dense multi-task predictions for images of any size and format.

    Inputs may be an image path (``str`` or ``os.PathLike``; spaces and non-ASCII names are
    fine), a folder (its files with an image extension, :data:`~mmmt.apis.IMG_EXTENSIONS`,
    sorted by name; other files and sub-folders are skipped), a numpy array, a PIL image, or a
    list of these. Every image is read as 8-bit RGB and goes through the config's test
    pipeline with annotation loading removed:

    * files (:func:`~mmmt.apis.read_image_rgb`) and PIL images: grayscale, RGBA (alpha
      dropped), palette, CMYK, 16-bit (top 8 bits) and float modes are converted; the EXIF
      orientation is applied, so the predictions align with the image as it is displayed
      (and have its displayed size);
    * arrays (:func:`~mmmt.apis.to_rgb_uint8`): (H, W), (H, W, 1), (H, W, 2), (H, W, 3) RGB
      or (H, W, 4) RGBA; uint8, uint16 (16-bit), other integers (8-bit when no value exceeds
      255), bool, floats ([0, 1] when the maximum is <= 1, else [0, 255]); channels-first
      (3, H, W), NaN and empty arrays are errors naming the input.

    Any size from 1x1 pixel up works: the inferencer never enlarges an image (a ``Resize``
    step of the config's test pipeline may), small ones are padded. Images larger than
    ``max_size`` are first shrunk (keeping the aspect ratio) to fit it; the data preprocessor
    pads every batch to a multiple of 32.
    Within a batch, images whose inputs differ in size go through the model separately, so
    that none is padded more than alone: the predictions do not depend on ``batch_size``.
    Predictions are cropped back and resized to each image's own size.

    Returned per image, by task (the model's ``task_activations``):

    ============ =====================================================
    semseg, ...  (H, W) uint8 class index, 0-based ('argmax' tasks; NYUD's label PNGs are
                 1-based with 0 = unlabelled: add 1 to compare with them)
    depth        (H, W) float32, metres
    normals      (H, W, 3) float32 unit vectors
    edge         (H, W) float32 boundary probability
    sal          (H, W) float32 saliency probability
    ============ =====================================================

    Depth is what the model predicts for the image as fitted into its frame: it is metric only
    for cameras with a field of view like the training camera's.

    Args:
        model (str | Config | dict, optional): Config file or config of an mmmt multi-task
            model (``MultiTaskEncoderDecoder``), or a model name of ``model-index.yml``
            (``'mtmamba_swin-l_8xb1-50k_nyudv2-448x576'``, case-insensitive; also its former
            name). mmmt publishes no weights, so give ``weights`` too. None = take the config
            saved in ``weights``:
            it is Python code, run when read, so this needs a trusted checkpoint
            (``MMMT_TRUST_CHECKPOINTS=1``, or ``--trust-checkpoint`` of the tools).
        weights (str, optional): Checkpoint (local path or URL); loaded through mmengine with
            mmmt's safe loader. Without it the model is randomly initialised (with a warning).
        device (str, optional): 'cpu', 'cuda', 'cuda:1'... None = CUDA if available.
        scope (str): Default registry scope while building. Defaults to 'mmmt'.
        max_size (tuple | str | None): Largest (h, w) fed to the model; larger images are
            shrunk to fit. 'auto' (default) = the size the test pipeline centre-pads to (the
            training frame, e.g. 448x576 for NYUD); None = always full resolution.
        show_progress (bool): Show a progress bar over batches. Defaults to True.

    Example:
        >>> from mmmt.apis import MultiTaskInferencer
        >>> inferencer = MultiTaskInferencer('configs/mtmamba_swin-l_nyud.py', 'mtmamba.pth')
        >>> result = inferencer('photos/', out_dir='outputs')
        >>> result['predictions'][0]['depth'].shape    # (H, W), metres
    """

    preprocess_kwargs: set = set()
    forward_kwargs: set = set()
    visualize_kwargs: set = {'show', 'wait_time', 'return_vis', 'out_dir', 'draw_pred'}
    postprocess_kwargs: set = {'return_datasamples', 'save_pred'}

    def __init__(self,
                 model: Union[str, Config, ConfigDict, dict, None] = None,
                 weights: Optional[str] = None,
                 device: Optional[str] = None,
                 scope: str = 'mmmt',
                 max_size: Union[Tuple[int, int], str, None] = 'auto',
                 show_progress: bool = True) -> None:
        from mmmt.utils import register_all_modules
        register_all_modules(init_default_scope=False)
        if isinstance(model, str) and not osp.isfile(model):
            model = _config_of_model_name(model)
        if isinstance(weights, str) and '://' not in weights and not osp.isfile(weights):
            raise InputFileNotFoundError(f'Checkpoint file not found: {weights}')
        if model is None and weights is not None and not trusted():
            # mmengine would run Config.fromstring on the file's message hub 'cfg'
            raise UntrustedCheckpointError(
                f'{weights}: model=None takes the config stored in the checkpoint, which is '
                'Python code and runs when read; pass the config file as `model`, or set '
                f'{TRUST_ENV}=1 if you trust the file')
        if max_size is not None and not (isinstance(max_size, str) and max_size.lower() == 'auto'):
            max_size = _check_max_size(max_size)  # before the model is built
        self._weights = weights
        self._max_size = max_size
        self.dataset_meta: Optional[dict] = None
        with DefaultScope.overwrite_default_scope(scope):
            super().__init__(model=model, weights=weights, device=device, scope=scope,
                             show_progress=show_progress)
        preprocessor = self.model.data_preprocessor
        if hasattr(preprocessor, 'size_divisor') and not preprocessor.size_divisor:
            # the Swin encoder and the decoder's 2x stages need sides divisible by 32
            preprocessor.size_divisor = 32
        if self.visualizer is not None and self.dataset_meta:
            self.visualizer.dataset_meta = self.dataset_meta
        self.tasks: List[str] = list(self.model.tasks)

    # ------------------------------------------------------------------------------ building
    def _init_model(self, cfg: Config, weights: Optional[str], device: str = 'cpu'
                    ) -> torch.nn.Module:
        model_type = (cfg.get('model') or {}).get('type', '')
        if isinstance(model_type, str) and model_type.split('.')[-1] == 'EncoderDecoder':
            raise InvalidOptionError('MultiTaskInferencer runs mmmt multi-task models '
                                     '(MultiTaskEncoderDecoder); for single-task mmseg configs '
                                     'use mmseg.apis.MMSegInferencer')
        if 'module' in (cfg.get('model') or {}):  # a TTA wrapper (mmmt.utils.enable_tta)
            raise InvalidOptionError(
                f'MultiTaskInferencer runs the plain model, got a test-time augmentation '
                f'wrapper ({model_type}); pass the config without enable_tta (merged views '
                'are tools/test.py --tta, or a flip in the test pipeline)')
        register_tasks(cfg.get('custom_tasks'))  # tasks defined in the config itself
        model = super()._init_model(cfg, weights, device)
        for attr in ('encode_decode', 'task_activations', 'tasks'):
            if not hasattr(model, attr):
                raise InvalidOptionError(
                    f'MultiTaskInferencer needs an mmmt multi-task segmentor '
                    f'(MultiTaskEncoderDecoder), got {type(model).__name__}')
        return model

    def _load_weights_to_model(self, model: torch.nn.Module, checkpoint: Optional[dict],
                               cfg: Optional[Config]) -> None:
        if checkpoint is None:
            warnings.warn('MultiTaskInferencer: no checkpoint given, the predictions come from '
                          'a randomly initialised model')
            return
        meta = load_model_weights(model, checkpoint, str(self._weights))
        state = model.state_dict()
        bad = non_finite_tensors(state)
        if bad:
            raise UserInputError(describe_non_finite(bad, len(state), str(self._weights)))
        self.dataset_meta = meta.get('dataset_meta')
        model.dataset_meta = self.dataset_meta

    def _init_pipeline(self, cfg: Config) -> _InferencePipeline:
        max_size = self._max_size
        pipeline = None
        loader = cfg.get('test_dataloader') or {}
        dataset = loader.get('dataset') or {}
        while pipeline is None and dataset:
            pipeline = dataset.get('pipeline')
            dataset = dataset.get('dataset') or (dataset.get('datasets') or [{}])[0]
        if pipeline is None:
            pipeline = cfg.get('test_pipeline')
        if pipeline is None:
            raise UserInputError('The config has no test pipeline '
                                 '(test_dataloader.dataset.pipeline or test_pipeline)')
        steps = [dict(t) for t in pipeline if _type_name(t) not in _DROPPED_TRANSFORMS]
        for step in steps:
            if _type_name(step) in _UNRECORDED_PADDING:
                # mmcv's Pad makes the padded frame the image (img_shape) and records no
                # offsets: the padding would be stretched over the image in every prediction
                raise UserInputError(
                    f"test pipeline step {step['type']!r} pads the image without recording "
                    'where (img_padding_size), so predictions could not be cropped back; use '
                    "dict(type='CenterPad', size=..., pad_gt=False), or leave the padding to "
                    'the data preprocessor (size_divisor)')
        if isinstance(max_size, str):  # 'auto' (any other value was refused in __init__)
            pads = [t['size'] for t in steps if _type_name(t) == 'CenterPad']
            max_size = tuple(pads[0]) if pads else None
        return _InferencePipeline(steps, max_size)

    def _init_collate(self, cfg: Config):
        return pseudo_collate  # unused: batches are assembled in preprocess

    def _init_visualizer(self, cfg: Config):
        if 'visualizer' not in cfg:
            return None
        vis_cfg = dict(cfg.visualizer)
        vis_cfg.pop('vis_backends', None)  # pictures are written with out_file, not backends
        vis_cfg.pop('save_dir', None)
        cfg.visualizer = ConfigDict(vis_cfg)
        try:
            return super()._init_visualizer(cfg)
        except KeyError as e:  # visualizer type not registered
            warnings.warn(f'MultiTaskInferencer: cannot build the visualizer ({e}); '
                          'visualizations are unavailable')
            return None

    # ----------------------------------------------------------------------------- running
    def __call__(self,
                 inputs: Union[ImageInput, Sequence[ImageInput]],
                 batch_size: int = 1,
                 out_dir: Optional[str] = None,
                 show: bool = False,
                 wait_time: float = 0,
                 return_vis: bool = False,
                 draw_pred: bool = True,
                 save_pred: bool = True,
                 return_datasamples: bool = False,
                 overwrite: bool = False) -> dict:
        """Predict every task for the inputs.

        Args:
            inputs: An image path, a folder, a numpy array, a PIL image, or a list of these
                (see the class docstring for what each may hold).
            batch_size (int): Images per forward pass. Defaults to 1.
            out_dir (str, optional): Write ``vis/<name>.png`` (the visualizer's picture) and,
                with ``save_pred``, ``pred/<name>_<task>.png`` (class maps) or ``.npy`` (the
                other tasks, float32) for each image. ``<name>`` is the file's name without
                extension (``%08d`` of the input index for arrays), with ``_<k>`` added to
                repeats so that no two inputs share outputs (:func:`unique_names`).
            show (bool): Display each visualization. Defaults to False.
            wait_time (float): Display time per image (s) with ``show``.
            return_vis (bool): Also return the visualizations (RGB arrays).
            draw_pred (bool): Draw the predictions in the visualizations. Defaults to True.
            save_pred (bool): Save the raw predictions under ``out_dir``. Defaults to True.
            return_datasamples (bool): Return :class:`MultiTaskDataSample` objects
                (``pred_<task>`` tensors of shape (C, H, W)) instead of numpy dicts.
            overwrite (bool): Replace files of the same names in ``out_dir``. By default a run
                whose outputs would replace existing files stops before predicting anything
                and names them, and each file is written exclusively, so that one that
                appears meanwhile (a second run into the same folder) is kept and the run
                stops naming it. Files are always written atomically. Defaults to False.

        Returns:
            dict: ``predictions`` (one ``dict[task, np.ndarray]`` per image, in input order),
            ``img_paths`` (the file of each prediction, None for arrays) and ``visualization``
            (RGB arrays with ``return_vis``, else None).

        Raises:
            FileNotFoundError, OSError, ValueError: an input is missing or not a readable
                image; the message names it.
            FileExistsError: outputs would replace existing files and ``overwrite`` is False
                (also a file that appeared during the run: it is kept).
            UserInputError: ``out_dir`` cannot hold the outputs (a file in the way, not
                writable, names too long: :func:`output_dir_problem`); checked before
                predicting.
        """
        predictions, paths, visualizations = [], [], []
        for path, pred, vis in self.iter_predict(
                inputs, batch_size=batch_size, out_dir=out_dir, show=show, wait_time=wait_time,
                return_vis=return_vis, draw_pred=draw_pred, save_pred=save_pred,
                return_datasamples=return_datasamples, overwrite=overwrite):
            paths.append(path)
            predictions.append(pred)
            visualizations.append(vis)
        return dict(predictions=predictions, img_paths=paths,
                    visualization=visualizations if return_vis else None)

    def iter_predict(self,
                     inputs: Union[ImageInput, Sequence[ImageInput]],
                     batch_size: int = 1,
                     out_dir: Optional[str] = None,
                     show: bool = False,
                     wait_time: float = 0,
                     return_vis: bool = False,
                     draw_pred: bool = True,
                     save_pred: bool = True,
                     return_datasamples: bool = False,
                     overwrite: bool = False
                     ) -> Iterator[Tuple[Optional[str], Union[Dict[str, np.ndarray],
                                                              MultiTaskDataSample],
                                         Optional[np.ndarray]]]:
        """Like :meth:`__call__`, but yield ``(img_path, prediction, visualization)`` per image
        as soon as its batch is done (for long folders: nothing accumulates)."""
        if batch_size < 1:
            raise ValueError(f'batch_size must be >= 1, got {batch_size}')
        items = self._inputs_to_list(inputs)
        if (out_dir or show or return_vis) and self.visualizer is None:
            raise RuntimeError('Visualizations need `visualizer` (MultiTaskVisualizer) in the '
                               'config')
        if out_dir:
            problem = output_dir_problem(out_dir, [name for name, _ in items], self.tasks,
                                         save_pred)
            if problem:
                raise UserInputError(problem)
        if out_dir and not overwrite:
            taken = [f for name, _ in items for f in self.output_files(name, out_dir, save_pred)
                     if osp.exists(f)]
            if taken:
                more = f' and {len(taken) - 5} more' if len(taken) > 5 else ''
                raise FileExistsError(
                    f'{len(taken)} output file(s) exist: {", ".join(taken[:5])}{more}; choose '
                    'another out_dir or pass overwrite=True (image_demo.py: --force)')
        if out_dir:  # a killed run's half-written outputs
            note = removed_leftovers_note(osp.join(out_dir, 'vis'), osp.join(out_dir, 'pred'),
                                          recursive=True)
            if note:
                print_log(note, logger='current')
        batches = self.preprocess(items, batch_size=batch_size)
        if self.show_progress:
            from rich.progress import track
            batches = track(batches, description='Inference',
                            total=math.ceil(len(items) / batch_size))
        for data, images in batches:
            preds = self.forward(data)
            vis = self.visualize(images, preds, show=show, wait_time=wait_time,
                                 return_vis=return_vis, out_dir=out_dir, draw_pred=draw_pred,
                                 overwrite=overwrite)
            result = self.postprocess(preds, vis, return_datasamples=return_datasamples,
                                      save_pred=save_pred, out_dir=out_dir,
                                      overwrite=overwrite)
            for i, ((sample, _), pred) in enumerate(zip(preds, result['predictions'])):
                yield sample.metainfo.get('img_path'), pred, vis[i] if return_vis else None

    @staticmethod
    def _inputs_to_list(inputs) -> List[Tuple[str, ImageInput]]:
        """(name, path or array) pairs; folders expand to their image files (needs no model:
        ``demo/image_demo.py`` checks its inputs before building one)."""
        if isinstance(inputs, (str, os.PathLike, np.ndarray, Image.Image)):
            inputs = [inputs]
        if isinstance(inputs, torch.Tensor):
            raise TypeError('pass images as paths or numpy arrays (H, W[, C]), not tensors')
        if not isinstance(inputs, Iterable) or isinstance(inputs, (bytes, Mapping)):
            # iterating bytes gives ints and a dict its keys: the error would name those
            raise TypeError('inputs: expected an image path, a folder, a numpy array, a PIL '
                            f'image or a list of these, got {type(inputs).__name__}')
        items = []
        for i, item in enumerate(inputs):
            if isinstance(item, os.PathLike):
                item = os.fspath(item)
            if isinstance(item, Image.Image):
                item = pil_to_rgb(item, f'input {i}')
            if isinstance(item, str):
                if osp.isdir(item):
                    items += [(None, p) for p in list_images(item)]
                elif not osp.exists(item):
                    raise InputFileNotFoundError(f'Input image not found: {item}')
                else:
                    items.append((None, item))
            elif isinstance(item, np.ndarray):
                items.append((f'{i:08d}', item))
            else:
                raise TypeError(f'input {i}: expected a path, a numpy array or a PIL image, got '
                                f'{type(item).__name__}')
        if not items:
            raise UserInputError('no inputs given')
        stems = [name or osp.splitext(osp.basename(source))[0] for name, source in items]
        return list(zip(unique_names(stems), (source for _, source in items)))

    def preprocess(self, inputs: List[Tuple[str, ImageInput]], batch_size: int = 1,
                   **kwargs) -> Iterator[Tuple[dict, List[np.ndarray]]]:
        """Yield (model batch, original RGB images) per ``batch_size`` inputs."""
        for chunk in self._get_chunk_data(map(self.pipeline, inputs), batch_size):
            data = dict(inputs=[d['inputs'] for d, _ in chunk],
                        data_samples=[d['data_samples'] for d, _ in chunk])
            yield data, [img for _, img in chunk]

    @torch.no_grad()
    def forward(self, data: dict, **kwargs
                ) -> List[Tuple[MultiTaskDataSample, Dict[str, np.ndarray]]]:
        """Run the model and turn logits into per-task predictions at each image's size.

        Inputs of different sizes are run as separate sub-batches: padded together, the
        smaller would get extra padding at the bottom/right, which the Mamba scans and the
        Swin windows see, and its prediction would change with the batch it happens to be in.

        Returns:
            list[tuple]: Per image, its data sample with ``pred_<task>`` (C, H, W) tensors and
            the same predictions as numpy arrays (sharing memory) by task, in input order.
        """
        groups: Dict[tuple, List[int]] = {}
        for i, x in enumerate(data['inputs']):
            groups.setdefault(tuple(x.shape), []).append(i)
        if len(groups) == 1:
            return self._forward_same_size(data)
        outputs: list = [None] * len(data['inputs'])
        for indices in groups.values():
            sub = {key: [data[key][i] for i in indices] for key in ('inputs', 'data_samples')}
            for i, output in zip(indices, self._forward_same_size(sub)):
                outputs[i] = output
        return outputs

    def _forward_same_size(self, data: dict
                           ) -> List[Tuple[MultiTaskDataSample, Dict[str, np.ndarray]]]:
        model = self.model
        data = model.data_preprocessor(data, False)
        samples = data['data_samples']
        metas = [s.metainfo for s in samples]
        logits = model.encode_decode(data['inputs'], metas)
        if isinstance(logits, Tensor):
            logits = {self.tasks[0]: logits}
        outputs = []
        for i, (sample, meta) in enumerate(zip(samples, metas)):
            left, right, top, bottom = meta.get('img_padding_size', [0, 0, 0, 0])
            ori_shape = tuple(meta['ori_shape'][:2])
            preds = {}
            for task, x in logits.items():
                _, _, height, width = x.shape
                x = x[i, :, top:height - bottom, left:width - right]
                preds[task] = resize_and_activate(
                    x, ori_shape, model.task_activations[task], model.align_corners)
                arr = torch.from_numpy(preds[task])
                sample.set_pred(task, arr[None] if arr.ndim == 2 else arr.permute(2, 0, 1))
            outputs.append((sample, preds))
        return outputs

    def visualize(self, inputs: List[np.ndarray],
                  preds: List[Tuple[MultiTaskDataSample, Dict[str, np.ndarray]]],
                  show: bool = False, wait_time: float = 0, return_vis: bool = False,
                  out_dir: Optional[str] = None, draw_pred: bool = True,
                  overwrite: bool = False, **kwargs) -> Optional[List[np.ndarray]]:
        """Draw each image with its predictions (``out_dir/vis/<name>.png``; an existing
        picture is replaced only with ``overwrite``)."""
        if not (show or return_vis or out_dir):
            return None
        results = []
        for img, (sample, _) in zip(inputs, preds):
            name = sample.metainfo['img_id']
            out_file = osp.join(out_dir, 'vis', f'{name}.png') if out_dir else None
            if out_file:
                os.makedirs(osp.dirname(out_file), exist_ok=True)
            with _kept_if_taken():
                self.visualizer.add_datasample(
                    name, img, data_sample=sample, draw_gt=False, draw_pred=draw_pred,
                    show=show, wait_time=wait_time, out_file=out_file, step=0,
                    overwrite=overwrite)
            if return_vis:
                results.append(self.visualizer.get_image())
        return results

    def postprocess(self, preds: List[Tuple[MultiTaskDataSample, Dict[str, np.ndarray]]],
                    visualization=None,
                    return_datasamples: bool = False, save_pred: bool = True,
                    out_dir: Optional[str] = None, overwrite: bool = False,
                    **kwargs) -> dict:
        """Collect the numpy predictions (or the data samples); save them under ``out_dir``
        (an existing file is replaced only with ``overwrite``)."""
        if out_dir and save_pred:
            pred_dir = osp.join(out_dir, 'pred')
            os.makedirs(pred_dir, exist_ok=True)
            for sample, arrays in preds:
                with _kept_if_taken():
                    self._save(arrays, osp.join(pred_dir, sample.metainfo['img_id']),
                               overwrite)
        if return_datasamples:
            return dict(predictions=[s for s, _ in preds], visualization=visualization)
        return dict(predictions=[a for _, a in preds], visualization=visualization)

    def output_files(self, name: str, out_dir: str, save_pred: bool = True) -> List[str]:
        """The files a prediction of image ``name`` writes under ``out_dir``."""
        files = [osp.join(out_dir, 'vis', f'{name}.png')]
        if save_pred:
            for task in self.tasks:
                class_map = self.model.task_activations[task] == 'argmax'
                files.append(osp.join(out_dir, 'pred',
                                      f"{name}_{task}.{'png' if class_map else 'npy'}"))
        return files

    def _save(self, preds: Dict[str, np.ndarray], prefix: str, overwrite: bool = False) -> None:
        # atomic (temporary file + rename) so that an interrupted run leaves no partial file,
        # and without overwrite exclusive (the check before the run cannot see a file that
        # appears later); no fsync: many small files, each cheap to regenerate
        for task, arr in preds.items():
            if arr.dtype.kind == 'u':  # class map: a PNG of the same dtype
                ok, buf = cv2.imencode('.png', arr)
                if not ok:
                    raise IOError(f'PNG encoding failed for {prefix}_{task}.png')
                atomic_write(buf.tobytes(), f'{prefix}_{task}.png', overwrite=overwrite,
                             fsync=False)
            else:
                atomic_write(lambda f, a=arr: np.save(f, a), f'{prefix}_{task}.npy',
                             overwrite=overwrite, fsync=False)


def _kept_if_taken() -> contextlib.AbstractContextManager:
    """Say what to do when an output file appeared after the check at the start."""
    return keep_existing_files('Choose another out_dir or pass overwrite=True '
                               '(image_demo.py: --force)')
