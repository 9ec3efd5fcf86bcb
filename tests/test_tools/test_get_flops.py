"""tools/analysis_tools/get_flops.py: parameter and FLOP counting, the scan counted explicitly."""
import gc
import os.path as osp

import pytest
import torch

from mmmt.models.layers import SS2D
from tests.tool_loader import load_tool

ROOT = osp.dirname(osp.dirname(osp.dirname(__file__)))
TINY = osp.join(ROOT, 'configs', 'demo', 'mtmamba-tiny_synthetic-nyud.py')


@pytest.fixture(scope='module')
def gf():
    return load_tool('tools', 'analysis_tools', 'get_flops')


@pytest.fixture(scope='module')
def tiny_model(gf):
    return gf.build_model(TINY)


def test_scan_flop_rule(gf):
    assert gf.scan_flops(2, 8, 10, 16) == 9 * 2 * 8 * 10 * 16 + 2 * 8 * 10
    assert gf.scan_flops(1, 4, 5, 16, with_d=False) == 9 * 4 * 5 * 16


def test_paper_style_truncation(gf):
    assert gf.paper_millions(307_999_137) == '307.99'
    assert gf.paper_millions(252_518_817) == '252.51'
    assert gf.paper_millions(1_000_000) == '1.00'


def test_flops_totals_are_truncated_as_the_docs_quote_them(gf):
    # MTMamba++ NYUD (no reference resize): the docs' 523.90 G; rounding printed 523.91
    params = dict(backbone=195_201_204, total=315_021_249)
    report = gf.format_report(params, dict(backbone=202_820_000_000, total=523_906_427_520),
                              scan=75_430_000_000)
    assert 'FLOPs: 523.90 G (523,906,427,520;' in report
    assert [line.split()[-1] for line in report.splitlines()
            if line.startswith(('backbone', 'total'))] == ['202.820', '523.906']
    # MTMamba NYUD: 540.768 G counted, 540.815 G with the reference's resize
    report = gf.format_report(dict(total=307_999_137), dict(total=540_768_638_304),
                              resize=46_448_640)
    assert 'FLOPs: 540.76 G' in report and 'FLOPs as the paper counts them: 540.81 G' in report


def test_param_groups_partition_the_model(gf, tiny_model):
    params = gf.count_params(tiny_model)
    assert list(params) == ['backbone', 'decode_head.stages.0', 'decode_head.stages.1',
                            'decode_head.stages.2', 'decode_head.heads', 'total']
    assert params['total'] == sum(p.numel() for p in tiny_model.parameters())
    assert sum(v for k, v in params.items() if k != 'total') == params['total']
    assert params['backbone'] == sum(p.numel() for p in tiny_model.backbone.parameters())


def test_flops_count_the_scan_and_partition_the_total(gf, tiny_model):
    # the scan FLOPs expected from the shapes every SS2D sees in a forward pass
    expected_scan = []

    def hook(module, args, output):
        batch, height, width, _ = output.shape
        expected_scan.append(gf.scan_flops(batch, 4 * module.d_inner, height * width,
                                           module.d_state))

    handles = [m.register_forward_hook(hook) for m in tiny_model.modules()
               if isinstance(m, SS2D)]
    with torch.no_grad():
        tiny_model(torch.zeros(1, 3, 64, 96), mode='tensor')
    for h in handles:
        h.remove()
    assert len(expected_scan) == 3 * (4 * 1 + 4 + 1)  # 1 STM per task, CTM: 4 + shared

    flops, scan = gf.count_flops(tiny_model, (64, 96))
    assert scan == sum(expected_scan)
    assert sum(v for k, v in flops.items() if k != 'total') == flops['total']
    assert flops['total'] > scan > 0
    # a known layer: the semseg 1x1 classifier, 32 -> 40 channels at 64x96, one MAC per FLOP
    assert flops['decode_head.heads'] >= 32 * 40 * 64 * 96


def test_cli_prints_table(gf, capsys):
    gf.main([TINY, '--shape', '64', '96'])
    out = capsys.readouterr().out
    assert 'Input shape: (1, 3, 64, 96)' in out
    for row in ('backbone', 'decode_head.stages.2', 'decode_head.heads', 'total'):
        assert row in out
    assert 'FLOPs:' in out and 'selective scan' in out
    assert 'FLOPs as the paper counts them' in out
    # a size the encoder cannot take: one line with the nearest padded size, before building
    with pytest.raises(SystemExit, match=r'--shape 100 130: height and width must be positive '
                       r'multiples of 32, e.g. 128 160'):
        gf.main([TINY, '--shape', '100', '130'])
    with pytest.raises(SystemExit, match=r'--shape 0 -40: .* e\.g\. 32 32 '):  # was 'e.g. 0 -32'
        gf.main([TINY, '--shape', '0', '-40'])


def test_reference_resize_is_4_flops_per_output_value(gf, tiny_model):
    assert gf.reference_resize_flops(tiny_model, (64, 96)) == 4 * 64 * 96 * (40 + 1 + 3 + 1)


def test_swin_l_mtmamba_prints_the_papers_parameter_count(gf, capsys):
    gf.main([osp.join(ROOT, 'configs', 'mtmamba_swin-l_nyud.py'), '--params-only'])
    out = capsys.readouterr().out
    assert 'Params: 307.99 M (307,999,137;' in out
    assert 'FLOPs' not in out
    gc.collect()
