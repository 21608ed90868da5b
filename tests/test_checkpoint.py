"""Checkpoints: round trips, resuming in a new process, crashes while saving, bad files.

The optimizer checkpoint holds the optimizer's state and hyperparameters; the
params are the caller's, so these tests save them with ``numpy.save``.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import re
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import checkpoint_worker as w
import ml_dtypes
import numpy as np
import pytest

import fastadam
from fastadam.checkpoint import FORMAT_VERSION, MAGIC, CheckpointError, load, save

WORKER = str(Path(__file__).with_name("checkpoint_worker.py"))
NAMES = list(w.CONFIGS)


# ---------------------------------------------------------------------- helpers


def _trained(name: str, steps: int = 7, seed: int = 0):
    params = w.make_params(seed)
    opt = w.make_optimizer(name, params)
    w.train(opt, params, 1, steps)
    return opt, params


def _same_value(a, b) -> bool:
    """Equal values of the same type; arrays bit for bit, NaN equal to NaN."""
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same_value(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, (float, np.floating)) and math.isnan(a):
        return bool(math.isnan(b))
    return a == b


def _fingerprint(opt: fastadam.Optimizer):
    """Everything about an optimizer a failed load must not change, bit for bit."""
    state = {
        i: {k: (v.dtype.str, v.shape, v.tobytes(), id(v)) if isinstance(v, np.ndarray) else v
            for k, v in s.items()}
        for i, s in opt.state.items()
    }  # fmt: skip
    groups = [
        ({k: repr(v) for k, v in g.items() if k != "params"}, [id(p) for p in g["params"]])
        for g in opt.param_groups
    ]
    return state, groups


def _leftovers(directory: Path, keep: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p != keep)


def _temp_name_pattern(path: Path) -> re.Pattern:
    return re.compile(rf"^\.{re.escape(path.name)}\.\d+\.[0-9a-f]{{8}}\.tmp$")


# The documented layout, written independently of fastadam.checkpoint.
PREAMBLE = struct.Struct("<14s2xIQQ")


def _parse(data: bytes) -> tuple[int, dict, bytes]:
    magic, version, header_len, payload_len = PREAMBLE.unpack_from(data)
    assert magic == MAGIC
    start = -(-(PREAMBLE.size + header_len) // 64) * 64
    header = json.loads(data[PREAMBLE.size : PREAMBLE.size + header_len])
    assert data[PREAMBLE.size + header_len : start] == bytes(start - PREAMBLE.size - header_len)
    assert len(data) == start + payload_len + 32
    assert hashlib.sha256(data[:-32]).digest() == data[-32:]
    return version, header, data[start : start + payload_len]


def _build(header: dict | bytes, payload: bytes, version: int = FORMAT_VERSION) -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header, separators=(",", ":"))
    raw = raw if isinstance(raw, bytes) else raw.encode()
    body = PREAMBLE.pack(MAGIC, version, len(raw), len(payload)) + raw
    body += bytes(-len(body) % 64) + payload
    return body + hashlib.sha256(body).digest()


# ------------------------------------------------------------------ round trips


@pytest.mark.parametrize("name", NAMES)
def test_round_trip_restores_everything_and_continues_bitwise(name, tmp_path):
    opt, params = _trained(name)
    path = tmp_path / "opt.ckpt"
    before = _fingerprint(opt)
    save(opt, path)
    assert _fingerprint(opt) == before, "saving changed the optimizer"

    clones = [p.copy() for p in params]
    fresh = w.make_optimizer(name, clones)
    fresh.param_groups[0]["lr"] = 123.0  # the checkpoint's hyperparameters win
    load(fresh, str(path))
    assert all(a.tobytes() == b.tobytes() for a, b in zip(clones, params, strict=True)), (
        "loading touched the params"
    )
    assert _same_value(fresh.state_dict(), opt.state_dict())
    assert fresh.param_groups[1]["name"] == "head"
    assert all(p is c for p, c in zip(fresh.param_groups[0]["params"], clones[:2], strict=True)), (
        "loading replaced the params"
    )
    steps = sorted(s["step"] for s in fresh.state.values())
    assert steps == [5, 7, 7, 7], "the second param skips every third step"

    for step in range(8, 14):
        grads = w.gradients(step, params)
        opt.step(grads)
        fresh.step(grads)
    for p, c in zip(params, clones, strict=True):
        assert p.tobytes() == c.tobytes()
    assert _same_value(fresh.state_dict(), opt.state_dict())


@pytest.mark.parametrize("name", NAMES)
def test_optimizer_without_state_round_trips(name, tmp_path):
    params = w.make_params()
    opt = w.make_optimizer(name, params)
    save(opt, tmp_path / "empty.ckpt")
    other = w.make_optimizer(name, [p.copy() for p in params])
    w.train(other, other.param_groups[0]["params"] + other.param_groups[1]["params"], 1, 2)
    load(other, tmp_path / "empty.ckpt")
    assert other.state == {}
    assert _same_value(other.state_dict(), opt.state_dict())


def test_value_types_survive(tmp_path):
    params = [np.ones(3, np.float32)]
    extras = {
        "label": "encoder",
        "nothing": None,
        "ratio": float("nan"),
        "limits": (float("-inf"), float("inf"), -0.0),
        "schedule": [1, 2.5, [3, (4, "x")]],
        "meta": {"epoch": np.int64(3), "seen": np.uint8(200), "on": np.bool_(True), "ids": {1: 2}},
        "huge": 2**80,
        "table": np.arange(6, dtype=np.int16).reshape(2, 3),
        "half": np.linspace(-2, 2, 5).astype(ml_dtypes.bfloat16),
    }
    opt = fastadam.Adam(
        [{"params": params, **extras}],
        lr=np.float32(0.1),
        betas=(np.float64(0.8), 0.9),
        amsgrad=np.bool_(True),
        weight_decay=np.int64(0),
    )
    opt.step([np.full(3, 0.5, np.float32)])
    save(opt, tmp_path / "types.ckpt")
    fresh = fastadam.Adam([np.ones(3, np.float32)])
    load(fresh, tmp_path / "types.ckpt")
    loaded = fresh.state_dict()["param_groups"][0]
    saved = opt.state_dict()["param_groups"][0]
    assert loaded.keys() == saved.keys()
    for key in saved:
        assert _same_value(loaded[key], saved[key]), key
    assert type(loaded["lr"]) is np.float32
    assert type(loaded["betas"]) is tuple
    assert math.copysign(1.0, loaded["limits"][2]) == -1.0


COMPRESSED = {
    "bfloat16 state": ({"state_dtype": "bfloat16"}, np.float32),
    "int8 state": ({"state_dtype": "int8", "min_8bit_size": 64, "block_size": 64}, np.float32),
    "bfloat16 params, master weights": ({"master_weights": True}, ml_dtypes.bfloat16),
}


@pytest.mark.parametrize("setting", list(COMPRESSED))
def test_compressed_state_round_trips(setting, tmp_path):
    """bfloat16 (an ml_dtypes type), 8-bit codes with their absmax, float32 master weights."""
    options, dtype = COMPRESSED[setting]
    rng = np.random.default_rng(8)
    params = [rng.standard_normal(300).astype(dtype), rng.standard_normal(5).astype(dtype)]
    opt = fastadam.AdamW(params, lr=1e-2, amsgrad=True, **options)
    grads = [[rng.standard_normal(p.shape).astype(dtype) for p in params] for _ in range(6)]
    for g in grads[:3]:
        opt.step(g)
    kinds = {v.dtype for s in opt.state.values() for v in s.values() if isinstance(v, np.ndarray)}
    special = kinds - {np.dtype(np.float32)} or {"master_param"} & set(opt.state[0])
    assert special, f"{setting}: nothing to test"
    save(opt, tmp_path / "opt.ckpt")
    clones = [p.copy() for p in params]
    fresh = fastadam.AdamW(clones, lr=1e-2, amsgrad=True, **options)
    load(fresh, tmp_path / "opt.ckpt")
    assert _same_value(fresh.state_dict(), opt.state_dict())
    for g in grads[3:]:
        opt.step(g)
        fresh.step(g)
    for p, c in zip(params, clones, strict=True):
        assert p.tobytes() == c.tobytes()
    assert _same_value(fresh.state_dict(), opt.state_dict())


def test_same_state_gives_the_same_bytes(tmp_path):
    opt, _ = _trained("Adam")
    save(opt, tmp_path / "a")
    save(opt, tmp_path / "b")
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()


def test_file_follows_the_documented_layout(tmp_path):
    opt, _ = _trained("RMSprop")
    path = tmp_path / "opt.ckpt"
    save(opt, path)
    data = path.read_bytes()
    version, header, payload = _parse(data)
    assert version == FORMAT_VERSION == 1
    assert header["format"] == "fastadam.checkpoint"
    assert header["optimizer"] == {"class": "RMSprop", "module": "fastadam.optimizers"}
    assert header["fastadam_version"] == fastadam.__version__
    # Three buffers (centered, with momentum) for each of the four params, the empty one too.
    assert len(header["arrays"]) == 12
    for entry in header["arrays"]:
        assert entry["offset"] % 64 == 0
        size = math.prod(entry["shape"]) * np.dtype(entry["dtype"]).itemsize
        assert entry["nbytes"] == size
    sq = opt.state[0]["square_avg"]
    first = header["arrays"][0]
    assert payload[first["offset"] : first["offset"] + first["nbytes"]] == sq.tobytes()
    assert _build(header, payload) == data


def test_non_native_byte_order_in_a_file_is_read(tmp_path):
    """A file written on a machine of the other byte order loads to the same values."""
    opt, params = _trained("Adamax")
    path = tmp_path / "opt.ckpt"
    save(opt, path)
    _, header, payload = _parse(path.read_bytes())
    swapped = bytearray(payload)
    for entry in header["arrays"]:
        dtype = np.dtype(entry["dtype"])
        start, end = entry["offset"], entry["offset"] + entry["nbytes"]
        swapped[start:end] = np.frombuffer(payload[start:end], dtype).byteswap().tobytes()
        entry["dtype"] = dtype.newbyteorder().str
    path.write_bytes(_build(header, bytes(swapped)))
    fresh = w.make_optimizer("Adamax", [p.copy() for p in params])
    load(fresh, path)
    assert _same_value(fresh.state_dict(), opt.state_dict())


def test_resuming_in_a_new_process_is_bitwise_identical(tmp_path):
    """Train 100 steps; checkpoint at 50; a new process resumes: the same final bits."""
    reference = {}
    for name in NAMES:
        params = w.make_params()
        opt = w.make_optimizer(name, params)
        w.train(opt, params, 1, w.HALF)
        save(opt, tmp_path / f"{name}.ckpt")
        for i, p in enumerate(params):
            np.save(w.param_file(str(tmp_path), name, i), p)
        w.train(opt, params, w.HALF + 1, w.TOTAL)
        reference[name] = params
    result = subprocess.run(
        [sys.executable, WORKER, "resume", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    for name in NAMES:
        for i, expected in enumerate(reference[name]):
            resumed = np.load(w.param_file(str(tmp_path), name, i, final=True))
            assert resumed.dtype == expected.dtype
            assert resumed.shape == expected.shape
            assert resumed.tobytes() == expected.tobytes(), (name, i)
        # Resuming without the optimizer's state would not give the same params.
        params = [np.load(w.param_file(str(tmp_path), name, i)) for i in range(len(w.SHAPES))]
        w.train(w.make_optimizer(name, params), params, w.HALF + 1, w.TOTAL)
        assert params[0].tobytes() != reference[name][0].tobytes(), name


# ----------------------------------------------------------- crashes and errors


def _run_worker(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, WORKER, *args], capture_output=True, text=True, timeout=120, cwd=cwd
    )


class _Reference:
    """The big optimizer advanced in this process, to check what a checkpoint holds."""

    def __init__(self) -> None:
        self.opt = w.big_optimizer()
        self.grad = w.big_gradient()

    def assert_holds(self, path: Path, step: int) -> None:
        while w.big_step(self.opt) < step:
            self.opt.step([self.grad])
        assert w.big_step(self.opt) == step
        loaded = w.big_optimizer()
        load(loaded, path)
        assert w.big_step(loaded) == step
        assert _same_value(loaded.state_dict()["state"], self.opt.state_dict()["state"])


def test_sigkill_during_saves_never_leaves_a_partial_checkpoint(tmp_path):
    """A process saving a 24 MB checkpoint over and over is killed at random moments."""
    path = tmp_path / "big.ckpt"
    reference = _Reference()
    save(reference.opt, path)
    temp_name = _temp_name_pattern(path)
    rng = np.random.default_rng(20240601)
    expected = 0  # the step count the checkpoint holds
    total_saves = 0
    for _ in range(5):
        proc = subprocess.Popen(
            [sys.executable, WORKER, "save-loop", str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        watchdog = threading.Timer(120, proc.kill)
        watchdog.start()
        try:
            lines = [proc.stdout.readline()]
            for _ in range(int(rng.integers(0, 3))):  # let a few saves complete
                lines.append(proc.stdout.readline())
            time.sleep(rng.uniform(0.0, 0.2))  # then kill it somewhere in the next ones
            proc.send_signal(signal.SIGKILL)
            out, err = proc.communicate(timeout=60)
        finally:
            watchdog.cancel()
        assert proc.returncode == -signal.SIGKILL, err
        lines += out.splitlines()
        assert lines[0] == f"loaded {expected}\n", (lines[0], err)
        saved = [int(line.split()[1]) for line in lines[1:] if line.startswith("saved")]
        assert saved == list(range(expected + 1, expected + 1 + len(saved)))
        total_saves += len(saved)
        last = saved[-1] if saved else expected
        # The checkpoint is complete: the last reported save or, if the kill came
        # between the rename and the report, the one after it.
        check = w.big_optimizer()
        load(check, path)
        assert w.big_step(check) in (last, last + 1)
        expected = w.big_step(check)
        reference.assert_holds(path, expected)
        for leftover in _leftovers(tmp_path, path):
            assert temp_name.match(leftover.name), leftover.name
    assert total_saves >= 3


LIMITS = {
    "nothing written": lambda size: 0,
    "inside the magic": lambda size: 5,
    "inside the header": lambda size: 100,
    "half way": lambda size: size // 2,
    "all but the last byte": lambda size: size - 1,
}


@pytest.mark.parametrize("where", list(LIMITS))
def test_dying_in_the_middle_of_a_write_keeps_the_previous_checkpoint(tmp_path, where):
    """The saving process dies (SIGXFSZ, from a file size limit) part way through the file."""
    path = tmp_path / "big.ckpt"
    reference = _Reference()
    for _ in range(3):
        reference.opt.step([reference.grad])
    save(reference.opt, path)
    before = path.read_bytes()
    limit = LIMITS[where](len(before))
    result = _run_worker(tmp_path, "save-once", str(path), str(limit), "kill")
    assert result.returncode == -signal.SIGXFSZ, (result.stdout, result.stderr)
    assert path.read_bytes() == before
    reference.assert_holds(path, 3)
    (leftover,) = _leftovers(tmp_path, path)
    assert _temp_name_pattern(path).match(leftover.name)
    assert leftover.stat().st_size == limit
    with pytest.raises(CheckpointError, match=r"^.*: truncated checkpoint"):
        load(w.big_optimizer(), leftover)
    # The next save works as if nothing had happened, and leaves the debris alone.
    reference.opt.step([reference.grad])
    save(reference.opt, path)
    reference.assert_holds(path, 4)
    assert _leftovers(tmp_path, path) == [leftover]


def test_a_failing_write_removes_its_temporary_file(tmp_path):
    path = tmp_path / "big.ckpt"
    save(w.big_optimizer(), path)
    before = path.read_bytes()
    result = _run_worker(tmp_path, "save-once", str(path), str(len(before) // 3), "raise")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"oserror {errno.EFBIG}\n"
    assert path.read_bytes() == before
    assert _leftovers(tmp_path, path) == []


def test_unsupported_value_is_refused_before_writing(tmp_path):
    opt, _ = _trained("SGD")
    path = tmp_path / "opt.ckpt"
    save(opt, path)
    before = path.read_bytes()
    opt.param_groups[1]["callback"] = print
    with pytest.raises(TypeError, match=r"\['callback'\] is a builtin_function_or_method"):
        save(opt, path)
    opt.param_groups[1]["callback"] = {(1, 2): 3}
    with pytest.raises(TypeError, match=r"key \(1, 2\)"):
        save(opt, path)
    opt.param_groups[1]["callback"] = np.array(["a"])
    with pytest.raises(TypeError, match=r"dtype <U1"):
        save(opt, path)
    opt.param_groups[1]["callback"] = np.complex64(1)
    with pytest.raises(TypeError, match=r"complex64"):
        save(opt, path)
    opt.param_groups[1]["callback"] = np.zeros(2, [("a", np.float32)])
    with pytest.raises(TypeError, match=r"dtype \[\('a', '<f4'\)\]"):
        save(opt, path)
    opt.param_groups[1]["callback"] = ml_dtypes.bfloat16(1)
    with pytest.raises(TypeError, match=r"bfloat16"):
        save(opt, path)
    assert path.read_bytes() == before
    assert _leftovers(tmp_path, path) == []


def test_save_replaces_with_the_usual_permissions(tmp_path):
    opt, params = _trained("Lion")
    path = tmp_path / "opt.ckpt"
    path.write_bytes(b"an older file")
    umask = os.umask(0o027)
    try:
        save(opt, path)
    finally:
        os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o640
    assert _leftovers(tmp_path, path) == []
    fresh = w.make_optimizer("Lion", [p.copy() for p in params])
    load(fresh, path)
    assert _same_value(fresh.state_dict(), opt.state_dict())


def test_missing_files_and_directories(tmp_path):
    opt, _ = _trained("Adam")
    before = _fingerprint(opt)
    with pytest.raises(FileNotFoundError):
        load(opt, tmp_path / "nothing.ckpt")
    with pytest.raises(FileNotFoundError):
        save(opt, tmp_path / "no such directory" / "opt.ckpt")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(IsADirectoryError):
        save(opt, tmp_path)
    assert list(tmp_path.iterdir()) == []
    assert _fingerprint(opt) == before


def test_not_an_optimizer(tmp_path):
    with pytest.raises(TypeError, match="fastadam optimizer, got dict"):
        save({"state": {}}, tmp_path / "x")
    with pytest.raises(TypeError, match="fastadam optimizer, got list"):
        load([], tmp_path / "x")
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------- bad files, on load


@pytest.fixture
def saved(tmp_path):
    """A trained Adam, its checkpoint's path and bytes, and its fingerprint."""
    opt, params = _trained("Adam")
    path = tmp_path / "opt.ckpt"
    save(opt, path)
    # Train on, so that a wrongly successful load would show.
    w.train(opt, params, 8, 9)
    return opt, path, path.read_bytes(), _fingerprint(opt)


def _refused(opt, path, match, before):
    with pytest.raises(CheckpointError, match=match):
        load(opt, path)
    assert _fingerprint(opt) == before


@pytest.mark.parametrize("keep", [0, 1, 13, 14, 35, 36, 200, 0.5, -33, -32, -1])
def test_truncated_file(saved, keep):
    opt, path, data, before = saved
    keep = int(len(data) * keep) if isinstance(keep, float) else keep % len(data)
    path.write_bytes(data[:keep])
    _refused(opt, path, r"truncated checkpoint", before)


def test_flipped_bits_are_caught(saved):
    """A bit flipped in every byte of the preamble and the checksum, in every third byte
    of the rest (the bit changes with the position): each is refused, for its reason."""
    opt, path, data, before = saved
    assert len(data) < 4096
    regions = [
        (0, 14, r"not a fastadam checkpoint \(bad magic bytes\)"),
        (14, 16, r"SHA-256 checksum mismatch"),
        (16, 20, r"format version \d+ is not supported"),
        # A changed length is a wrong file size, unless padding absorbs it: then the checksum.
        (20, 36, r"(truncated|corrupted) checkpoint"),
        (36, len(data), r"corrupted checkpoint: SHA-256 checksum mismatch"),
    ]
    every_third = set(range(36, len(data) - 32, 3))
    for start, end, match in regions:
        for i in range(start, end):
            if 36 <= i < len(data) - 32 and i not in every_third:
                continue
            bad = bytearray(data)
            bad[i] ^= 1 << (i % 8)
            path.write_bytes(bad)
            with pytest.raises(CheckpointError, match=match):
                load(opt, path)
    assert _fingerprint(opt) == before


def test_extra_bytes(saved):
    opt, path, data, before = saved
    path.write_bytes(data + b"\0")
    _refused(
        opt, path, rf"corrupted checkpoint: {len(data) + 1} bytes, expected {len(data)}", before
    )


@pytest.mark.parametrize(
    "content",
    [b"PK\x03\x04 a zip or .npz file", b"\x93NUMPY\x01\x00", b"hello world, a long text file"],
)
def test_not_a_checkpoint(saved, content):
    opt, path, _, before = saved
    path.write_bytes(content)
    _refused(opt, path, r"not a fastadam checkpoint \(bad magic bytes\)", before)


def test_numpy_file_is_not_a_checkpoint(saved, tmp_path):
    opt, _, _, before = saved
    np.savez(tmp_path / "arrays.npz", a=np.ones(3))
    _refused(opt, tmp_path / "arrays.npz", r"not a fastadam checkpoint", before)


def test_empty_file(saved):
    opt, path, _, before = saved
    path.write_bytes(b"")
    _refused(opt, path, r"truncated checkpoint \(0 bytes\)", before)


def test_older_format_version(saved):
    opt, path, data, before = saved
    _, header, payload = _parse(data)
    path.write_bytes(_build(header, payload, version=0))
    message = r"checkpoint format version 0 is not supported \(this fastadam reads version 1\)$"
    _refused(opt, path, message, before)


@pytest.mark.parametrize("version", [2, 2**32 - 1])
def test_newer_format_version(saved, version):
    """A file of a later format (a newer fastadam wrote it) says so, and what to do."""
    opt, path, data, before = saved
    _, header, payload = _parse(data)
    path.write_bytes(_build(header, payload, version=version))
    message = (
        rf"checkpoint format version {version} is not supported: the file was written by a "
        rf"newer fastadam, and fastadam {re.escape(fastadam.__version__)} reads version 1; "
        r"upgrade fastadam to load it$"
    )
    _refused(opt, path, message, before)


def _tampered(change):
    """Change the parsed header (in place), keeping the file's checksum valid."""

    def tamper(data: bytes) -> bytes:
        _, header, payload = _parse(data)
        change(header)
        return _build(header, payload)

    return tamper


def _set_array(key, value):
    def change(header):
        header["arrays"][0][key] = value

    return change


def _state_dict_is(value):
    def change(header):
        header["state_dict"] = value

    return change


def _first_state_entry(header):
    return header["state_dict"]["$dict"][0][1]["$dict"][0][1]["$dict"]


TAMPERING = {
    "header not JSON": (lambda data: _build(b"{not json", _parse(data)[2]), "malformed header"),
    "header not UTF-8": (lambda data: _build(b'"\xff\xfe"', _parse(data)[2]), "malformed header"),
    "header a list": (lambda data: _build(b"[1]", _parse(data)[2]), "not a JSON object"),
    "deeply nested": (
        lambda data: _build(b"[" * 100_000 + b"]" * 100_000, _parse(data)[2]),
        "malformed header",
    ),
    "no arrays": (_tampered(lambda h: h.pop("arrays")), r"missing \['arrays'\]"),
    "other format": (_tampered(lambda h: h.update(format="torch")), "format is 'torch'"),
    "no class": (_tampered(lambda h: h.update(optimizer={})), "must name a class"),
    "object dtype": (_tampered(_set_array("dtype", "|O")), "dtype '|O', which a checkpoint"),
    "structured dtype": (_tampered(_set_array("dtype", "f8,i4")), "dtype 'f8,i4'"),
    "sub-array dtype": (_tampered(_set_array("dtype", "(2,)<f8")), "dtype"),
    "string dtype": (_tampered(_set_array("dtype", "<U2")), "dtype '<U2'"),
    "void dtype": (_tampered(_set_array("dtype", "|V8")), "dtype '|V8'"),
    "unknown dtype": (_tampered(_set_array("dtype", "zz")), "dtype 'zz'"),
    "not an ml_dtypes type": (_tampered(_set_array("dtype", "finfo")), "dtype 'finfo'"),
    "private name": (_tampered(_set_array("dtype", "__name__")), "dtype '__name__'"),
    "dtype not a string": (_tampered(_set_array("dtype", ["<f8"])), r"dtype \['<f8'\]"),
    "negative dim": (_tampered(_set_array("shape", [-1])), "bad shape"),
    "float dim": (_tampered(_set_array("shape", [1.5])), "bad shape"),
    "wrong size": (_tampered(_set_array("nbytes", 8)), "does not fit the payload"),
    "past the end": (_tampered(_set_array("offset", 10**9)), "does not fit the payload"),
    "huge shape": (_tampered(_set_array("shape", [2**40, 2**40])), "does not fit the payload"),
    "bad array ref": (
        _tampered(lambda h: _first_state_entry(h)[1].__setitem__(1, {"$array": 99})),
        "bad '\\$array' entry",
    ),
    "unknown tag": (
        _tampered(lambda h: _first_state_entry(h)[0].__setitem__(1, {"$pickle": "x"})),
        "bad '\\$pickle' entry",
    ),
    "bad float": (
        _tampered(lambda h: _first_state_entry(h)[0].__setitem__(1, {"$float": "1e9"})),
        "bad '\\$float' entry",
    ),
    "bad numpy scalar": (
        _tampered(lambda h: _first_state_entry(h)[0].__setitem__(1, {"$numpy": ["O", 1]})),
        "bad '\\$numpy' entry",
    ),
    "two-key object": (
        _tampered(lambda h: _first_state_entry(h)[0].__setitem__(1, {"a": 1, "b": 2})),
        "unexpected value",
    ),
    "state_dict a list": (_tampered(_state_dict_is([1, 2])), "state_dict is not a dict"),
    "bad dict pairs": (_tampered(_state_dict_is({"$dict": [[1]]})), "bad '\\$dict' entry"),
    "float dict key": (_tampered(_state_dict_is({"$dict": [[1.5, 1]]})), "bad '\\$dict' entry"),
}


@pytest.mark.parametrize("tampering", list(TAMPERING))
def test_malformed_header_with_a_valid_checksum(saved, tampering):
    """A file that passes the checksum but was not written by save: refused, never crashes."""
    opt, path, data, before = saved
    tamper, match = TAMPERING[tampering]
    path.write_bytes(tamper(data))
    _refused(opt, path, match, before)


MISMATCHES = {
    "another class": (
        lambda: fastadam.SGD(w.make_params()),
        r"checkpoint of a fastadam\.optimizers\.Adam optimizer cannot be loaded into a "
        r"fastadam\.optimizers\.SGD",
    ),
    "a subclass": (
        lambda: fastadam.AdamW(w.make_params()),
        r"fastadam\.optimizers\.Adam optimizer cannot be loaded into a fastadam\.optimizers\.AdamW",
    ),
    "one group": (
        lambda: fastadam.Adam(w.make_params()),
        r"does not fit .*: loaded state dict has a different number of parameter groups",
    ),
    "another shape": (
        lambda: w.make_optimizer("Adam", [np.zeros(6, np.float32), *w.make_params()[1:]]),
        r"does not fit .*: state\[0\]\[\"exp_avg\"\] has shape \(5,\) but the param has shape "
        r"\(6,\)",
    ),
    "another dtype": (
        lambda: w.make_optimizer("Adam", [np.zeros(5), *w.make_params()[1:]]),
        r"does not fit .*: state\[0\]\[\"exp_avg\"\] has dtype float32 but the param has float64",
    ),
    "fewer params": (
        lambda: fastadam.Adam([{"params": w.make_params()[:1]}, {"params": w.make_params()[2:]}]),
        r"does not fit .*: loaded state dict contains a parameter group that doesn't match",
    ),
}


@pytest.mark.parametrize("mismatch", list(MISMATCHES))
def test_checkpoint_of_another_optimizer(saved, mismatch):
    _, path, _, _ = saved
    make, match = MISMATCHES[mismatch]
    other = make()
    other.step([np.ones_like(p) for g in other.param_groups for p in g["params"]])
    _refused(other, path, match, _fingerprint(other))


def test_a_bad_load_leaves_a_working_optimizer(saved):
    """After a refused load the optimizer steps exactly like one that never saw the file."""
    opt, path, data, _ = saved
    params = [p for g in opt.param_groups for p in g["params"]]
    clones = [p.copy() for p in params]
    twin = w.make_optimizer("Adam", clones)
    twin.load_state_dict(opt.state_dict())
    bad = bytearray(data)
    bad[len(data) // 2] ^= 0xFF
    path.write_bytes(bad)
    with pytest.raises(CheckpointError):
        load(opt, path)
    for step in range(10, 13):
        opt.step(w.gradients(step, params))
        twin.step(w.gradients(step, clones))
    for p, c in zip(params, clones, strict=True):
        assert p.tobytes() == c.tobytes()
