"""What the Triton scan kernels compile to for sm_90 (no GPU needed): the facts their launch
sizes were chosen by (mmmt/ops/selective_scan_triton.py, docs/benchmarks_gpu.md); and that the
variants a run can select compile (``--variants``)."""
import json

import pytest

from tests.tool_loader import load_tool

triton = pytest.importorskip('triton')


@pytest.fixture(scope='module')
def tool():
    from triton.runtime.jit import JITFunction
    if not isinstance(triton.language.sum, JITFunction):
        pytest.skip('Triton was imported with TRITON_INTERPRET=1: no compiling in this process')
    return load_tool('tools', 'analysis_tools', 'triton_scan_sass')


def test_shipped_kernels_at_swin_l_stage_3(tool, tmp_path, capsys):
    out = tmp_path / 'sass.json'
    rows = tool.main(['--shapes', 'swin-l stage 3', '--json', str(out)])
    assert json.loads(out.read_text()) == rows
    got = {(r['kernel'], r['direction']): r for r in rows}
    assert set(got) == {(k, d) for k in ('runs', 'statewise', 'tile')
                        for d in ('forward', 'backward')}
    for r in rows:
        # in registers: a spill puts local-memory traffic in every chunk; the runs backward
        # holds its tiles' values across the state loop at ptxas' cap of 255 registers (it
        # spilled 8 bytes before its softplus got cheaper), so a few bytes are tolerated there
        limit = 32 if (r['kernel'], r['direction']) == ('runs', 'backward') else 0
        assert r['spill_bytes'] <= limit and r['registers'] <= 255, r
        assert r['programs_per_sm'] >= 1
    # the state-by-state pairs loop over states inside their chunk loop; tile has one loop;
    # the runs kernels take their last chunk (the only one with time masks) outside the
    # chunk loop, so its state loop comes once more
    for d in ('forward', 'backward'):
        assert len(got['runs', d]['loops']) == 3
    assert len(got['statewise', 'forward']['loops']) == 2
    assert len(got['tile', 'forward']['loops']) == 1
    # why runs is the default: fewer issued instructions per state update, both passes
    # (statewise's 28.7 / 90.2 forward / backward, runs' 12.0 / 42.9 when this was written)
    assert (got['runs', 'forward']['instructions_per_update'] <
            0.6 * got['statewise', 'forward']['instructions_per_update'])
    assert (got['runs', 'backward']['instructions_per_update'] <
            0.9 * got['statewise', 'backward']['instructions_per_update'])
    for d in ('forward', 'backward'):
        assert (got['statewise', d]['instructions_per_update'] <
                0.6 * got['tile', d]['instructions_per_update'])
    out = capsys.readouterr().out
    assert '| swin-l stage 3 | runs | forward | 4 x 128, 1 |' in out
    assert '| swin-l stage 3 | statewise | forward | 8 x 128, 4 |' in out


def test_other_launch_sizes_and_bad_arguments(tool):
    rows = tool.main(['--shapes', 'swin-l stage 1', '--kernels', 'tile', '--config',
                      'statewise:64:1024:4'])
    assert [(r['kernel'], r['channels_per_program'], r['steps_per_chunk']) for r in rows] == [
        ('tile', 2, 64), ('tile', 2, 64), ('statewise', 16, 64), ('statewise', 16, 64)]
    for argv in (['--kernels', 'serial'], ['--config', 'statewise:64'],
                 ['--config', 'serial:64:1024:4'], ['--config', 'statewise:64:1000:4'],
                 ['--shapes', 'stage 9']):
        with pytest.raises(SystemExit):
            tool.main(argv)


def test_prefetch_loop_counted_per_state(tool, capsys):
    """``runs`` with ``prefetch`` scans two states per pass of its state loop (plus one pass
    of a remainder loop for an odd N), and the count per update says so: the same work per
    state as without (11.7 against 12.0 when this was written), not twice; no spills in
    its 254 registers. The backward pass is the same kernel either way."""
    rows = tool.main(['--shapes', 'swin-l stage 3', '--kernels', 'runs', '--config',
                      'runs:128:512:1:prefetch'])
    got = {(r['prefetch'], r['direction']): r for r in rows}
    plain, ahead = got[False, 'forward'], got[True, 'forward']
    assert ahead['spill_bytes'] == 0 and ahead['registers'] <= 255
    # the chunk loop holding both state loops, and the last chunk's two after it
    assert len(ahead['loops']) == 5 and len(plain['loops']) == 3
    ratio = ahead['instructions_per_update'] / plain['instructions_per_update']
    assert 0.9 < ratio < 1.05
    assert (got[True, 'backward']['instructions_per_update'] ==
            got[False, 'backward']['instructions_per_update'])
    assert '| swin-l stage 3 | runs | forward | 4 x 128, 1, prefetch |' in capsys.readouterr().out

# -- --variants: the kernels through Triton's real compiler in the variants a run selects that the
# interpreter tests cannot show and tests/test_ops/test_selective_scan_triton.py does not
# compile: sm_80 besides sm_90, float16 and float64 tensors, the integer arguments that Triton
# turns into constants (N, groups, chunks, channels of 1), one-run chunks, N = 64. The tool's
# --variants compiles the whole set (minutes).


def _shipped():
    from mmmt.ops import selective_scan_triton as triton_scan
    return [(k, triton_scan.CONFIGS[k]) for k in sorted(triton_scan.CONFIGS)]


def test_variants_take_the_extremes(tool):
    """What the variants are: the bare one has one run per channel for ``runs`` (T = 1), N,
    the groups and the chunks are 1 (Triton constants), channels not a multiple of the block;
    the widest one N = 64 (the tile kernels' state block too)."""
    import triton.language as tl
    got = {(k, name): (consts, ints) for k, cfg in _shipped()
           for name, consts, ints in tool.variants(k, cfg, 'fp32', True)}
    consts, ints = got['runs', 'bare']
    assert consts['RUN'] == consts['BLOCK_L'] == 16 and not consts['EVEN_D']
    assert {k for k, v in ints.items() if v == 1} == {'N', 'NCHUNK', 'GB', 'GC'}
    assert consts['DETERMINISTIC'] and not consts['FAST_EXP'] and not consts['HAS_Z']
    assert got['tile', 'widest'][0]['BLOCK_N'] == got['tile', 'widest'][1]['N'] == 64
    assert got['runs', 'full'][0]['FAST_EXP'] and got['runs', 'prefetch'][0]['PREFETCH']
    assert ('statewise', 'prefetch') not in got
    # float64: no ex2.approx.ftz (float32 only), the state in float64
    f64 = dict((name, c) for name, c, _ in tool.variants('runs', _shipped()[0][1], 'fp64', True))
    assert not f64['full']['FAST_EXP'] and f64['full']['ACC'] == tl.float64


def test_small_variants_compile_for_sm_80(tool):
    """Both kernels of each pair, bare, for sm_80 with float64 tensors and with float16
    activations and parameters (``model.half()``): every constexpr branch off, the
    specialised constants, the deterministic backward (its compile takes seconds; the whole
    set, with every option on, is the tool's ``--variants``)."""
    rows = tool.compile_variants(_shipped(), [80], ['float64', 'float16-params'], ['bare'])
    assert len(rows) == 2 * 2 * 3
    assert {(r['kernel'], r['function']) for r in rows} == {
        ('runs', 'scan_fwd_runs_kernel'), ('runs', 'scan_bwd_runs_kernel'),
        ('statewise', 'scan_fwd_statewise_kernel'), ('statewise', 'scan_bwd_statewise_kernel'),
        ('tile', 'scan_fwd_kernel'), ('tile', 'scan_bwd_kernel')}
    assert [r for r in rows if 'error' in r] == []


def test_widest_variants_compile_for_sm_90_under_amp(tool):
    """N = 64, mixed groups, inference, float16 activations and float32 parameters (AMP)."""
    rows = tool.compile_variants(_shipped(), [90], ['float16'], ['widest'])
    assert len(rows) == 6 and [r for r in rows if 'error' in r] == []


def test_failures_are_listed_and_set_the_exit_status(tool, monkeypatch, capsys):
    def compile_kernel(fn, *args, **kwargs):
        if fn.__name__ == 'scan_bwd_kernel':
            raise RuntimeError('PTXAS error: Internal Triton PTX codegen error\nptxas fatal')
    monkeypatch.setattr(tool, 'compile_kernel', compile_kernel)
    with pytest.raises(SystemExit) as e:
        tool.main(['--variants', '--kernels', 'tile', '--arch', '80', '--dtypes', 'float32'])
    assert e.value.code == 1
    out = capsys.readouterr().out
    assert ('FAILED 80 float32 tile (64:2048:8) bare scan_bwd_kernel: RuntimeError: PTXAS '
            'error' in out)
    assert '3 of 6 kernels compiled' in out
    for argv in (['--arch', 'sm90'], ['--arch', '80', '90'], ['--dtypes', 'float64']):
        with pytest.raises(SystemExit):
            tool.main(argv)
