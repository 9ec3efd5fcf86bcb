"""tools/analysis_tools/gpu_check.sh: what its one GPU run will try, checked here, where a
typo would otherwise cost a lent GPU's time."""
import re
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
