"""Crash-safe optimizer checkpoints: one file, written atomically, verified on load.

``save(optimizer, path)`` writes the optimizer's ``state_dict()`` (its state
buffers, step counts and per-group hyperparameters) and its class name;
``load(optimizer, path)`` checks the file and loads it into an optimizer built
over the same params. The params themselves are *not* in the checkpoint: they
are the caller's arrays, saved however the caller likes (``numpy.save``, say).

Crash safety. ``save`` writes a temporary file in the same directory
(``.<name>.<pid>.<random>.tmp``), flushes and ``fsync``\\ s it, renames it onto
``path`` with ``os.replace`` (atomic on POSIX) and ``fsync``\\ s the directory.
Whenever the process dies, ``path`` holds either the previous complete
checkpoint or the new complete one. A crash can leave a temporary file behind;
its name never matches a checkpoint's, it is never read, and it can be deleted
when no save is running.

Integrity. The file ends with the SHA-256 of everything before it, so a
truncated, extended or bit-flipped file is refused with :class:`CheckpointError`
before anything is loaded; loading is all-or-nothing, so after any error the
optimizer is exactly as it was.

Safety. Nothing is unpickled: the structure is JSON and the arrays are raw
bytes of a plain numeric dtype (bool, integer, float, or a low-precision float
of ``ml_dtypes`` such as bfloat16), so loading an untrusted file cannot run code.

File format, version 1 (integers little-endian)::

    offset  size  content
    0       14    magic b"\\x89FADAMCKPT\\r\\n\\x1a\\n"
    14      2     zero
    16      4     format version (uint32), 1
    20      8     header length H (uint64)
    28      8     payload length P (uint64)
    36      H     header: UTF-8 JSON object (below)
    36+H    pad   zero bytes up to the next multiple of 64: the payload start S
    S       P     payload: the raw C-order bytes of every array, each starting
                  at a multiple of 64 bytes from S, zero bytes between them
    S+P     32    SHA-256 of bytes [0, S+P)

The header is ``{"format": "fastadam.checkpoint", "optimizer": {"class": ...,
"module": ...}, "fastadam_version": ..., "arrays": [...], "state_dict": ...}``.
``arrays`` lists ``{"dtype": "<f4", "shape": [...], "offset": ..., "nbytes": ...}``
(offset relative to S); the dtype is NumPy's ``dtype.str`` (byte order included)
or the name of an ``ml_dtypes`` type (``"bfloat16"``, bytes little-endian).
``state_dict`` is the value of ``optimizer.state_dict()`` in a typed JSON
encoding: null, booleans, integers, strings, finite floats and lists are
themselves; every other value is a one-key object: ``{"$dict": [[key, value],
...]}``, ``{"$tuple": [...]}``, ``{"$float": "nan" | "inf" | "-inf"}``,
``{"$numpy": [dtype, value]}`` for a NumPy scalar and ``{"$array": i}`` for
``arrays[i]``.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import importlib
import json
import math
import os
import secrets
import struct
import sys
from collections.abc import Mapping
from typing import Any, BinaryIO

import numpy as np

from ._version import __version__
from .optimizers import Optimizer

__all__ = ["FORMAT_VERSION", "MAGIC", "CheckpointError", "load", "save"]

MAGIC = b"\x89FADAMCKPT\r\n\x1a\n"
FORMAT_VERSION = 1
FORMAT_NAME = "fastadam.checkpoint"

_PREAMBLE = struct.Struct("<14s2xIQQ")  # magic, version, header length, payload length
_ALIGN = 64
_DIGEST = hashlib.sha256().digest_size
_ARRAY_KINDS = "biuf"  # bool, integers, floats: plain numbers, never objects
_EXTENSION_MODULE = "ml_dtypes"  # bfloat16 and friends: kind "V", but plain numbers too


class CheckpointError(ValueError):
    """A checkpoint file that cannot be loaded: not a checkpoint, truncated,
    corrupted, of another format version or optimizer class, or not matching the
    optimizer's params. The optimizer is unchanged when this is raised."""


PathLike = str | os.PathLike[str]


# --------------------------------------------------------------------- save


def save(optimizer: Optimizer, path: PathLike) -> None:
    """Write ``optimizer``'s state and hyperparameters to ``path``, atomically.

    Parameters
    ----------
    optimizer : fastadam.Optimizer
        The optimizer to save. Its ``state_dict()`` is taken under the
        optimizer's lock, so a step running in another thread is either wholly
        in the checkpoint or not at all.
    path : str or os.PathLike
        The checkpoint file. Its directory must exist. An existing file is
        replaced only once the new one is completely written and on disk.

    Raises
    ------
    TypeError
        If ``optimizer`` is not a fastadam optimizer, or a param group holds a
        value a checkpoint cannot store (anything but numbers, strings, None,
        NumPy numbers and numeric arrays, in lists, tuples and dicts).
    OSError
        If the file cannot be written; ``path`` is then unchanged and the
        temporary file removed.

    Notes
    -----
    The params are not saved: save them yourself (e.g. ``numpy.save``) at the
    same point of training.

    Examples
    --------
    >>> import os, tempfile, numpy as np, fastadam
    >>> from fastadam.checkpoint import save, load
    >>> w = np.zeros(3)
    >>> opt = fastadam.Adam([w], lr=0.1)
    >>> _ = opt.step([np.ones(3)])
    >>> path = os.path.join(tempfile.mkdtemp(), "opt.ckpt")
    >>> save(opt, path)
    >>> again = fastadam.Adam([w.copy()])
    >>> load(again, path)
    >>> again.state[0]["step"], again.param_groups[0]["lr"]
    (1, 0.1)
    """
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be a fastadam optimizer, got {type(optimizer).__name__}")
    path = os.fspath(path)
    arrays: list[np.ndarray] = []
    encoded = _encode(optimizer.state_dict(), arrays, "state_dict")
    table = []
    offset = 0
    for array in arrays:
        offset = _aligned(offset)
        table.append(
            {
                "dtype": _dtype_name(array.dtype),
                "shape": list(array.shape),
                "offset": offset,
                "nbytes": array.nbytes,
            }
        )
        offset += array.nbytes
    header = {
        "format": FORMAT_NAME,
        "optimizer": {"class": type(optimizer).__qualname__, "module": type(optimizer).__module__},
        "fastadam_version": __version__,
        "arrays": table,
        "state_dict": encoded,
    }
    header_bytes = json.dumps(header, separators=(",", ":"), allow_nan=False).encode()
    preamble = _PREAMBLE.pack(MAGIC, FORMAT_VERSION, len(header_bytes), offset)
    _write_atomically(path, preamble, header_bytes, arrays, table)


def _write_atomically(
    path: str, preamble: bytes, header: bytes, arrays: list[np.ndarray], table: list[dict]
) -> None:
    directory, name = os.path.split(os.path.abspath(path))
    fd, temp = _create_temp(directory, name)
    try:
        with os.fdopen(fd, "wb") as f:
            digest = hashlib.sha256()
            _put(f, digest, preamble)
            _put(f, digest, header)
            _put(
                f,
                digest,
                bytes(_aligned(len(preamble) + len(header)) - len(preamble) - len(header)),
            )
            written = 0
            for array, entry in zip(arrays, table, strict=True):
                _put(f, digest, bytes(entry["offset"] - written))
                _put(f, digest, _raw_bytes(array))
                written = entry["offset"] + entry["nbytes"]
            f.write(digest.digest())
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    _fsync_directory(directory)


def _create_temp(directory: str, name: str) -> tuple[int, str]:
    """Create a new, empty file next to ``path`` (mode 0o666 less the umask)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    while True:
        temp = os.path.join(directory, f".{name[:200]}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(temp, flags, 0o666), temp
        except FileExistsError:
            continue


def _put(f: BinaryIO, digest: Any, data: bytes | memoryview) -> None:
    f.write(data)
    digest.update(data)


def _is_extension(dtype: np.dtype) -> bool:
    return (
        dtype.kind == "V"
        and dtype.fields is None
        and dtype.subdtype is None
        and getattr(dtype.type, "__module__", None) == _EXTENSION_MODULE
    )


def _dtype_name(dtype: np.dtype) -> str:
    """How the header names the dtype of an array (``_array_dtype`` reads it back)."""
    if _is_extension(dtype):
        if sys.byteorder != "little":
            raise TypeError(f"arrays of dtype {dtype} are saved only on little-endian machines")
        return dtype.name
    return dtype.str


def _array_dtype(name: str) -> np.dtype:
    """The dtype a header names, if a checkpoint may hold it; raises ValueError otherwise."""
    if not name.isidentifier():  # a NumPy dtype string such as "<f4"
        dtype = np.dtype(name)
        if dtype.kind in _ARRAY_KINDS and dtype.fields is None and dtype.subdtype is None:
            return dtype
        raise ValueError(f"dtype {dtype}")
    if name.startswith("_") or sys.byteorder != "little":
        raise ValueError(f"dtype {name}")
    module = importlib.import_module(_EXTENSION_MODULE)
    dtype = np.dtype(getattr(module, name))
    if not _is_extension(dtype) or dtype.name != name:
        raise ValueError(f"dtype {name}")
    return dtype


def _raw_bytes(array: np.ndarray) -> memoryview:
    """The bytes of a C-contiguous array, without a copy."""
    return np.ascontiguousarray(array).reshape(-1).view(np.uint8).data


def _fsync_directory(directory: str) -> None:
    """Make the rename durable; a no-op where directories cannot be opened or synced."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError as error:
        if error.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def _aligned(n: int) -> int:
    return -(-n // _ALIGN) * _ALIGN


def _encode(value: Any, arrays: list[np.ndarray], where: str) -> Any:
    """``value`` in the typed JSON encoding; arrays are appended to ``arrays``."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.ndarray):
        dtype = value.dtype
        if not (dtype.kind in _ARRAY_KINDS and dtype.fields is None) and not _is_extension(dtype):
            raise TypeError(f"{where} is an array of dtype {dtype}, which cannot be saved")
        arrays.append(value)
        return {"$array": len(arrays) - 1}
    if isinstance(value, np.generic):
        if value.dtype.kind not in _ARRAY_KINDS or value.dtype.itemsize > 8:
            raise TypeError(f"{where} is a {type(value).__name__}, which cannot be saved")
        return {"$numpy": [value.dtype.str, _encode(value.item(), arrays, where)]}
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else {"$float": repr(float(value))}
    if isinstance(value, (list, tuple)):
        items = [_encode(v, arrays, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if isinstance(value, list) else {"$tuple": items}
    if isinstance(value, Mapping):
        pairs = []
        for key, item in value.items():
            if isinstance(key, bool) or not isinstance(key, (str, int)):
                raise TypeError(f"{where} has a key {key!r}; only str and int keys can be saved")
            pairs.append(
                [
                    int(key) if isinstance(key, int) else key,
                    _encode(item, arrays, f"{where}[{key!r}]"),
                ]
            )
        return {"$dict": pairs}
    raise TypeError(f"{where} is a {type(value).__name__}, which a checkpoint cannot store")


# --------------------------------------------------------------------- load


def load(optimizer: Optimizer, path: PathLike) -> None:
    """Load the checkpoint at ``path`` into ``optimizer``: all of it, or nothing.

    Parameters
    ----------
    optimizer : fastadam.Optimizer
        An optimizer of the class that was saved, over params of the same number,
        grouping, shapes and dtypes. Its state and hyperparameters are replaced.
    path : str or os.PathLike
        A file written by :func:`save`.

    Raises
    ------
    CheckpointError
        If the file is not a fastadam checkpoint, is truncated or corrupted (its
        checksum does not match), has an unknown format version, was saved from
        another optimizer class, or does not fit the optimizer's params. The
        optimizer is unchanged.
    OSError
        If the file cannot be read (``FileNotFoundError`` if it does not exist).
    TypeError
        If ``optimizer`` is not a fastadam optimizer.
    """
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be a fastadam optimizer, got {type(optimizer).__name__}")
    path = os.fspath(path)
    data = _read(path)
    header, payload = _verify(data, path)
    saved = header["optimizer"]
    mine = type(optimizer)
    if saved["class"] != mine.__qualname__:
        raise CheckpointError(
            f"{path}: checkpoint of a {saved['module']}.{saved['class']} optimizer cannot be "
            f"loaded into a {mine.__module__}.{mine.__qualname__}"
        )
    views = [_view(payload, entry, i, path) for i, entry in enumerate(header["arrays"])]
    try:
        state_dict = _decode(header["state_dict"], views, path)
    except RecursionError:
        raise CheckpointError(f"{path}: malformed header: nested too deeply") from None
    if not isinstance(state_dict, dict):
        raise CheckpointError(f"{path}: malformed header: state_dict is not a dict")
    try:
        optimizer.load_state_dict(state_dict)
    except (TypeError, ValueError, KeyError) as error:
        raise CheckpointError(
            f"{path}: the checkpoint does not fit this optimizer's params or settings: {error}"
        ) from error


def _read(path: str) -> bytearray:
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        data = bytearray(size)
        view = memoryview(data)
        got = 0
        while got < size:
            n = f.readinto(view[got:])
            if not n:
                break
            got += n
        view.release()
        del data[got:]
        return data


def _verify(data: bytearray, path: str) -> tuple[dict, memoryview]:
    """Check magic, version, length and checksum; return the header and the payload."""
    size = len(data)
    head = bytes(data[: len(MAGIC)])
    if head != MAGIC:
        if size < len(MAGIC) and MAGIC.startswith(head):
            raise CheckpointError(f"{path}: truncated checkpoint ({size} bytes)")
        raise CheckpointError(f"{path}: not a fastadam checkpoint (bad magic bytes)")
    if size < _PREAMBLE.size:
        raise CheckpointError(f"{path}: truncated checkpoint ({size} bytes)")
    _, version, header_len, payload_len = _PREAMBLE.unpack_from(data)
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {version} is not supported: the file was "
            f"written by a newer fastadam, and fastadam {__version__} reads version "
            f"{FORMAT_VERSION}; upgrade fastadam to load it"
        )
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {version} is not supported "
            f"(this fastadam reads version {FORMAT_VERSION})"
        )
    start = _aligned(_PREAMBLE.size + header_len)
    expected = start + payload_len + _DIGEST
    if size < expected:
        raise CheckpointError(f"{path}: truncated checkpoint: {size} bytes, expected {expected}")
    if size > expected:
        raise CheckpointError(f"{path}: corrupted checkpoint: {size} bytes, expected {expected}")
    view = memoryview(data)
    if hashlib.sha256(view[: size - _DIGEST]).digest() != bytes(view[size - _DIGEST :]):
        raise CheckpointError(f"{path}: corrupted checkpoint: SHA-256 checksum mismatch")
    try:
        header = json.loads(bytes(view[_PREAMBLE.size : _PREAMBLE.size + header_len]))
    except (ValueError, RecursionError) as error:
        raise CheckpointError(f"{path}: malformed header: {error}") from None
    _check_header(header, path)
    return header, view[start : start + payload_len]


def _check_header(header: object, path: str) -> None:
    def bad(what: str) -> CheckpointError:
        return CheckpointError(f"{path}: malformed header: {what}")

    if not isinstance(header, dict):
        raise bad("not a JSON object")
    missing = {"format", "optimizer", "arrays", "state_dict"} - set(header)
    if missing:
        raise bad(f"missing {sorted(missing)}")
    if header["format"] != FORMAT_NAME:
        raise bad(f"format is {header['format']!r}, not {FORMAT_NAME!r}")
    saved = header["optimizer"]
    if not (
        isinstance(saved, dict)
        and isinstance(saved.get("class"), str)
        and isinstance(saved.get("module"), str)
    ):
        raise bad("optimizer must name a class and a module")
    if not isinstance(header["arrays"], list):
        raise bad("arrays is not a list")


def _view(payload: memoryview, entry: object, index: int, path: str) -> np.ndarray:
    """arrays[index] of the header as a view of the payload, after checking it fits."""

    def bad(what: str) -> CheckpointError:
        return CheckpointError(f"{path}: malformed header: arrays[{index}] {what}")

    if not isinstance(entry, dict):
        raise bad("is not an object")
    try:
        name = entry["dtype"]
        shape = tuple(entry["shape"])
        offset, nbytes = entry["offset"], entry["nbytes"]
    except (KeyError, TypeError):
        raise bad(f"is not a valid array description: {entry!r}") from None
    try:
        dtype = _array_dtype(name)
    except (TypeError, ValueError, SyntaxError, AttributeError, ImportError):
        # np.dtype raises SyntaxError for some strings, such as ",f4"
        raise bad(f"has dtype {name!r}, which a checkpoint never holds") from None
    numbers = (*shape, offset, nbytes)
    if not all(type(n) is int and n >= 0 for n in numbers):
        raise bad(f"has a bad shape, offset or size: {entry!r}")
    count = math.prod(shape)
    if count * dtype.itemsize != nbytes or offset + nbytes > len(payload):
        raise bad(f"does not fit the payload: {entry!r}")
    array = np.frombuffer(payload, dtype=dtype, count=count, offset=offset).reshape(shape)
    if not dtype.isnative:
        array = array.astype(dtype.newbyteorder("="))
    return array


def _decode(value: Any, arrays: list[np.ndarray], path: str) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        return [_decode(v, arrays, path) for v in value]
    if not isinstance(value, dict) or len(value) != 1:
        raise CheckpointError(f"{path}: malformed header: unexpected value {value!r:.80}")
    ((tag, content),) = value.items()
    try:
        if tag == "$dict":
            return {_key(k): _decode(v, arrays, path) for k, v in content}
        if tag == "$tuple":
            return tuple(_decode(v, arrays, path) for v in content)
        if tag == "$float" and content in ("nan", "inf", "-inf"):
            return float(content)
        if tag == "$array" and type(content) is int and 0 <= content < len(arrays):
            return arrays[content]
        if tag == "$numpy":
            dtype, item = content
            dtype = np.dtype(dtype)
            if dtype.kind in _ARRAY_KINDS and dtype.fields is None and dtype.itemsize <= 8:
                return dtype.type(_decode(item, arrays, path))
    except CheckpointError:
        raise
    except (TypeError, ValueError, OverflowError):
        pass
    raise CheckpointError(f"{path}: malformed header: bad {tag!r} entry {content!r:.80}")


def _key(key: object) -> str | int:
    if isinstance(key, bool) or not isinstance(key, (str, int)):
        raise TypeError(key)
    return key
