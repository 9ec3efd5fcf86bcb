import collections
import os
import zipfile

import numpy as np
import pytest
import torch
from mmengine.runner.checkpoint import CheckpointLoader

from mmmt.utils import TRUST_ENV, UntrustedCheckpointError, load_checkpoint_file


class NotAllowed:
    pass


def test_mmengine_routes_local_and_http_files_through_the_safe_loaders():
    # mmengine logs the loader's name after 'load_from_' as the backend
    assert CheckpointLoader._get_checkpoint_loader('work/iter_1.pth').__name__ == \
        'load_from_local_safe'
    assert CheckpointLoader._get_checkpoint_loader('https://x/y.pth').__name__ == \
        'load_from_http_safe'


def test_allow_listed_content_loads_and_anything_else_needs_trust(tmp_path, monkeypatch):
    monkeypatch.delenv(TRUST_ENV, raising=False)
    ok = tmp_path / 'ok.pth'
    torch.save(dict(state_dict=collections.OrderedDict(w=torch.ones(2)),
                    meta=dict(seed=np.int64(3), hist=np.zeros(2))), ok)
    loaded = CheckpointLoader.load_checkpoint(str(ok))
    assert torch.equal(loaded['state_dict']['w'], torch.ones(2))
    assert loaded['meta']['seed'] == 3
    bad = tmp_path / 'bad.pth'
    torch.save(dict(state_dict={}, obj=NotAllowed()), bad)
    with pytest.raises(UntrustedCheckpointError, match='bad.pth'):
        load_checkpoint_file(str(bad))
    monkeypatch.setenv(TRUST_ENV, '1')
    assert isinstance(load_checkpoint_file(str(bad))['obj'], NotAllowed)


def small_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))


def test_weights_that_fit_are_loaded_strictly():
    from mmmt.utils import load_model_weights
    source, target = small_model(), torch.nn.Sequential(torch.nn.Linear(3, 4),
                                                        torch.nn.LayerNorm(4))
    ddp_names = {f'module.{k}': v for k, v in source.state_dict().items()}  # saved from DDP
    meta = load_model_weights(target, dict(state_dict=ddp_names, meta=dict(iter=3)), 'a.pth')
    assert meta == dict(iter=3)
    assert torch.equal(target[0].weight, source[0].weight)


def test_mismatches_are_named():
    from mmmt.utils import CheckpointMismatchError, check_model_weights
    model = small_model()
    state = dict(model.state_dict())
    state.pop('1.bias')
    state['2.weight'] = torch.zeros(1)
    state['0.weight'] = torch.zeros(5, 3)
    with pytest.raises(CheckpointMismatchError) as info:
        check_model_weights(model, dict(state_dict=state), 'b.pth')
    message = str(info.value)
    assert message.startswith('b.pth does not fit the model of this config')
    assert '1 weights of the model are not in it (1.bias)' in message
    assert '1 of its weights are not in the model (2.weight)' in message
    assert '0.weight (5, 3) vs (4, 3)' in message
    assert 'another dataset' not in message  # names differ too: not just other heads
    # only shapes differ: probably another dataset's heads
    shapes_only = dict(model.state_dict(), **{'0.weight': torch.zeros(5, 3)})
    with pytest.raises(CheckpointMismatchError, match='another dataset'):
        check_model_weights(model, shapes_only, 'c.pth')


def test_reference_checkpoints_point_to_the_converter():
    from mmmt.utils import CheckpointMismatchError, check_model_weights
    reference = {'model': {'module.decoder.expand_layers.semseg_0.expand.weight': torch.zeros(1)}}
    with pytest.raises(CheckpointMismatchError, match='mtmamba2mmmt.py'):
        check_model_weights(small_model(), reference, 'checkpoint.pth.tar')
    # its nested 'model' dict alone gives it away, whatever the names in it
    with pytest.raises(CheckpointMismatchError, match='mtmamba2mmmt.py'):
        check_model_weights(small_model(), {'model': {'w': torch.zeros(1)}}, 'x.pth.tar')


def test_a_checkpoint_that_is_no_dict_is_named():
    from mmmt.utils import CheckpointMismatchError, check_model_weights
    with pytest.raises(CheckpointMismatchError,
                       match=r'^l\.pth: expected a checkpoint dict, got list$'):
        check_model_weights(small_model(), [torch.zeros(1)], 'l.pth')


def test_non_finite_tensors_counts_nan_and_inf_of_every_float_type():
    from mmmt.utils import non_finite_tensors
    nan, inf = float('nan'), float('inf')
    state = {'half': torch.tensor([1., nan, inf], dtype=torch.float16),
             'double': torch.tensor([-inf], dtype=torch.float64),
             'bf16': torch.tensor([nan, 0.], dtype=torch.bfloat16), 'fine': torch.ones(2),
             'ints': torch.arange(3), 'text': 'nan'}
    assert non_finite_tensors(state) == ['half (2 of 3)', 'double (1 of 1)', 'bf16 (1 of 2)']


# ----------------------------------------------------------------- crafted and damaged files
from tests.checkpoint_payloads import OPCODE_PAYLOADS, PAYLOADS, write_payload  # noqa: E402


@pytest.mark.parametrize('kind', PAYLOADS)
def test_getattr_payloads_run_nothing(tmp_path, monkeypatch, kind):
    monkeypatch.delenv(TRUST_ENV, raising=False)
    marker = tmp_path / 'marker'
    path = write_payload(kind, tmp_path / 'x.pth', marker)
    with pytest.raises(UntrustedCheckpointError, match=r'x\.pth: refused getattr\('):
        load_checkpoint_file(path)
    with pytest.raises(UntrustedCheckpointError):
        CheckpointLoader.load_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize('kind', PAYLOADS)
def test_payloads_are_real_with_the_builtin_getattr(tmp_path, monkeypatch, kind):
    """The fixtures do run code under an allow-list holding ``getattr`` itself (mmmt's
    before this fix); each repairs what it touched, so this process is unharmed."""
    import builtins

    from mmmt.utils import checkpoint
    wide = [getattr if isinstance(g, tuple) and g[1] == 'builtins.getattr' else g
            for g in checkpoint.checkpoint_allowlist()]
    monkeypatch.setattr(checkpoint, 'checkpoint_allowlist', lambda: wide)
    marker = tmp_path / 'marker'
    load_checkpoint_file(write_payload(kind, tmp_path / 'x.pth', marker))
    assert marker.exists()
    assert torch._utils.torch is torch and not hasattr(builtins, 'update')


@pytest.mark.parametrize('kind', OPCODE_PAYLOADS)
def test_refused_opcodes_name_the_file_and_the_opt_in(tmp_path, monkeypatch, kind):
    """Each of torch's refusals of an opcode (not only of a GLOBAL) is an untrusted file, not a
    damaged one: the message says how to trust it."""
    monkeypatch.delenv(TRUST_ENV, raising=False)
    path = write_payload(kind, tmp_path / f'{kind}.pth')
    with pytest.raises(UntrustedCheckpointError) as info:
        load_checkpoint_file(path)
    message = str(info.value)
    assert message.startswith(f'{path}: refused to unpickle objects that are not tensors')
    assert '--trust-checkpoint' in message and f'{TRUST_ENV}=1' in message


def test_bytes_is_allowed_only_for_an_empty_bytes_object(tmp_path, monkeypatch):
    """``bytes(n)`` would allocate n bytes on the file's say."""
    monkeypatch.delenv(TRUST_ENV, raising=False)
    path = tmp_path / 'bytes.pth'
    torch.save(dict(state_dict={}, x=Reduce(bytes, (5, ))), path)
    with pytest.raises(UntrustedCheckpointError, match=r'bytes\.pth: refused bytes\(5,\): '):
        load_checkpoint_file(str(path))
    torch.save(dict(state_dict={}, x=Reduce(bytes, ())), path)
    assert load_checkpoint_file(str(path))['x'] == b''


class Reduce:
    """Pickles as ``func(*args)``, optionally followed by ``__setstate__(state)``."""

    def __init__(self, func, args, state=None):
        self.value = (func, args) if state is None else (func, args, state)

    def __reduce__(self):
        return self.value


def test_history_buffer_statistics_cannot_be_rebound_by_a_file(tmp_path, monkeypatch):
    """``HistoryBuffer.__setstate__`` adds the pickled ``statistics_methods`` to the table that
    every HistoryBuffer of the process uses, and a state may give one buffer a table of its
    own: either made every later ``mean`` a ``max`` (``getattr(HistoryBuffer, 'max')`` is
    allowed), silently."""
    from mmengine.logging.history_buffer import HistoryBuffer
    monkeypatch.delenv(TRUST_ENV, raising=False)
    table = dict(HistoryBuffer._statistics_methods)
    history = dict(max_length=10, _log_history=np.array([1., 3.]),
                   _count_history=np.array([1, 1]))
    for name, key in (('shared', 'statistics_methods'), ('own', '_statistics_methods')):
        path = tmp_path / f'{name}.pth'
        state = dict(history, **{key: dict(mean=HistoryBuffer.max, other=None)})
        torch.save(dict(state_dict={}, x=Reduce(HistoryBuffer, (), state)), path)
        with pytest.raises(UntrustedCheckpointError,
                           match=rf'{name}\.pth: refused a HistoryBuffer .*statistics'):
            load_checkpoint_file(str(path))
        assert HistoryBuffer._statistics_methods == table
        buffer = HistoryBuffer([1., 3.], [1, 1])
        assert buffer.statistics('mean') == 2.0 and buffer.max() == 3.0
    # genuine buffers still load, in a process that made none before or did
    genuine = HistoryBuffer([1., 3.], [1, 1])
    torch.save(dict(state_dict={}, x=genuine), tmp_path / 'genuine.pth')
    monkeypatch.setattr(HistoryBuffer, '_statistics_methods', {})
    assert load_checkpoint_file(str(tmp_path / 'genuine.pth'))['x'].statistics('mean') == 2.0
    assert HistoryBuffer._statistics_methods == {
        name: getattr(HistoryBuffer, name) for name in ('min', 'max', 'current', 'mean')}


def test_narrow_getattr_allows_only_history_buffer_statistics():
    from mmengine.logging.history_buffer import HistoryBuffer

    from mmmt.utils import checkpoint_getattr
    assert checkpoint_getattr(HistoryBuffer, 'mean') is HistoryBuffer.mean
    for obj, name in ((HistoryBuffer, '__init__'), (HistoryBuffer.min, '__globals__'),
                      (checkpoint_getattr, '__self__'), (np.ndarray, 'min'), ({}, 'min')):
        with pytest.raises(UntrustedCheckpointError, match='refused getattr'):
            checkpoint_getattr(obj, name)
    with pytest.raises(UntrustedCheckpointError):  # a default value is never needed
        checkpoint_getattr(HistoryBuffer, 'min', None)


def test_genuine_message_hub_and_swin_checkpoints_load(tmp_path, monkeypatch):
    """What mmengine saves for --resume (HistoryBuffer statistics are pickled as
    ``getattr(HistoryBuffer, 'min')``) and an mmpretrain Swin state dict."""
    from mmengine.logging import MessageHub
    from mmpretrain.models import SwinTransformer
    monkeypatch.delenv(TRUST_ENV, raising=False)
    hub = MessageHub.get_instance('mmmt_test_checkpoint_hub')
    hub.update_scalar('train/loss', 0.5)
    hub.update_scalar('train/loss', np.float32(1.5))
    hub.update_info('iter', 3)
    swin = SwinTransformer(arch=dict(embed_dims=8, depths=[1, 1, 1, 1],
                                     num_heads=[1, 1, 1, 1]), window_size=2)
    path = tmp_path / 'iter_3.pth'
    torch.save(dict(meta=dict(iter=3, seed=np.int64(0)), message_hub=hub.state_dict(),
                    state_dict={f'backbone.{k}': v for k, v in swin.state_dict().items()}),
               path)
    loaded = load_checkpoint_file(str(path))
    assert loaded['message_hub']['log_scalars']['train/loss'].mean() == 1.0
    assert loaded['state_dict'].keys() == {f'backbone.{k}' for k in swin.state_dict()}


def _damaged_files(tmp_path):
    good = tmp_path / 'good.pth'
    torch.save(dict(state_dict=dict(w=torch.zeros(1000))), good)
    data = good.read_bytes()
    files = dict(empty=b'', truncated=data[:len(data) // 2], text=b'hello world',
                 random=bytes(np.random.default_rng(0).integers(0, 256, 4096, np.uint8)))
    for name, body in files.items():
        (tmp_path / f'{name}.pth').write_bytes(body)
    return [str(tmp_path / f'{name}.pth') for name in files]


def test_damaged_files_are_named_and_never_answered_with_trust(tmp_path, monkeypatch):
    from mmmt.utils import CorruptCheckpointError
    for trust in ('0', '1'):
        monkeypatch.setenv(TRUST_ENV, trust)
        for path in _damaged_files(tmp_path):
            with pytest.raises(CorruptCheckpointError) as info:
                load_checkpoint_file(path)
            assert str(info.value).startswith(path) and '--trust' not in str(info.value)


def test_damaged_files_say_what_is_wrong(tmp_path, monkeypatch):
    from mmmt.utils import CorruptCheckpointError
    monkeypatch.delenv(TRUST_ENV, raising=False)
    empty, truncated, text, _ = _damaged_files(tmp_path)
    for path, words in (
            (empty, 'is empty (0 bytes), not a checkpoint'),
            (truncated, 'is a truncated or damaged checkpoint ('),
            (text, "is not a PyTorch checkpoint (expected a torch.save zip archive or a pickle; "
             "it starts with b'hell')")):
        with pytest.raises(CorruptCheckpointError) as info:
            load_checkpoint_file(path)
        assert str(info.value).startswith(f'{path} {words}')


def test_an_explicit_trust_argument_overrides_the_environment(tmp_path, monkeypatch):
    bad = tmp_path / 'bad.pth'
    torch.save(dict(state_dict={}, obj=NotAllowed()), bad)
    monkeypatch.setenv(TRUST_ENV, '1')
    with pytest.raises(UntrustedCheckpointError, match=r'bad\.pth: refused to unpickle'):
        load_checkpoint_file(str(bad), trust=False)
    monkeypatch.setenv(TRUST_ENV, '0')
    assert isinstance(load_checkpoint_file(str(bad), trust=True)['obj'], NotAllowed)


def test_a_trusted_files_own_error_is_raised_as_it_is(tmp_path):
    """Its traceback is what helps; it is no damaged file."""
    path = tmp_path / 'fails.pth'
    torch.save(dict(state_dict={}, x=Reduce(int, ('seven', ))), path)
    with pytest.raises(ValueError, match="invalid literal for int") as info:
        load_checkpoint_file(str(path), trust=True)
    assert type(info.value) is ValueError


def _flip_a_weight_byte(src, dst):
    """``src`` (a checkpoint of zeros) with one byte of the tensor data changed."""
    data = bytearray(src.read_bytes())
    data[data.find(b'\x00' * 400) + 200] = 0x41
    dst.write_bytes(bytes(data))


def test_a_flipped_byte_in_the_weights_is_refused_with_trust_or_not(tmp_path, monkeypatch):
    """torch.load does not verify the records' CRC-32: this file loaded as a wrong weight."""
    from mmmt.utils import CorruptCheckpointError
    good = tmp_path / 'good.pth'
    torch.save(dict(state_dict=dict(w=torch.zeros(1000))), good)
    _flip_a_weight_byte(good, tmp_path / 'flipped.pth')
    assert torch.load(tmp_path / 'flipped.pth')['state_dict']['w'].count_nonzero() == 1
    for trust in ('0', '1'):
        monkeypatch.setenv(TRUST_ENV, trust)
        with pytest.raises(CorruptCheckpointError, match=r'flipped\.pth is damaged: its record '
                           r'good/data/0 does not match the checksum stored with it;'):
            load_checkpoint_file(str(tmp_path / 'flipped.pth'))
    assert load_checkpoint_file(str(good))['state_dict']['w'].count_nonzero() == 0


def test_a_file_saved_without_checksums_loads(tmp_path):
    """torch.serialization.set_crc32_options(False) stores CRC 0 for every record."""
    path = tmp_path / 'no_crc.pth'
    torch.serialization.set_crc32_options(False)
    try:
        torch.save(dict(w=torch.arange(5.)), path)
    finally:
        torch.serialization.set_crc32_options(True)
    with zipfile.ZipFile(path) as archive:
        assert {i.CRC for i in archive.infolist() if i.file_size} == {0}
    assert load_checkpoint_file(str(path))['w'].tolist() == [0., 1., 2., 3., 4.]


def test_resume_checkpoint_falls_back_to_the_newest_complete_file(tmp_path):
    from mmmt.utils import CorruptCheckpointError, find_resume_checkpoint
    work = tmp_path / 'work'
    work.mkdir()
    assert find_resume_checkpoint(str(work))[0] is None
    for step in (2, 4):
        torch.save({'state_dict': {}}, work / f'iter_{step}.pth')
    (work / 'iter_6.pth').write_bytes((work / 'iter_4.pth').read_bytes()[:100])  # truncated
    torch.save({'state_dict': dict(w=torch.zeros(1000))}, work / 'iter_8.pth')
    _flip_a_weight_byte(work / 'iter_8.pth', work / 'iter_8.pth')  # a disk error
    pointer = work / 'last_checkpoint'
    pointer.write_text(str(work / 'iter_4.pth'))
    assert find_resume_checkpoint(str(work)) == (str(work / 'iter_4.pth'), None)
    for text, problem in (('', 'is empty'), (str(work / 'iter_10.pth'), 'does not exist'),
                          (str(work / 'iter_6.pth'), 'incomplete'),
                          (str(work / 'iter_8.pth'), 'incomplete or damaged')):
        pointer.write_text(text)
        path, note = find_resume_checkpoint(str(work))
        assert path == str(work / 'iter_4.pth')
        assert problem in note and 'newest complete checkpoint' in note
    pointer.unlink()
    assert find_resume_checkpoint(str(work))[0] == str(work / 'iter_4.pth')
    # the newest by its step, not by the file time (copied or restored files get new times)
    os.utime(work / 'iter_4.pth', (1_000_000, 1_000_000))
    assert find_resume_checkpoint(str(work))[0] == str(work / 'iter_4.pth')
    for step in (2, 4):
        (work / f'iter_{step}.pth').write_bytes(b'')
    with pytest.raises(CorruptCheckpointError, match='no complete checkpoint'):
        find_resume_checkpoint(str(work))


def test_a_copied_work_dir_resumes_from_its_own_checkpoints(tmp_path):
    """`cp -r a b`, a trains on: b's pointer still named a/iter_4.pth (mmengine writes absolute
    paths), and b's --resume took a/iter_6.pth, saved after b's pointer: b continued the other
    run's training. Now b's own iter_4.pth, with a note."""
    import shutil

    from mmmt.utils import find_resume_checkpoint
    from mmmt.utils.checkpoint import record_abandoned_checkpoints
    a, b = tmp_path / 'a', tmp_path / 'b'
    a.mkdir()
    for step in (2, 4):
        torch.save({'state_dict': dict(w=torch.full((3, ), float(step)))}, a / f'iter_{step}.pth')
    (a / 'last_checkpoint').write_text(str(a / 'iter_4.pth'))
    shutil.copytree(a, b)
    torch.save({'state_dict': dict(w=torch.full((3, ), 6.0))}, a / 'iter_6.pth')  # a goes on
    path, note = find_resume_checkpoint(str(b))
    assert path == str(b / 'iter_4.pth')
    assert note == (f'--resume: {b / "last_checkpoint"} names {a / "iter_4.pth"}, in another '
                    "folder (the work dir was copied or moved?); resuming from this work dir's "
                    f'{b / "iter_4.pth"}')
    # a pointer to another folder's file that the work dir lacks is followed as before
    # (e.g. a checkpoint folder of its own, default_hooks.checkpoint.out_dir)
    (b / 'last_checkpoint').write_text(str(a / 'iter_6.pth'))
    assert find_resume_checkpoint(str(b)) == (str(a / 'iter_6.pth'), None)
    # and so is one whose namesake here is of an abandoned branch (a --force resume of
    # another folder's iter_4.pth over this folder's earlier training)
    (b / 'last_checkpoint').write_text(str(a / 'iter_4.pth'))
    record_abandoned_checkpoints(str(b), [str(b / 'iter_4.pth')])
    assert find_resume_checkpoint(str(b))[0] == str(a / 'iter_4.pth')


def test_a_copied_work_dir_keeps_its_abandoned_branch_abandoned(tmp_path):
    """The original resumed iter_1 with --force and recorded iter_2, iter_3 as abandoned;
    `cp -r` gave the copies new times and inodes, and the copy's --resume took its iter_3
    ("saved after the pointer"). The record names the original's files: its copies count."""
    import shutil

    from mmmt.utils import CorruptCheckpointError, find_resume_checkpoint
    from mmmt.utils.checkpoint import record_abandoned_checkpoints
    a, b = tmp_path / 'a', tmp_path / 'b'
    a.mkdir()
    for step in (1, 2, 3):
        torch.save({'state_dict': dict(w=torch.full((3, ), float(step)))}, a / f'iter_{step}.pth')
    record_abandoned_checkpoints(str(a), [str(a / 'iter_2.pth'), str(a / 'iter_3.pth')])
    (a / 'last_checkpoint').write_text(str(a / 'iter_1.pth'))
    shutil.copytree(a, b, copy_function=shutil.copy)  # new file times, the pointer first
    path, note = find_resume_checkpoint(str(b))
    assert path == str(b / 'iter_1.pth') and 'in another folder' in note
    (b / 'iter_1.pth').write_bytes(b'')  # and without it, no abandoned copy either
    with pytest.raises(CorruptCheckpointError, match=r'no complete checkpoint .*of a training '
                                                     r'abandoned'):
        find_resume_checkpoint(str(b))


def test_checkpoints_of_an_out_dir_are_not_taken_for_a_copy(tmp_path):
    """default_hooks.checkpoint.out_dir: the pointer always names a file of another folder
    (<out_dir>/<work dir name>); with an old iter_1000.pth of the work dir's own, --resume
    took that one ("the work dir was copied or moved?")."""
    from mmmt.utils import find_resume_checkpoint
    work, ckpts = tmp_path / 'work_dirs' / 'exp', tmp_path / 'ckpts' / 'exp'
    for folder, value in ((work, 1.0), (ckpts, 2.0)):
        folder.mkdir(parents=True)
        torch.save({'state_dict': dict(w=torch.full((3, ), value))}, folder / 'iter_1000.pth')
    (work / 'last_checkpoint').write_text(str(ckpts / 'iter_1000.pth'))
    assert find_resume_checkpoint(str(work), str(ckpts)) == (str(ckpts / 'iter_1000.pth'), None)


def _records_read(monkeypatch) -> list:
    """The names of the files whose zip records are read (the CRC check; torch.load reads
    the archive with its own reader, not with zipfile)."""
    read = []
    real_open = zipfile.ZipFile.open

    def counting_open(self, name, *args, **kwargs):
        read.append(os.path.basename(self.filename))
        return real_open(self, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, 'open', counting_open)
    return read


def test_resume_reads_only_the_checkpoint_it_takes_and_checks_it_once(tmp_path, monkeypatch):
    from mmmt.utils import CorruptCheckpointError, find_resume_checkpoint
    monkeypatch.delenv(TRUST_ENV, raising=False)
    work = tmp_path / 'work'
    work.mkdir()
    for step in (2, 4):
        torch.save({'state_dict': dict(w=torch.zeros(1000))}, work / f'iter_{step}.pth')
    _flip_a_weight_byte(work / 'iter_4.pth', work / 'iter_6.pth')
    read = _records_read(monkeypatch)
    path, _ = find_resume_checkpoint(str(work))
    assert path == str(work / 'iter_4.pth')
    # iter_6 is damaged, iter_4 is taken: iter_2 is never read
    assert set(read) == {'iter_6.pth', 'iter_4.pth'}
    read.clear()
    assert load_checkpoint_file(path)['state_dict']['w'].count_nonzero() == 0
    assert read == []  # verified by find_resume_checkpoint, unchanged since
    # the same file damaged in place, with its size and file time put back, is checked again
    stat = os.stat(path)
    _flip_a_weight_byte(work / 'iter_4.pth', work / 'iter_4.pth')
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert (os.stat(path).st_ino, os.stat(path).st_size) == (stat.st_ino, stat.st_size)
    with pytest.raises(CorruptCheckpointError, match='does not match the checksum'):
        load_checkpoint_file(path)
    assert 'iter_4.pth' in read


def test_checkpoint_step_reads_the_hook_names():
    from mmmt.utils import checkpoint_step
    assert checkpoint_step('work/iter_500.pth') == ('iter', 500)
    assert checkpoint_step('epoch_3.pth') == ('epoch', 3)
    # the kind is the word before the number, whatever precedes it in the name
    assert checkpoint_step('work/best_semseg_mIoU_iter_5000.pth') == ('iter', 5000)
    assert checkpoint_step('work/best_mIoU.pth') is None
    assert checkpoint_step('work/iter_500.pth.tmp') is None


def _mapped_from(path) -> list:
    """The address ranges of this process that map ``path`` (Linux's /proc/self/maps)."""
    with open('/proc/self/maps') as f:
        return [tuple(int(a, 16) for a in line.split()[0].split('-'))
                for line in f if line.rstrip().endswith(str(path))]


@pytest.mark.skipif(not os.path.exists('/proc/self/maps'), reason='needs /proc/self/maps')
def test_mmap_maps_the_weights_instead_of_reading_them(tmp_path, monkeypatch):
    # train.py --resume reads a checkpoint's meta before mmengine loads it: a second full read
    # of a 3.7 GB Swin-L file on every rank, unless its tensors are mapped
    monkeypatch.delenv(TRUST_ENV, raising=False)
    weights = torch.arange(4096, dtype=torch.float32)
    path = tmp_path / 'iter_2.pth'
    torch.save(dict(state_dict=dict(w=weights), meta=dict(seed=7)), path)
    records = _records_read(monkeypatch)
    mapped = load_checkpoint_file(str(path), map_location='cpu', mmap=True)
    assert records == []  # nor are its records read to check their CRC-32
    w = mapped['state_dict']['w']
    assert mapped['meta'] == dict(seed=7) and torch.equal(w, weights)
    assert any(lo <= w.data_ptr() < hi for lo, hi in _mapped_from(path))
    read = load_checkpoint_file(str(path), map_location='cpu')
    assert not any(lo <= read['state_dict']['w'].data_ptr() < hi for lo, hi in _mapped_from(path))
    # torch's legacy format cannot be mapped: read whole, with the same content
    legacy = tmp_path / 'legacy.pth'
    torch.save(dict(state_dict=dict(w=weights), meta=dict(seed=7)), legacy,
               _use_new_zipfile_serialization=False)
    old = load_checkpoint_file(str(legacy), map_location='cpu', mmap=True)
    assert old['meta'] == dict(seed=7) and torch.equal(old['state_dict']['w'], weights)


def test_resume_takes_a_checkpoint_saved_after_the_pointer(tmp_path):
    """mmengine saves iter_N.pth, then rewrites last_checkpoint: a run killed between the two
    resumed one checkpoint back, called the newer one abandoned, and later deleted it."""
    import json

    from mmmt.utils import find_resume_checkpoint
    from mmmt.utils.checkpoint import ABANDONED_RECORD, _identity
    work = tmp_path / 'work'
    work.mkdir()
    torch.save({'state_dict': {}}, work / 'iter_2.pth')
    pointer = work / 'last_checkpoint'
    pointer.write_text(str(work / 'iter_2.pth'))
    os.utime(pointer, ns=(10**18, 10**18))
    torch.save({'state_dict': dict(w=torch.zeros(1000))}, work / 'iter_4.pth')
    os.utime(work / 'iter_4.pth', ns=(10**18 + 10**9, 10**18 + 10**9))  # a second later
    path, note = find_resume_checkpoint(str(work))
    assert path == str(work / 'iter_4.pth')
    assert note == (f'--resume: {pointer} names {work / "iter_2.pth"}, but {path} was saved '
                    'after it (the run stopped between saving it and updating the pointer); '
                    f'resuming from {path}')
    # damaged (the kill came during its write, before the rename: never complete) -> iter_2
    _flip_a_weight_byte(work / 'iter_4.pth', work / 'iter_4.pth')
    os.utime(work / 'iter_4.pth', ns=(10**18 + 10**9, 10**18 + 10**9))
    assert find_resume_checkpoint(str(work)) == (str(work / 'iter_2.pth'), None)
    # of an abandoned branch, or older than the pointer: the pointer's file, as before
    torch.save({'state_dict': {}}, work / 'iter_4.pth')
    os.utime(work / 'iter_4.pth', ns=(10**18 + 10**9, 10**18 + 10**9))
    (work / ABANDONED_RECORD).write_text(json.dumps(
        {str(work / 'iter_4.pth'): _identity(str(work / 'iter_4.pth'))}))
    assert find_resume_checkpoint(str(work)) == (str(work / 'iter_2.pth'), None)
    (work / ABANDONED_RECORD).unlink()
    os.utime(work / 'iter_4.pth', ns=(10**18 - 10**9, 10**18 - 10**9))
    assert find_resume_checkpoint(str(work)) == (str(work / 'iter_2.pth'), None)
