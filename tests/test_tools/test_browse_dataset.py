import os
import os.path as osp

import cv2
import numpy as np
import pytest
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
    assert picture.shape[1] == 5 * w  # the image and 4 ground-truth panels
    title = picture.shape[0] - h
    np.testing.assert_allclose(picture[title:, :w].astype(int), image.astype(int), atol=1)

    # never into a folder with other files, unless --force
    assert tool.main([DEMO_CONFIG, '--split', 'test', '--output-dir', str(out),
                      '--cfg-options', root]) == 1
    assert tool.main([DEMO_CONFIG, '--split', 'test', '--output-dir', str(out), '--num', '1',
                      '--force', '--cfg-options', root]) == 0


def test_training_pipeline_pictures(tool, tmp_path, synthetic_nyud):
    out = tmp_path / 'train'
    assert tool.main([DEMO_CONFIG, '--output-dir', str(out), '--num', '3', '--cfg-options',
                      f'train_dataloader.dataset.data_root={synthetic_nyud}']) == 0
    assert len(os.listdir(out)) == 3
