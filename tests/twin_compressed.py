"""A NumPy twin of fastadam's compressed formats, with the kernels' operation order.

Written from the definitions in src_c/fastadam.h and src_c/compressed_impl.h,
not from the kernels' code paths: float32 Adam in NumPy float32 arithmetic
(each operation rounded, no fused multiply-add, as the kernels), bfloat16
rounding on the bits, the counter-based random bits (lowbias32), and block-wise
8-bit quantization whose nearest code is found by brute force (a search of the
float64 midpoints of the map), not by the kernels' bucket table.

A compressed Adam step takes a dict of arrays as ``fastadam.functional.adam``
takes them (param, grad, exp_avg, ..., exp_avg_absmax, ..., param_copy) and
updates them in place, bit for bit as the kernels should.
"""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np

BF16 = np.dtype(ml_dtypes.bfloat16)
F32 = np.float32
FLT_MIN = np.finfo(np.float32).tiny
STATES = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")


# ------------------------------------------------------------------ randoms


def hash32(x) -> np.ndarray:
    """lowbias32 on uint32 (wrapping arithmetic)."""
    x = np.asarray(x, np.uint32).copy()
    with np.errstate(over="ignore"):
        x ^= x >> np.uint32(16)
        x *= np.uint32(0x7FEB352D)
        x ^= x >> np.uint32(15)
        x *= np.uint32(0x846CA68B)
        x ^= x >> np.uint32(16)
    return x


def rounding_key(seed: int, tensor: int, step: int) -> int:
    h = hash32(step >> 32)
    h = hash32(h ^ np.uint32(step & 0xFFFFFFFF))
    h = hash32(h ^ np.uint32(tensor >> 32))
    h = hash32(h ^ np.uint32(tensor & 0xFFFFFFFF))
    return int(hash32(h ^ np.uint32(seed)))


def random16(key: int, n: int) -> list[np.ndarray]:
    """The 16-bit random streams of elements 0..n-1: states 0, 1, 2, then the param."""
    index = np.arange(n, dtype=np.uint64).astype(np.uint32)
    with np.errstate(over="ignore"):
        r0 = hash32(hash32(key) + index)
        r1 = hash32(hash32(key ^ 0x9E3779B9) + index)
    low, high = np.uint32(0xFFFF), np.uint32(16)
    return [r0 & low, r0 >> high, r1 & low, r1 >> high]


# ----------------------------------------------------------------- bfloat16


def bf16_round(x: np.ndarray, stochastic: bool, r16: np.ndarray | None = None) -> np.ndarray:
    """float32 to bfloat16: nearest-even, or add 16 random bits and truncate; NaN stays NaN."""
    u = np.asarray(x, F32).view(np.uint32).astype(np.uint64)
    add = r16.astype(np.uint64) if stochastic else 0x7FFF + ((u >> 16) & 1)
    rounded = ((u + add) >> 16) & 0xFFFF
    nan = (u & 0x7FFFFFFF) > 0x7F800000
    bits = np.where(nan, (u >> 16) | 0x40, rounded).astype(np.uint16)
    return bits.view(BF16)


def to_f32(x: np.ndarray) -> np.ndarray:
    return np.asarray(x).astype(F32)


# ------------------------------------------------------------------- 8-bit


def _nearest_rank(values: np.ndarray, x: np.ndarray):
    """Brute force: the magnitude rank of the code nearest each x in exact arithmetic (the
    float64 midpoints of float32 neighbours are exact), ties to the smaller magnitude,
    clamped to the largest rank of x's sign; NaN gets the largest. Also (zero, top, sign)."""
    zero = int(np.flatnonzero(values == 0)[0])
    magnitudes = values[zero:].astype(np.float64)
    middle = (magnitudes[:-1] + magnitudes[1:]) / 2
    a = np.abs(x.astype(np.float64))
    rank = np.searchsorted(middle, np.where(np.isnan(a), np.inf, a), side="left")
    negative = np.signbit(x)
    top = np.where(negative, zero, 255 - zero)
    return np.minimum(rank, top), zero, top, negative


def _code(rank, x, zero, top, negative) -> np.ndarray:
    """Codes from ranks: a nonzero x never gets code zero."""
    rank = np.minimum(np.where((rank == 0) & (x != 0), 1, rank), top)
    return np.where(negative, zero - rank, zero + rank).astype(np.uint8)


def nearest_code(values: np.ndarray, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, F32)
    rank, zero, top, negative = _nearest_rank(values, x)
    return _code(rank, x, zero, top, negative)


def stochastic_code(values: np.ndarray, x: np.ndarray, r16: np.ndarray) -> np.ndarray:
    """Stochastic rounding between the two codes around x, in the kernels' float32 maths."""
    x = np.asarray(x, F32)
    rank, zero, top, negative = _nearest_rank(values, x)
    mags = np.abs(values[zero:]).astype(F32)
    mag = np.abs(x)
    at = mags[rank]
    lower = rank - (mag < at)
    upper = np.where(lower < top, lower + 1, lower)
    lo, hi = mags[lower], mags[upper]
    r = r16.astype(F32) * F32(1.0 / 65536.0)
    with np.errstate(invalid="ignore"):
        rank = np.where(r * (hi - lo) < mag - lo, upper, lower)
    return _code(rank, x, zero, top, negative)


def quantize(values, s: np.ndarray, block: int, stochastic: bool, r16=None):
    """Block-wise: absmax = max |s| per block (below FLT_MIN: 0; NaN stays), codes of s/absmax."""
    n = s.size
    codes = np.empty(n, np.uint8)
    absmax = np.empty(-(-n // block), F32)
    for b, start in enumerate(range(0, n, block)):
        part = s[start : start + block].astype(F32)
        a = F32(np.max(np.abs(part))) if part.size else F32(0)
        normal = bool(a >= FLT_MIN)
        absmax[b] = a if normal or math.isnan(a) else F32(0)
        scale = F32(1) / a if normal else F32(0)
        x = part * scale
        if stochastic:
            codes[start : start + block] = stochastic_code(values, x, r16[start : start + block])
        else:
            codes[start : start + block] = nearest_code(values, x)
    return codes, absmax


def dequantize(values, codes: np.ndarray, absmax: np.ndarray, block: int) -> np.ndarray:
    return values[codes] * np.repeat(absmax, block)[: codes.size]


# -------------------------------------------------------------------- Adam


def adam_f32(p, g, s, *, step, lr, beta1, beta2, eps, weight_decay=0.0, decoupled=False,
             maximize=False, amsgrad=False):  # fmt: skip
    """One float32 Adam element update on arrays, as kernels_impl.h's adam_element."""
    w1 = F32(1.0 - beta1)
    small = 1.0 - beta1 < 0.5
    step_size = F32(lr / (1.0 - beta1**step))
    bc2 = F32(math.sqrt(1.0 - beta2**step))
    wd = F32(0.0 if decoupled else weight_decay)
    scale = F32(1.0 - lr * weight_decay if decoupled else 1.0)
    pi = p * scale if decoupled else p.copy()
    gi = -g if maximize else g.copy()
    if wd != 0:
        gi = gi + wd * p
    d = gi - s[0]
    m = s[0] + w1 * d if small else gi + (w1 - F32(1)) * d
    v = s[1] * F32(beta2) + F32(1.0 - beta2) * gi * gi
    denom_v = v
    out = [m, v]
    if amsgrad:
        denom_v = np.where(s[2] < v, v, s[2])
        out.append(denom_v)
    denom = np.sqrt(denom_v) / bc2 + F32(eps)
    return pi - step_size * m / denom, out


def adam_step(bufs: dict, *, step, lr, beta1, beta2, eps, weight_decay=0.0,
              decoupled_weight_decay=False, maximize=False, amsgrad=False,
              block_size=256, stochastic=False, seed=0, tensor=0):  # fmt: skip
    """One compressed Adam step on ``bufs`` (functional.adam's keywords), in place."""
    p, g = bufs["param"], bufs["grad"]
    shape, n = p.shape, p.size
    states = [k for k in STATES[: 3 if amsgrad else 2]]
    signed = {"exp_avg": True, "exp_avg_sq": False, "max_exp_avg_sq": False}
    key = rounding_key(seed, tensor, step)
    r = random16(key, n)
    s = []
    for k in states:
        buf = bufs[k].reshape(-1)
        if buf.dtype == np.uint8:
            values = MAPS[signed[k]]
            s.append(dequantize(values, buf, bufs[f"{k}_absmax"], block_size))
        else:
            s.append(to_f32(buf))
    new_p, new_s = adam_f32(
        to_f32(p).reshape(-1), to_f32(g).reshape(-1), s, step=step, lr=lr, beta1=beta1,
        beta2=beta2, eps=eps, weight_decay=weight_decay, decoupled=decoupled_weight_decay,
        maximize=maximize, amsgrad=amsgrad,
    )  # fmt: skip
    if p.dtype == BF16:
        p[...] = bf16_round(new_p, stochastic, r[3]).reshape(shape)
    else:
        p[...] = new_p.reshape(shape)
    if bufs.get("param_copy") is not None:
        bufs["param_copy"][...] = bf16_round(new_p, False).reshape(shape)
    for j, k in enumerate(states):
        buf = bufs[k]
        if buf.dtype == np.uint8:
            codes, absmax = quantize(MAPS[signed[k]], new_s[j], block_size, stochastic, r[j])
            buf[...] = codes.reshape(shape)
            bufs[f"{k}_absmax"][...] = absmax
        elif buf.dtype == BF16:
            buf[...] = bf16_round(new_s[j], stochastic, r[j]).reshape(shape)
        else:
            buf[...] = new_s[j].reshape(shape)


def _maps() -> dict[bool, np.ndarray]:
    """The dynamic tree maps, rebuilt here from their definition (signed and unsigned)."""
    maps = {}
    for signed in (True, False):
        values = [0.0, 1.0]
        for i in range(7):
            count = 2**i if signed else 2 ** (i + 1)
            edges = np.linspace(0.1, 1.0, count + 1)
            means = (edges[:-1] + edges[1:]) / 2 * 10.0 ** (i - 6)
            values += list(means) + (list(-means) if signed else [])
        maps[signed] = np.sort(np.array(values).astype(F32))
    return maps


MAPS = _maps()
