"""tools/analysis_tools/confusion_matrix.py: the counts behind the run's mIoU, and a picture."""
import numpy as np
import pytest

from mmmt.utils.errors import UserInputError
from ..tool_loader import load_tool
from .conftest import cli

TOOL = load_tool('tools', 'analysis_tools', 'confusion_matrix')


def run(args, capsys):
    return cli(TOOL, args, capsys, prog='confusion_matrix.py')


def test_count_confusion_by_hand():
    gt = np.array([[0, 0, 1], [2, 255, 1]])
    pred = np.array([[0, 1, 1], [0, 2, 2]])
    expected = np.array([[1, 1, 0],   # gt 0: once right, once taken for 1
                         [0, 1, 1],   # gt 1
                         [1, 0, 0]])  # gt 2 (the pixel labelled 255 is left out)
    np.testing.assert_array_equal(TOOL.count_confusion(gt, pred, 3), expected)
    with pytest.raises(ValueError, match='label of 3 is outside the 3 classes'):
        TOOL.count_confusion(np.array([3]), np.array([0]), 3)
    with pytest.raises(ValueError, match='prediction of 5 is outside'):
        TOOL.count_confusion(np.array([0]), np.array([5]), 3)


def test_classes_as_the_evaluator_counts_them():
    """A new task's dataset names no classes (how_to_add_a_task's occupancy): the test
    evaluator's num_classes gives the count, as it does for the IoU; the meta's names come
    first, class_<i> beyond them; with neither, the refusal says what to set."""
    from mmengine.config import Config

    meta = dict(classes=('wall', 'floor'), tasks=['semseg', 'occupancy'])
    cfg = Config(dict(test_evaluator=dict(type='MultiTaskMetric', tasks=dict(
        semseg=None, occupancy=dict(num_classes=3)))))
    assert TOOL.evaluator_num_classes(cfg, 'occupancy') == 3
    assert TOOL.evaluator_num_classes(cfg, 'semseg') is None
    assert TOOL.evaluator_num_classes(Config(dict(test_evaluator=dict(
        tasks=['semseg']))), 'semseg') is None
    assert TOOL.class_names(meta, 'occupancy', 3) == ['class_0', 'class_1', 'class_2']
    assert TOOL.class_names(meta, 'semseg') == ['wall', 'floor']
    assert TOOL.class_names(meta, 'semseg', 3) == ['wall', 'floor', 'class_2']
    with pytest.raises(UserInputError, match=(
            r'^the test dataset names no classes of occupancy \(its metainfo has no '
            r'occupancy_classes\) and test_evaluator\.tasks\.occupancy sets no num_classes, '
            r'so the class count is unknown; set one of them$')):
        TOOL.class_names(meta, 'occupancy')


def test_the_counts_give_the_runs_miou(tiny_predictions, tmp_path, capsys):
    out = tmp_path / 'cm'
    status, stdout, _ = run([tiny_predictions.config, tiny_predictions.predictions, str(out)],
                            capsys)
    assert status == 0
    counts = np.load(out / 'confusion_matrix_semseg.npy')
    assert counts.shape == (40, 40) and counts.dtype == np.int64  # NYUD's 40 classes
    # the segmentation evaluator's IoU comes from these counts (absent classes count as 0)
    inter = np.diag(counts).astype(float)
    union = counts.sum(0) + counts.sum(1) - inter
    iou = np.divide(inter, union, out=np.zeros(40), where=union > 0)
    assert 100 * iou.mean() == pytest.approx(tiny_predictions.metrics['semseg/mIoU'], rel=1e-6)
    assert 100 * inter.sum() / counts.sum() == pytest.approx(
        tiny_predictions.metrics['semseg/pixel_acc'], rel=1e-6)
    png = (out / 'confusion_matrix_semseg.png').read_bytes()
    assert png.startswith(b'\x89PNG')
    assert f'{counts.sum()} labelled pixels' in stdout
    # never over existing files unless asked
    status, _, err = run([tiny_predictions.config, tiny_predictions.predictions, str(out)],
                         capsys)
    assert status == 2 and 'confusion_matrix_semseg.npy exists;' in err
    # a run killed between its two files: said so (it read as a finished earlier run)
    (out / 'confusion_matrix_semseg.png').unlink()
    status, _, err = run([tiny_predictions.config, tiny_predictions.predictions, str(out)],
                         capsys)
    assert status == 2 and (f'confusion_matrix_semseg.npy exists but '
                            f'{out / "confusion_matrix_semseg.png"} does not (a run stopped '
                            'between the two?); choose another SAVE_DIR or pass --force') in err
    assert run([tiny_predictions.config, tiny_predictions.predictions, str(out), '--force'],
               capsys)[0] == 0


def test_a_task_without_classes_is_refused(tiny_predictions, tmp_path, capsys):
    status, _, err = run([tiny_predictions.config, tiny_predictions.predictions,
                          str(tmp_path / 'cm'), '--task', 'depth'], capsys)
    assert status == 2 and '--task depth is not a class task' in err
    assert not (tmp_path / 'cm').exists()


def test_images_without_the_tasks_prediction_are_named(tiny_predictions, tmp_path, capsys):
    import pickle
    with open(tiny_predictions.predictions, 'rb') as f:
        records = pickle.load(f)  # our own file
    del records[1]['pred']['semseg']
    edited = tmp_path / 'edited.pkl'
    edited.write_bytes(pickle.dumps(records))
    status, _, err = run([tiny_predictions.config, str(edited), str(tmp_path / 'cm')], capsys)
    assert status == 2
    assert (f'{edited} holds no semseg prediction of 1 of its 2 images '
            f'({records[1]["img_id"]})') in err
