"""Compressed formats, bit for bit: the kernels against the NumPy twin (twin_compressed.py).

bfloat16 params, grads and state and 8-bit codes with their absmax must equal
the twin's exactly, with nearest and stochastic rounding; the 8-bit search must
find the nearest code of every float (brute force over the map); and no split
of the work over threads, no offset in memory may change a bit.
"""

import itertools

import numpy as np
import pytest
import twin_compressed as tw

import fastadam
from fastadam import _ext, _formats
from fastadam import functional as F

BF16 = tw.BF16
HP = {"lr": 1e-2, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}


@pytest.fixture(autouse=True)
def _restore_threads():
    before = fastadam.get_num_threads()
    yield
    fastadam.set_num_threads(before)


def _problem(n, param, grad, state, seed=0, amsgrad=False, copy=False, block=256):
    """Buffers by functional keyword: random param, grad and a state of a few steps."""
    rng = np.random.default_rng(seed)
    p32 = rng.standard_normal(n).astype(np.float32)
    bufs = {"param": p32.astype(param), "grad": (rng.standard_normal(n) * 0.1).astype(grad)}
    for k in tw.STATES[: 3 if amsgrad else 2]:
        start = rng.standard_normal(n).astype(np.float32) * 0.01
        start = np.abs(start) if k != "exp_avg" else start
        if state == np.uint8:
            values = tw.MAPS[k == "exp_avg"]
            bufs[k], bufs[f"{k}_absmax"] = tw.quantize(values, start, block, False)
        else:
            bufs[k] = start.astype(state)
    if copy:
        bufs["param_copy"] = np.zeros(n, BF16)
    return bufs


def _copy(bufs):
    return {k: v.copy() for k, v in bufs.items()}


def _same(a, b):
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        assert a[k].tobytes() == b[k].tobytes(), (k, np.flatnonzero(a[k] != b[k])[:5])


def _run(bufs, steps, rounding, block=256, seed=0, **hp):
    for t in steps:
        F.adam(**bufs, step=t, **HP, **hp, rounding=rounding, block_size=block, seed=seed)


def _twin(bufs, steps, stochastic, block=256, seed=0, **hp):
    amsgrad = hp.pop("amsgrad", False)
    for t in steps:
        tw.adam_step(bufs, step=t, **HP, **hp, amsgrad=amsgrad, block_size=block,
                     stochastic=stochastic, seed=seed)  # fmt: skip


OPTIONS = [
    {},
    {"amsgrad": True},
    {"weight_decay": 0.1},
    {"weight_decay": 0.1, "decoupled_weight_decay": True, "maximize": True},
]
STORES = [
    (np.float32, np.float32, BF16),
    (np.float32, BF16, BF16),
    (BF16, BF16, np.float32),
    (BF16, np.float32, BF16),
    (np.float32, np.float32, np.uint8),
    (np.float32, BF16, np.uint8),
    (BF16, BF16, np.uint8),
]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "-".join(o) or "plain")
@pytest.mark.parametrize("rounding", ["nearest", "stochastic"])
@pytest.mark.parametrize(("param", "grad", "state"), STORES, ids=lambda d: np.dtype(d).name)
def test_kernels_match_twin_bitwise(param, grad, state, rounding, options):
    n = 1000  # three whole blocks of 256 and a partial one
    bufs = _problem(n, param, grad, state, amsgrad=options.get("amsgrad", False))
    ref = _copy(bufs)
    _run(bufs, range(1, 4), rounding, **options)
    _twin(ref, range(1, 4), rounding == "stochastic", **dict(options))
    _same(bufs, ref)


@pytest.mark.parametrize("block", [64, 2048])
@pytest.mark.parametrize("rounding", ["nearest", "stochastic"])
def test_block_sizes_match_twin(block, rounding):
    bufs = _problem(5000, np.float32, np.float32, np.uint8, block=block)
    ref = _copy(bufs)
    _run(bufs, range(1, 3), rounding, block=block, seed=7)
    _twin(ref, range(1, 3), rounding == "stochastic", block=block, seed=7)
    _same(bufs, ref)


@pytest.mark.parametrize("n", [1055, 1056, 1057, 4133])
@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "-".join(o) or "plain")
@pytest.mark.parametrize(
    ("param", "grad", "state"),
    [(np.float32, np.float32, BF16), (np.float32, BF16, BF16), (BF16, BF16, np.float32),
     (BF16, np.float32, np.float32)],
    ids=lambda d: np.dtype(d).name,
)  # fmt: skip
def test_prefetching_strides_match_twin(param, grad, state, options, n):
    """Where param and state are stored in different sizes, a step over 1056 or more
    elements (after the head that aligns the param) runs by prefetching strides of
    32 (src_c/compressed_impl.h), then a tail: the same bits (with the bfloat16 copy
    of float32 params)."""
    amsgrad, copy = options.get("amsgrad", False), param == np.float32
    bufs = _problem(n, param, grad, state, amsgrad=amsgrad, copy=copy)
    ref = _copy(bufs)
    _run(bufs, range(1, 3), "stochastic", seed=5, **options)
    _twin(ref, range(1, 3), True, seed=5, **dict(options))
    _same(bufs, ref)


def test_param_copy_is_the_nearest_bfloat16_of_the_float32_param():
    bufs = _problem(3001, np.float32, BF16, BF16, copy=True)
    ref = _copy(bufs)
    _run(bufs, [1, 2], "stochastic")
    _twin(ref, [1, 2], True)
    _same(bufs, ref)
    assert bufs["param_copy"].tobytes() == bufs["param"].astype(BF16).tobytes()  # ml_dtypes: RNE


def test_float32_formats_equal_the_plain_kernel():
    """float32 state in the compressed kernel (here with bf16 grads) is the plain Adam."""
    rng = np.random.default_rng(3)
    g = rng.standard_normal(999).astype(BF16)
    a = [
        rng.standard_normal(999).astype(np.float32),
        np.zeros(999, np.float32),
        np.zeros(999, np.float32),
    ]
    b = [x.copy() for x in a]
    for t in (1, 2, 3):
        F.adam(*a[:1], g, *a[1:], step=t, **HP, weight_decay=0.1)
        F.adam(*b[:1], g.astype(np.float32), *b[1:], step=t, **HP, weight_decay=0.1)
    assert all(x.tobytes() == y.tobytes() for x, y in zip(a, b, strict=True))


# ------------------------------------------------------------ the 8-bit search


def _search_inputs():
    """Millions of floats: around every midpoint of both maps (the exact midpoint where
    representable, and 40 floats each way), every code, random and log-uniform values."""
    rng = np.random.default_rng(0)
    parts = []
    for values in tw.MAPS.values():
        v = values.astype(np.float64)
        middle = ((v[:-1] + v[1:]) / 2).astype(np.float32)
        around = [middle]
        up, down = middle.copy(), middle.copy()
        for _ in range(40):
            up, down = np.nextafter(up, np.float32(2)), np.nextafter(down, np.float32(-2))
            around += [up, down]
        parts += [
            *around,
            values,
            np.nextafter(values, np.float32(2)),
            np.nextafter(values, np.float32(-2)),
        ]
    parts.append(rng.uniform(-1, 1, 1_000_000).astype(np.float32))
    magnitude = 10.0 ** rng.uniform(-12, 0, 1_000_000)
    parts.append((magnitude * rng.choice([-1, 1], magnitude.size)).astype(np.float32))
    parts.append(np.array([0, -0.0, 1, -1, 1.5, -1.5, np.inf, -np.inf, 1e-30, -1e-45], np.float32))
    return np.concatenate(parts)


@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
def test_search_finds_the_nearest_code_of_every_float(signed):
    x = _search_inputs()
    if not signed:
        x = np.abs(x)
    assert x.size > 2_000_000
    codes = np.empty(x.size, np.uint8)
    _ext.q8_encode(0 if signed else 1, x, codes)
    expected = tw.nearest_code(tw.MAPS[signed], x)
    wrong = np.flatnonzero(codes != expected)
    assert wrong.size == 0, (x[wrong[:5]], codes[wrong[:5]], expected[wrong[:5]])


def test_maps_are_the_dynamic_tree_maps():
    for signed in (True, False):
        values = _formats.dynamic_map(signed)
        assert values.tobytes() == tw.MAPS[signed].tobytes()
        assert values[127 if signed else 0] == 0
        assert values[-1] == 1
        assert np.all(np.diff(values) > 0)
    signed = tw.MAPS[True]
    assert np.array_equal(signed[:127], -signed[128:255][::-1])  # symmetric, 1 only positive


def test_signed_codes_keep_the_sign():
    rng = np.random.default_rng(5)
    x = (rng.standard_normal(100_000) * 10.0 ** rng.uniform(-15, 0, 100_000)).astype(np.float32)
    codes = np.empty(x.size, np.uint8)
    _ext.q8_encode(0, x, codes)
    decoded = tw.MAPS[True][codes]
    assert np.all(np.sign(decoded) == np.sign(x))


# ---------------------------------------------------- threads, offsets, lengths


N = 300_001


@pytest.mark.parametrize(
    ("param", "grad", "state"),
    [(BF16, BF16, BF16), (np.float32, np.float32, BF16), (np.float32, BF16, np.uint8)],
)
def test_thread_count_does_not_change_bits(param, grad, state):
    results = []
    for threads in (1, 2, 3, 4):
        fastadam.set_num_threads(threads)
        bufs = _problem(N, param, grad, state, amsgrad=True, block=128)
        _run(bufs, [5, 6], "stochastic", block=128, amsgrad=True)
        results.append(b"".join(b.tobytes() for b in bufs.values()))
    assert all(r == results[0] for r in results)


@pytest.mark.parametrize("state", [BF16, np.uint8], ids=["bf16", "int8"])
def test_offset_in_memory_does_not_change_bits(state):
    """Random bits follow the element index in the tensor, not its address."""
    whole = _problem(4000, BF16, np.float32, state, block=64)
    _run(whole, [3], "stochastic", block=64)
    for offset in (1, 3, 17):
        bufs = _problem(4000, BF16, np.float32, state, block=64)
        shifted = {}
        for k, v in bufs.items():
            raw = np.empty(v.size + offset, v.dtype)
            shifted[k] = raw[offset:]
            shifted[k][...] = v
        _run(shifted, [3], "stochastic", block=64)
        _same(shifted, whole)


def test_many_tensors_in_one_step_match_one_at_a_time():
    """The threads' split crosses tensors and respects each tensor's blocks."""
    fastadam.set_num_threads(2)
    rng = np.random.default_rng(1)
    shapes = [(70_001,), (5000,), (123, 457), (3,)]
    params = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    together = [p.copy() for p in params]
    opt = fastadam.Adam(together, lr=1e-2, state_dtype="int8", min_8bit_size=100, block_size=512)
    for _ in range(3):
        opt.step(grads)
    for index, (p, g) in enumerate(zip(params, grads, strict=True)):
        bufs = {"param": p, "grad": g}
        if p.size >= 100:
            nb = -(-p.size // 512)
            for k in ("exp_avg", "exp_avg_sq"):
                bufs |= {k: np.zeros(p.shape, np.uint8), f"{k}_absmax": np.zeros(nb, np.float32)}
        else:
            bufs |= {"exp_avg": np.zeros_like(p), "exp_avg_sq": np.zeros_like(p)}
        for t in (1, 2, 3):
            tw.adam_step(
                bufs,
                step=t,
                lr=1e-2,
                beta1=0.9,
                beta2=0.999,
                eps=1e-8,
                block_size=512,
                stochastic=True,
                tensor=index,
            )
    assert b"".join(p.tobytes() for p in together) == b"".join(p.tobytes() for p in params)


def test_rounding_keys_differ_by_seed_param_and_step():
    keys = {
        tw.rounding_key(s, i, t) for s, i, t in itertools.product(range(3), range(3), range(1, 4))
    }
    assert len(keys) == 27
