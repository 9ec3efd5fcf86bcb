import pytest
from _scan_testlib import BACKENDS, require_backend


@pytest.fixture(params=BACKENDS)
def backend(request, monkeypatch):
    """Runs the test once per scan backend, forced through ``MMMT_SCAN_BACKEND``."""
    require_backend(request.param)
    monkeypatch.setenv('MMMT_SCAN_BACKEND', request.param)
    return request.param
