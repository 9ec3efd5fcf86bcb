"""tools/train.py's main() called twice in one process (a notebook, a sweep script)."""
import glob
import os
import os.path as osp
import time

from ..tool_loader import load_tool
from .conftest import NO_VAL, write_tiny_config


def _log_folder(work_dir):
    (folder, ) = [d for d in glob.glob(osp.join(work_dir, '*')) if osp.isdir(d)]
    return folder


def test_a_second_run_in_the_process_logs_into_its_own_folder(tmp_path, synthetic_nyud):
    """mmengine's visualizer is global by name: the second run's visualizer was the first's,
    which wrote the second run's scalars and its config into the first run's log folder
    (beside the first run's own). Each run now writes into its own."""
    cfg = write_tiny_config(tmp_path / 'cfg.py', synthetic_nyud, max_iters=1, val_interval=1,
                            extra=NO_VAL)
    train = load_tool('tools', 'train')
    for name in ('first', 'second'):
        train.main([cfg, '--work-dir', str(tmp_path / name)])
    for name in ('first', 'second'):
        folder = _log_folder(tmp_path / name)
        stamp = osp.basename(folder)
        assert sorted(os.listdir(osp.join(folder, 'vis_data'))) == [
            f'{stamp}.json', 'config.py', 'scalars.json'], name
        with open(osp.join(folder, 'vis_data', 'scalars.json')) as f:
            assert len(f.read().splitlines()) == 1  # its one iteration
        with open(osp.join(folder, f'{stamp}.log')) as f:
            log = f.read()
        assert f'Checkpoints will be saved to {tmp_path / name}.' in log
        other = 'first' if name == 'second' else 'second'
        assert str(tmp_path / other) not in log


def test_a_run_waits_for_a_timestamp_of_its_own(tmp_path):
    """Two runs started within one second had the same mmengine timestamp: the same logger
    (named after the config and the second) and, in one work dir, the same log folder."""
    from mmengine.logging import MMLogger

    from mmmt.utils.cli import claim_log_stamp
    work_dir = tmp_path / 'work'
    work_dir.mkdir()
    now = time.strftime('%Y%m%d_%H%M%S')
    os.makedirs(osp.join(work_dir, now))  # an earlier run's log folder of this second
    MMLogger.get_instance(f'sweep_{time.strftime("%Y%m%d_%H%M%S")}')  # and its logger
    stamp = claim_log_stamp(str(work_dir), 'sweep')
    assert stamp > now
    assert os.listdir(work_dir / stamp) == []  # created, for this run alone
    assert not MMLogger.check_instance_created(f'sweep_{stamp}')
    # a run in another work dir of this process in that second: the logger decides
    MMLogger.get_instance(f'sweep_{stamp}')
    assert claim_log_stamp(str(tmp_path), 'sweep') > stamp


def test_a_second_visualizer_of_a_name_gets_its_own(tmp_path):
    from mmengine.config import Config
    from mmengine.visualization import Visualizer

    from mmmt.utils.cli import isolate_run
    cfg_file = tmp_path / 'sweep.py'
    cfg_file.write_text('visualizer = dict(type="Visualizer", name="sweep_vis")\n')
    cfg = Config.fromfile(str(cfg_file))
    isolate_run(cfg)
    assert cfg.visualizer.name == 'sweep_vis'  # free: kept
    Visualizer.get_instance('sweep_vis')
    isolate_run(cfg)
    assert cfg.visualizer.name == 'sweep_vis_2'
