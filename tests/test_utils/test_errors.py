"""The hint of mmmt's "unknown name" messages (:func:`mmmt.utils.errors.did_you_mean`)."""
from mmmt.utils.errors import did_you_mean, name_some


def test_did_you_mean_names_the_closest_option():
    assert did_you_mean('semsge', ['depth', 'semseg', 'normals']) == "did you mean 'semseg'?"


def test_did_you_mean_is_empty_when_nothing_is_close():
    assert did_you_mean('xyz', ['depth', 'semseg']) == ''
    assert did_you_mean('semseg', []) == ''


def test_did_you_mean_lists_up_to_n_options_best_first():
    options = ['MTMambaHead', 'MTMambaHeadPP', 'SegHead']
    assert did_you_mean('MTMambaHeadd', options, n=2) == \
        "did you mean 'MTMambaHead' or 'MTMambaHeadPP'?"
    assert did_you_mean('MTMambaHeadd', options) == "did you mean 'MTMambaHead'?"


def test_did_you_mean_cutoff_and_non_string_names():
    # 'lrr' vs 'lr' scores 0.8: kept at the default cutoff, dropped above it
    assert did_you_mean('lrr', ['lr', 'momentum']) == "did you mean 'lr'?"
    assert did_you_mean('lrr', ['lr', 'momentum'], cutoff=0.9) == ''
    assert did_you_mean(12, ['123', 'abc']) == "did you mean '123'?"


def test_name_some_counts_what_it_leaves_out():
    assert name_some(['a', 'b']) == 'a, b'
    assert name_some(['a', 'b', 'c', 'd'], 2) == 'a, b ... (4 in all)'
