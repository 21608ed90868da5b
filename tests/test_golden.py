"""The same bits on every CPU, compiler and instruction set: the extension, and the
C kernels built with GCC and Clang for x86-64 and with GCC for aarch64 (run under
qemu-user), at every level each CPU has (AVX-512, AVX2, SSE2; SVE at several
vector lengths, NEON) and in the portable build without run-time dispatch.

tests/c/golden.c replays a fixed set of cases through ``fa_run``: every algorithm
with its options in float32 and float64, and every compressed format of Adam
(float32 and bf16 params and grads, float32, bf16 and 8-bit state, nearest and
stochastic rounding, the bf16 param copy), over tensors of odd lengths (vector
tails) and in some cases one long enough to split over threads. It runs each case
at every level its CPU has, on 1 and 3 threads, fails if any two runs differ in a
bit, and writes the results. Here the cases are written, run through the
extension (the reference) and through each driver, and the bytes compared.

The drivers come from tests/c/build (.ci/portable builds them):
``FASTADAM_GOLDEN_DRIVERS`` names a directory with one folder per build, named
``<machine>-<compiler>`` (x86_64-gcc, x86_64-clang, aarch64-gcc), each holding
``golden`` and ``golden-portable``. Without it these tests skip, unless
``FASTADAM_REQUIRE_AARCH64=1`` (CI sets it), which also requires an aarch64 build
and qemu-aarch64 to run it.

IEEE 754 fixes every bit of a result but a NaN's sign and payload: x86-64 makes
the NaN of an invalid operation (inf - inf, 0 * inf) negative, Arm positive. The
cases with non-finite gradients are therefore compared across machines with every
NaN as one value (and the 8-bit codes of a block whose absmax is NaN, which decode
to NaN whatever they are, as zeros); every other case bit for bit.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import required

from fastadam import _algorithms, _ext, _formats, _table

DRIVERS_ENV = "FASTADAM_GOLDEN_DRIVERS"
REQUIRE_ENV = "FASTADAM_REQUIRE_AARCH64"
SYSROOT = "/usr/aarch64-linux-gnu"
BF16 = _formats.BFLOAT16
F32, F64, Q8 = np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.uint8)
STORE = {F32: 0, BF16: 1, Q8: 2}  # fa_store
NAMES = ("param", "grad", "s0", "s1", "s2", "absmax0", "absmax1", "absmax2", "param_copy")
LENGTHS = (1, 7, 67, 1000, 4133)  # vector tails and heads, 8-bit blocks cut short
THREADED = 140_001  # over two threads' minimum (src_c/run.c: FA_MIN_PER_THREAD = 65536)
STEPS = 3

# aarch64 CPUs for qemu: without SVE (the NEON level only), and SVE at 128, 256 and
# 512 bits (the SVE level, and NEON compared with it in the driver).
AARCH64_CPUS = {
    "neon": "cortex-a72",
    "sve128": "max,sve-default-vector-length=16",
    "sve256": "max,sve-default-vector-length=32",
    "sve512": "max,sve-default-vector-length=64",
}


@dataclass
class Case:
    name: str
    algo: int
    dtype: np.dtype  # of every buffer, or float32 (compute type) with a format
    spec: tuple[bool, int, int] | None  # compressed: (stochastic, block, seed)
    coefs: list[tuple[float, ...]]  # one per step
    tensors: list[list[np.ndarray | None]]  # per tensor, NAMES' buffers
    nonfinite: bool = False  # NaN in the results: compared with every NaN alike


# ------------------------------------------------------------------ the cases


def _grad(rng, n, nonfinite):
    """Gradients over many decades, some zero and subnormal; with nonfinite, NaN and +-inf."""
    g = rng.standard_normal(n) * 10.0 ** rng.uniform(-8, 1, n)
    g[rng.random(n) < 0.02] = 0.0
    g[rng.random(n) < 0.02] = 1e-42
    if nonfinite:
        for value in (np.nan, np.inf, -np.inf):
            g[rng.random(n) < 0.05] = value
    return g


# State buffers of each algorithm in kernel order: how each starts (signed or >= 0).
SIGNED, POSITIVE, ZERO = "signed", "positive", "zero"


def _state(rng, n, kind, dtype):
    x = rng.standard_normal(n) * 0.01
    x = np.abs(x) * 0.01 if kind == POSITIVE else 0 * x if kind == ZERO else x
    return x.astype(dtype)


def _plain(name, algo, kinds, coefs, dtype, seed, nonfinite=False, threaded=False):
    rng = np.random.default_rng(seed)
    tensors = []
    for n in (*LENGTHS, *((THREADED,) if threaded else ())):
        bufs = [rng.standard_normal(n).astype(dtype), _grad(rng, n, nonfinite).astype(dtype)]
        bufs += [None if k is None else _state(rng, n, k, dtype) for k in kinds]
        tensors.append(bufs + [None] * (len(NAMES) - len(bufs)))
    suffix = np.dtype(dtype).name + ("-nonfinite" if nonfinite else "")
    return Case(f"{name}-{suffix}", algo, np.dtype(dtype), None, coefs, tensors, nonfinite)


def _steps(fn, **hp):
    return [tuple(fn(step=t, **hp)) for t in range(1, STEPS + 1)]


ADAM = {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0}
ADAM |= {"decoupled_weight_decay": False, "maximize": False}


def _nadam(**hp):
    coefs, product = [], 1.0
    for t in range(1, STEPS + 1):
        coef, product = _algorithms.nadam(step=t, mu_product=product, **hp)
        coefs.append(tuple(coef))
    return coefs


def _sgd(**hp):
    return [tuple(_algorithms.sgd(first_step=t == 1, **hp)) for t in range(1, STEPS + 1)]


def _plain_variants():
    """(name, algo, state kinds, coefficients per step) for every algorithm and option."""
    a, s0, p, z = _algorithms, SIGNED, POSITIVE, ZERO
    sgd = {"lr": 0.01, "momentum": 0.9, "dampening": 0.0, "weight_decay": 0.0}
    sgd |= {"nesterov": False, "maximize": False}
    rms = {"lr": 0.01, "alpha": 0.99, "eps": 1e-8, "weight_decay": 0.0, "momentum": 0.0}
    rms |= {"centered": False, "maximize": False}
    adamax = {"lr": 2e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0}
    lion = {"lr": 1e-4, "beta1": 0.9, "beta2": 0.99, "weight_decay": 0.0, "maximize": False}
    nadam = {**ADAM, "lr": 2e-3, "momentum_decay": 4e-3}
    rprop = {"etaminus": 0.5, "etaplus": 1.2, "step_size_min": 1e-6, "step_size_max": 50.0}
    rprop |= {"maximize": False}
    return [
        ("adam", _ext.ADAM, (s0, p, None), _steps(a.adam, **ADAM)),
        ("adam-amsgrad", _ext.ADAM, (s0, p, p), _steps(a.adam, **ADAM)),
        ("adam-l2", _ext.ADAM, (s0, p, None), _steps(a.adam, **ADAM | {"weight_decay": 0.1})),
        ("adamw-maximize", _ext.ADAM, (s0, p, p),
         _steps(a.adam, **ADAM | {"weight_decay": 0.1, "decoupled_weight_decay": True,
                                  "maximize": True})),
        ("adam-beta1-small", _ext.ADAM, (s0, p, None), _steps(a.adam, **ADAM | {"beta1": 0.3})),
        ("sgd", _ext.SGD, (None,), _sgd(**sgd | {"momentum": 0.0})),
        ("sgd-momentum", _ext.SGD, (s0,), _sgd(**sgd)),
        ("sgd-nesterov", _ext.SGD, (s0,), _sgd(**sgd | {"nesterov": True})),
        ("sgd-dampening-l2-maximize", _ext.SGD, (s0,),
         _sgd(**sgd | {"dampening": 0.5, "weight_decay": 0.1, "maximize": True})),
        ("rmsprop", _ext.RMSPROP, (p, None, None), [tuple(a.rmsprop(**rms))] * STEPS),
        ("rmsprop-centered", _ext.RMSPROP, (p, z, None),
         [tuple(a.rmsprop(**rms | {"centered": True}))] * STEPS),
        ("rmsprop-momentum", _ext.RMSPROP, (p, None, s0),
         [tuple(a.rmsprop(**rms | {"momentum": 0.9}))] * STEPS),
        ("rmsprop-all", _ext.RMSPROP, (p, z, s0),
         [tuple(a.rmsprop(**rms | {"momentum": 0.9, "centered": True, "alpha": 0.3,
                                   "weight_decay": 0.1, "maximize": True}))] * STEPS),
        ("adagrad", _ext.ADAGRAD, (p,),
         _steps(a.adagrad, lr=0.01, lr_decay=0.0, weight_decay=0.0, eps=1e-10, maximize=False)),
        ("adagrad-decay-maximize", _ext.ADAGRAD, (p,),
         _steps(a.adagrad, lr=0.01, lr_decay=0.1, weight_decay=0.1, eps=1e-10, maximize=True)),
        ("adamax", _ext.ADAMAX, (s0, p), _steps(a.adamax, **adamax, maximize=False)),
        ("adamax-l2-maximize", _ext.ADAMAX, (s0, p),
         _steps(a.adamax, **adamax | {"weight_decay": 0.1}, maximize=True)),
        ("lion", _ext.LION, (s0,), [tuple(a.lion(**lion))] * STEPS),
        ("lion-decay-maximize", _ext.LION, (s0,),
         [tuple(a.lion(**lion | {"weight_decay": 0.1, "maximize": True}))] * STEPS),
        ("nadam", _ext.NADAM, (s0, p), _nadam(**nadam)),
        ("nadamw-maximize", _ext.NADAM, (s0, p),
         _nadam(**nadam | {"weight_decay": 0.1, "decoupled_weight_decay": True,
                           "maximize": True})),
        ("radam-unrectified", _ext.RADAM, (s0, p), _steps(a.radam, **ADAM)),
        ("radam-rectified", _ext.RADAM, (s0, p),
         [tuple(a.radam(step=t, **ADAM | {"beta2": 0.9})) for t in range(20, 20 + STEPS)]),
        ("radamw-maximize", _ext.RADAM, (s0, p),
         [tuple(a.radam(step=t, **ADAM | {"beta2": 0.9, "weight_decay": 0.1,
                                          "decoupled_weight_decay": True, "maximize": True}))
          for t in range(20, 20 + STEPS)]),
        ("rprop", _ext.RPROP, (s0, p), [tuple(a.rprop(**rprop))] * STEPS),
        ("rprop-clamped-maximize", _ext.RPROP, (s0, p),
         [tuple(a.rprop(**rprop | {"etaminus": 0.3, "etaplus": 1.7, "step_size_min": 0.05,
                                   "step_size_max": 0.5, "maximize": True}))] * STEPS),
        ("traffic", _ext.TRAFFIC, (s0, s0), [(0.5,)] * STEPS),
    ]  # fmt: skip


def _compressed(param, grad, state, stochastic, seed, amsgrad=False, copy=False, block=256,
                threaded=False, nonfinite=False):  # fmt: skip
    """Adam with its buffers stored as param, grad and state say."""
    rng = np.random.default_rng(seed)
    tensors = []
    for n in (*LENGTHS, *((THREADED,) if threaded else ())):
        bufs = [None] * len(NAMES)
        bufs[0] = rng.standard_normal(n).astype(np.float32).astype(param)
        bufs[1] = _grad(rng, n, nonfinite).astype(np.float32).astype(grad)
        for j, kind in enumerate((SIGNED, POSITIVE, POSITIVE)[: 3 if amsgrad else 2]):
            if state == Q8:
                blocks = -(-n // block)
                bufs[2 + j] = rng.integers(0, 256, n, dtype=np.uint8)
                absmax = (10.0 ** rng.uniform(-6, 0, blocks)).astype(np.float32)
                absmax[1 % blocks] = 0.0  # a zero block, and one below FLT_MIN
                absmax[2 % blocks] = 1e-39
                bufs[5 + j] = absmax
            else:
                bufs[2 + j] = _state(rng, n, kind, np.float32).astype(state)
        if copy:
            bufs[8] = np.zeros(n, BF16)
        tensors.append(bufs)
    rounding = "stochastic" if stochastic else "nearest"
    parts = [np.dtype(param).name, np.dtype(grad).name, np.dtype(state).name, rounding]
    parts += [x for x, on in (("amsgrad", amsgrad), ("copy", copy), ("nonfinite", nonfinite)) if on]
    parts += [f"block{block}"] if state == Q8 else []
    coefs = _steps(
        _algorithms.adam, **ADAM | {"weight_decay": 0.01, "decoupled_weight_decay": True}
    )
    return Case("adam-" + "-".join(parts), _ext.ADAM, F32, (stochastic, block, seed), coefs,
                tensors, nonfinite)  # fmt: skip


def cases() -> list[Case]:
    out, seen = [], set()
    for k, (name, algo, kinds, coefs) in enumerate(_plain_variants()):
        for dtype in (F32, F64):
            out.append(_plain(name, algo, kinds, coefs, dtype, seed=k))
            if algo not in seen:  # each algorithm once with NaN and infinity in its grads
                out.append(_plain(name, algo, kinds, coefs, dtype, seed=k, nonfinite=True))
        seen.add(algo)
    out.append(_plain("adam-threads", _ext.ADAM, (SIGNED, POSITIVE, None),
                      _steps(_algorithms.adam, **ADAM), F32, seed=99, threaded=True))  # fmt: skip
    seed = 100
    for param in (F32, BF16):
        for grad in (F32, BF16):
            for state in (F32, BF16, Q8):
                for stochastic in (False, True):
                    seed += 1
                    out.append(_compressed(param, grad, state, stochastic, seed,
                                           amsgrad=seed % 2 == 0, copy=param == F32))  # fmt: skip
    for block in (64, 2048):
        out.append(_compressed(F32, F32, Q8, True, seed=block, block=block))
    out.append(_compressed(BF16, BF16, Q8, True, seed=7, threaded=True))
    out.append(_compressed(F32, BF16, BF16, True, seed=8, copy=True, threaded=True))
    for state in (BF16, Q8):
        out.append(_compressed(F32, F32, state, True, seed=9, nonfinite=True))
    return out


# ------------------------------------------------------------- input, output


def map_bytes() -> bytes:
    """The signed and the unsigned map as the C drivers read them: values, the code of
    zero, then each search's binades and buckets."""
    chunks = []
    for values in (_formats.SIGNED_MAP, _formats.UNSIGNED_MAP):
        zero, nearest, floor = _formats.thresholds(values)
        chunks += [values.astype("<f4").tobytes(), struct.pack("<I", zero)]
        for binades, buckets in (_formats.search_table(nearest), _formats.search_table(floor)):
            chunks += [binades.astype("<u4").tobytes(), buckets.astype("<u4").tobytes()]
    return b"".join(chunks)


def _write_input(path: Path, all_cases: list[Case]) -> None:
    chunks = [b"FAGOLD1\n", map_bytes()]
    chunks.append(struct.pack("<I", len(all_cases)))
    for c in all_cases:
        name = c.name.encode()
        dtype = 1 if c.dtype == F64 else 0
        head = [len(name), c.algo, dtype, len(c.coefs), len(c.tensors), c.spec is not None]
        chunks += [struct.pack("<I", len(name)), name, struct.pack("<5I", *head[1:])]
        if c.spec is not None:
            stochastic, block, seed = c.spec
            t = c.tensors[0]
            stores = [STORE[t[0].dtype], STORE[t[1].dtype], STORE[t[2].dtype]]
            chunks.append(struct.pack("<6I", *stores, stochastic, block, seed))
        for coef in c.coefs:
            chunks.append(struct.pack(f"<{_ext.MAX_COEF}d", *coef, *[0.0] * (12 - len(coef))))
        for t in c.tensors:
            mask = sum(1 << b for b, x in enumerate(t) if x is not None)
            chunks.append(struct.pack("<QI", t[0].size, mask))
            for x in t:
                if x is not None:
                    chunks += [struct.pack("<Q", x.nbytes), x.tobytes()]
    path.write_bytes(b"".join(chunks))


def _reference(c: Case) -> list[list[np.ndarray | None]]:
    """The case run through the extension: the buffers after its steps."""
    tensors = [[None if x is None else x.copy() for x in t] for t in c.tensors]
    for step, coef in enumerate(c.coefs, start=1):
        batch = _ext.Batch(c.algo, NAMES)
        coef_id = batch.add_coef(coef)
        for index, t in enumerate(tensors):
            batch.add(index, tuple(t), coef_id, c.spec, step)
        batch.run()
    return tensors


def _read_output(path: Path, all_cases: list[Case]) -> dict[str, list[list[np.ndarray | None]]]:
    data, at, out = path.read_bytes(), 0, {}
    for c in all_cases:
        tensors = []
        for t in c.tensors:
            bufs = []
            for x in t:
                if x is None:
                    bufs.append(None)
                    continue
                bufs.append(np.frombuffer(data, x.dtype, x.size, at).copy())
                at += x.nbytes
            tensors.append(bufs)
        out[c.name] = tensors
    assert at == len(data), "the driver wrote more than the cases hold"
    return out


def _canonical(t: list[np.ndarray | None], block: int, nan_alike: bool) -> list[bytes]:
    """The bytes of a tensor's buffers; with nan_alike, every NaN one value and the codes
    of a block whose absmax is NaN 0."""
    out = []
    for b, x in enumerate(t):
        y = np.zeros(0) if x is None else x.copy()
        if nan_alike and y.dtype == Q8:
            y[np.repeat(np.isnan(t[5 + b - 2]), block)[: y.size]] = 0
        elif nan_alike:
            y[np.isnan(y.astype(np.float64))] = np.nan
        out.append(y.tobytes())
    return out


# ------------------------------------------------------------------ the tests


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    """(drivers folder, input path, cases, the extension's results)."""
    folder = os.environ.get(DRIVERS_ENV, "")
    if not folder:
        if required(REQUIRE_ENV):
            pytest.fail(f"{DRIVERS_ENV} must name the drivers' folder ({REQUIRE_ENV} is set)")
        pytest.skip(f"{DRIVERS_ENV} is not set (tests/c/build builds the drivers; .ci/portable)")
    all_cases = cases()
    path = tmp_path_factory.mktemp("golden") / "input"
    _write_input(path, all_cases)
    reference = {c.name: _reference(c) for c in all_cases}
    return Path(folder), path, all_cases, reference


def _run(command: list[str], output: Path) -> str:
    done = subprocess.run([*command, str(output)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return done.stderr


def _builds(folder: Path, machine: str) -> list[Path]:
    return sorted(p for p in folder.glob(f"{machine}-*") if (p / "golden").exists())


def _compare(name: str, results, all_cases, reference, across_machines: bool) -> int:
    """Assert results equal the reference; returns the number of cases equal bit for bit."""
    exact = 0
    for c in all_cases:
        got, want = results[c.name], reference[c.name]
        block = c.spec[1] if c.spec else 1
        if [_canonical(t, block, False) for t in got] == [
            _canonical(t, block, False) for t in want
        ]:
            exact += 1
            continue
        # Only NaN may differ, in its sign and payload, and only between machines.
        assert across_machines, f"{name}: {c.name} differs from the extension"
        assert c.nonfinite, f"{name}: {c.name} differs from the extension"
        canon = [_canonical(t, block, True) for t in got]
        assert canon == [_canonical(t, block, True) for t in want], f"{name}: {c.name}"
    return exact


def test_x86_64_builds_match_the_extension(golden, tmp_path):
    folder, path, all_cases, reference = golden
    builds = _builds(folder, "x86_64")
    assert builds, f"no x86_64-* build in {folder}"
    for build in builds:
        for program in ("golden", "golden-portable"):
            levels = _run([str(build / program), str(path)], tmp_path / "out").strip()
            results = _read_output(tmp_path / "out", all_cases)
            exact = _compare(f"{build.name}/{program}", results, all_cases, reference, False)
            assert exact == len(all_cases)
            print(
                f"{build.name}/{program}: {exact} of {len(all_cases)} cases bit for bit; {levels}"
            )


def _qemu() -> str | None:
    return shutil.which("qemu-aarch64-static") or shutil.which("qemu-aarch64")


def test_aarch64_matches_x86_64(golden, tmp_path):
    folder, path, all_cases, reference = golden
    builds, qemu = _builds(folder, "aarch64"), _qemu()
    if not builds or qemu is None:
        missing = "aarch64-* build" if not builds else "qemu-aarch64"
        if required(REQUIRE_ENV):
            pytest.fail(f"{missing} is required ({REQUIRE_ENV} is set)")
        pytest.skip(f"no {missing}; set {REQUIRE_ENV}=1 to make this a failure")
    nonfinite = sum(c.nonfinite for c in all_cases)
    for build in builds:
        runs = [(cpu, "golden") for cpu in AARCH64_CPUS] + [("sve256", "golden-portable")]
        for cpu, program in runs:
            command = [qemu, "-L", SYSROOT, "-cpu", AARCH64_CPUS[cpu], str(build / program)]
            levels = _run([*command, str(path)], tmp_path / "out").strip()
            assert ("sve (not this CPU)" in levels) == (cpu == "neon" and program == "golden")
            results = _read_output(tmp_path / "out", all_cases)
            exact = _compare(f"{build.name}/{program}", results, all_cases, reference, True)
            assert exact >= len(all_cases) - nonfinite
            print(
                f"{build.name}/{program} on {cpu}: {exact} of {len(all_cases)} cases bit for bit, "
                f"the rest ({len(all_cases) - exact}, with NaN) equal up to a NaN's sign; {levels}"
            )


def test_the_cases_cover_every_algorithm_and_format():
    """Every kernel of the algorithm table (and the ceiling), in both dtypes; every
    storage of Adam's param, grad and state with both roundings; odd lengths."""
    all_cases = cases()
    assert len({c.name for c in all_cases}) == len(all_cases)
    kernels = {a.kernel for a in _table.ALGORITHMS.values()} | {_ext.TRAFFIC}
    for dtype in (F32, F64):
        assert {c.algo for c in all_cases if c.dtype == dtype and not c.spec} == kernels
    formats = {(*(x.dtype for x in c.tensors[0][:3]), c.spec[0]) for c in all_cases if c.spec}
    assert len(formats) == 2 * 2 * 3 * 2
    assert {c.tensors[0][0].size for c in all_cases} == {LENGTHS[0]}
