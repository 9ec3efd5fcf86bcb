import sys
import types

import pytest
from _scan_testlib import BACKENDS, require_backend


@pytest.fixture(params=BACKENDS)
def backend(request, monkeypatch):
    """Runs the test once per scan backend, forced through ``MMMT_SCAN_BACKEND``."""
    require_backend(request.param)
    monkeypatch.setenv('MMMT_SCAN_BACKEND', request.param)
    return request.param


def _scan_in_log_steps(self, input):
    """Inclusive scan along ``self.axis`` in log2(length) steps (Hillis-Steele, as a GPU
    scans): step k combines every element with the one 2^k before it, on whole arrays."""
    import numpy as np
    arrays = [np.moveaxis(arg.handle.data, self.axis, 0).copy() for arg in input]
    step = 1
    while step < arrays[0].shape[0]:
        # whole (power-of-2) shapes: the first `step` rows combine with a stand-in and are
        # then kept as they were
        earlier = [self.to_tensor(np.concatenate([a[:step], a[:-step]]), arg.dtype)
                   for a, arg in zip(arrays, input)]
        later = [self.to_tensor(a, arg.dtype) for a, arg in zip(arrays, input)]
        res = self.combine_fn.fn(*earlier, *later)
        res = res if isinstance(res, tuple) else (res, )
        arrays = [np.concatenate([a[:step], r.handle.data[step:]])
                  for a, r in zip(arrays, res)]
        step *= 2
    return [self.to_tensor(np.moveaxis(a, 0, self.axis), arg.dtype)
            for a, arg in zip(arrays, input)]


def _device_call_patching_once(patched_modules):
    """``InterpretedFunction.__call__`` (a ``@triton.jit`` helper called from a kernel) that
    patches ``triton.language`` once per test and helper module instead of at every call.

    Triton 3.8's interpreter re-patches the language at each helper call: a scan of every
    member of ``triton.language`` (``inspect.getmembers``) that was more than half of the
    scan tests' time, since the kernels call small helpers inside their loops. The repeat is
    redundant: each launch patches the kernel module's namespaces itself and restores them
    afterwards, and a helper call's patches are never undone before the fixture's teardown.
    """
    from triton.runtime import interpreter

    def call(self, *args, **kwargs):
        module = self.fn.__module__
        if module not in patched_modules:
            patched_modules.add(module)
            interpreter._patch_lang(self.fn)
        fn = self.rewrite()
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            raise interpreter.InterpreterError(repr(e)) from e
    return call


def _language_namespaces():
    import triton.language as tl
    mods = [m for name, m in sorted(sys.modules.items()) if name.startswith('triton.language')]
    return mods + [tl.core.tensor, tl.core.dtype]


@pytest.fixture
def triton_interpreter(monkeypatch):
    """Triton's interpreter (``TRITON_INTERPRET=1``) for this test only, so the Triton scan runs
    on CPU tensors.

    The interpreter's generic ``tl.associative_scan`` calls the combine function once per
    tensor element (minutes for the scan tests); a scan in log2(length) steps that calls it
    on whole arrays, as a GPU combines elements in a tree, replaces it. The kernels compute
    the same thing, up to the rounding of a different association order. The interpreter's
    helper-function calls patch ``triton.language`` without undoing it, which would break
    compiled kernels later in the process: everything it may touch is put back afterwards.
    """
    pytest.importorskip('triton')
    from triton.runtime import interpreter

    from mmmt.ops import selective_scan_triton as triton_scan
    saved = [(ns, dict(vars(ns))) for ns in _language_namespaces()]
    monkeypatch.setattr(interpreter.ScanOps, 'generic_scan', _scan_in_log_steps)
    monkeypatch.setattr(interpreter.InterpretedFunction, '__call__',
                        _device_call_patching_once(set()))
    monkeypatch.setenv('TRITON_INTERPRET', '1')
    monkeypatch.setattr(triton_scan, 'failure', None)
    yield
    for ns, attrs in saved:
        for key in set(vars(ns)) - set(attrs):
            # submodules imported meanwhile stay bound: they are in sys.modules, and a parent
            # without them breaks later imports (torch._inductor reads tl.extra.libdevice)
            if not isinstance(vars(ns)[key], types.ModuleType):
                delattr(ns, key)
        for key, value in attrs.items():
            if vars(ns).get(key, object()) is not value and key not in ('__dict__',
                                                                        '__weakref__'):
                setattr(ns, key, value)
