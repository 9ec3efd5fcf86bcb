import io
import re

import pytest

from mmmt.utils.progress import ProgressBar, track_progress


class _Terminal(io.StringIO):

    def isatty(self):
        return True


def _square(x):
    return x * x


def _done_counts(text):
    return [int(m) for m in re.findall(r'^count: (\d+)/\d+ ', text, flags=re.M)]


def test_a_log_file_gets_a_line_per_tenth_and_no_carriage_returns():
    out = io.StringIO()
    bar = ProgressBar(25, file=out, description='count')
    for _ in range(25):
        bar.update()
    bar.finish()
    text = out.getvalue()
    assert '\r' not in text
    # the first count at or past each tenth of 25, the last one always
    assert _done_counts(text) == [3, 5, 8, 10, 13, 15, 18, 20, 23, 25]
    assert text.splitlines()[-1].startswith('count: 25/25 (100%), elapsed ')
    assert text.splitlines()[-1].endswith('ETA 0s')


def test_fewer_tasks_than_steps_and_big_updates():
    out = io.StringIO()
    bar = ProgressBar(3, file=out, description='count')
    for _ in range(3):
        bar.update()
    assert _done_counts(out.getvalue()) == [1, 2, 3]
    out = io.StringIO()
    bar = ProgressBar(100, file=out, description='count', steps=4)
    for n in (10, 30, 1, 59):  # 10, 40, 41, 100: the 25% and 50% marks are passed at once
        bar.update(n)
    assert _done_counts(out.getvalue()) == [40, 100]


def test_a_terminal_gets_mmengines_redrawn_bar():
    out = _Terminal()
    bar = ProgressBar(4, file=out, description='count')
    for _ in range(4):
        bar.update()
    bar.finish()
    text = out.getvalue()
    assert text.count('\r') == 4 and '4/4' in text and text.endswith('\n')
    assert 'count:' not in text


@pytest.mark.parametrize('nproc', [1, 2])
def test_track_progress_keeps_order(nproc):
    out = io.StringIO()
    assert track_progress(_square, range(7), nproc=nproc, file=out,
                          description='count') == [0, 1, 4, 9, 16, 25, 36]
    assert _done_counts(out.getvalue()) == list(range(1, 8))
