"""Every tool answers --help without importing torch (it used to take 5-9 s idle).

What is asserted is the import, not a time: a tool that imports torch (or mmengine, which
imports it) before parsing its arguments fails here on any machine.
"""
import os
import os.path as osp
import subprocess
import sys

import pytest

from .conftest import REPO

TOOLS = [
    'tools/train.py', 'tools/test.py', 'demo/image_demo.py',
    'tools/analysis_tools/analyze_logs.py', 'tools/analysis_tools/benchmark.py',
    'tools/analysis_tools/benchmark_balancers.py', 'tools/analysis_tools/benchmark_edge_eval.py',
    'tools/analysis_tools/benchmark_scan.py', 'tools/analysis_tools/benchmark_synthetic.py',
    'tools/analysis_tools/browse_dataset.py', 'tools/analysis_tools/eval_metric.py',
    'tools/analysis_tools/compare_with_paper.py', 'tools/analysis_tools/get_flops.py',
    'tools/analysis_tools/confusion_matrix.py',
    'tools/analysis_tools/trivial_baselines.py', 'tools/analysis_tools/triton_scan_sass.py',
    'tools/analysis_tools/gpu_check_summary.py', 'tools/analysis_tools/scan_parity.py',
    'tools/dataset_converters/check_dataset.py',
    'tools/dataset_converters/synthetic_mt.py', 'tools/model_converters/mtmamba2mmmt.py',
    'tools/model_converters/publish_model.py', 'tools/model_converters/swin2mmpretrain.py',
    'tools/misc/print_config.py',
]

# runs the tool as `python TOOL --help` would, then reports the heavy modules it imported
_PROBE = '''
import runpy, sys
sys.argv = [sys.argv[1], '--help']
try:
    runpy.run_path(sys.argv[0], run_name='__main__')
except SystemExit as e:
    code = e.code
else:
    code = 'no exit'
heavy = sorted(m for m in ('torch', 'mmengine', 'mmcv', 'mmseg', 'cv2') if m in sys.modules)
print('EXIT', code, 'HEAVY', ','.join(heavy) or '-')
'''


@pytest.mark.parametrize('tool', TOOLS)
def test_help_imports_no_torch(tool):
    result = subprocess.run(
        [sys.executable, '-c', _PROBE, osp.join(REPO, tool)], cwd=REPO, capture_output=True,
        text=True, timeout=120, env=dict(os.environ, PYTHONPATH=REPO))
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'usage:' in result.stdout
    assert result.stdout.strip().splitlines()[-1] == 'EXIT 0 HEAVY -', result.stdout[-500:]


def test_check_dataset_names_every_layout():
    # check_dataset.py writes its layout names out (mmmt.datasets imports torch)
    from mmmt.datasets import LAYOUTS
    from ..tool_loader import load_tool
    assert tuple(sorted(LAYOUTS)) == load_tool('tools', 'dataset_converters',
                                               'check_dataset').LAYOUT_NAMES


def test_benchmark_edge_eval_names_every_protocol():
    # benchmark_edge_eval.py writes the protocol names out (mmmt.evaluation imports torch)
    from mmmt.evaluation.functional import DEFAULT_EDGE_PROTOCOL, EDGE_PROTOCOLS
    from ..tool_loader import load_tool
    tool = load_tool('tools', 'analysis_tools', 'benchmark_edge_eval')
    assert tool.PROTOCOL_NAMES == tuple(sorted(EDGE_PROTOCOLS))
    assert tool.DEFAULT_PROTOCOL_NAME == DEFAULT_EDGE_PROTOCOL


@pytest.mark.parametrize('tool, says, not_says', [
    ('train', 'where logs, metrics and checkpoints are written', None),
    # a test writes no checkpoints; its relative --out / --show-dir go under the work dir
    ('test', 'where the logs and metrics are written, and a relative --out or --show-dir',
     'checkpoints are written'),
])
def test_work_dir_help_says_what_the_tool_writes_there(tool, says, not_says, capsys):
    from ..tool_loader import load_tool
    with pytest.raises(SystemExit):
        load_tool('tools', tool).parse_args(['--help'])
    text = ' '.join(capsys.readouterr().out.split())  # argparse's line breaks undone
    assert f'--work-dir WORK_DIR {says} (default: ./work_dirs/<config name>)' in text
    assert not_says is None or not_says not in text
