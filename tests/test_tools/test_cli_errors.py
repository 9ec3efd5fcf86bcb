"""The command-line tools end a user-input error in one line, ``<tool>.py: error: <message>``,
with exit status 2 (``mmmt.utils.errors.run_main``); a crash keeps its traceback, and
``MMMT_DEBUG=1`` shows the traceback of the one-line errors too.

The subprocess tests run the real scripts on errors found before the model is trained (most
before it is built); the rest of the rules are pinned in-process on ``run_main`` itself and on
the checks that raise :class:`~mmmt.utils.UserInputError`.
"""
import os
import os.path as osp
import re
import subprocess
import sys

import numpy as np
import pytest

from mmmt.utils import (DuplicateNameError, InputFileNotFoundError, InvalidOptionError, RunStopped,
                        UnknownNameError, UserInputError, run_main)
from mmmt.utils.errors import DEBUG_ENV
from tests.tool_loader import REPO, load_tool
from .conftest import write_tiny_config

#: The launcher variables that would add a rank prefix to the message.
LAUNCHER_ENV = ('RANK', 'WORLD_SIZE', 'SLURM_PROCID', 'SLURM_NTASKS', 'OMPI_COMM_WORLD_RANK',
                'OMPI_COMM_WORLD_SIZE')


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_ENV + (DEBUG_ENV, )}
    env['PYTHONPATH'] = REPO
    env.update(extra)
    return env


def run_script(script, *args, **extra_env):
    """Run ``tools/<script>``; (exit status, stderr)."""
    result = subprocess.run([sys.executable, osp.join(REPO, 'tools', script), *map(str, args)],
                            cwd=REPO, capture_output=True, text=True, timeout=300,
                            env=clean_env(**extra_env))
    return result.returncode, result.stderr


def last_line(text):
    return text.rstrip('\n').splitlines()[-1]


# -- the real tools ------------------------------------------------------------------------------


@pytest.mark.parametrize('debug', [False, True], ids=['plain', 'MMMT_DEBUG'])
def test_a_missing_config_is_one_line_and_the_traceback_on_request(tmp_path, debug):
    missing = tmp_path / 'nope.py'
    status, err = run_script('train.py', missing, **({DEBUG_ENV: '1'} if debug else {}))
    assert status == 2
    assert last_line(err) == f'train.py: error: config file not found: {missing}'
    assert ('Traceback (most recent call last)' in err) is debug
    if debug:  # where it was raised
        assert 'in load_runner_config' in err


_PROBE = '''
import runpy, sys
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name='__main__')
except SystemExit as e:
    code = e.code
heavy = sorted(m for m in ('torch', 'mmengine') if m in sys.modules)
print('EXIT', code, 'HEAVY', ','.join(heavy) or '-')
'''


@pytest.mark.parametrize('script', ['train.py', 'test.py'])
def test_a_missing_config_is_reported_before_torch_is_imported(tmp_path, script):
    # at once, not after the seconds of importing torch and registering every module
    args = [tmp_path / 'nope.py'] + ([tmp_path / 'nope.pth'] if script == 'test.py' else [])
    if script == 'test.py':
        (tmp_path / 'nope.pth').write_bytes(b'')  # past test.py's checkpoint check
    result = subprocess.run([sys.executable, '-c', _PROBE, osp.join(REPO, 'tools', script),
                             *map(str, args)], cwd=REPO, capture_output=True, text=True,
                            timeout=120, env=clean_env())
    assert result.stdout.splitlines()[-1] == 'EXIT 2 HEAVY -', result.stderr[-2000:]
    assert last_line(result.stderr) == \
        f'{script}: error: config file not found: {tmp_path / "nope.py"}'


def test_train_misspelt_decode_head_task_is_one_line(tmp_path):
    # raised by MTMambaHead while mmengine's Runner builds the model (through the registry)
    cfg = write_tiny_config(tmp_path / 'cfg.py', str(tmp_path / 'data'))
    status, err = run_script('train.py', cfg, '--work-dir', tmp_path / 'w', '--cfg-options',
                             'model.decode_head.tasks.semsge=40')
    assert status == 2
    assert last_line(err).startswith(
        "train.py: error: decode_head.tasks: 'semsge' is not a registered task (registered: "
        'semseg, depth, ')
    assert 'Traceback' not in err


def test_train_bad_decode_head_option_is_one_line(tmp_path):
    # an InvalidOptionError (a TypeError too), raised while the Runner builds the model: one
    # line like the UserInputErrors, where a TypeError used to print its traceback
    cfg = write_tiny_config(tmp_path / 'cfg.py', str(tmp_path / 'data'))
    status, err = run_script('train.py', cfg, '--work-dir', tmp_path / 'w', '--cfg-options',
                             'model.decode_head.type=MTMambaPlusHead',
                             'model.decode_head.use_ctm=False')
    assert status == 2
    assert last_line(err) == ("train.py: error: MTMambaPlusHead has no 'use_ctm' option "
                              '(it is MTMambaHead with fixed blocks)')
    assert err.count('train.py: error: ') == 1
    assert 'Traceback' not in err


def test_test_py_missing_checkpoint_is_one_line(tmp_path):
    cfg = write_tiny_config(tmp_path / 'cfg.py', str(tmp_path / 'data'))
    missing = tmp_path / 'nope.pth'
    status, err = run_script('test.py', cfg, missing)
    assert (status, err) == (2, f'test.py: error: checkpoint not found: {missing}\n')
    # a work dir where its checkpoint goes: the checkpoint last_checkpoint names
    work = tmp_path / 'work'
    work.mkdir()
    status, err = run_script('test.py', cfg, work)
    assert (status, err) == (2, f'test.py: error: {work} is a folder, not a checkpoint, and '
                                'holds no .pth file\n')
    for name in ('iter_2.pth', 'iter_4.pth'):
        (work / name).write_bytes(b'')
    (work / 'last_checkpoint').write_text(str(work / 'iter_4.pth'))
    status, err = run_script('test.py', cfg, work)
    assert (status, err) == (2, f'test.py: error: {work} is a folder, not a checkpoint; give a '
                                f'checkpoint file such as {work / "iter_4.pth"}\n')


def test_a_crash_keeps_its_traceback(tmp_path):
    # a bug (here in a module the config imports) is not an input error: Python's report
    (tmp_path / 'crashing_plugin.py').write_text("raise RuntimeError('boom in the plugin')\n")
    cfg = write_tiny_config(tmp_path / 'cfg.py', str(tmp_path / 'data'),
                            extra="custom_imports = dict(imports=['crashing_plugin'])\n")
    status, err = run_script('train.py', cfg, '--work-dir', tmp_path / 'w',
                             PYTHONPATH=os.pathsep.join([REPO, str(tmp_path)]))
    assert status == 1
    assert 'Traceback (most recent call last)' in err
    assert last_line(err) == 'RuntimeError: boom in the plugin'
    assert 'train.py: error:' not in err


# -- run_main ------------------------------------------------------------------------------------


@pytest.fixture
def no_launcher(monkeypatch):
    for key in LAUNCHER_ENV + (DEBUG_ENV, ):
        monkeypatch.delenv(key, raising=False)
    return monkeypatch


def raiser(exc):
    def main():
        raise exc
    return main


@pytest.mark.parametrize('exc, status', [
    (UserInputError('model.x: expected 3, got 4'), 2),
    (InputFileNotFoundError('model.x: expected 3, got 4'), 2),
    (SystemExit('model.x: expected 3, got 4'), 2),  # the tools' own refusals
    (RunStopped('model.x: expected 3, got 4'), 1),  # stopped during the work
    # without KeyError's quotes around the message
    (UnknownNameError('model.x: expected 3, got 4'), 2),
    (DuplicateNameError('model.x: expected 3, got 4'), 2),
    (InvalidOptionError('model.x: expected 3, got 4'), 2),
], ids=['UserInputError', 'InputFileNotFoundError', 'SystemExit', 'RunStopped',
        'UnknownNameError', 'DuplicateNameError', 'InvalidOptionError'])
def test_one_line_with_the_status(no_launcher, capsys, exc, status):
    with pytest.raises(SystemExit) as info:
        run_main(raiser(exc), prog='tool.py')
    assert info.value.code == status
    out, err = capsys.readouterr()
    assert (out, err) == ('', 'tool.py: error: model.x: expected 3, got 4\n')


def test_the_debug_switch_prints_the_traceback_first(no_launcher, capsys):
    no_launcher.setenv(DEBUG_ENV, '1')
    with pytest.raises(SystemExit) as info:
        run_main(raiser(UserInputError('bad field')), prog='tool.py')
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith('Traceback (most recent call last)')
    assert 'mmmt.utils.errors.UserInputError: bad field\n' in err
    assert last_line(err) == 'tool.py: error: bad field'
    no_launcher.setenv(DEBUG_ENV, '0')  # off again
    with pytest.raises(SystemExit):
        run_main(raiser(UserInputError('bad field')), prog='tool.py')
    assert capsys.readouterr().err == 'tool.py: error: bad field\n'


@pytest.mark.parametrize('exc', [
    ValueError('a bug, not a check'),  # only UserInputError is an input error
    FileNotFoundError('a file the code, not the user, got wrong'),
    RuntimeError('crash at iteration 500'),
    KeyError('semseg'),  # a lookup that failed in the code, not mmengine's unknown type=
], ids=['ValueError', 'FileNotFoundError', 'RuntimeError', 'KeyError'])
def test_other_exceptions_propagate_unchanged(no_launcher, capsys, exc):
    with pytest.raises(type(exc)) as info:
        run_main(raiser(exc), prog='tool.py')
    assert info.value is exc
    assert capsys.readouterr().err == ''


@pytest.mark.parametrize('code', [0, 1, 2, None])
def test_exits_without_a_message_pass_through(no_launcher, capsys, code):
    # argparse's usage errors (2, already printed), sys.exit(status) of the tools
    with pytest.raises(SystemExit) as info:
        run_main(raiser(SystemExit(code)), prog='tool.py')
    assert info.value.code == code
    assert capsys.readouterr().err == ''


def test_the_return_value_and_the_default_name(no_launcher, capsys, monkeypatch):
    assert run_main(lambda: {'ok': True}) == {'ok': True}
    monkeypatch.setattr(sys, 'argv', [osp.join('tools', 'analysis_tools', 'get_flops.py')])
    with pytest.raises(SystemExit):
        run_main(raiser(UserInputError('x')))
    assert capsys.readouterr().err == 'get_flops.py: error: x\n'


@pytest.mark.parametrize('env, prefix', [
    (dict(RANK='1', WORLD_SIZE='2'), '[rank 1/2] '),  # torchrun
    (dict(SLURM_PROCID='3', SLURM_NTASKS='4'), '[rank 3/4] '),  # srun
    (dict(RANK='0', WORLD_SIZE='1'), ''),  # a single process
    ({}, ''),
])
def test_each_rank_of_a_launch_says_which_it_is(no_launcher, capsys, env, prefix):
    for key, value in env.items():
        no_launcher.setenv(key, value)
    with pytest.raises(SystemExit):
        run_main(raiser(UserInputError('bad field')), prog='train.py')
    assert capsys.readouterr().err == f'train.py: error: {prefix}bad field\n'


def _take_options(a, b=1):
    return a + b


def test_a_key_the_built_class_does_not_take_is_one_line(no_launcher, capsys):
    """A misspelt key of a config dict (the file or --cfg-options), e.g.
    optim_wrapper.optimizer.lrr=0.1 or train_dataloader.batchsize=2, was a traceback through
    mmengine's builders ending in "TypeError: AdamW.__init__() got an unexpected keyword
    argument 'lrr'"; now one line with the closest option."""
    from mmengine.runner import Runner

    from mmmt.registry import MODELS

    def build_loss():  # through mmengine's build_from_cfg, as the Runner builds the model
        MODELS.build(dict(type='MultiTaskLoss', tasks=['semseg'], shceme='sum'))

    def build_loader():  # Runner.build_dataloader spreads the rest into DataLoader(**cfg)
        Runner.build_dataloader(dict(dataset=[0, 1], batchsize=2,
                                     sampler=dict(type='DefaultSampler', shuffle=False)))

    for main, message in (
            (build_loss, "MultiTaskLoss has no option 'shceme' (a key of its dict in the "
             "config or --cfg-options); did you mean 'scheme'? Its options: tasks, scheme, "
             'weights, eps, dwa_window, dwa_temperature'),
            (build_loader, "DataLoader has no option 'batchsize' (a key of its dict in the "
             "config or --cfg-options); did you mean 'batch_size'? Its options: dataset, ")):
        with pytest.raises(SystemExit) as info:
            run_main(main, prog='train.py')
        assert info.value.code == 2
        assert capsys.readouterr().err.startswith(f'train.py: error: {message}')


def test_a_keyword_the_code_gets_wrong_keeps_its_traceback(no_launcher, capsys):
    """The same TypeError from a call that names its keywords in the code is a bug: it
    propagates. A call that spreads a dict (``**kwargs``, as the builders do with a config's)
    into a callee without the key is reported, with the closest option if one is close."""
    from mmmt.utils.errors import unknown_option_message

    def literal():
        _take_options(1, c=2)

    with pytest.raises(TypeError, match="unexpected keyword argument 'c'") as info:
        run_main(literal, prog='train.py')
    assert capsys.readouterr().err == ''
    assert unknown_option_message(info.value) is None

    def spread(callee, **kwargs):
        callee(1, **kwargs)

    with pytest.raises(TypeError) as info:
        spread(_take_options, c=2)
    assert unknown_option_message(info.value) == (
        "_take_options has no option 'c' (a key of its dict in the config or --cfg-options). "
        'Its options: a, b')
    with pytest.raises(TypeError) as info:
        spread(_take_options, bb=2)
    assert unknown_option_message(info.value).startswith(
        "_take_options has no option 'bb' (a key of its dict in the config or --cfg-options); "
        "did you mean 'b'? ")


def test_the_exception_types_keep_their_bases():
    # existing `except ValueError` / `except FileNotFoundError` keep catching the checks
    assert issubclass(UserInputError, ValueError)
    assert issubclass(InputFileNotFoundError, UserInputError)
    assert issubclass(InputFileNotFoundError, FileNotFoundError)
    assert str(InputFileNotFoundError('split list x.txt is missing')) == \
        'split list x.txt is missing'


@pytest.mark.parametrize('cls, base', [(UnknownNameError, KeyError),
                                       (DuplicateNameError, KeyError),
                                       (InvalidOptionError, TypeError)])
def test_the_key_and_type_errors_are_caught_as_before_and_print_their_message(cls, base):
    message = "unknown task 'albedo': registered tasks are ['depth']"
    for catch in (base, ValueError, UserInputError):  # the code that caught them before
        try:
            raise cls(message)
        except catch as err:
            caught = err
        assert type(caught) is cls
    assert str(caught) == message  # KeyError's str() would be repr(message)
    assert caught.args == (message, )
    assert str(cls()) == ''  # as any exception without a message
    assert repr(cls('x')) == f"{cls.__name__}('x')"


# -- the checks that raise UserInputError -------------------------------------------------------


def _head(cls_name='MTMambaHead', **kwargs):
    import mmmt.models.decode_heads as heads
    from mmmt.models.decode_heads.mtmamba_seg_head import MTMambaSegHead
    from mmmt.models.decode_heads.mtmamba_variants import MTMambaVariantHead
    cls = dict(MTMambaVariantHead=MTMambaVariantHead,
               MTMambaSegHead=MTMambaSegHead).get(cls_name) or getattr(heads, cls_name)
    return cls(**kwargs)


def _per_stage():
    from mmmt.models.decode_heads.mtmamba_head import _per_stage
    return _per_stage([{}, {}], 'stm_block')


def _build(_module, _name, **kwargs):
    import importlib
    return getattr(importlib.import_module(_module), _name)(**kwargs)


WIDTHS = (16, 32, 64, 128)
CONFIG_CHECKS = [
    (_per_stage, r'stm_block must be a config dict or one entry per stage \(3\), got 2'),
    (lambda: _head(in_channels=WIDTHS, tasks={}), 'MTMambaHead: `tasks` must map task names'),
    (lambda: _head(in_channels=(16, 32, 60, 128), tasks=dict(depth=1)),
     'in_channels must list 4 backbone widths, each twice the previous, got'),
    (lambda: _head(in_channels=WIDTHS, tasks=dict(normals=4)),
     r"tasks\['normals'\] = 4, but a normals prediction has 3 channel"),
    (lambda: _head(in_channels=WIDTHS, tasks=dict(semsge=40)),
     "decode_head.tasks: 'semsge' is not a registered task"),
    (lambda: _head(in_channels=WIDTHS, tasks=dict(depth=1), task_losses=dict(sal={})),
     r"task_losses given for unknown tasks \['sal'\]"),
    (lambda: _head('MTMambaSegHead'), 'MTMambaSegHead needs num_classes'),
    (lambda: _head('MTMambaSegHead', tasks=dict(semseg=2, depth=1)),
     'MTMambaSegHead is single-task'),
    (lambda: _head('MTMambaVariantHead', block='x'), "block must be 'stm' or 'swin', got 'x'"),
    (lambda: _head('MTMambaVariantHead', gate='x'),
     re.escape("gate 'linear'|'attention', got 'mfe', 'x'")),
    (lambda: _head('MTMambaVariantHead', block='swin'), "block='swin' is the plain 2xSwin"),
    (lambda: _head('MTMambaVariantHead', in_channels=WIDTHS, tasks=dict(depth=1),
                   num_heads=[1, 1]), r'num_heads must give 3 positive head counts'),
    (lambda: _build('mmmt.models.losses', 'MultiTaskLoss', tasks=['depth'], scheme='x'),
     "MultiTaskLoss: scheme must be one of .* got 'x'"),
    (lambda: _build('mmmt.models.losses', 'MultiTaskLoss', tasks=['depth'],
                    weights=dict(sal=1.0)),
     r"MultiTaskLoss: weights given for unknown tasks \['sal'\]; tasks are \['depth'\] \(a "
     r'child config that changes the tasks replaces the weights of its base: '
     r'loss_combiner=dict\(weights=dict\(_delete_=True, \.\.\.\)\)\)'),
    (lambda: _build('mmmt.models.losses', 'BalancedBCEEdgeLoss', pos_weight=1.5),
     r'pos_weight must lie in \(0, 1\), got 1.5'),
    (lambda: _build('mmmt.models.data_preprocessors', 'MultiTaskDataPreProcessor',
                    mean=[0, 0, 0]), 'mean and std must be given together'),
    (lambda: _build('mmmt.engine.optimizers.balancers', 'CAGrad', c=1.0),
     r'CAGrad: c must be in \[0, 1\), got 1.0'),
    (lambda: _build('mmmt.engine.optimizers.balancers', 'NashMTL', update_weights_every=0),
     'NashMTL: update_weights_every must be >= 1, got 0'),
    (lambda: _build('mmmt.engine.optimizers.balancers', 'MGDAUB', normalization='x'),
     "MGDAUB: normalization must be one of .* got 'x'"),
    (lambda: _build('mmmt.structures', 'TaskSpec', name='bad name'),
     "task name must be an identifier, got 'bad name'"),
    (lambda: _build('mmmt.structures', 'TaskSpec', name='albedo', activation='x'),
     "task 'albedo': activation must be one of"),
    (lambda: _build('mmmt.structures', 'TaskSpec', name='albedo', gt_channels=0),
     "task 'albedo': gt_channels must be an integer >= 1, got 0"),
    (lambda: _build('mmmt.utils.dist_utils', 'cpu_dist_cfg', dist_cfg=dict(timeout=-1)),
     'env_cfg.dist_cfg.timeout must be a positive number of seconds, got -1'),
]


@pytest.mark.parametrize('build, message', CONFIG_CHECKS,
                         ids=[f'check{i}' for i in range(len(CONFIG_CHECKS))])
def test_config_checks_raise_user_input_errors(build, message):
    with pytest.raises(UserInputError, match=message):
        build()


def test_tta_without_a_pipeline():
    from mmengine.config import Config

    from mmmt.utils import enable_tta
    with pytest.raises(UserInputError, match='--tta needs `tta_pipeline` in the config'):
        enable_tta(Config(dict(model=dict(type='M'))))


def test_dataset_layout_checks(tmp_path):
    from mmmt.datasets import CityscapesMultiTaskDataset, NYUDv2MultiTaskDataset
    root = str(tmp_path)
    with pytest.raises(UserInputError, match='tasks must be a non-empty list of task names'):
        NYUDv2MultiTaskDataset(data_root=root, tasks=[])
    with pytest.raises(UserInputError, match=r"NYUDv2MultiTaskDataset has no task\(s\) \['sal'\]"):
        NYUDv2MultiTaskDataset(data_root=root, tasks=['sal'])
    with pytest.raises(InputFileNotFoundError, match=r"Split list '.*gt_sets/train.txt' of "
                       "split 'train' does not exist"):
        NYUDv2MultiTaskDataset(data_root=root)
    (tmp_path / 'gt_sets').mkdir()
    (tmp_path / 'gt_sets' / 'train.txt').write_bytes(b'\xff\xfe')
    with pytest.raises(UserInputError, match='is not UTF-8 text'):
        NYUDv2MultiTaskDataset(data_root=root)
    (tmp_path / 'gt_sets' / 'train.txt').write_text('\n')
    with pytest.raises(UserInputError, match="of split 'train' is empty"):
        NYUDv2MultiTaskDataset(data_root=root)
    (tmp_path / 'gt_sets' / 'train.txt').write_text('0001\n')
    with pytest.raises(InputFileNotFoundError, match=r'file\(s\) needed for tasks .* missing'):
        NYUDv2MultiTaskDataset(data_root=root)

    with pytest.raises(InputFileNotFoundError, match=r"Image folder '.*leftImg8bit/train' of "
                       "split 'train' does not exist"):
        CityscapesMultiTaskDataset(data_root=root)
    (tmp_path / 'leftImg8bit' / 'train').mkdir(parents=True)
    with pytest.raises(UserInputError, match=r"No '\*_leftImg8bit.png' image under"):
        CityscapesMultiTaskDataset(data_root=root)
    (tmp_path / 'ids.txt').write_text('no_city_part\n')
    with pytest.raises(UserInputError, match=r"Cityscapes ids are '<city>/<id>', got "
                       "'no_city_part'"):
        CityscapesMultiTaskDataset(data_root=root, ann_file='ids.txt')


def test_a_tool_reading_a_config_names_a_missing_one(tmp_path):
    # get_flops (and the benchmarks, through mmmt.utils.analysis.build_model) read configs
    # with mmmt.utils.cli.read_config instead of mmengine's bare FileNotFoundError
    from mmmt.utils.analysis import build_model
    missing = str(tmp_path / 'nope.py')
    with pytest.raises(InputFileNotFoundError, match=f'^config file not found: {missing}$'):
        load_tool('tools', 'analysis_tools', 'get_flops').main([missing, '--params-only'])
    with pytest.raises(InputFileNotFoundError, match='config file not found'):
        build_model(missing)


def test_a_checkpoint_given_as_the_config_is_named(tmp_path):
    """tools/test.py CHECKPOINT CONFIG (the arguments swapped) ended in mmengine's traceback
    "OSError: Only py/yml/yaml/json type are supported now!", naming no file."""
    ckpt, cfg = tmp_path / 'iter_4.pth', tmp_path / 'cfg.py'
    ckpt.write_bytes(b'PK')
    cfg.write_text('x = 1\n')
    with pytest.raises(UserInputError) as info:
        load_tool('tools', 'test').main([str(ckpt), str(cfg)])
    assert str(info.value) == (
        f'{ckpt} is not a config file (expected .py, .yml, .yaml, .json); the config comes '
        'first, e.g. tools/test.py CONFIG CHECKPOINT')


def test_a_bad_sample_during_training_is_no_input_error():
    # found while the work runs (a broken file in iteration 500's batch): a plain ValueError,
    # which run_main lets through with its traceback
    from mmmt.datasets.transforms.decoders import _check_depth
    with pytest.raises(ValueError, match='Depth map has 1 NaN pixel') as info:
        run_main(lambda: _check_depth(np.array([[1.0, np.nan]]), 'd.npy', {}), prog='train.py')
    assert not isinstance(info.value, UserInputError)


# -- mmengine's KeyError for an unknown type= ---------------------------------------------------

TYPE_HINT = ("A class of another OpenMMLab package takes its scope (type='mmseg.XXX'); a module "
             'of your own must be imported first (custom_imports = dict(imports=[...]) in the '
             'config)')


@pytest.mark.parametrize('cfg, message', [
    (dict(type='MTMambaHeadd'), "type='MTMambaHeadd' is not in the mmmt::model registry; did you "
     "mean 'MTMambaHead' or 'MTMambaSegHead' or 'MTMambaPlusHead'? "),
    # a class of mmseg's asked for with its scope: that scope's names (mmengine names the
    # registry it searched from)
    (dict(type='mmseg.SwinTransformr'), "type='mmseg.SwinTransformr' is not in the mmmt::model "
     "registry; did you mean 'mmseg.SwinTransformer'"),
    (dict(type='NoSuchModelAtAll'), "type='NoSuchModelAtAll' is not in the mmmt::model "
     'registry. '),
], ids=['mmmt', 'mmseg-scope', 'nothing-close'])
def test_an_unknown_type_is_one_line_with_the_closest_names(no_launcher, capsys, cfg, message):
    from mmengine.registry import DefaultScope

    from mmmt.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmmt'):
        with pytest.raises(SystemExit) as info:
            run_main(lambda: MODELS.build(cfg), prog='tool.py')
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith('tool.py: error: ' + message), err
    assert err.endswith(TYPE_HINT + '\n') and len(err.splitlines()) == 1


def test_train_with_a_misspelt_dataset_type_is_one_line(tmp_path, synthetic_nyud, capsys):
    """train.py as its script runs it, in this process: mmengine builds the dataset inside
    ``runner.train()``, where the KeyError has travelled through the Runner."""
    from .conftest import cli
    cfg = write_tiny_config(tmp_path / 'cfg.py', synthetic_nyud, max_iters=1, val_interval=1)
    status, _, err = cli(load_tool('tools', 'train'), [
        cfg, '--work-dir', tmp_path / 'w', '--cfg-options',
        'train_dataloader.dataset.type=NYUDv2Dataset'], capsys)
    assert status == 2
    assert last_line(err).startswith("train.py: error: type='NYUDv2Dataset' is not in the "
                                     "mmmt::dataset registry; did you mean "
                                     "'NYUDv2MultiTaskDataset'")


# -- a config that is not valid Python -----------------------------------------------------------


@pytest.mark.parametrize('broken', ['child', 'base'])
def test_a_config_syntax_error_names_the_file_and_line(tmp_path, broken):
    """mmengine's SyntaxError names neither the file nor, for a base, which config it is."""
    from mmmt.utils.cli import config_from_file, read_config
    (tmp_path / 'base.py').write_text('model = dict(a=1)\n' if broken == 'child' else
                                      'model = dict(\n    a=1,\n    b=2\n')
    (tmp_path / 'child.py').write_text("_base_ = ['./base.py']\n" + (
        'x = [1, 2\n' if broken == 'child' else 'x = 1\n'))
    line = {'child': 2, 'base': 1}[broken]
    for read in (config_from_file, read_config):
        with pytest.raises(UserInputError) as info:
            read(str(tmp_path / 'child.py'))
        assert str(info.value) == (f'config syntax error in {tmp_path / f"{broken}.py"}, line '
                                   f"{line}: '{'[' if broken == 'child' else '('}' was never "
                                   'closed')


def test_a_base_variable_named_in_a_child_config_is_one_line_with_the_way(tmp_path):
    """``pipeline=train_pipeline`` in a child: mmengine's bare NameError names no file."""
    from mmmt.utils.cli import config_from_file
    (tmp_path / 'base.py').write_text('crop_size = (64, 96)\n')
    (tmp_path / 'child.py').write_text("_base_ = ['./base.py']\nx = dict(size=crop_size)\n")
    with pytest.raises(UserInputError) as info:
        config_from_file(str(tmp_path / 'child.py'))
    assert str(info.value) == (
        f"config {tmp_path / 'child.py'}, line 2: name 'crop_size' is not defined. A config "
        'cannot name the variables of its _base_ files: write {{_base_.crop_size}} for a '
        "base's value, or define it in the file")
    # the way it names works
    (tmp_path / 'child.py').write_text(
        "_base_ = ['./base.py']\nx = dict(size={{_base_.crop_size}})\n")
    assert tuple(config_from_file(str(tmp_path / 'child.py')).x['size']) == (64, 96)
    # a NameError in a module the config imports is that module's bug: kept as it is
    (tmp_path / 'my_broken_module.py').write_text('value = undefined_name\n')
    (tmp_path / 'child.py').write_text(
        "custom_imports = dict(imports=['my_broken_module'], allow_failed_imports=False)\n")
    sys.path.insert(0, str(tmp_path))
    try:
        with pytest.raises(NameError) as info:
            config_from_file(str(tmp_path / 'child.py'))
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop('my_broken_module', None)
    assert not isinstance(info.value, UserInputError)
