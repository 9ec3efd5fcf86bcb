"""The Triton scan kernels through Triton's real compiler (no GPU needed) in the variants a run
selects that the interpreter tests cannot show and tests/test_ops/test_selective_scan_triton.py
does not compile: sm_80 besides sm_90, float16 and float64 tensors, the integer arguments that
Triton turns into constants (N, groups, chunks, channels of 1), one-run chunks, N = 64.
``tools/analysis_tools/triton_scan_sass.py --variants`` compiles the whole set (minutes)."""
import pytest

from tests.tool_loader import load_tool

triton = pytest.importorskip('triton')


@pytest.fixture(scope='module')
def tool():
    from triton.runtime.jit import JITFunction
    if not isinstance(triton.language.sum, JITFunction):
        pytest.skip('Triton was imported with TRITON_INTERPRET=1: no compiling in this process')
    return load_tool('tools', 'analysis_tools', 'triton_scan_sass')


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
