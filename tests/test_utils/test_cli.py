import argparse
import logging
import os
import os.path as osp
import re
import time

import pytest

from mmmt.utils import TRUST_ENV, add_runner_args, load_runner_config, parse_runner_args
from mmmt.utils.errors import InputFileNotFoundError

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO_CONFIG = osp.join(REPO, 'configs', 'demo', 'mtmamba-tiny_synthetic-nyud.py')


def make_parser():
    parser = argparse.ArgumentParser()
    parser.add_argument('config')
    add_runner_args(parser, trust_help='trust')
    return parser


def test_defaults_follow_mmseg_tools(monkeypatch):
    monkeypatch.delenv('LOCAL_RANK', raising=False)
    monkeypatch.delenv(TRUST_ENV, raising=False)
    args = parse_runner_args(make_parser(), [DEMO_CONFIG, '--local-rank', '3'])
    assert os.environ['LOCAL_RANK'] == '3'  # torch.distributed.launch passes only the flag
    cfg = load_runner_config(args)
    assert cfg.work_dir == osp.join('./work_dirs', 'mtmamba-tiny_synthetic-nyud')
    assert cfg.launcher == 'none'
    assert TRUST_ENV not in os.environ


def test_options_are_folded_in(monkeypatch, tmp_path):
    monkeypatch.setenv(TRUST_ENV, '')  # restored after the test (the tool sets it)
    args = parse_runner_args(make_parser(), [
        DEMO_CONFIG, '--work-dir', str(tmp_path), '--trust-checkpoint', '--launcher', 'pytorch',
        '--cfg-options', 'train_cfg.max_iters=7', 'model.decode_head.num_stm_blocks=2'
    ])
    cfg = load_runner_config(args)
    assert cfg.work_dir == str(tmp_path)
    assert cfg.launcher == 'pytorch'
    assert cfg.train_cfg.max_iters == 7
    assert cfg.model.decode_head.num_stm_blocks == 2
    assert os.environ[TRUST_ENV] == '1'


def test_missing_config_names_the_file(tmp_path):
    missing = str(tmp_path / 'nope.py')
    args = parse_runner_args(make_parser(), [missing])
    with pytest.raises(InputFileNotFoundError, match='config file not found: .*nope.py'):
        load_runner_config(args)


def test_tasks_defined_in_the_config_are_registered(tmp_path):
    from mmmt.structures import TASKS
    cfg_file = tmp_path / 'cfg.py'
    cfg_file.write_text(
        f"_base_ = [{DEMO_CONFIG!r}]\n"
        "custom_tasks = [dict(name='albedo', gt_channels=3, out_channels=3,\n"
        "                     loss=dict(type='NormalsL1Loss'), draw='normals')]\n")
    try:
        load_runner_config(parse_runner_args(make_parser(), [str(cfg_file)]))
        assert TASKS['albedo'].gt_channels == 3 and TASKS['albedo'].draw == 'normals'
    finally:
        TASKS.unregister('albedo')


def test_cfg_options_without_a_value_are_a_usage_error(capsys):
    parser = argparse.ArgumentParser()
    add_runner_args(parser, trust_help='')
    assert parser.parse_args(['--cfg-options', 'a.b=1']).cfg_options == {'a.b': 1}
    for bad in ('foo', '=1'):
        with pytest.raises(SystemExit):
            parser.parse_args(['--cfg-options', 'a=1', bad])
        assert f'--cfg-options expects KEY=VALUE items (e.g. train_dataloader.batch_size=8), ' \
            f'got {bad!r}' in capsys.readouterr().err


def test_misspelt_top_level_keys_warn():
    from mmengine.config import Config

    from mmmt.utils import warn_misspelled_keys
    cfg = Config(dict(lod_from='a.pth', load_from=None, crop_size=(1, 2), tasks=['depth'],
                      train_pipeline=[], rsume=True, _scope_='x'))
    assert warn_misspelled_keys(cfg) == ['lod_from', 'rsume']


def dataset_roots(cfg):
    return [cfg[f'{split}_dataloader'].dataset.data_root for split in ('train', 'val', 'test')]


@pytest.mark.parametrize('how', ['--data-root', '--cfg-options'])
def test_data_root_reaches_every_dataloader(tmp_path, how):
    # the config's `data_root` variable was substituted when the file was read: merging it
    # as a plain option would leave every dataloader on the old folder
    argv = [DEMO_CONFIG, '--data-root', 'elsewhere/nyud'] if how == '--data-root' else [
        DEMO_CONFIG, '--cfg-options', 'data_root=elsewhere/nyud', 'train_cfg.max_iters=3']
    cfg = load_runner_config(parse_runner_args(make_parser(), argv))
    assert dataset_roots(cfg) == ['elsewhere/nyud'] * 3
    assert cfg.data_root == 'elsewhere/nyud'
    if how == '--cfg-options':
        assert cfg.train_cfg.max_iters == 3  # the other options still apply


def test_data_root_through_dataset_wrappers():
    from mmengine.config import Config

    from mmmt.utils import set_data_root
    cfg = Config(dict(
        train_dataloader=dict(dataset=dict(type='RepeatDataset', times=2, dataset=dict(
            type='ConcatDataset', datasets=[dict(data_root='a'), dict(data_root='b')]))),
        test_dataloader=dict(dataset=dict(data_root='c'))))
    assert set_data_root(cfg, 'new') == 3
    inner = cfg.train_dataloader.dataset.dataset.datasets
    assert [d.data_root for d in inner] == ['new', 'new']
    assert cfg.test_dataloader.dataset.data_root == 'new'
    with pytest.raises(SystemExit, match='no dataloader'):
        set_data_root(Config(dict(model=dict())), 'new')


@pytest.mark.parametrize('level', ['INFO', 'DEBUG'])
def test_startup_log_is_short_unless_debug(tmp_path, level):
    import torch

    from mmmt.utils import build_runner
    args = parse_runner_args(make_parser(), [
        DEMO_CONFIG, '--work-dir', str(tmp_path), '--cfg-options', f'log_level={level}'])
    runner = build_runner(load_runner_config(args), 'training')  # builds the model only
    log = open(runner.logger.handlers[-1].baseFilename).read()  # the run's log file
    if not torch.cuda.is_available():  # mmengine's label for its world size, on any device
        assert 'GPU number' not in log and '    Processes: 1 (CPU, no GPU)\n' in log
    if level == 'INFO':
        assert 'Config: not shown' in log and 'Hooks: the order is shown' in log
        assert 'train_pipeline' not in log and 'before_train_iter' not in log
        assert len(log.splitlines()) < 80
    else:
        assert 'train_pipeline' in log and 'before_train_iter' in log


def test_a_folder_taken_after_the_checks_is_not_shared(tmp_path):
    """The folder was checked before the Runner was built and created by mmengine (exist_ok)
    when it was: another process (``tools/test.py ... &`` twice in one work dir) that started
    in that second wrote into the same log file and vis_data. The Runner now creates its
    folder itself, which only one run can."""
    from mmmt.utils import build_runner
    from mmmt.utils.cli import isolate_run
    args = parse_runner_args(make_parser(), [DEMO_CONFIG, '--work-dir', str(tmp_path)])
    cfg = load_runner_config(args)
    isolate_run(cfg)
    t = time.time()
    # the other run's folders, for the coming seconds (building the model takes < 1 s)
    rival = {time.strftime('%Y%m%d_%H%M%S', time.localtime(t + d)) for d in range(4)}
    for stamp in rival:
        os.makedirs(tmp_path / stamp)
    runner = build_runner(cfg, 'testing')
    assert runner.timestamp not in rival
    assert osp.basename(runner.log_dir) == runner.timestamp
    for stamp in rival:
        assert os.listdir(tmp_path / stamp) == [], stamp  # nothing of this run in them


def test_cfg_options_that_do_not_fit_name_the_option():
    from mmengine.config import Config

    from mmmt.utils.cli import merge_cfg_options
    from mmmt.utils.errors import UserInputError
    cfg = Config.fromfile(DEMO_CONFIG)  # test_evaluator.tasks is a list of names
    # by name or by index: neither reaches a field (the items are strings), so no index is
    # advised (test_evaluator.tasks.3.protocol would only fail on 'edge')
    for key in ('test_evaluator.tasks.edge.protocol', 'test_evaluator.tasks.3.protocol'):
        with pytest.raises(UserInputError, match=(
                rf"^--cfg-options {re.escape(key)}='x' does not fit the config: "
                r"test_evaluator\.tasks is a list of 4 values \('semseg', 'depth', 'normals', "
                r"'edge'\), none of them a dict, so nothing inside it can be set; set "
                r"test_evaluator\.tasks=\[\.\.\.\] whole, or write the option into a child "
                r"config \(tasks=dict\(_delete_=True, \.\.\.\) replaces it\)$")):
            merge_cfg_options(cfg, {key: 'x'})
    # a list holding dicts is still indexed by number (a pipeline's transforms)
    with pytest.raises(UserInputError, match=r"train_pipeline is a list of \d+: index it by "
                       r"number \(train_pipeline\.0\.\.\.\) or set it whole$"):
        merge_cfg_options(cfg, {'train_pipeline.crop.crop_size': (8, 8)})
    with pytest.raises(UserInputError, match=r"train_cfg\.max_iters is 600, not a dict$"):
        merge_cfg_options(cfg, {'train_cfg.max_iters.x': 1})
    # the others still merge as mmengine merges them, list indices included
    with pytest.raises(UserInputError, match=r"tasks\.0='depth' does not fit the config: "
                       r'test_evaluator\.tasks is a list, whose items --cfg-options can only '
                       r'merge dicts into; set test_evaluator\.tasks=\[\.\.\.\] whole$'):
        merge_cfg_options(cfg, {'test_evaluator.tasks.0': 'depth'})
    # options that fit merge as mmengine merges them, list indices included
    merge_cfg_options(cfg, {'train_cfg.max_iters': 7, 'model.decode_head.num_stm_blocks': 1,
                            'train_pipeline.2.scale_range': (1.0, 1.0),
                            'test_evaluator.tasks': ['depth']})
    assert cfg.train_cfg.max_iters == 7 and cfg.model.decode_head.num_stm_blocks == 1
    assert cfg.train_pipeline[2].scale_range == (1.0, 1.0)
    assert cfg.test_evaluator.tasks == ['depth']


def test_a_child_dict_over_a_base_list_names_the_config(tmp_path):
    from mmmt.utils.cli import config_from_file
    from mmmt.utils.errors import UserInputError
    child = tmp_path / 'child.py'
    child.write_text(f'_base_ = [{DEMO_CONFIG!r}]\n'
                     'test_evaluator = dict(tasks=dict(semseg=None))\n')
    with pytest.raises(UserInputError, match=rf'^config {child} \(or one of its _base_ '
                       r'files\): tasks=.* cannot inherit .* `_delete_=True`'):
        config_from_file(str(child))
    child.write_text(f'_base_ = [{DEMO_CONFIG!r}]\n'
                     'test_evaluator = dict(_delete_=True, type="MultiTaskMetric", '
                     'tasks=dict(semseg=None))\n')
    assert dict(config_from_file(str(child)).test_evaluator.tasks) == {'semseg': None}


def test_evaluator_class_count_must_match_the_head(tmp_path):
    """how_to_add_a_task's config with the evaluator's num_classes off by one: the metric
    would score 4 classes of a 3-class head (the 4th IoU 0, mIoU 3/4 of the truth) or 2."""
    from mmmt.utils.errors import UserInputError
    cfg_file = tmp_path / 'occupancy.py'
    cfg_file.write_text(
        f"_base_ = [{osp.join(REPO, 'configs', 'mtmamba_swin-l_nyud.py')!r}]\n"
        "model = dict(decode_head=dict(tasks=dict(_delete_=True, semseg=40, occupancy=3)))\n"
        "val_dataloader = dict(dataset=dict(tasks=['semseg', 'occupancy']))\n"
        "test_dataloader = val_dataloader\n"
        "val_evaluator = dict(type='MultiTaskMetric', tasks=dict(\n"
        "    _delete_=True, semseg=dict(num_classes=40), occupancy=dict(num_classes=3)))\n"
        "test_evaluator = val_evaluator\n")
    cfg = load_runner_config(parse_runner_args(make_parser(), [str(cfg_file)]))
    assert cfg.test_evaluator.tasks.occupancy.num_classes == 3  # consistent: accepted
    for key, n in (('val_evaluator', 4), ('test_evaluator', 2)):
        argv = [str(cfg_file), '--cfg-options', f'{key}.tasks.occupancy.num_classes={n}']
        with pytest.raises(UserInputError, match=(
                rf'^{key}\.tasks\.occupancy\.num_classes is {n} but '
                r'model\.decode_head\.tasks\.occupancy is 3: .*set them to the same count$')):
            load_runner_config(parse_runner_args(make_parser(), argv))
    # the head's count is what the evaluator must follow, whichever of the two was changed
    argv = [str(cfg_file), '--cfg-options', 'model.decode_head.tasks.semseg=13']
    with pytest.raises(UserInputError, match=r'semseg\.num_classes is 40 but .*semseg is 13'):
        load_runner_config(parse_runner_args(make_parser(), argv))
    # an evaluator list (the metric beside DumpMultiTaskPredictions) is read metric by metric
    listed = tmp_path / 'occupancy_dump.py'
    listed.write_text(
        f"_base_ = [{str(cfg_file)!r}]\n"
        "test_evaluator = [dict(type='MultiTaskMetric', tasks=dict(semseg=dict(num_classes=40),"
        " occupancy=dict(num_classes=4))), dict(type='DumpMultiTaskPredictions', "
        "out_file_path='p.pkl')]\n")
    with pytest.raises(UserInputError, match=(
            r'^test_evaluator\[0\]\.tasks\.occupancy\.num_classes is 4 but '
            r'model\.decode_head\.tasks\.occupancy is 3: ')):
        load_runner_config(parse_runner_args(make_parser(), [str(listed)]))
    argv = [str(listed), '--cfg-options', 'model.decode_head.tasks.occupancy=4',
            'val_evaluator.tasks.occupancy.num_classes=4']
    assert len(load_runner_config(parse_runner_args(make_parser(), argv)).test_evaluator) == 2
    # no evaluator (make demo's val_evaluator=None) and the demo's list of tasks pass
    argv = [DEMO_CONFIG, '--cfg-options', 'val_evaluator=None']
    assert load_runner_config(parse_runner_args(make_parser(), argv)).val_evaluator is None


def test_evaluator_tasks_the_dataset_does_not_load_are_refused():
    """val_dataloader.dataset.tasks cut to semseg and depth under the demo's 4-task evaluator
    trained to the end, then each validation gave "no sample with ground truth for 'normals'"
    and no normals or edge metric; now it stops at start-up."""
    from mmmt.utils.errors import UserInputError
    for split, message in (
            ('val', 'val_evaluator scores edge, normals, which val_dataloader.dataset.tasks '
             "(semseg, depth) does not load: its metric would have no ground truth. Add them to "
             "the dataset's tasks or remove them from val_evaluator.tasks"),
            ('test', 'test_evaluator scores edge, normals, which test_dataloader.dataset.tasks')):
        argv = [DEMO_CONFIG, '--cfg-options', f'{split}_dataloader.dataset.tasks=[semseg,depth]']
        with pytest.raises(UserInputError) as info:
            load_runner_config(parse_runner_args(make_parser(), argv))
        assert str(info.value).startswith(message)
    # the evaluator cut too (a warning for the head's unevaluated tasks): accepted
    argv += ['test_evaluator.tasks=[semseg,depth]']
    assert load_runner_config(parse_runner_args(make_parser(), argv)).test_dataloader.dataset \
        .tasks == ['semseg', 'depth']


def test_a_work_dir_that_is_a_file_is_one_line(tmp_path):
    """--work-dir FILE (or a path through a file) ended train.py and test.py in a
    FileExistsError / NotADirectoryError traceback from the Runner's os.makedirs."""
    from mmmt.utils.errors import UserInputError
    afile = tmp_path / 'notes.txt'
    afile.write_text('mine\n')
    for work_dir, message in (
            (afile, f'--work-dir {afile} is a file; give a folder'),
            (afile / 'run1', f'--work-dir {afile / "run1"} cannot be made: {afile}, in its '
             'path, is a file; give a folder')):
        with pytest.raises(UserInputError) as info:
            load_runner_config(parse_runner_args(make_parser(), [
                DEMO_CONFIG, '--work-dir', str(work_dir)]))
        assert str(info.value) == message
    cfg_file = tmp_path / 'cfg.py'
    cfg_file.write_text(f'_base_ = [{DEMO_CONFIG!r}]\nwork_dir = {str(afile)!r}\n')
    with pytest.raises(UserInputError, match=r'^work_dir .*notes\.txt is a file; give a folder$'):
        load_runner_config(parse_runner_args(make_parser(), [str(cfg_file)]))
    new = tmp_path / 'runs' / 'a'  # folders that are not there yet: made by the Runner
    assert load_runner_config(parse_runner_args(make_parser(), [
        DEMO_CONFIG, '--work-dir', str(new)])).work_dir == str(new)
    assert afile.read_text() == 'mine\n'


def test_a_loop_set_in_part_is_one_line_before_the_runner():
    """--cfg-options val_cfg=None alone (to train without validation) ended in mmengine's
    ValueError traceback, "val_dataloader, val_cfg, and val_evaluator should be either all None
    or not None", printing both dicts whole; now build_runner stops first with the way."""
    from mmmt.utils import build_runner
    from mmmt.utils.cli import check_loop_settings
    from mmmt.utils.errors import UserInputError
    cases = (
        (['val_cfg=None'], 'val_cfg is None but val_dataloader and val_evaluator are set: '
         'mmengine runs validation with all three or none. Without validation: --cfg-options '
         'val_dataloader=None val_cfg=None val_evaluator=None'),
        (['test_dataloader=None', 'test_evaluator=None'], 'test_dataloader and test_evaluator '
         'are None but test_cfg is set: mmengine runs testing with all three or none. Without '
         'testing: --cfg-options test_dataloader=None test_cfg=None test_evaluator=None'))
    for options, message in cases:
        cfg = load_runner_config(parse_runner_args(make_parser(), [
            DEMO_CONFIG, '--cfg-options', *options]))
        with pytest.raises(UserInputError) as info:
            build_runner(cfg, 'training')
        assert str(info.value) == message
    cfg = load_runner_config(parse_runner_args(make_parser(), [
        DEMO_CONFIG, '--cfg-options', 'val_cfg=None', 'val_dataloader=None',
        'val_evaluator=None']))
    check_loop_settings(cfg)  # all three: training without validation


def test_evaluator_tasks_the_head_does_not_predict_are_refused(tmp_path):
    """The demo's head cut to semseg and depth (a child config's _delete_=True) under the
    demo's 4-task evaluator trained to the end, then failed at the first validation with
    "KeyError: sample ... has gt_normals but no pred_normals"; now it stops at start-up."""
    from mmmt.utils.errors import UserInputError
    cfg_file = tmp_path / 'two_tasks.py'
    cfg_file.write_text(
        f'_base_ = [{DEMO_CONFIG!r}]\n'
        'model = dict(decode_head=dict(tasks=dict(_delete_=True, semseg=40, depth=1)))\n')
    with pytest.raises(UserInputError, match=(
            r'^val_evaluator scores edge, normals, which the model does not predict '
            r'\(model\.decode_head\.tasks: semseg, depth\); its metric would fail at the first '
            r'evaluation\. Remove them from val_evaluator\.tasks or add them to the head$')):
        load_runner_config(parse_runner_args(make_parser(), [str(cfg_file)]))
    # the evaluators cut too: accepted; a test_evaluator of its own is checked as well
    argv = [str(cfg_file), '--cfg-options', 'val_evaluator.tasks=[semseg,depth]']
    with pytest.raises(UserInputError, match=r'^test_evaluator scores normals, which .* it '):
        load_runner_config(parse_runner_args(make_parser(), argv + [
            'test_evaluator.tasks=[semseg,depth,normals]']))
    cfg = load_runner_config(parse_runner_args(make_parser(), argv + [
        'test_evaluator.tasks=[semseg,depth]']))
    assert list(cfg.test_evaluator.tasks) == ['semseg', 'depth']


def test_head_tasks_without_a_metric_are_warned_once(tmp_path):
    """The demo's val_evaluator without edge (the head predicts edge) reported no edge metric
    and no word about it; now one warning at start-up names the task (on purpose it may be:
    a warning, not an error). The demo's test_evaluator is the same dict: one warning."""
    from mmengine.logging import MMLogger
    cfg_file = tmp_path / 'no_edge.py'
    cfg_file.write_text(
        f'_base_ = [{DEMO_CONFIG!r}]\n'
        "val_evaluator = dict(tasks=dict(_delete_=True, semseg=None, depth=None, "
        "normals=None))\ntest_evaluator = val_evaluator\n")
    records = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        load_runner_config(parse_runner_args(make_parser(), [str(cfg_file)]))
    finally:
        logger.removeHandler(handler)
    warned = [r.getMessage() for r in records if 'no metric' in r.getMessage()]
    assert len(warned) == 1, warned
    assert warned[0] == (
        'val_evaluator and test_evaluator have no metric for the head task(s) edge '
        '(model.decode_head.tasks): they are trained and predicted, but not evaluated. Add '
        'them to val_evaluator.tasks unless that is intended')


def test_unevaluated_head_tasks_by_evaluator():
    from mmengine.config import Config

    from mmmt.utils.cli import warn_unevaluated_head_tasks

    def warnings(val, test, head=('semseg', 'depth', 'edge')):
        return warn_unevaluated_head_tasks(Config(dict(
            model=dict(decode_head=dict(tasks={t: 1 for t in head})),
            val_evaluator=val, test_evaluator=test)))

    every = dict(type='MultiTaskMetric', tasks=['semseg', 'depth', 'edge'])
    assert warnings(every, every) == []
    # a list of metrics scores the union of their tasks
    assert warnings([dict(type='MultiTaskMetric', tasks=dict(semseg=None)),
                     dict(type='MultiTaskMetric', tasks='depth'),
                     dict(type='MultiTaskMetric', tasks=['edge'])], every) == []
    # no evaluator (make demo's val_evaluator=None) or a metric that names no tasks: nothing
    # is known to be missing
    assert warnings(None, dict(type='DumpMultiTaskPredictions', out_file_path='p.pkl')) == []
    # evaluators missing different tasks: one warning each, every missing task named
    (val, test) = warnings(dict(tasks=['semseg']), dict(tasks=['semseg', 'depth']))
    assert val.startswith('val_evaluator has no metric for the head task(s) depth, edge ')
    assert test.startswith('test_evaluator has no metric for the head task(s) edge ')
    assert test.endswith('Add them to test_evaluator.tasks unless that is intended')


def test_custom_imports_that_are_not_there_are_one_line(tmp_path, monkeypatch):
    """A misspelt custom_imports entry, or a project not on sys.path, is named in one line
    (mmengine's ImportError is a traceback listing sys.path); a module that is found but fails
    inside keeps its own error; a module that is there is imported (and registers)."""
    from mmmt.utils.cli import read_config
    from mmmt.utils.errors import UserInputError
    (tmp_path / 'occ_project').mkdir()
    (tmp_path / 'occ_project' / '__init__.py').write_text('')
    (tmp_path / 'occ_project' / 'fine.py').write_text('IMPORTED = True\n')
    (tmp_path / 'occ_project' / 'broken.py').write_text('import no_such_dependency_xyz\n')
    monkeypatch.syspath_prepend(str(tmp_path))

    def config(*imports, allow=False):
        path = tmp_path / 'cfg.py'
        path.write_text(f'_base_ = [{DEMO_CONFIG!r}]\ncustom_imports = dict(imports='
                        f'{list(imports)!r}, allow_failed_imports={allow})\n')
        return str(path)

    for entry, missing in (('occ_projekt.tasks', 'occ_projekt'),
                           ('occ_project.taskz', 'occ_project.taskz')):
        with pytest.raises(UserInputError, match=(
                rf"^config .*cfg\.py \(or one of its _base_ files\): custom_imports entry "
                rf"'{entry}' cannot be imported \(no module named '{missing}'\); put the "
                r'folder that holds it on PYTHONPATH or install it$')):
            read_config(config('mmmt', entry))
    with pytest.raises(ModuleNotFoundError, match='no_such_dependency_xyz') as info:
        read_config(config('occ_project.broken'))
    assert not isinstance(info.value, UserInputError)
    import sys
    sys.modules.pop('occ_project.fine', None)
    cfg = read_config(config('mmmt', 'occ_project.fine'))
    assert sys.modules['occ_project.fine'].IMPORTED and cfg.custom_imports.imports[1] == \
        'occ_project.fine'
    # allow_failed_imports=True keeps mmengine's behaviour: a warning, no error
    with pytest.warns(UserWarning, match='occ_projekt.tasks failed to import'):
        read_config(config('occ_projekt.tasks', allow=True))


@pytest.mark.parametrize('shape, message', [
    (['64', '80'], r'80 is not a positive multiple of 32 \(the model pads its inputs to 32, '
                   r'size_divisor=32\), e\.g\. 96'),
    (['0', '64'], '0 is not a positive multiple of 32 .*e.g. 32'),
    (['6x', '64'], "invalid int value: '6x'")])
def test_model_input_shape_is_checked_with_the_arguments(capsys, shape, message):
    """benchmark.py / benchmark_balancers.py --shape: a side the encoder and decoder cannot
    take is a usage error before anything is built (64 80 ended in a ValueError traceback
    from the decoder's skip fusion: 'decoder feature (4, 6) and skip feature (4, 5)')."""
    import re

    from mmmt.utils.cli import add_model_input_args
    parser = argparse.ArgumentParser(prog='bench')
    add_model_input_args(parser)
    assert parser.parse_args(['cfg.py', '--shape', '64', '96']).shape == [64, 96]
    assert parser.parse_args(['cfg.py']).shape == [448, 576]
    with pytest.raises(SystemExit) as info:
        parser.parse_args(['cfg.py', '--shape'] + shape)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert re.fullmatch(f'bench: error: argument --shape: {message}', err), err


def test_an_mmmt_package_base_is_one_line_with_the_way(tmp_path):
    """``_base_ = ['mmmt::...']`` (mmengine 0.10 resolves ``package::`` for its own list of
    OpenMMLab packages only) was an AssertionError traceback; mmseg:: still resolves."""
    from mmmt.utils.cli import read_config
    from mmmt.utils.errors import UserInputError
    path = tmp_path / 'child.py'
    path.write_text("_base_ = ['mmmt::mtmamba/mtmamba_swin-l_8xb1-50k_nyudv2-448x576.py']\n")
    with pytest.raises(UserInputError, match=(
            r"^config .*child\.py \(or one of its _base_ files\): mmengine cannot resolve a "
            r"'mmmt::' _base_ \(it knows only its own list of OpenMMLab packages\); write the "
            r"base config's path instead \(docs/installation\.md, 'Inheriting from mmmt's "
            r"configs'\)$")):
        read_config(str(path))
    path.write_text("_base_ = ['mmseg::_base_/default_runtime.py']\n")
    assert read_config(str(path)).default_scope == 'mmseg'


@pytest.fixture
def restored_determinism():
    import torch
    state = (torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    yield
    torch.use_deterministic_algorithms(state[0], warn_only=state[1])
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = state[2:]


@pytest.mark.parametrize('cuda', [True, False])
def test_deterministic_runs_on_cuda(cuda, monkeypatch, restored_determinism):
    """--deterministic on a GPU: mmengine's use_deterministic_algorithms(True) alone stopped the
    first matmul (no CUBLAS_WORKSPACE_CONFIG) and the first backward pass of the bilinear
    upsampling (no deterministic CUDA kernel): such a run could not train at all."""
    import torch

    from mmmt.utils.cli import CUBLAS_DETERMINISTIC, _runner_class
    monkeypatch.delenv('CUBLAS_WORKSPACE_CONFIG', raising=False)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: cuda)
    # mmengine's log records name the device: LOCAL_RANK into CUDA_VISIBLE_DEVICES' list
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: int(cuda))
    monkeypatch.setenv('LOCAL_RANK', '0')
    monkeypatch.delenv('CUDA_VISIBLE_DEVICES', raising=False)
    runner_cls = _runner_class()
    runner = runner_cls.__new__(runner_cls)  # only its randomness set-up runs
    runner.cfg, runner._rank, runner._world_size = {}, 0, 1  # what setup_env gives it first
    runner.set_randomness(0, deterministic=True)
    assert torch.are_deterministic_algorithms_enabled()
    # on the CPU every op has a deterministic version: nothing is relaxed there
    assert torch.is_deterministic_algorithms_warn_only_enabled() is cuda
    assert os.environ.get('CUBLAS_WORKSPACE_CONFIG') == (CUBLAS_DETERMINISTIC if cuda else None)
    monkeypatch.setenv('CUBLAS_WORKSPACE_CONFIG', ':16:8')  # the user's own setting is kept
    runner.set_randomness(0, deterministic=True)
    assert os.environ['CUBLAS_WORKSPACE_CONFIG'] == ':16:8'
