"""Read a legacy ``torch.save`` file (PyTorch < 1.6, not zip) into numpy arrays, without torch.

The legacy format is five pickles in a row (magic number, protocol version, system info, the saved
object, the list of storage keys) followed, for each key in that order, by an int64 element count and
the storage's raw little-endian bytes. Tensors in the saved object are
``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`` calls whose storages are
persistent ids ``("storage", torch.FloatStorage, key, location, numel, view)``.

A pickle can call any importable function, so unpickling an untrusted file normally runs its code.
Here ``find_class`` allows only the handful of names a state dict uses and maps each to a stand-in of
ours; anything else raises :class:`PthError` before it is looked up, so nothing in a file can run code.
"""

from __future__ import annotations

import collections
import hashlib
import io
import math
import os
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001
# torch.hub's convention: ``name-<first hex digits of the sha256>.pth``.
_SHA_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.pth$")
_STORAGE_DTYPES: dict[str, np.dtype[Any]] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class PthError(ValueError):
    """A .pth file that cannot be read safely; ``code`` is machine-readable, the message one line.

    Codes: ``unreadable``, ``checksum``, ``zip_format``, ``not_torch``, ``refused_global``,
    ``truncated``, ``malformed``.
    """

    def __init__(self, path: str | os.PathLike[str], code: str, detail: str) -> None:
        self.path = Path(path)
        self.code = code
        self.detail = detail
        super().__init__(f"{self.path}: {detail}")


@dataclass(frozen=True)
class _StorageType:
    name: str
    dtype: np.dtype


@dataclass(frozen=True)
class _Storage:
    key: str
    dtype: np.dtype
    numel: int
    # A legacy "view" storage is a slice [offset, offset + numel) of the root storage ``key``.
    offset: int = 0


@dataclass(frozen=True)
class _Tensor:
    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, *_ignored: Any) -> _Tensor:
    # requires_grad, backward hooks and metadata do not change the values.
    if not isinstance(storage, _Storage) or not _is_count(offset):
        raise TypeError("tensor without a valid storage or offset")
    if not isinstance(size, tuple) or not isinstance(stride, tuple) or len(size) != len(stride):
        raise TypeError("tensor size and stride are not matching tuples")
    if not all(_is_count(v) for v in size + stride):
        raise TypeError("tensor size or stride is not a non-negative int")
    return _Tensor(storage, offset, size, stride)


def _rebuild_parameter(data: Any, *_ignored: Any) -> _Tensor:
    if not isinstance(data, _Tensor):
        raise TypeError("parameter without a tensor")
    return data


_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name, dtype) for name, dtype in _STORAGE_DTYPES.items()},
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, stream: io.BytesIO, path: Path) -> None:
        super().__init__(stream)
        self.path = path
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise PthError(
                self.path, "refused_global", f"refused to load: the pickle references {module}.{name}"
            ) from None

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise TypeError("unknown persistent id")
        _, storage_type, key, _location, numel, view = pid
        if not isinstance(storage_type, _StorageType) or not isinstance(key, str) or not _is_count(numel):
            raise TypeError("malformed storage reference")
        root = self.storages.setdefault(key, _Storage(key, storage_type.dtype, numel))
        if root.dtype != storage_type.dtype or root.numel != numel:
            raise TypeError(f"storage {key} is referenced with two types or sizes")
        if view is None:
            return root
        if not (isinstance(view, tuple) and len(view) == 3 and _is_count(view[1]) and _is_count(view[2])):
            raise TypeError("malformed storage view")
        _view_key, view_offset, view_numel = view
        if view_offset + view_numel > numel:
            raise TypeError(f"storage view of {key} runs past its end")
        return _Storage(key, root.dtype, view_numel, view_offset)


def _check_sha_in_name(path: Path, data: bytes) -> None:
    match = _SHA_IN_NAME.search(path.name)
    if match is None:
        return
    digest = hashlib.sha256(data).hexdigest()
    if not digest.startswith(match.group(1)):
        raise PthError(
            path,
            "checksum",
            f"sha256 {digest[:12]}... does not start with {match.group(1)} as its name says: "
            "the file is damaged or not the one named",
        )


def _tensor_to_array(tensor: _Tensor, buffers: dict[str, np.ndarray], path: Path) -> np.ndarray:
    storage = tensor.storage
    if 0 in tensor.size:
        return np.zeros(tensor.size, dtype=storage.dtype)
    # The last element the view touches must lie inside its storage, or as_strided would read past it.
    last = tensor.offset + sum((n - 1) * s for n, s in zip(tensor.size, tensor.stride, strict=True))
    if last >= storage.numel:
        raise PthError(path, "malformed", f"a tensor of shape {tensor.size} reads past its storage")
    flat = buffers[storage.key][storage.offset + tensor.offset :]
    itemsize = storage.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        flat, shape=tensor.size, strides=tuple(s * itemsize for s in tensor.stride), writeable=False
    )
    return np.array(view, dtype=storage.dtype.newbyteorder("="))


def _read_storages(
    data: bytes, start: int, keys: list[str], storages: dict[str, _Storage], path: Path
) -> dict[str, np.ndarray]:
    buffers: dict[str, np.ndarray] = {}
    pos = start
    for key in keys:
        storage = storages.get(key)
        if storage is None or key in buffers:
            raise PthError(path, "malformed", f"storage key {key!r} is unknown or listed twice")
        if pos + 8 > len(data):
            raise PthError(path, "truncated", f"file ends before storage {key} (is it truncated?)")
        numel = int.from_bytes(data[pos : pos + 8], "little", signed=True)
        if numel != storage.numel:
            raise PthError(path, "malformed", f"storage {key} holds {numel} elements, not {storage.numel}")
        nbytes = numel * storage.dtype.itemsize
        if pos + 8 + nbytes > len(data):
            raise PthError(
                path, "truncated", f"file ends inside storage {key} (needs {nbytes} bytes; is it truncated?)"
            )
        buffers[key] = np.frombuffer(data, dtype=storage.dtype, count=numel, offset=pos + 8)
        pos += 8 + nbytes
    missing = sorted(set(storages) - set(buffers))
    if missing:
        raise PthError(path, "malformed", f"storage {missing[0]} is used but its data is not in the file")
    return buffers


def read_pth(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """The state dict saved in a legacy ``torch.save`` file, as ``{name: array}`` in file order.

    Raises :class:`PthError` (one-line message naming the file) for an unreadable, truncated, damaged or
    zip-format file, a sha256 that disagrees with the ``-<hex>.pth`` in the name, or a pickle that
    references anything but a state dict's tensors.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise PthError(
            p, "unreadable", f"cannot read the file ({exc.strerror or type(exc).__name__})"
        ) from exc
    _check_sha_in_name(p, data)
    if data[:4] == b"PK\x03\x04":
        raise PthError(
            p, "zip_format", "a zip-format torch.save file (PyTorch >= 1.6); only the legacy format is read"
        )
    stream = io.BytesIO(data)
    try:
        if _RestrictedUnpickler(stream, p).load() != MAGIC_NUMBER:
            raise PthError(p, "not_torch", "not a legacy torch.save file (wrong magic number)")
        protocol = _RestrictedUnpickler(stream, p).load()
        if protocol != PROTOCOL_VERSION:
            raise PthError(p, "not_torch", f"unsupported torch.save protocol {protocol!r}")
        sys_info = _RestrictedUnpickler(stream, p).load()
        if not isinstance(sys_info, dict) or sys_info.get("little_endian") is not True:
            raise PthError(p, "malformed", "not saved on a little-endian machine")
        unpickler = _RestrictedUnpickler(stream, p)
        state = unpickler.load()
        keys = _RestrictedUnpickler(stream, p).load()
    except PthError:
        raise
    except Exception as exc:  # a damaged pickle raises UnpicklingError, TypeError, ValueError, ...
        if isinstance(exc, EOFError) or stream.tell() >= len(data):
            raise PthError(p, "truncated", "file ends inside its pickles (is it truncated?)") from exc
        raise PthError(p, "malformed", f"damaged pickle ({type(exc).__name__}: {str(exc)[:120]})") from exc
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise PthError(p, "malformed", "the saved object is not a state dict of named tensors")
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise PthError(p, "malformed", "the storage key list is damaged")
    buffers = _read_storages(data, stream.tell(), keys, unpickler.storages, p)
    for name, value in state.items():
        if not isinstance(value, _Tensor):
            raise PthError(p, "malformed", f"state dict entry {name!r} is not a tensor")
    _check_addressed_size(state, buffers, p)
    return {name: _tensor_to_array(value, buffers, p) for name, value in state.items()}


def _check_addressed_size(state: dict[str, _Tensor], buffers: dict[str, np.ndarray], path: Path) -> None:
    """Refuse a state dict whose tensors would make more elements than the file's storages hold.

    Strides may repeat elements (a stride of 0, or steps smaller than the rows), so without this a
    few bytes could ask for gigabytes: one stored float with size (10**9,) and stride (0,). torch.save
    writes each parameter's own elements, so a real tensor never holds more than its storage, and
    the distinct views of a file together never more than all its storages (names tied to one
    weight share one view and count once). Checked for every tensor before any array is made."""
    held = sum(buffer.size for buffer in buffers.values())
    views: set[tuple[Any, ...]] = set()
    addressed = 0
    for name, tensor in state.items():
        count = math.prod(tensor.size)
        if count > tensor.storage.numel:
            raise PthError(
                path,
                "malformed",
                f"tensor {name!r} of shape {tensor.size} makes {count} elements from a storage of "
                f"{tensor.storage.numel}",
            )
        view = (tensor.storage.key, tensor.storage.offset + tensor.offset, tensor.size, tensor.stride)
        if view not in views:
            views.add(view)
            addressed += count
    if addressed > held:
        raise PthError(
            path, "malformed", f"the tensors make {addressed} elements from storages that hold {held}"
        )
