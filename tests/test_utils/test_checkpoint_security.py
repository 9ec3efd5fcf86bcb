"""Crafted numpy states in checkpoints that ``weights_only=True`` with numpy's own objects on
the allow-list accepts, and genuine numpy content that must still load untrusted.

numpy's ``dtype.__setstate__`` and ``ndarray.__setstate__`` trust their input: a pickled
state can give a dtype an object field without the flags that make numpy initialise and
reference-count it, so the array's raw bytes (from the file) are used as object pointers; or
an item size smaller than its fields, so reads go past the buffer. Loading such a file is
silent; touching the array crashes the process (tested here only on the refused side).
"""
import collections
import io
import os

import numpy as np
import pytest
import torch
from mmengine.runner.checkpoint import CheckpointLoader

from mmmt.utils import TRUST_ENV, UntrustedCheckpointError, load_checkpoint_file
from tests.tool_loader import load_tool

try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct, scalar
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import _reconstruct, scalar

POINTER = (0x4141414141414141).to_bytes(8, 'little')  # what the file makes numpy dereference


class Reduce:
    """Pickles as ``func(*args)`` followed by ``__setstate__(state)`` when a state is given."""

    def __init__(self, func, args, state=None):
        self.value = (func, args) if state is None else (func, args, state)

    def __reduce__(self):
        return self.value


def dtype(spec, state):
    return Reduce(np.dtype, (spec, False, True), state)


def array(dtype_, raw, shape=(1, )):
    return Reduce(_reconstruct, (np.ndarray, (0, ), b'b'), (1, shape, dtype_, False, raw))


OBJECT_FIELD = (3, '|', None, ('a', ), {'a': (np.dtype('O'), 0)}, 8, 1, 0)
CRAFTED = {
    # a void dtype given an object field with flags 0: the 8 bytes become a PyObject pointer
    'object field on void': array(dtype('V8', OBJECT_FIELD), POINTER),
    # the same state applied to a copy of float64
    'object field on float64': array(dtype('f8', OBJECT_FIELD), POINTER),
    # an int64 field at offset 64 of a 1-byte item: reads past the buffer
    'field past the item': array(
        dtype('V1', (3, '|', None, ('a', ), {'a': (np.dtype('i8'), 64)}, 1, 1, 0)), b'x'),
    # a U2 (8 bytes) that claims 4 bytes per item
    'item size lie': array(dtype('U2', (3, '<', None, None, None, 4, 4, 8)), b'x' * 4),
    # object arrays hold whatever the pickle builds; no checkpoint needs them
    'object dtype': array(dtype('O8', (3, '|', None, None, None, -1, -1, 63)), [1]),
    'metadata': array(dtype('f8', (4, '<', None, None, None, -1, -1, 0, {'k': 1})), POINTER),
    # ndarray(shape, dtype, buffer) called directly, and _reconstruct of a prepared shape
    'ndarray call': Reduce(np.ndarray, ((1, ), np.dtype('f8'), POINTER)),
    'reconstruct shape': Reduce(_reconstruct, (np.ndarray, (4, ), b'b')),
    'array of other length': array(dtype('f8', (3, '<', None, None, None, -1, -1, 0)),
                                   POINTER, shape=(2, )),
    'scalar of short data': Reduce(scalar, (np.dtype('f8'), b'\0' * 4)),
    # numpy refuses these itself, but as a damaged file, not as one needing trust
    'negative dimensions': array(dtype('f8', (3, '<', None, None, None, -1, -1, 0)), POINTER,
                                 shape=(-1, -1)),
    'array of longer data': array(dtype('f8', (3, '<', None, None, None, -1, -1, 0)),
                                  POINTER * 2),
    # a byte order numpy never writes ('!' and 'S' would be ignored, leaving native order)
    'unknown byte order': array(dtype('f8', (3, '!', None, None, None, -1, -1, 0)), POINTER),
    'swapped byte order': array(dtype('f8', (3, 'S', None, None, None, -1, -1, 0)), POINTER),
    # a dtype (of no array) that claims 4 bytes for a float64
    'item size lie of a lone dtype': dtype('f8', (3, '<', None, None, None, 4, 1, 0)),
    'dtype state of another version': dtype('f8', (2, '<', None, None, None, -1, -1, 0)),
    # a torch dtype (allow-listed by torch) where the array's numpy dtype belongs
    'array of a torch dtype': array(torch.float64, POINTER),
}


@pytest.fixture
def untrusted(monkeypatch):
    monkeypatch.delenv(TRUST_ENV, raising=False)


@pytest.mark.parametrize('kind', CRAFTED)
def test_crafted_numpy_states_are_refused(tmp_path, untrusted, kind):
    path = str(tmp_path / 'crafted.pth')
    torch.save(dict(state_dict={}, meta=dict(dataset_meta=dict(palette=CRAFTED[kind]))), path)
    for load in (load_checkpoint_file, CheckpointLoader.load_checkpoint):
        with pytest.raises(UntrustedCheckpointError, match=r'crafted\.pth: refused numpy'):
            load(path)


def test_a_converter_refuses_a_crafted_numpy_state(tmp_path, untrusted):
    path = str(tmp_path / 'crafted.pth')
    torch.save(dict(state_dict=dict(w=torch.ones(1)),
                    meta=dict(x=CRAFTED['object field on void'])), path)
    with pytest.raises(SystemExit, match='refused numpy'):
        load_tool('tools', 'model_converters', 'publish_model').main(
            [path, str(tmp_path / 'out.pth')])
    assert not (tmp_path / 'out.pth').exists()


def test_genuine_numpy_content_loads_as_plain_numpy(tmp_path, untrusted):
    """Every plain dtype kind, both byte orders, scalars, shared and nested objects, the RNG
    state and a message hub: equal to full unpickling, and of numpy's own classes."""
    from mmengine.logging import MessageHub
    hub = MessageHub.get_instance('mmmt_test_checkpoint_security')
    hub.update_scalar('train/loss', np.float32(1.5))
    shared = np.arange(6, dtype=np.int16).reshape(2, 3)
    content = dict(
        arrays=[np.array([True, False]), np.arange(3, dtype='>i4'), np.arange(3, dtype='<u2'),
                np.linspace(0, 1, 4, dtype=np.float16), np.array([1 + 2j]), np.array(['ab', 'c']),
                np.array([b'xyz']), np.zeros((0, 2)), np.asfortranarray(np.eye(2))],
        scalars=(np.int64(3), np.float32(0.25), np.bool_(True), np.str_('s')),
        dtypes=collections.OrderedDict(f=np.dtype('f4'), big=np.dtype('>i8')),
        dtype_set={np.dtype('f4'), np.dtype('>i8')},
        shared=(shared, shared), rng=np.random.RandomState(0).get_state(),
        hub=hub.state_dict())
    path = tmp_path / 'genuine.pth'
    torch.save(content, path)
    loaded = load_checkpoint_file(str(path))
    full = torch.load(path, weights_only=False)
    for mine, theirs in zip(loaded['arrays'], full['arrays']):
        assert type(mine) is np.ndarray and mine.dtype == theirs.dtype
        assert mine.flags.f_contiguous == theirs.flags.f_contiguous
        np.testing.assert_array_equal(mine, theirs)
    assert loaded['scalars'] == full['scalars']
    assert [type(s) for s in loaded['scalars']] == [type(s) for s in full['scalars']]
    assert loaded['dtypes'] == full['dtypes'] and type(loaded['dtypes']['f']) is type(
        np.dtype('f4'))
    assert loaded['dtype_set'] == full['dtype_set'] == {np.dtype('f4'), np.dtype('>i8')}
    assert loaded['shared'][0] is loaded['shared'][1]
    assert type(loaded['shared'][0]) is np.ndarray
    assert loaded['rng'][0] == 'MT19937' and type(loaded['rng'][1]) is np.ndarray
    np.testing.assert_array_equal(loaded['rng'][1], full['rng'][1])
    history = loaded['hub']['log_scalars']['train/loss']
    assert type(history._log_history) is np.ndarray and history.mean() == 1.5
    # what was loaded saves and loads again (no stand-in class is written)
    torch.save(loaded, tmp_path / 'again.pth')
    again = load_checkpoint_file(str(tmp_path / 'again.pth'))
    np.testing.assert_array_equal(again['arrays'][1], np.arange(3))


def test_numpy_1_checkpoints_load_untrusted(tmp_path, untrusted):
    """numpy < 2 pickles name ``numpy.core.multiarray``; such a file (here a legacy-format
    save, whose pickles end by themselves, with the module renamed) is no less genuine."""
    from mmengine.logging.history_buffer import HistoryBuffer
    history = HistoryBuffer()
    history.update(2.0)
    content = dict(state_dict=dict(w=torch.ones(2)),
                   meta=dict(seed=np.int64(3), hist=np.arange(3.0)), history=history)
    numpy2 = tmp_path / 'numpy2.pth'
    torch.save(content, numpy2, _use_new_zipfile_serialization=False)
    data = numpy2.read_bytes()
    assert data.count(b'numpy._core.multiarray') >= 2  # _reconstruct and scalar
    numpy1 = tmp_path / 'numpy1.pth'
    numpy1.write_bytes(data.replace(b'numpy._core.multiarray', b'numpy.core.multiarray'))
    loaded = load_checkpoint_file(str(numpy1))
    assert loaded['meta']['seed'] == 3 and type(loaded['meta']['seed']) is np.int64
    np.testing.assert_array_equal(loaded['meta']['hist'], [0.0, 1.0, 2.0])
    assert loaded['history'].current() == 2.0
    assert torch.equal(loaded['state_dict']['w'], torch.ones(2))


# ------------------------------------------------------------------------- http(s) downloads
class Downloads:
    """Stands in for ``torch.hub.download_url_to_file``: serves files of a dict by URL."""

    def __init__(self, files):
        self.files, self.urls = files, []

    def __call__(self, url, dst, *args, **kwargs):
        self.urls.append(url)
        if url not in self.files:
            raise ConnectionError(f'no network in tests: {url}')
        with open(dst, 'wb') as f:
            f.write(self.files[url])


class Marker:

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, 'w'))  # creates the file when fully unpickled


@pytest.fixture
def hub(tmp_path, monkeypatch, untrusted):
    monkeypatch.setattr(torch.hub, '_hub_dir', str(tmp_path / 'hub'))
    return tmp_path / 'hub' / 'checkpoints'


def saved(obj, tmp_path, name='x.pth'):
    torch.save(obj, tmp_path / name)
    return (tmp_path / name).read_bytes()


def test_a_refused_download_is_not_left_where_torchvision_loads_by_name(
        tmp_path, monkeypatch, hub):
    # the name of a torchvision weights file; torchvision loads a cached file of that name
    # with weights_only=False and checks no hash once it exists
    name = 'resnet18-f37072fd.pth'
    marker = tmp_path / 'marker'
    downloads = Downloads({f'https://example.invalid/{name}': saved(
        dict(state_dict={}, x=Marker(str(marker))), tmp_path)})
    monkeypatch.setattr(torch.hub, 'download_url_to_file', downloads)
    with pytest.raises(UntrustedCheckpointError, match=name):
        CheckpointLoader.load_checkpoint(f'https://example.invalid/{name}')
    assert not (hub / name).exists()
    with pytest.raises(ConnectionError):  # torchvision's own load must download anew
        torch.hub.load_state_dict_from_url(f'https://download.pytorch.org/models/{name}')
    assert not marker.exists()


def test_downloads_are_cached_per_url_and_hand_placed_files_are_used(
        tmp_path, monkeypatch, hub):
    from mmmt.utils.checkpoint import http_download_path
    first, second = 'https://a.invalid/m/model.pth', 'https://b.invalid/n/model.pth?dl=1'
    downloads = Downloads({first: saved(dict(w=torch.ones(1)), tmp_path, 'a.pth'),
                           second: saved(dict(w=torch.zeros(1)), tmp_path, 'b.pth')})
    monkeypatch.setattr(torch.hub, 'download_url_to_file', downloads)
    for _ in range(2):
        assert torch.equal(CheckpointLoader.load_checkpoint(first)['w'], torch.ones(1))
        assert torch.equal(CheckpointLoader.load_checkpoint(second)['w'], torch.zeros(1))
    assert downloads.urls == [first, second]  # each downloaded once, into a folder of its own
    assert http_download_path(first) != http_download_path(second)
    assert http_download_path(first).startswith(str(hub / 'mmmt_downloads'))
    assert http_download_path(first).endswith('model.pth')
    # a file put into torch hub's folder by hand (an offline machine) is read, not downloaded
    hub.mkdir(parents=True, exist_ok=True)
    torch.save(dict(w=torch.full((1, ), 7.0)), hub / 'offline.pth')
    assert CheckpointLoader.load_checkpoint('https://c.invalid/offline.pth')['w'].item() == 7.0
    assert downloads.urls == [first, second]


@pytest.mark.parametrize('stamp', [np.array(['2024-01-02'], dtype='M8[D]'),
                                   np.array([3], dtype='m8[s]'), np.zeros(2, dtype='V4')],
                         ids=['datetime', 'timedelta', 'void'])
def test_genuine_but_unsupported_numpy_content_names_the_opt_in(tmp_path, monkeypatch, stamp):
    """Datetime and raw-bytes (void) arrays are genuine numpy that the safe loader does not
    take: the one-line error names the file and the way to trust it, and trusting loads it."""
    path = tmp_path / 'dated.pth'
    torch.save(dict(state_dict={}, meta=dict(time=stamp)), path)
    monkeypatch.delenv(TRUST_ENV, raising=False)
    with pytest.raises(UntrustedCheckpointError) as info:
        load_checkpoint_file(str(path))
    message = str(info.value)
    assert message.startswith(f'{path}: refused numpy.dtype(') and '\n' not in message
    assert '--trust-checkpoint' in message and f'{TRUST_ENV}=1' in message
    monkeypatch.setenv(TRUST_ENV, '1')
    np.testing.assert_array_equal(load_checkpoint_file(str(path))['meta']['time'], stamp)


# ------------------------------------------------------- tools/test.py --out prediction files
@pytest.mark.parametrize('protocol', [2, 5])
def test_prediction_files_refuse_crafted_numpy_states(tmp_path, protocol):
    """``load_predictions`` (eval_metric.py, confusion_matrix.py) has its own restricted
    unpickler, with the same numpy globals: it uses the same stand-ins."""
    import pickle

    from mmmt.evaluation import load_predictions
    from mmmt.utils import UserInputError
    bad_dtype = dtype('V8', OBJECT_FIELD)
    for name, bad in (('reconstruct', array(bad_dtype, POINTER)),
                      ('frombuffer', Reduce(np._core.numeric._frombuffer,
                                            (POINTER, bad_dtype, (1, ), 'C')))):
        path = tmp_path / f'{name}.pkl'
        path.write_bytes(pickle.dumps([dict(pred=dict(semseg=bad))], protocol=protocol))
        with pytest.raises(UserInputError, match=rf'{name}\.pkl: refused numpy\.dtype'):
            load_predictions(str(path))
    # a plain dtype, but bytes of another length or an axis order that is no permutation
    for name, args in (('short', (POINTER, np.dtype('f8'), (2, ), 'C')),
                       ('axes', (POINTER * 4, np.dtype('f8'), (2, 2), 'K', (0, 0)))):
        path = tmp_path / f'{name}.pkl'
        bad = Reduce(np._core.numeric._frombuffer, args)
        path.write_bytes(pickle.dumps([dict(pred=dict(semseg=bad))], protocol=protocol))
        with pytest.raises(UserInputError, match=rf'{name}\.pkl: refused numpy _frombuffer'):
            load_predictions(str(path))
    # what DumpMultiTaskPredictions writes (protocol 5 and, from older writers, 2) still loads
    genuine = [dict(img_id=0, pred=dict(semseg=np.arange(6, dtype=np.uint8).reshape(2, 3),
                                        normals=np.asfortranarray(np.ones((2, 2, 3), 'f4'))))]
    path = tmp_path / 'genuine.pkl'
    path.write_bytes(pickle.dumps(genuine, protocol=protocol))
    loaded = load_predictions(str(path))[0]['pred']
    for task, value in genuine[0]['pred'].items():
        assert type(loaded[task]) is np.ndarray and loaded[task].dtype == value.dtype
        np.testing.assert_array_equal(loaded[task], value)


# ------------------------------------------------------------------------ a fresh tool process
def test_test_py_in_a_fresh_process_refuses_a_crafted_numpy_state(tmp_path, synthetic_nyud):
    """The in-process tool tests run after this suite's session fixture installed the safe
    loaders; a fresh ``python tools/test.py`` must install them itself, and end in one line."""
    import os
    import subprocess
    import sys

    from tests.test_tools.conftest import REPO, write_tiny_config
    cfg = write_tiny_config(tmp_path / 'cfg.py', synthetic_nyud)
    path = tmp_path / 'crafted.pth'
    torch.save(dict(state_dict={}, meta=dict(dataset_meta=dict(
        palette=CRAFTED['object field on void']))), path)
    env = {k: v for k, v in os.environ.items() if k != TRUST_ENV}
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, 'tools', 'test.py'), cfg, str(path), '--work-dir',
         str(tmp_path / 'work')], cwd=REPO, capture_output=True, text=True, timeout=600,
        env=dict(env, PYTHONPATH=REPO))
    assert result.returncode == 2, result.stderr[-2000:]  # a usage error, not a crash (-11)
    assert f'{path}: refused numpy.dtype(' in result.stderr
    assert '--trust-checkpoint' in result.stderr and 'Traceback' not in result.stderr


# ------------------------------------------------ globals others add to torch's process-wide set
class LineOf:

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        import traceback
        return (traceback.FrameSummary, (self.path, 1, 'f'))  # reads self.path's first line


def test_globals_that_torch_distributed_allows_are_not_allowed_here(tmp_path, untrusted):
    """``import torch.distributed`` (mmengine does) allow-lists every builtin exception and
    ``traceback.FrameSummary`` process-wide; the latter reads any file a pickle names."""
    import traceback

    import torch.distributed  # noqa: F401
    assert traceback.FrameSummary in torch.serialization.get_safe_globals()
    secret = tmp_path / 'secret.txt'
    secret.write_text('token-123\n')
    for name, obj in (('frame', LineOf(str(secret))), ('error', Reduce(SystemExit, (3, )))):
        path = tmp_path / f'{name}.pth'
        torch.save(dict(state_dict={}, meta=dict(x=obj)), path)
        with pytest.raises(UntrustedCheckpointError, match=rf'{name}\.pth: refused to unpickle'):
            load_checkpoint_file(str(path))
    # torch's own set is back as it was for whoever relies on it
    assert traceback.FrameSummary in torch.serialization.get_safe_globals()
    assert _reconstruct not in torch.serialization.get_safe_globals()
    frame = torch.load(tmp_path / 'frame.pth', weights_only=True)['meta']['x']
    assert frame.line == 'token-123'  # what mmmt's loader refused to do


def test_model_zoo_names_go_through_the_safe_loaders(tmp_path, untrusted, monkeypatch):
    """mmengine's ``open-mmlab://`` (and ``torchvision://``, ``mmcls://``) loaders skip the
    registered http(s) loader and call ``torch.load`` with torch's process-wide allow-list."""
    import json

    from mmmt.utils.checkpoint import MODEL_ZOO_PREFIXES
    for prefix in MODEL_ZOO_PREFIXES:
        assert CheckpointLoader._get_checkpoint_loader(f'{prefix}x').__name__ == \
            'load_from_model_zoo_safe'
    monkeypatch.setenv('MMENGINE_HOME', str(tmp_path))  # its open_mmlab.json adds names
    (tmp_path / 'open_mmlab.json').write_text(json.dumps(dict(crafted='crafted.pth')))
    secret = tmp_path / 'secret.txt'
    secret.write_text('token-123\n')
    torch.save(dict(state_dict={}, meta=dict(x=LineOf(str(secret)))), tmp_path / 'crafted.pth')
    with pytest.raises(UntrustedCheckpointError, match=r'crafted\.pth: refused to unpickle'):
        CheckpointLoader.load_checkpoint('open-mmlab://crafted')
    torch.save(dict(state_dict=dict(w=torch.ones(2))), tmp_path / 'crafted.pth')
    assert torch.equal(CheckpointLoader.load_checkpoint('openmmlab://crafted')['state_dict']['w'],
                       torch.ones(2))


def test_allow_listed_callables_with_wrong_arguments_end_in_one_named_line(tmp_path, untrusted):
    """An allowed class called as torch.save never calls it raised a bare TypeError (a
    traceback in the tools) instead of naming the file."""
    from mmengine.logging.history_buffer import HistoryBuffer

    from mmmt.utils import CorruptCheckpointError
    for name, obj in (('no_spec', Reduce(np.dtype, ())),
                      ('history', Reduce(HistoryBuffer, (1, 2, 3, 4, 5)))):
        path = tmp_path / f'{name}.pth'
        torch.save(dict(state_dict={}, x=obj), path)
        with pytest.raises(CorruptCheckpointError) as info:
            load_checkpoint_file(str(path))
        message = str(info.value)
        assert message.startswith(f'{path} is not a readable checkpoint (TypeError: ')
        assert '--trust' not in message


def test_a_torchscript_archive_is_named_as_such(tmp_path, untrusted):
    from mmmt.utils import CorruptCheckpointError
    path = tmp_path / 'scripted.pth'
    torch.jit.script(torch.nn.Linear(2, 2)).save(str(path))
    with pytest.raises(CorruptCheckpointError) as info:
        load_checkpoint_file(str(path))
    assert str(info.value).startswith(f'{path} is a TorchScript archive (torch.jit.save)')
    assert '--trust' not in str(info.value)


# ----------------------------------------------------------- images that other programs decode
EPS = (b'%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n%%EndComments\n'
       b'(would run in Ghostscript) print showpage\n%%EOF\n')


def test_an_eps_file_named_jpg_never_reaches_ghostscript(tmp_path, monkeypatch):
    """PIL identifies files by content and hands EPS to Ghostscript (a PostScript interpreter):
    the demo/inferencer reader and the dataset reader take raster formats only."""
    from PIL import EpsImagePlugin, Image

    from mmmt.apis.image_io import image_file_problem, read_image_rgb
    from mmmt.datasets.transforms.decoders import read_image
    calls = []

    def ghostscript(*args, **kwargs):
        calls.append(args)
        return Image.new('RGB', (8, 8)).im  # what a Ghostscript run would give PIL

    monkeypatch.setattr(EpsImagePlugin, 'Ghostscript', ghostscript)
    monkeypatch.setattr(EpsImagePlugin, 'has_ghostscript', lambda: True)
    path = tmp_path / 'photo.jpg'
    path.write_bytes(EPS)
    assert Image.open(path).format == 'EPS'  # what PIL would take it for
    with pytest.raises(OSError, match='photo.jpg'):
        read_image_rgb(str(path))
    with pytest.raises(OSError, match=r'photo\.jpg'):
        read_image(str(path), dict(sample_idx=0))
    assert image_file_problem(str(path)) is not None
    assert calls == []
    # the raster formats of IMG_EXTENSIONS still read
    for ext in ('png', 'jpg', 'bmp', 'tif', 'webp', 'ppm', 'gif'):
        image = tmp_path / f'room.{ext}'
        Image.fromarray(np.full((4, 6, 3), 100, np.uint8)).save(image)
        assert read_image_rgb(str(image)).shape == (4, 6, 3)
        assert read_image(str(image), {}).size == (6, 4)


def test_the_refusal_names_the_global_and_never_advises_weights_only_false(tmp_path, untrusted):
    """torch words a refused global of a module it blocks (``os.system``: what crafted files
    call) as advice to load with ``weights_only=False``, the name coming after it; the message
    showed only that advice, cut mid-sentence."""
    import argparse
    marker = tmp_path / 'marker'
    for name, obj, named in (
            ('system', Reduce(os.system, (f'touch {marker}', )), f'{os.system.__module__}.system'),
            ('namespace', Reduce(argparse.Namespace, ()), 'argparse.Namespace')):
        path = tmp_path / f'{name}.pth'
        torch.save(dict(state_dict={}, optimizer=dict(state={0: dict(step=obj)})), path)
        with pytest.raises(UntrustedCheckpointError) as info:
            load_checkpoint_file(str(path))
        message = str(info.value)
        assert f'{path}: refused to unpickle objects' in message
        assert f'(it names {named}).' in message and '--trust-checkpoint' in message
        assert 'weights_only' not in message and 'add_safe_globals' not in message
    assert not marker.exists()


class _ObjectStore:
    """An object-storage backend (what petrel_client gives mmengine) serving ``objects``."""

    objects: dict = {}

    def __init__(self, **kwargs):
        pass

    def get(self, filepath):
        return self.objects[filepath]


def test_object_storage_urls_go_through_the_safe_loader(tmp_path, untrusted, monkeypatch):
    """mmengine's s3:// / petrel:// loader calls torch.load on the fetched bytes with torch's
    process-wide allow-list (traceback.FrameSummary reads the file a pickle names)."""
    from mmengine.fileio.backends import backends

    from mmmt.utils.checkpoint import STORAGE_PREFIXES
    for url in ('s3://bucket/crafted.pth', 'cluster1:s3://bucket/x.pth', 'petrel://b/x.pth'):
        assert CheckpointLoader._get_checkpoint_loader(url).__name__ == 'load_from_storage_safe'
    assert len(STORAGE_PREFIXES) == 2
    monkeypatch.setitem(backends, 'petrel', _ObjectStore)
    secret = tmp_path / 'secret.txt'
    secret.write_text('token-123\n')
    crafted, genuine = io.BytesIO(), io.BytesIO()
    torch.save(dict(state_dict={}, meta=dict(x=LineOf(str(secret)))), crafted)
    torch.save(dict(state_dict=dict(w=torch.ones(2))), genuine)
    monkeypatch.setattr(_ObjectStore, 'objects', {'s3://bucket/crafted.pth': crafted.getvalue(),
                                                  's3://bucket/genuine.pth': genuine.getvalue()})
    # the URL, not the temporary file, is named
    with pytest.raises(UntrustedCheckpointError,
                       match=r'^s3://bucket/crafted\.pth: refused to unpickle'):
        CheckpointLoader.load_checkpoint('s3://bucket/crafted.pth')
    loaded = CheckpointLoader.load_checkpoint('s3://bucket/genuine.pth')
    assert torch.equal(loaded['state_dict']['w'], torch.ones(2))


def test_pavi_urls_go_through_the_safe_loader():
    assert CheckpointLoader._get_checkpoint_loader('pavi://m/x.pth').__name__ == \
        'load_from_pavi_safe'
    with pytest.raises(ImportError, match=r'pavi://m/x\.pth: loading pavi:// checkpoints needs '
                       'the pavi package'):
        CheckpointLoader.load_checkpoint('pavi://m/x.pth')
