"""tools/analysis_tools/gpu_check.sh: what its one GPU run will try, checked here, where a
typo would otherwise cost a lent GPU's time."""
import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

from mmmt.ops import selective_scan_triton as triton_scan

SCRIPT = Path(__file__).resolve().parents[2] / 'tools' / 'analysis_tools' / 'gpu_check.sh'


def test_default_sweep_parses_and_starts_with_the_shipped_default():
    text = SCRIPT.read_text()
    match = re.search(r'SWEEP=\$\{GPU_CHECK_SWEEP:-(.*?)\}', text.replace('\\\n', ' '), re.S)
    assert match, 'no default GPU_CHECK_SWEEP in gpu_check.sh'
    entries = match.group(1).split()
    parsed = [triton_scan.parse_kernel(e) for e in entries]  # ValueError on a bad entry
    assert len(set(parsed)) == len(parsed), 'an entry twice'
    default = triton_scan.DEFAULT
    assert parsed[0] == (default, triton_scan.CONFIGS[default])
    # the prefetch option is timed beside the same sizes without it
    for name, cfg in parsed:
        if cfg.prefetch:
            assert (name, triton_scan.KernelConfig(cfg.block_l, cfg.tile,
                                                   cfg.num_warps)) in parsed


def _run(tmp_path, **env):
    out, detail = tmp_path / 'out', tmp_path / 'detail'
    env = dict(os.environ, OUT=str(out), GPU_CHECK_DETAIL_DIR=str(detail),
               GPU_CHECK_DEVICE='cpu', GPU_CHECK_QUICK='1', PYTHON=sys.executable, **env)
    proc = subprocess.run(['bash', str(SCRIPT)], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, proc.stdout


def test_dry_run_on_cpu(tmp_path):
    """The whole script as a GPU session runs it, on the CPU (GPU_CHECK_DEVICE=cpu, the small
    shape, the demo model): every step succeeds and the three files come back."""
    out, log = _run(tmp_path)
    steps = re.findall(r'^=== (.+): exit (\d+)', log, re.M)
    names = [n for n, _ in steps]
    assert [rc for _, rc in steps] == ['0'] * len(steps), steps
    assert names[0] == 'environment' and names[-1] == 'summary against the targets'
    assert any(n.startswith('scan parity') for n in names)
    assert sum(n.startswith('benchmark.py') for n in names) == 2  # fp32 and bf16
    assert sorted(p.name for p in out.iterdir()) == [
        'gpu_check.log', 'gpu_check_details.tar.gz', 'summary.md']
    assert '| parity | True |' in (out / 'summary.md').read_text()
    # benchmark_scan.py's default (a fresh worker process per backend) timed each backend
    scan = json.loads((tmp_path / 'detail' / 'benchmark_scan.json').read_text())
    assert {r['impl'] for r in scan['rows']} == {'torch', 'cpp'}
    for row in scan['rows']:
        assert row['fwd_s'] > 0 and row['train_s'] > 0 and row['fwd_err'] < 1e-5, row
    # a re-run into the same folders, its measuring steps skipped (the budget spent): the
    # first run's files move aside, and its summary does not report them as this run's
    first_parity = (tmp_path / 'detail' / 'parity.json').read_bytes()
    out, log = _run(tmp_path, GPU_CHECK_BUDGET='0')
    assert 'summary against the targets: exit 2' in log, log  # nothing of its own to sum up
    for folder in (tmp_path / 'detail', out):
        previous = [p for p in folder.iterdir() if p.name.startswith('previous-')]
        assert len(previous) == 1, list(folder.iterdir())
        assert (previous[0] / 'summary.md').is_file()
    detail_previous = next((tmp_path / 'detail').glob('previous-*'))
    assert (detail_previous / 'parity.json').read_bytes() == first_parity
    assert not (tmp_path / 'detail' / 'parity.json').exists()
    assert (out / 'gpu_check.log').read_text().count('=== done in') == 2  # appended to
    with tarfile.open(out / 'gpu_check_details.tar.gz') as tar:  # this run's files only
        assert not [n for n in tar.getnames() if 'previous-' in n]


def test_the_tools_may_replace_the_scripts_own_files():
    """The tools refuse an existing output file unless --force (a re-run into the same $OUT
    would stop at every step): each --json of the script is its own, and replaced."""
    text = SCRIPT.read_text().replace('\\\n', ' ')
    calls = re.findall(r'--json ("[^"]+") (\S+)', text)
    assert len(calls) == 4, calls  # parity, benchmark_scan, benchmark.py, the sweep
    assert all(after == '--force' for _, after in calls), calls
    assert re.search(r'gpu_check_summary\.py\s+"\$DETAIL" --force', text)


def test_spent_budget_skips_steps_and_still_reports(tmp_path):
    """GPU_CHECK_BUDGET bounds the run (the device tool stops a command after 600 s): with
    nothing left every measuring step is skipped, and the summary and archive still come."""
    out, log = _run(tmp_path, GPU_CHECK_BUDGET='0')
    skipped = re.findall(r'^=== (.+): skipped, the 0s budget is spent', log, re.M)
    assert 'environment' in skipped and len(skipped) >= 4, log
    assert 'summary against the targets: exit 2' in log  # it ran: no results to summarise
    assert (out / 'gpu_check_details.tar.gz').is_file() and '=== done in' in log
