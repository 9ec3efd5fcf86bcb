"""MultiTaskInferencer on images of every format and size, folders, errors, and its agreement
with tools/test.py."""
import os
import os.path as osp
import pickle
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from mmmt.apis import MultiTaskInferencer, resize_and_activate
from mmmt.models.segmentors.multitask_encoder_decoder import activate
from mmmt.utils.errors import InvalidOptionError, UserInputError
from ..test_tools.conftest import REPO

TASKS = ('semseg', 'depth', 'normals', 'edge')


def photo(h, w, seed=0):
    """A smooth colour image with a few shapes (survives JPEG), uint8 RGB."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    img = np.stack([255 * yy / h, 255 * xx / w, 128 + 100 * np.sin(xx / 9 + yy / 13)], axis=2)
    for _ in range(3):
        y, x = rng.integers(0, h), rng.integers(0, w)
        img[max(0, y - h // 6):y + h // 6, max(0, x - w // 6):x + w // 6] = rng.integers(0, 255, 3)
    return np.clip(img, 0, 255).astype(np.uint8)


def check_prediction(pred, shape, num_classes=40):
    assert set(pred) == set(TASKS)
    assert pred['semseg'].shape == shape and pred['semseg'].dtype == np.uint8
    assert 0 <= pred['semseg'].min() and pred['semseg'].max() < num_classes
    assert pred['depth'].shape == shape and pred['depth'].dtype == np.float32
    assert (pred['depth'] >= 0).all()
    assert pred['normals'].shape == shape + (3, ) and pred['normals'].dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(pred['normals'], axis=2), 1, atol=1e-4)
    assert pred['edge'].shape == shape and pred['edge'].dtype == np.float32
    assert (0 <= pred['edge']).all() and (pred['edge'] <= 1).all()


def write_formats(folder, rgb):
    """The same picture as RGB PNG, grayscale PNG, RGBA PNG, 16-bit PNGs and JPEG."""
    import cv2
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    files = dict(
        rgb_png='rgb.png', gray_png='gray.png', rgba_png='rgba.png', gray16_png='gray16.png',
        rgb16_png='rgb16.png', jpeg='photo.jpg')
    Image.fromarray(rgb).save(folder / files['rgb_png'])
    Image.fromarray(gray).save(folder / files['gray_png'])
    alpha = np.linspace(0, 255, rgb.shape[1], dtype=np.uint8)[None, :, None]
    rgba = np.concatenate([rgb, np.broadcast_to(alpha, rgb.shape[:2] + (1, ))], axis=2)
    Image.fromarray(rgba, 'RGBA').save(folder / files['rgba_png'])
    Image.fromarray(gray.astype(np.uint16) * 257).save(folder / files['gray16_png'])
    cv2.imwrite(str(folder / files['rgb16_png']), rgb[..., ::-1].astype(np.uint16) * 257)
    Image.fromarray(rgb).save(folder / files['jpeg'], quality=90)
    return {k: str(folder / v) for k, v in files.items()}, gray


def test_every_format_gives_predictions_of_the_image_size(tmp_path, inferencer):
    rgb = photo(77, 101)
    files, gray = write_formats(tmp_path, rgb)
    preds = {}
    for kind, path in files.items():
        result = inferencer(path)
        assert result['img_paths'] == [path]
        assert len(result['predictions']) == 1
        preds[kind] = result['predictions'][0]
        check_prediction(preds[kind], (77, 101))
    # formats decoding to the same 8-bit RGB predict the same
    for kind in ('rgba_png', 'rgb16_png'):
        for task in TASKS:
            np.testing.assert_array_equal(preds[kind][task], preds['rgb_png'][task])
    for task in TASKS:
        np.testing.assert_array_equal(preds['gray16_png'][task], preds['gray_png'][task])
    # arrays are RGB: the array of the RGB file gives the same result as the file
    from_array = inferencer([rgb, gray])['predictions']
    for task in TASKS:
        np.testing.assert_array_equal(from_array[0][task], preds['rgb_png'][task])
        np.testing.assert_array_equal(from_array[1][task], preds['gray_png'][task])


def test_folder_batches_and_outputs(tmp_path, inferencer):
    folder = tmp_path / 'photos'
    folder.mkdir()
    sizes = {'b': (90, 120), 'a': (130, 170), 'c': (40, 33)}  # one larger than 128x160
    for name, (h, w) in sizes.items():
        Image.fromarray(photo(h, w, seed=len(name))).save(folder / f'{name}.png')
    (folder / 'notes.txt').write_text('not an image, skipped in a folder')
    out_dir = tmp_path / 'out'
    one_by_one = inferencer(str(folder), batch_size=1)
    batched = inferencer(str(folder), batch_size=3, out_dir=str(out_dir), return_vis=True)
    assert [osp.basename(p) for p in batched['img_paths']] == ['a.png', 'b.png', 'c.png']
    for pred, name in zip(batched['predictions'], 'abc'):
        check_prediction(pred, sizes[name])
    # the batch size does not change the predictions (all three fit the 128x160 frame here;
    # inputs of different sizes: test_spatial.py)
    for single, multi in zip(one_by_one['predictions'], batched['predictions']):
        for task in TASKS:
            np.testing.assert_allclose(single[task], multi[task], rtol=1e-5, atol=1e-6)
    for name, (h, w) in sizes.items():
        vis_file = out_dir / 'vis' / f'{name}.png'
        assert vis_file.is_file()
        semseg = cv2.imread(str(out_dir / 'pred' / f'{name}_semseg.png'), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(semseg, batched['predictions']['abc'.index(name)]['semseg'])
        for task in ('depth', 'normals', 'edge'):
            arr = np.load(out_dir / 'pred' / f'{name}_{task}.npy')
            np.testing.assert_array_equal(arr, batched['predictions']['abc'.index(name)][task])
    assert len(batched['visualization']) == 3
    vis = batched['visualization'][0]
    assert vis.ndim == 3 and vis.shape[2] == 3 and vis.dtype == np.uint8
    # exactly the announced files, nothing half-written left beside them
    written = sorted(osp.relpath(osp.join(d, f), out_dir)
                     for d, _, files in os.walk(out_dir) for f in files)
    announced = sorted(osp.relpath(f, out_dir) for name in 'abc'
                       for f in inferencer.output_files(name, str(out_dir)))
    assert written == announced

    # a second run into the same folder stops before predicting and names the files ...
    before = {f: osp.getmtime(out_dir / f) for f in written}
    with pytest.raises(FileExistsError, match='a_semseg.png'):
        inferencer(str(folder), out_dir=str(out_dir))
    assert {f: osp.getmtime(out_dir / f) for f in written} == before
    # ... unless asked to replace them
    again = inferencer(str(folder / 'c.png'), out_dir=str(out_dir), overwrite=True)
    np.testing.assert_array_equal(np.load(out_dir / 'pred' / 'c_depth.npy'),
                                  again['predictions'][0]['depth'])


def test_4000x3000_image(tmp_path, inferencer):
    path = tmp_path / 'big.jpg'
    big = cv2.resize(photo(300, 400), (4000, 3000), interpolation=cv2.INTER_LINEAR)
    Image.fromarray(big).save(path, quality=80)
    del big
    pred = inferencer(str(path))['predictions'][0]
    check_prediction(pred, (3000, 4000))
    # the image was shrunk 25x to fit the 128x160 test frame (120x160) and the logits upsampled
    # bilinearly: at the centres of the 25x25 blocks they are the shrunk image's own
    small = cv2.resize(read_rgb(path).astype(np.float32), (160, 120),
                       interpolation=cv2.INTER_AREA)
    small_pred = inferencer(small)['predictions'][0]  # float array, rounded to 8 bits
    check_prediction(small_pred, (120, 160))
    np.testing.assert_allclose(pred['depth'][12::25, 12::25], small_pred['depth'], atol=0.05)
    assert (pred['semseg'][12::25, 12::25] == small_pred['semseg']).mean() > 0.95


def read_rgb(path):
    from mmmt.apis import read_image_rgb
    return read_image_rgb(str(path))


def test_errors_name_the_file(tmp_path, inferencer):
    not_image = tmp_path / 'results.png'
    not_image.write_text('a text file with an image extension')
    with pytest.raises(OSError, match='results.png'):
        inferencer(str(not_image))
    with pytest.raises(FileNotFoundError, match='nowhere.jpg'):
        inferencer([str(tmp_path / 'nowhere.jpg')])
    good = tmp_path / 'good.png'
    Image.fromarray(photo(20, 20)).save(good)
    with pytest.raises(OSError, match='results.png'):  # in a list after a good one
        inferencer([str(good), str(not_image)])
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(ValueError, match='empty'):
        inferencer(str(empty))
    with pytest.raises(ValueError, match=r'\(2, 3, 5\)'):
        inferencer(np.zeros((2, 3, 5), np.uint8))


@pytest.mark.parametrize('inputs, got', [(b'photo.png', 'bytes'), ({'a.png': 1}, 'dict'),
                                         (None, 'NoneType'), (5, 'int')])
def test_inputs_of_another_type_are_named(inputs, got):
    # bytes iterated as ints and a dict as its keys: the error named an int or 'a.png'
    with pytest.raises(TypeError, match=rf'^inputs: expected an image path.* got {got}$'):
        MultiTaskInferencer._inputs_to_list(inputs)


def test_a_pil_image_predicts_as_its_array(inferencer):
    img = photo(24, 30)
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed rotated: the prediction has the displayed size
    rotated = Image.open(_jpeg_bytes(img, exif))
    out = inferencer([Image.fromarray(img).convert('P'), rotated, img])['predictions']
    palette_rgb = np.asarray(Image.fromarray(img).convert('P').convert('RGB'))
    ref = inferencer(palette_rgb)['predictions'][0]
    for task in TASKS:
        np.testing.assert_array_equal(out[0][task], ref[task])
    assert out[1]['semseg'].shape == (30, 24)
    check_prediction(out[2], (24, 30))


def _jpeg_bytes(img, exif):
    import io
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format='JPEG', exif=exif, quality=95)
    buf.seek(0)
    return buf


def test_checkpoint_errors(tmp_path, tiny_config):
    with pytest.raises(FileNotFoundError, match='absent.pth'):
        MultiTaskInferencer(tiny_config, str(tmp_path / 'absent.pth'), device='cpu')
    other = tmp_path / 'other.pth'
    torch.save(dict(state_dict={'backbone.foo': torch.zeros(1)}), other)
    with pytest.raises(ValueError, match='other.pth does not fit the model'):
        MultiTaskInferencer(tiny_config, str(other), device='cpu')
    mmseg_config = osp.join(REPO, 'configs', 'mmseg_examples',
                            'mtmamba_swin-t_ade20k-512x512.py')
    with pytest.raises(TypeError, match='MMSegInferencer'):
        MultiTaskInferencer(mmseg_config, device='cpu')
    # a TTA config is refused by name before its model is built
    from mmengine.config import Config

    from mmmt.utils import enable_tta
    tta = Config.fromfile(tiny_config)
    tta = enable_tta(tta) or tta
    with pytest.raises(InvalidOptionError, match=r'augmentation wrapper \(MultiTaskTTAModel\)'):
        MultiTaskInferencer(tta, device='cpu')
    # a test pipeline padding bottom/right without recording it (mmcv's Pad), named
    padded = Config.fromfile(tiny_config)
    padded.test_dataloader.dataset.pipeline = [
        dict(type='mmcv.Pad', size=(160, 128)) if t['type'] == 'CenterPad' else t
        for t in padded.test_pipeline]
    with pytest.raises(UserInputError, match="step 'mmcv.Pad' pads the image without"):
        MultiTaskInferencer(padded, device='cpu')


def test_a_single_task_mmseg_config_is_a_one_line_input_error():
    # image_demo.py reports it in one line; still a TypeError for the code that caught that
    mmseg_config = osp.join(REPO, 'configs', 'mmseg_examples',
                            'mtmamba_swin-t_ade20k-512x512.py')
    with pytest.raises(InvalidOptionError) as info:
        MultiTaskInferencer(mmseg_config, device='cpu')
    assert str(info.value) == ('MultiTaskInferencer runs mmmt multi-task models '
                               '(MultiTaskEncoderDecoder); for single-task mmseg configs use '
                               'mmseg.apis.MMSegInferencer')


@pytest.mark.parametrize('align_corners', [False, True])
@pytest.mark.parametrize('activation,channels', [('argmax', 7), ('relu', 1),
                                                 ('l2_normalize', 3), ('sigmoid', 1)])
def test_banded_resize_equals_interpolate(monkeypatch, activation, channels, align_corners):
    import mmmt.apis.multitask_inferencer as module
    monkeypatch.setattr(module, '_CHUNK_BYTES', 4 * channels * 53 * 5)  # 5-row bands
    logits = torch.randn(channels, 13, 17, generator=torch.Generator().manual_seed(1))
    for size in ((41, 53), (13, 17), (7, 9), (13, 50)):
        expected = activate(F.interpolate(logits[None], size=size, mode='bilinear',
                                          align_corners=align_corners)[0], activation)
        expected = expected[0] if expected.shape[0] == 1 else expected.permute(1, 2, 0)
        out = resize_and_activate(logits, size, activation, align_corners)
        assert out.shape == tuple(expected.shape)
        if activation == 'argmax':
            assert (out == expected.numpy()).mean() > 0.999
        else:
            np.testing.assert_allclose(out, expected.numpy(), rtol=1e-4, atol=2e-5)


def test_agrees_with_tools_test_py(tiny_training, tiny_predictions):
    cfg, ckpt = tiny_training.config, osp.join(tiny_training.work_dir, 'iter_4.pth')
    with open(tiny_predictions.predictions, 'rb') as f:
        dumped = pickle.load(f)
    assert len(dumped) == 2  # the 2 val images, batch of 2 in test.py

    inferencer = MultiTaskInferencer(cfg, str(ckpt), device='cpu', show_progress=False)
    result = inferencer([d['img_path'] for d in dumped])
    for sample, pred in zip(dumped, result['predictions']):
        dumped_pred = sample['pred']  # the inferencer's layout: (H, W) or (H, W, 3) arrays
        assert sorted(dumped_pred) == sorted(pred)
        assert (pred['semseg'] == dumped_pred['semseg']).mean() > 0.999
        for task in ('depth', 'normals', 'edge'):
            assert dumped_pred[task].shape == pred[task].shape
            np.testing.assert_allclose(pred[task], dumped_pred[task], rtol=1e-4, atol=1e-5)


def test_image_demo_cli(tmp_path, tiny_config, tiny_checkpoint, capsys):
    folder = tmp_path / 'in'
    folder.mkdir()
    for i, (h, w) in enumerate(((50, 60), (70, 40))):
        Image.fromarray(photo(h, w, seed=i)).save(folder / f'im{i}.jpg')
    out_dir = tmp_path / 'out'
    cmd = [sys.executable, osp.join(REPO, 'demo', 'image_demo.py'), str(folder), tiny_config,
           tiny_checkpoint, '--out-dir', str(out_dir), '--device', 'cpu', '--save-pred']
    env = dict(os.environ, PYTHONPATH=REPO)
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert '[1/2]' in result.stdout and '[2/2]' in result.stdout
    assert 'im1.jpg (70x40)' in result.stdout  # HxW, as --max-size and the frame above
    # what --max-size auto does is said: the demo frame of the tiny config is 128x160
    assert 'larger than 128x160' in result.stdout and '--max-size none' in result.stdout
    assert sorted(os.listdir(out_dir / 'vis')) == ['im0.png', 'im1.png']
    assert (out_dir / 'pred' / 'im1_semseg.png').is_file()
    # the rest in this process (the checks come before the model is built); run_main is what
    # the script's `__main__` calls
    from ..test_tools.conftest import cli
    from ..tool_loader import load_tool
    demo = load_tool('demo', 'image_demo')

    def demo_cli(args):
        status, _, err = cli(demo, args, capsys, prog='image_demo.py')
        return status, err

    # the same command again: refused with one line naming the outputs, unless --force
    status, err = demo_cli(cmd[2:])
    assert status == 2 and '--force' in err and 'im0.png' in err
    assert err.splitlines() == [err.splitlines()[0]]
    assert err.startswith('image_demo.py: error: 10 output file(s) exist: ')
    before = (out_dir / 'pred' / 'im1_depth.npy').stat().st_mtime_ns
    demo.main(cmd[2:] + ['--force'])
    assert (out_dir / 'pred' / 'im1_depth.npy').stat().st_mtime_ns != before
    # a file that is not an image: a one-line error naming it, exit status 2 (a usage error)
    (folder / 'im2.jpg').write_text('oops')
    status, err = demo_cli([str(folder / 'im2.jpg')] + cmd[3:])
    assert status == 2 and len(err.splitlines()) == 1
    assert 'im2.jpg' in err and 'Traceback' not in err


def test_image_demo_says_what_max_size_did():
    from ..tool_loader import load_tool
    describe = load_tool('demo', 'image_demo').describe_max_size
    # 'auto' with a test pipeline that pads to no frame: full resolution, said as 'auto' (the
    # line said '--max-size none', which the user had not given)
    assert describe(None, 'auto') == (
        "images are fed at full resolution (--max-size auto: the config's test pipeline pads "
        'to no frame; --max-size HxW to shrink large ones)')
    assert describe(None, 'none') == 'images are fed at full resolution (--max-size none)'
    assert describe((448, 576), 'AUTO').startswith(
        "images larger than 448x576 (HxW, the config's test frame) are shrunk")
    assert describe((100, 200), '100x200').startswith('images larger than 100x200 (HxW, '
                                                      '--max-size)')


def test_output_names_are_unique_for_any_inputs(tmp_path, inferencer):
    x, y = tmp_path / 'x', tmp_path / 'y'
    x.mkdir(), y.mkdir()
    files = [x / 'a.jpg', x / 'a.png', x / 'a_1.png', y / 'a.png', y / 'A.png']
    for i, path in enumerate(files):
        Image.fromarray(photo(20 + i, 24, seed=i)).save(path)
    out_dir = tmp_path / 'out'
    result = inferencer([str(p) for p in files], out_dir=str(out_dir))
    names = [name for name, _ in inferencer._inputs_to_list([str(p) for p in files])]
    assert names == ['a', 'a_2', 'a_1', 'a_3', 'A_4']
    # one picture and one depth map per input, each from its own image
    assert len(os.listdir(out_dir / 'vis')) == len(files)
    for name, pred, path in zip(names, result['predictions'], files):
        depth = np.load(out_dir / 'pred' / f'{name}_depth.npy')
        assert depth.shape == Image.open(path).size[::-1]
        np.testing.assert_array_equal(depth, pred['depth'])


def test_non_finite_weights_are_refused(tmp_path, tiny_config, tiny_checkpoint):
    ckpt = torch.load(tiny_checkpoint, weights_only=False)
    name = next(k for k, v in ckpt['state_dict'].items() if v.is_floating_point())
    ckpt['state_dict'][name] = torch.full_like(ckpt['state_dict'][name], float('inf'))
    torch.save(ckpt, tmp_path / 'inf.pth')
    with pytest.raises(ValueError, match=rf'inf\.pth: 1 of its \d+ tensors hold NaN/inf .*{name}'):
        MultiTaskInferencer(tiny_config, str(tmp_path / 'inf.pth'), device='cpu')


class _NoModel:
    """Stands in for MultiTaskInferencer: building the model means a check came too late."""

    _inputs_to_list = staticmethod(MultiTaskInferencer._inputs_to_list)

    def __init__(self, *args, **kwargs):
        raise AssertionError('the model was built before the inputs and outputs were checked')


def test_image_demo_checks_before_building_the_model(tmp_path, tiny_config, monkeypatch):
    import mmmt.apis
    from ..tool_loader import load_tool
    demo = load_tool('demo', 'image_demo')
    monkeypatch.setattr(mmmt.apis, 'MultiTaskInferencer', _NoModel)
    folder = tmp_path / 'in'
    folder.mkdir()
    Image.fromarray(photo(20, 30)).save(folder / 'a.jpg')
    ckpt = tmp_path / 'model.pth'
    ckpt.write_bytes(b'not read before the checks')
    out = tmp_path / 'out'
    argv = [str(folder), tiny_config, str(ckpt), '--out-dir', str(out), '--save-pred']
    # (each a UserInputError: image_demo.py reports it in one line, exit status 2)
    with pytest.raises(UserInputError, match='nope.jpg'):
        demo.main([str(folder / 'nope.jpg')] + argv[1:])
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(UserInputError, match='No image files .* in folder .*empty'):
        demo.main([str(empty)] + argv[1:])
    # a file of the folder that is no image (or a damaged PNG) is named before the model
    (folder / 'z.jpg').write_text('not an image')
    Image.fromarray(photo(20, 30)).save(folder / 'b.png')
    png = bytearray((folder / 'b.png').read_bytes())
    png[40] ^= 0xFF  # inside the IHDR/IDAT chunks: a checksum mismatch
    (folder / 'b.png').write_bytes(bytes(png))
    with pytest.raises(UserInputError, match=r'2 of 3 input\(s\) are not readable images: .*b\.png '
                       r'\(.*\); .*z\.jpg \(not an image file in a format Pillow knows\)'):
        demo.main(argv)
    (folder / 'z.jpg').unlink()
    (folder / 'b.png').unlink()
    with pytest.raises(UserInputError, match='checkpoint not found.*missing.pth'):
        demo.main(argv[:2] + [str(tmp_path / 'missing.pth')] + argv[3:])
    # an existing prediction of the same name: refused, naming it, before any model exists
    (out / 'pred').mkdir(parents=True)
    (out / 'pred' / 'a_depth.npy').write_bytes(b'earlier result')
    with pytest.raises(UserInputError, match='a_depth.npy.*--force'):
        demo.main(argv)
    # without --save-pred only the pictures count; with --force nothing is refused
    with pytest.raises(AssertionError, match='model was built'):
        demo.main(argv[:-1])
    with pytest.raises(AssertionError, match='model was built'):
        demo.main(argv + ['--force'])
    assert (out / 'pred' / 'a_depth.npy').read_bytes() == b'earlier result'


@pytest.mark.parametrize('taken', ['out', 'out/vis', 'out/pred'])
def test_image_demo_refuses_an_out_dir_that_is_a_file(tmp_path, tiny_config, monkeypatch, taken):
    import mmmt.apis
    from ..tool_loader import load_tool
    demo = load_tool('demo', 'image_demo')
    monkeypatch.setattr(mmmt.apis, 'MultiTaskInferencer', _NoModel)
    Image.fromarray(photo(20, 30)).save(tmp_path / 'a.jpg')
    ckpt = tmp_path / 'model.pth'
    ckpt.write_bytes(b'not read before the checks')
    (tmp_path / taken).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / taken).write_text('a file of the user')
    with pytest.raises(UserInputError, match=f'--out-dir: {tmp_path / taken} is a file'):
        demo.main([str(tmp_path / 'a.jpg'), tiny_config, str(ckpt), '--out-dir',
                   str(tmp_path / 'out'), '--save-pred'])
    assert (tmp_path / taken).read_text() == 'a file of the user'


@pytest.mark.parametrize('appears', ['pred/b_depth.npy', 'vis/b.png'])
def test_an_output_that_appears_during_the_run_is_kept(tmp_path, inferencer, appears):
    # the check before the run cannot see a file that another run writes later: each output
    # is written exclusively, so that file is kept and the run stops naming it
    folder = tmp_path / 'photos'
    folder.mkdir()
    for name in 'ab':
        Image.fromarray(photo(30, 40)).save(folder / f'{name}.png')
    out_dir = tmp_path / 'out'
    results = inferencer.iter_predict(str(folder), out_dir=str(out_dir))
    assert osp.basename(next(results)[0]) == 'a.png'  # a's outputs are written
    other = out_dir / appears
    other.parent.mkdir(exist_ok=True)
    other.write_bytes(b'the other run')
    with pytest.raises(FileExistsError, match=rf'{other} exists.* appeared during this run.* '
                       r'kept .*overwrite=True'):
        next(results)
    assert other.read_bytes() == b'the other run'
    assert not [f for _, _, files in os.walk(out_dir) for f in files if f.endswith('.tmp')]
    # asked for: replaced
    again = inferencer(str(folder / 'b.png'), out_dir=str(out_dir), overwrite=True)
    if appears.endswith('.npy'):
        np.testing.assert_array_equal(np.load(other), again['predictions'][0]['depth'])
    else:
        assert cv2.imread(str(other)).ndim == 3


def test_image_demo_names_an_output_that_appears_during_the_run(tmp_path, tiny_config,
                                                                tiny_checkpoint, monkeypatch,
                                                                capsys):
    from ..test_tools.conftest import cli
    from ..tool_loader import load_tool
    Image.fromarray(photo(30, 40)).save(tmp_path / 'a.png')
    taken = tmp_path / 'out' / 'pred' / 'a_depth.npy'
    save = MultiTaskInferencer._save

    def another_run_writes_first(self, preds, prefix, overwrite=False):
        taken.write_bytes(b'the other run')
        save(self, preds, prefix, overwrite)

    monkeypatch.setattr(MultiTaskInferencer, '_save', another_run_writes_first)
    status, _, err = cli(load_tool('demo', 'image_demo'),
                         [tmp_path / 'a.png', tiny_config, tiny_checkpoint, '--out-dir',
                          tmp_path / 'out', '--device', 'cpu', '--save-pred'], capsys,
                         prog='image_demo.py')
    assert status == 2 and len(err.splitlines()) == 1 and 'Traceback' not in err
    assert err.startswith(f'image_demo.py: error: {taken} exists') and '--force' in err
    # the demo's own way out, not the inferencer's (out_dir, overwrite=True)
    assert err.rstrip().endswith('it is kept and the run stops here. Choose another --out-dir '
                                 'or pass --force'), err
    assert taken.read_bytes() == b'the other run'


def _demo_refuses(tmp_path, tiny_config, monkeypatch, extra, match, image='a.jpg'):
    """image_demo.py stops with ``match`` before building a model (and writes nothing)."""
    import mmmt.apis
    from ..tool_loader import load_tool
    demo = load_tool('demo', 'image_demo')
    monkeypatch.setattr(mmmt.apis, 'MultiTaskInferencer', _NoModel)
    Image.fromarray(photo(20, 30)).save(tmp_path / image)
    ckpt = tmp_path / 'model.pth'
    ckpt.write_bytes(b'not read before the checks')
    with pytest.raises(UserInputError, match=match):
        demo.main([str(tmp_path / image), tiny_config, str(ckpt), '--save-pred'] + extra)


def test_image_demo_checks_the_out_dir_can_be_written(tmp_path, tiny_config, monkeypatch):
    # each failed at the first write, after the model was built and images were predicted
    (tmp_path / 'afile').write_text('x')
    _demo_refuses(tmp_path, tiny_config, monkeypatch, ['--out-dir', str(tmp_path / 'afile/out')],
                  f'--out-dir: {tmp_path / "afile"} is a file, where a folder is needed for '
                  f'{tmp_path / "afile/out"}; choose another out_dir')
    _demo_refuses(tmp_path, tiny_config, monkeypatch, ['--out-dir', ''],
                  r"--out-dir: expected a folder, got ''; '\.' for the current one")
    # a read-only file system or a folder of another user (os.access: root may write anywhere)
    locked = tmp_path / 'locked'
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, 'access',
                        lambda p, mode: False if str(p) == str(locked) else real_access(p, mode))
    _demo_refuses(tmp_path, tiny_config, monkeypatch, ['--out-dir', str(locked / 'out')],
                  f'{locked} is not writable .*, so {locked / "out"} cannot be written')
    assert os.listdir(locked) == []


def test_image_demo_refuses_output_names_the_file_system_cannot_hold(tmp_path, tiny_config,
                                                                     monkeypatch):
    stem = 'p' * 245  # a valid input name (249 bytes); its prediction files are not
    _demo_refuses(tmp_path, tiny_config, monkeypatch, ['--out-dir', str(tmp_path / 'out')],
                  rf"the output file name '{stem}_normals\.npy' is longer than the 255 bytes",
                  image=f'{stem}.png')
    assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('device, match', [
    ('gpu', "--device: 'gpu' is not a device"),
    pytest.param('cuda', '--device cuda: this machine has no CUDA device',
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason='has CUDA')),
])
def test_image_demo_checks_the_device(tmp_path, tiny_config, monkeypatch, device, match):
    _demo_refuses(tmp_path, tiny_config, monkeypatch,
                  ['--out-dir', str(tmp_path / 'out'), '--device', device], match)


def test_image_demo_stops_in_one_line_at_an_image_damaged_in_its_pixels(
        tmp_path, tiny_config, tiny_checkpoint, capsys):
    # a truncated JPEG passes Pillow's header check (verify() does not decode JPEG data)
    from ..test_tools.conftest import cli
    from ..tool_loader import load_tool
    folder = tmp_path / 'in'
    folder.mkdir()
    for name in 'ac':
        Image.fromarray(photo(30, 40)).save(folder / f'{name}.png')
    Image.fromarray(photo(64, 64)).save(folder / 'b.jpg', quality=95)
    data = (folder / 'b.jpg').read_bytes()
    (folder / 'b.jpg').write_bytes(data[:len(data) // 2])
    status, out, err = cli(load_tool('demo', 'image_demo'),
                           [folder, tiny_config, tiny_checkpoint, '--out-dir', tmp_path / 'out',
                            '--device', 'cpu'], capsys, prog='image_demo.py')
    assert status == 1 and 'Traceback' not in err and len(err.splitlines()) == 1, err
    assert f'{folder / "b.jpg"}' in err and 'truncated' in err
    assert err.rstrip().endswith('stopped after 1 of 3 image(s), whose outputs are complete')
    assert os.listdir(tmp_path / 'out' / 'vis') == ['a.png']


@pytest.mark.parametrize('max_size', ['None', '12', 0.5, (0, 10), (True, 4), [448]])
def test_max_size_of_the_wrong_kind_is_named(tiny_config, max_size):
    with pytest.raises(UserInputError, match=r"^max_size: expected \(h, w\) or one size .*, "
                                             rf"got {re.escape(repr(max_size))}$"):
        MultiTaskInferencer(tiny_config, None, device='cpu', max_size=max_size,
                            show_progress=False)


def test_max_size_values(tiny_config):
    def fed(max_size):
        with pytest.warns(UserWarning, match='no checkpoint given'):
            return MultiTaskInferencer(tiny_config, None, device='cpu', max_size=max_size,
                                       show_progress=False).pipeline.max_size

    assert fed('AUTO') == fed('auto') == (128, 160)  # the demo config's test frame
    assert fed(100) == (100, 100) and fed([30, np.int64(40)]) == (30, 40) and fed(None) is None


def test_the_api_checks_out_dir_before_predicting(tmp_path, inferencer):
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'pred').write_text('a file of the user')
    with pytest.raises(UserInputError, match=f'{out / "pred"} is a file'):
        next(inferencer.iter_predict(photo(20, 30), out_dir=str(out)))
    assert sorted(os.listdir(out)) == ['pred']  # no picture either
    assert inferencer(photo(20, 30), out_dir=str(out), save_pred=False)['predictions']
