"""Smoke test of the synthetic-generator benchmark (the figure, not a limit)."""
import json

import pytest

from mmmt.utils import UserInputError
from tests.tool_loader import load_tool


def test_prints_one_json_record(capsys):
    tool = load_tool('tools', 'analysis_tools', 'benchmark_synthetic')
    assert tool.main(['nyud', '--train', '1', '--val', '1', '--size', '24', '32',
                      '--repeat', '1']) == 0
    record = json.loads(capsys.readouterr().out)
    assert record['images'] == 2 and record['size'] == [24, 32]
    assert record['best_s'] > 0 and record['per_image_s'] > 0
    with pytest.raises(UserInputError, match='--repeat and the number of images must be >= 1'):
        tool.main(['nyud', '--repeat', '0'])
