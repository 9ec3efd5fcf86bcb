import numpy as np
import pytest

from mmmt.datasets import NYUDv2MultiTaskDataset, check_sample, check_split
from mmmt.testing import generate_nyud


def test_check_sample_flags_negative_depth(tmp_path):
    root = str(tmp_path)
    generate_nyud(root, n_train=1, n_val=1, seed=4, size=(40, 48))
    info = NYUDv2MultiTaskDataset(data_root=root, split='val').get_data_info(0)
    assert check_sample(info) == ([], [])
    path = info['ann_info']['depth']['path']
    depth = np.load(path)
    depth[3, 4] = -0.5
    np.save(path, depth)
    errors, warnings = check_sample(info)
    assert errors == [f'ValueError: Depth map has 1 negative pixel(s) (expected metres >= 0, '
                      f"0 = no measurement): {path} (id '{info['img_id']}', listed in "
                      f"{info['split_file']})"] and warnings == []


def test_check_split_counts_every_sample_and_rejects_unknown_layouts(tmp_path):
    root = str(tmp_path)
    generate_nyud(root, n_train=3, n_val=1, seed=5, size=(40, 48))
    report = check_split('nyud', root, 'train', tasks=['depth'], progress=False)
    assert report == dict(size=3, tasks=['depth'], errors=[], warnings=[])
    with pytest.raises(ValueError, match='unknown layout'):
        check_split('kitti', root, 'train')
