import os
import os.path as osp

import cv2
import numpy as np
import pytest

from mmmt.testing import generate_nyud, generate_pascal
from tests.tool_loader import load_tool


@pytest.fixture(scope='module')
def tool():
    return load_tool('tools', 'dataset_converters', 'check_dataset')


def ids_of(root, split):
    with open(osp.join(root, 'gt_sets', f'{split}.txt')) as f:
        return f.read().split()


def test_clean_datasets_pass(tool, tmp_path, capsys):
    generate_nyud(str(tmp_path / 'nyud'), n_train=3, n_val=2, seed=0, size=(48, 64))
    generate_pascal(str(tmp_path / 'pascal'), n_train=2, n_val=2, seed=0, size=(48, 64))
    assert tool.main(['nyud', str(tmp_path / 'nyud')]) == 0
    assert tool.main(['pascal', str(tmp_path / 'pascal'), '--workers', '2']) == 0
    out = capsys.readouterr().out
    assert 'train: 3 samples' in out
    assert ('train: warning: 3 samples, the standard split has 795 (--strict makes this an '
            'error)') in out and 'train: OK' in out
    # a subset is fine unless --strict asks for the standard split sizes: then the failing
    # line says error, and the split is not called OK
    assert tool.main(['nyud', str(tmp_path / 'nyud'), '--strict']) == 1
    out = capsys.readouterr().out
    assert 'train: error: 3 samples, the standard split has 795\n' in out
    assert 'train: OK' not in out and 'FAILED' in out


def test_every_problem_is_reported_with_its_file(tool, tmp_path, capsys):
    root = str(tmp_path / 'nyud')
    generate_nyud(root, n_train=5, n_val=1, seed=1, size=(48, 64))
    a, b, c, d, e = ids_of(root, 'train')
    os.remove(osp.join(root, 'depth', f'{a}.npy'))
    with open(osp.join(root, 'images', f'{b}.png'), 'wb') as f:
        f.write(b'not an image')
    depth = np.load(osp.join(root, 'depth', f'{c}.npy'))
    depth[0, 0] = np.inf
    np.save(osp.join(root, 'depth', f'{c}.npy'), depth)
    label = cv2.imread(osp.join(root, 'segmentation', f'{d}.png'), cv2.IMREAD_UNCHANGED)
    label[0, 0] = 77  # NYUD has 40 classes (+0 unlabelled)
    cv2.imwrite(osp.join(root, 'segmentation', f'{d}.png'), label)
    edge = cv2.imread(osp.join(root, 'edge', f'{e}.png'), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(osp.join(root, 'edge', f'{e}.png'), edge[:-2])  # 46 x 64 next to a 48 x 64 image

    assert tool.main(['nyud', root, '--splits', 'train']) == 1
    out = capsys.readouterr().out
    assert f'depth/{a}.npy' in out and 'File not found' in out
    assert f'images/{b}.png' in out and 'Cannot read image' in out
    assert f'1 infinite pixel(s) (expected metres >= 0, 0 = no measurement): ' \
        f'{osp.join(root, "depth", c + ".npy")}' in out
    assert f'segmentation/{d}.png' in out and '[77]' in out
    assert 'train: 4 errors' in out and 'train: 1 warnings' in out
    assert f'edge/{e}.png' in out and 'resizing' in out
    assert tool.main(['nyud', root, '--splits', 'val']) == 0  # the val split is clean


def test_missing_split_list_and_unknown_task(tool, tmp_path, capsys):
    root = str(tmp_path / 'nyud')
    generate_nyud(root, n_train=1, n_val=1, seed=2, size=(48, 64))
    os.remove(osp.join(root, 'gt_sets', 'val.txt'))
    assert tool.main(['nyud', root]) == 1
    out = capsys.readouterr().out
    assert 'gt_sets/val.txt' in out and 'does not exist' in out
    assert tool.main(['nyud', root, '--splits', 'train', '--tasks', 'sal']) == 1
    assert 'no task(s)' in capsys.readouterr().out


@pytest.mark.parametrize('option, value', [('--max-listed', '-1'), ('--workers', '0')])
def test_counts_below_their_range_are_refused(tool, capsys, option, value):
    # --max-listed -1 listed all but the last problem and said '... and 3 more' of 2
    with pytest.raises(SystemExit) as e:
        tool.parse_args(['nyud', 'root', option, value])
    assert e.value.code == 2 and f'{option} must be >= ' in capsys.readouterr().err


def test_the_datasets_of_a_config(tool, tmp_path, capsys):
    """A dataset of one's own is checked through its config (wrappers looked through, the
    data root replaced, the split sizes of no standard compared)."""
    root = str(tmp_path / 'nyud')
    generate_nyud(root, n_train=3, n_val=2, seed=4, size=(48, 64))
    demo = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs',
                    'demo', 'mtmamba-tiny_synthetic-nyud.py')
    cfg = tmp_path / 'mine.py'
    cfg.write_text(f'_base_ = [{demo!r}]\n'
                   'train_dataloader = dict(dataset=dict(_delete_=True, type="RepeatDataset", '
                   'times=2, dataset=dict(type="NYUDv2MultiTaskDataset", data_root="elsewhere", '
                   'split="train", tasks=["semseg", "depth"], pipeline=[])))\n')
    a = ids_of(root, 'train')[0]
    os.remove(osp.join(root, 'depth', f'{a}.npy'))
    assert tool.main([str(cfg), root]) == 1
    out = capsys.readouterr().out
    assert "train: 3 samples, tasks ['semseg', 'depth']" in out
    assert 'train: 1 errors' in out and f'depth/{a}.npy' in out and 'File not found' in out
    assert "val: 2 samples, tasks ['semseg', 'depth', 'normals', 'edge']" in out
    assert 'val: OK' in out and 'standard split' not in out
    assert tool.main([str(cfg), root, '--splits', 'test', '--tasks', 'edge']) == 0
    assert "test: 2 samples, tasks ['edge']" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        tool.parse_args(['kitti', root])
    assert "expected one of cityscapes, nyud, pascal or a config" in capsys.readouterr().err
