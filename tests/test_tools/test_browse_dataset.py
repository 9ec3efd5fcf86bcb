import os
import os.path as osp

import cv2
import numpy as np
import pytest

from mmmt.utils import UserInputError
from tests.tool_loader import load_tool
from .conftest import DEMO_CONFIG


@pytest.fixture(scope='module')
def tool():
    return load_tool('tools', 'analysis_tools', 'browse_dataset')


def test_pictures_show_the_denormalized_image_and_every_task(tool, tmp_path, synthetic_nyud):
    out = tmp_path / 'browse'
    root = f'test_dataloader.dataset.data_root={synthetic_nyud}'
    assert tool.main([DEMO_CONFIG, '--split', 'test', '--output-dir', str(out), '--num', '2',
                      '--cfg-options', root]) == 0
    with open(osp.join(synthetic_nyud, 'gt_sets', 'val.txt')) as f:
        ids = f.read().split()[:2]
    assert sorted(os.listdir(out)) == sorted(f'{i}.png' for i in ids)
    picture = cv2.imread(str(out / f'{ids[0]}.png'))[..., ::-1]
    image = cv2.imread(osp.join(synthetic_nyud, 'images', f'{ids[0]}.png'))[..., ::-1]
    h, w = image.shape[:2]  # 128 x 160: the test pipeline neither pads nor augments it
    # panels of small images are enlarged by a whole factor (2 here, to 256x320)
    from mmmt.visualization import MultiTaskVisualizer
    vis = MultiTaskVisualizer.get_instance(f'browse_test_{id(tmp_path)}')
    ph, pw = vis.display_size(h, w)
    assert (ph, pw) == (2 * h, 2 * w)
    assert picture.shape[1] == 5 * pw  # the image and 4 ground-truth panels
    title = vis._text_height(ph)
    enlarged = cv2.resize(image, (pw, ph), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(picture[title:title + ph, :pw].astype(int),
                               enlarged.astype(int), atol=1)

    # never into a folder with other files, unless --force
    with pytest.raises(UserInputError, match='is not empty; choose another folder or pass '
                       '--force'):
        tool.main([DEMO_CONFIG, '--split', 'test', '--output-dir', str(out), '--cfg-options',
                   root])
    assert tool.main([DEMO_CONFIG, '--split', 'test', '--output-dir', str(out), '--num', '1',
                      '--force', '--cfg-options', root]) == 0


def test_training_pipeline_pictures(tool, tmp_path, synthetic_nyud):
    out = tmp_path / 'train'
    # --data-root, not the config's own data_root (data/synthetic_nyud, if it exists)
    assert tool.main([DEMO_CONFIG, '--output-dir', str(out), '--num', '3',
                      '--data-root', synthetic_nyud]) == 0
    with open(osp.join(synthetic_nyud, 'gt_sets', 'train.txt')) as f:
        ids = set(f.read().split())
    assert {name[:-4] for name in os.listdir(out)} <= ids
    assert len(os.listdir(out)) == 3


def test_an_output_dir_that_is_a_file_is_refused_first(tool, tmp_path):
    out = tmp_path / 'browse.png'
    out.write_bytes(b'a file of the user')
    # refused before the config is read (it does not even exist here)
    with pytest.raises(UserInputError, match=f'--output-dir {out} is a file; give a folder'):
        tool.main([str(tmp_path / 'missing.py'), '--output-dir', str(out)])
    assert out.read_bytes() == b'a file of the user'


def test_a_picture_that_appears_during_the_run_is_kept(tool, tmp_path, synthetic_nyud,
                                                       monkeypatch):
    from mmmt.visualization import MultiTaskVisualizer
    add_datasample = MultiTaskVisualizer.add_datasample

    def another_run_writes_first(self, name, image, *args, out_file=None, **kwargs):
        with open(out_file, 'wb') as f:
            f.write(b'the other run')
        return add_datasample(self, name, image, *args, out_file=out_file, **kwargs)

    monkeypatch.setattr(MultiTaskVisualizer, 'add_datasample', another_run_writes_first)
    out = tmp_path / 'browse'
    with pytest.raises(UserInputError, match=r'\.png exists.* appeared during this run.* it '
                       r'is kept and the run stops here\. Choose another folder or pass --force'):
        tool.main([DEMO_CONFIG, '--split', 'test', '--output-dir', str(out), '--num', '1',
                   '--cfg-options', f'test_dataloader.dataset.data_root={synthetic_nyud}'])
    (picture, ) = os.listdir(out)
    assert (out / picture).read_bytes() == b'the other run'
