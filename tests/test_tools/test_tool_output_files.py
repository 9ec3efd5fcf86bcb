"""The measurement tools' output files (``--json``, gpu_check_summary.py's summary): an existing
file is refused before the work starts, unless ``--force``; a file that appears meanwhile is
kept and named (mmmt.utils.cli.check_output_file / write_output_file)."""
import json

import pytest

import mmmt.utils.analysis
from mmmt.utils import UserInputError
from tests.tool_loader import load_tool


class WorkStarted(Exception):
    """Raised by a stand-in for a tool's first piece of real work."""


def _boom(*args, **kwargs):
    raise WorkStarted


# tool, its arguments, the functions its work starts with (replaced to raise WorkStarted)
TOOLS = [
    ('benchmark', ['configs/demo/mtmamba-tiny_synthetic-nyud.py', '--device', 'cpu'],
     ['build_model']),
    ('benchmark_balancers', ['configs/demo/mtmamba-tiny_synthetic-nyud.py'], ['build_model']),
    ('benchmark_scan', ['--quick'], ['scan_backend_names']),
    ('scan_parity', ['--device', 'cpu'], []),  # imports its work functions in main
    ('triton_scan_sass', [], ['analyse', 'compile_variants']),
    ('triton_scan_sass', ['--variants'], ['analyse', 'compile_variants']),
]


@pytest.mark.parametrize('name,argv,work', TOOLS)
def test_an_existing_json_is_refused_before_the_work(tmp_path, monkeypatch, name, argv, work):
    tool = load_tool('tools', 'analysis_tools', name)
    for attr in work:
        monkeypatch.setattr(tool, attr, _boom)
    for attr in ('scan_inputs', 'scan_backend_names'):  # what scan_parity imports in main
        monkeypatch.setattr(mmmt.utils.analysis, attr, _boom)
    out = tmp_path / 'results.json'
    out.write_text('an earlier measurement')
    with pytest.raises(UserInputError, match=rf'--json {out} exists; choose another name or '
                       r'pass --force to replace it'):
        tool.main(argv + ['--json', str(out)])
    assert out.read_text() == 'an earlier measurement'
    # a folder as the file: refused now, not when the results are written
    with pytest.raises(UserInputError, match=rf'--json {tmp_path} is a folder'):
        tool.main(argv + ['--json', str(tmp_path), '--force'])
    # with --force the work starts (and would replace the file at its end)
    with pytest.raises(WorkStarted):
        tool.main(argv + ['--json', str(out), '--force'])


def _results(folder):
    (folder / 'parity.json').write_text(json.dumps(dict(ok=True, rows=[])))


def test_summary_is_refused_replaced_with_force_and_kept_if_it_appears(tmp_path, monkeypatch):
    tool = load_tool('tools', 'analysis_tools', 'gpu_check_summary')
    _results(tmp_path)
    assert tool.main([str(tmp_path)]) == 0
    first = json.loads((tmp_path / 'summary.json').read_text())
    assert first['parity']['ok'] is True
    # an earlier summary: refused by name (a fixed name: only --force helps)
    (tmp_path / 'parity.json').write_text(json.dumps(dict(ok=False, rows=[])))
    with pytest.raises(UserInputError, match=rf'{tmp_path / "summary.json"} exists; pass '
                       r'--force to replace it\Z'):
        tool.main([str(tmp_path)])
    assert json.loads((tmp_path / 'summary.json').read_text()) == first
    assert tool.main([str(tmp_path), '--force']) == 0  # gpu_check.sh's re-run: its own files
    assert json.loads((tmp_path / 'summary.json').read_text())['parity']['ok'] is False
    assert (tmp_path / 'summary.md').read_text().count('| parity | False |') == 1

    # another run writes the summary while this one summarises: that file is kept, named
    other = tmp_path / 'other'
    other.mkdir()
    _results(other)
    summarise = tool.summarise

    def another_run_writes_first(*args, **kwargs):
        (other / 'summary.json').write_text('the other run')
        return summarise(*args, **kwargs)

    monkeypatch.setattr(tool, 'summarise', another_run_writes_first)
    with pytest.raises(UserInputError, match=rf'{other / "summary.json"} exists.* appeared '
                       r'during this run.* it is kept and the run stops here\. Pass --force'):
        tool.main([str(other)])
    assert (other / 'summary.json').read_text() == 'the other run'
    assert sorted(p.name for p in other.iterdir()) == ['parity.json', 'summary.json']


def _a_file_above(tmp_path, name):
    (tmp_path / 'afile').write_text('a file of the user')
    return (str(tmp_path / 'afile' / name),
            f'{tmp_path / "afile"} is a file, where a folder is needed')


@pytest.mark.parametrize('folder, argv', [
    ('model_converters', ['mtmamba2mmmt', 'SRC', 'DST']),
    ('model_converters', ['swin2mmpretrain', 'SRC', 'DST']),
    ('model_converters', ['publish_model', 'SRC', 'DST']),
    ('misc', ['print_config', 'configs/demo/mtmamba-tiny_synthetic-nyud.py', '--save-path',
              'DST']),
    ('analysis_tools', ['confusion_matrix', 'configs/demo/mtmamba-tiny_synthetic-nyud.py',
                        'SRC', 'DSTDIR']),
    ('analysis_tools', ['benchmark_scan', '--quick', '--json', 'DST']),
])
def test_an_output_under_a_file_is_refused_before_the_work(tmp_path, capsys, folder, argv):
    # each failed after its work (a conversion, the counting, a benchmark) with a traceback or
    # with the converters' misleading 'DST exists; pass --force', also with --force
    from tests.test_tools.conftest import cli
    dst, problem = _a_file_above(tmp_path, 'out.pth' if argv[0] != 'print_config' else 'c.py')
    src = tmp_path / 'never_read.pth'
    args = [{'SRC': src, 'DST': dst, 'DSTDIR': dst}.get(a, a) for a in argv[1:]]
    status, _, err = cli(load_tool('tools', folder, argv[0]), args + ['--force'], capsys,
                         prog=argv[0])
    assert status == 2 and problem in err and 'Traceback' not in err, err
    assert len(err.splitlines()) == 1 and 'exists' not in err
