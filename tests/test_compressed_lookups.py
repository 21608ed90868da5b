"""The 8-bit kernels' two ways to look up their tables, bit for bit: byte tables
(AVX-512 VBMI permutes, 64 elements at a time, where the CPU has them) and loads
(every other CPU, and the remainder of a block that is not a multiple of 64).
Both must find the nearest code of every float and match the NumPy twin
(twin_compressed.py) on every code, block size and tail. On a CPU without VBMI both
runs take the loads.
"""

import numpy as np
import pytest
import twin_compressed as tw
from test_compressed_kernels import _copy, _run, _same, _search_inputs, _twin

from fastadam import _ext


@pytest.fixture(params=[True, False], ids=["byte-tables", "loads"])
def byte_tables(request):
    _ext.set_byte_tables(request.param)
    yield request.param
    _ext.set_byte_tables(True)


@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
def test_search_finds_the_nearest_code_of_every_float(byte_tables, signed):
    x = _search_inputs()
    if not signed:
        x = np.abs(x)
    codes = np.empty(x.size, np.uint8)
    _ext.q8_encode(0 if signed else 1, x, codes)
    expected = tw.nearest_code(tw.MAPS[signed], x)
    wrong = np.flatnonzero(codes != expected)
    assert wrong.size == 0, (x[wrong[:5]], codes[wrong[:5]], expected[wrong[:5]])


def _every_code(n, block, seed):
    """Adam buffers whose 8-bit state holds all 256 codes, with normal, zero, tiny
    (below FLT_MIN) and NaN absmax blocks, and grads over many decades."""
    rng = np.random.default_rng(seed)
    blocks = -(-n // block)
    bufs = {
        "param": rng.standard_normal(n).astype(np.float32),
        "grad": (rng.standard_normal(n) * 10.0 ** rng.uniform(-8, 0, n)).astype(np.float32),
    }
    for k in ("exp_avg", "exp_avg_sq"):
        codes = np.resize(rng.permutation(256).astype(np.uint8), n)
        absmax = (10.0 ** rng.uniform(-6, 0, blocks)).astype(np.float32)
        absmax[1 % blocks] = 0.0
        absmax[2 % blocks] = 1e-39
        if blocks > 3:
            absmax[3] = np.nan
        bufs[k], bufs[f"{k}_absmax"] = codes, absmax
    bufs["grad"][: min(block, n)] = 0.0  # the first block's state decays towards tiny
    return bufs


@pytest.mark.parametrize("rounding", ["nearest", "stochastic"])
@pytest.mark.parametrize(
    ("n", "block"), [(64 * 9 + 5, 64), (1000, 256), (4096 + 17, 2048), (3 * 256, 256)]
)
def test_every_code_block_and_tail_match_twin(byte_tables, rounding, n, block):
    bufs = _every_code(n, block, seed=n)
    ref = _copy(bufs)
    with np.errstate(invalid="ignore"):
        _run(bufs, [1, 2], rounding, block=block, seed=3)
        _twin(ref, [1, 2], rounding == "stochastic", block=block, seed=3)
    _same(bufs, ref)
