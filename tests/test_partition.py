"""The split of a step's elements over threads and blocks, at sizes past 2**31 and 2**32.

fa_run lays the tensors of a call end to end and gives thread ``id`` of ``nth`` the
elements ``fa_thread_range`` names (whole grains of FA_GRAIN elements); each tensor
gets the part of that range ``fa_slice`` names, snapped to its grain (an 8-bit
state's block). Both are pure functions of sizes, exported by the extension, so
this calls them through ctypes with lengths no test could allocate and checks that
the slices tile every tensor exactly: in order, without gap or overlap, each start
on a block boundary.
"""

from __future__ import annotations

import ctypes
import itertools

import pytest

from fastadam import _ext

GRAIN = 16  # FA_GRAIN in src_c/run.c
SIZE = ctypes.c_size_t
LIB = ctypes.CDLL(_ext.__file__)
LIB.fa_thread_range.argtypes = [SIZE, SIZE, SIZE, ctypes.POINTER(SIZE), ctypes.POINTER(SIZE)]
LIB.fa_thread_range.restype = None
LIB.fa_slice.argtypes = [SIZE, SIZE, SIZE, SIZE, SIZE, ctypes.POINTER(SIZE), ctypes.POINTER(SIZE)]
LIB.fa_slice.restype = None


def thread_range(total: int, nth: int, thread: int) -> tuple[int, int]:
    lo, hi = SIZE(), SIZE()
    LIB.fa_thread_range(total, nth, thread, ctypes.byref(lo), ctypes.byref(hi))
    return lo.value, hi.value


def tensor_slice(start: int, n: int, grain: int, lo: int, hi: int) -> tuple[int, int]:
    begin, count = SIZE(), SIZE()
    LIB.fa_slice(start, n, grain, lo, hi, ctypes.byref(begin), ctypes.byref(count))
    return begin.value, count.value


BIG = [2**31 - 1, 2**31, 2**31 + 1, 2**32 - 1, 2**32, 2**32 + 17, 2**33 + 5, 3 * 2**40 + 7]


@pytest.mark.parametrize("total", [0, 1, 15, 16, 17, 1000, *BIG, 2**62 + 3, 2**64 - 1])
@pytest.mark.parametrize("nth", [1, 2, 3, 7, 64, 1000])
def test_thread_ranges_tile_the_elements(total, nth):
    """Consecutive, covering [0, total), on grain boundaries, as even as grains allow."""
    ranges = [thread_range(total, nth, i) for i in range(nth)]
    assert ranges[0][0] == 0
    assert ranges[-1][1] == total
    for (_, hi), (lo, _) in itertools.pairwise(ranges):
        assert hi == lo
    grains = -(-total // GRAIN)
    for lo, hi in ranges:
        assert lo <= hi
        assert lo % GRAIN == 0 or lo == total
        assert (hi - lo) // GRAIN in (grains // nth - 1, grains // nth, grains // nth + 1)
    # The exact even split: thread i starts at floor(grains * i / nth) grains.
    assert [lo for lo, _ in ranges] == [min(grains * i // nth * GRAIN, total) for i in range(nth)]


@pytest.mark.parametrize(
    "lengths",
    [
        [2**31 + 5],
        [2**32 + 17, 3, 2**31 - 1],
        [5, 2**32, 2**32 + 1, 7, 2**33 + 100],
        [2**40 + 255, 1],
    ],
)
@pytest.mark.parametrize("block", [1, 64, 256, 2048])
@pytest.mark.parametrize("nth", [1, 2, 3, 5, 64])
def test_slices_tile_every_tensor(lengths, block, nth):
    """Every tensor is cut into slices that start on its block boundaries and tile it."""
    total = sum(lengths)
    pieces: list[list[tuple[int, int]]] = [[] for _ in lengths]
    for thread in range(nth):
        lo, hi = thread_range(total, nth, thread)
        start = 0
        for i, n in enumerate(lengths):
            begin, count = tensor_slice(start, n, block, lo, hi)
            if count:
                pieces[i].append((begin, count))
            start += n
    for n, slices in zip(lengths, pieces, strict=True):
        assert slices[0][0] == 0
        assert sum(count for _, count in slices) == n
        for (b0, c0), (b1, _) in itertools.pairwise(slices):
            assert b0 + c0 == b1
        for begin, _ in slices:
            assert begin % block == 0


def test_a_slice_outside_its_tensor_is_empty():
    assert tensor_slice(2**32, 100, 64, 0, 2**32)[1] == 0
    assert tensor_slice(0, 2**33, 256, 2**33, 2**34)[1] == 0
    assert tensor_slice(2**31, 2**31, 256, 2**31 + 1, 2**32) == (256, 2**31 - 256)
