"""Bitwise independence from thread count, array length and offset; thread controls.

Element i's result depends only on element i's inputs, and the vector body and
the scalar tail compute the same bits, so any split of the work must give the
same bytes.
"""

import numpy as np
import pytest

import fastadam
from fastadam import functional as F

N = 300_001  # odd, and large enough to be split over threads


@pytest.fixture(autouse=True)
def _restore_threads():
    before = fastadam.get_num_threads()
    yield
    fastadam.set_num_threads(before)


def _inputs(dtype, n=N, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.standard_normal(n).astype(dtype)
    g = rng.standard_normal(n).astype(dtype)
    m = (rng.standard_normal(n) * 0.1).astype(dtype)
    v = rng.random(n).astype(dtype) * 0.01
    vmax = v + rng.random(n).astype(dtype) * 0.01
    return p, g, m, v, vmax


def _adam(p, g, m, v, vmax, amsgrad=True):
    F.adam(
        p, g, m, v, step=7, lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.1,
        amsgrad=amsgrad, max_exp_avg_sq=vmax if amsgrad else None,
    )  # fmt: skip


def _bytes(*arrays):
    return b"".join(a.tobytes() for a in arrays)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_thread_count_does_not_change_bits(dtype):
    results = []
    for threads in (1, 2, 3, 4):
        fastadam.set_num_threads(threads)
        bufs = _inputs(dtype)
        _adam(*bufs)
        results.append(_bytes(*bufs))
    assert all(r == results[0] for r in results)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_length_and_offset_do_not_change_bits(dtype):
    """Every element computed alone, in a short array, or at any offset gives the same bits."""
    whole = _inputs(dtype, n=2_000)
    _adam(*whole)
    for offset in (0, 1, 3, 5, 17):
        for length in (1, 2, 7, 15, 16, 33, 100):
            part = [a[offset : offset + length].copy() for a in _inputs(dtype, n=2_000)]
            padded = [np.empty(offset + length, dtype) for _ in part]
            views = [buf[offset:] for buf in padded]
            for view, src in zip(views, part, strict=True):
                view[...] = src
            _adam(*views)
            expected = [a[offset : offset + length] for a in whole]
            assert _bytes(*views) == _bytes(*expected), (offset, length)


def test_many_tensors_in_one_call_match_one_at_a_time():
    """The optimizer's single call over many tensors splits work across tensor boundaries."""
    fastadam.set_num_threads(2)
    rng = np.random.default_rng(1)
    shapes = [(40_000,), (3,), (70_001,), (), (0,), (123, 457)]
    params = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    together = [p.copy() for p in params]
    opt = fastadam.Adam(together, lr=1e-2)
    for _ in range(3):
        opt.step(grads)
    for p, g in zip(params, grads, strict=True):
        m, v = np.zeros_like(p), np.zeros_like(p)
        for t in (1, 2, 3):
            F.adam(p, g, m, v, step=t, lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8)
    assert _bytes(*together) == _bytes(*params)


def test_thread_controls():
    assert fastadam.get_num_threads() >= 1
    fastadam.set_num_threads(1)
    assert fastadam.get_num_threads() == 1
    fastadam.set_num_threads(np.int64(2))
    assert fastadam.get_num_threads() == 2
    with pytest.raises(ValueError, match="n must be at least 1"):
        fastadam.set_num_threads(0)
    with pytest.raises(TypeError, match="n must be an integer"):
        fastadam.set_num_threads(1.5)
    with pytest.raises(TypeError, match="n must be an integer"):
        fastadam.set_num_threads(True)
    assert fastadam.get_num_threads() == 2


def test_default_threads_are_the_available_cpus():
    import os
    import subprocess
    import sys

    code = "import fastadam; print(fastadam.get_num_threads())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(out.stdout) == len(os.sched_getaffinity(0))


def test_show_config(capsys):
    fastadam.show_config()
    out = capsys.readouterr().out
    assert f"fastadam:        {fastadam.__version__}" in out
    levels = ("avx512", "avx2", "baseline", "sve", "neon")
    assert any(f"simd:            {level}" in out for level in levels)
    assert "threads:" in out


# Adam on fixed inputs in float32, float64, bfloat16 state and 8-bit state (NumPy
# classes), three steps; prints the level in use and a digest of every buffer.
_LEVEL_STEPS = """
import hashlib
import ml_dtypes
import numpy as np
import fastadam
from fastadam import _ext

digest = hashlib.sha256()
for dtype, state in [(np.float32, None), (np.float64, None), (np.float32, "bfloat16"),
                     (ml_dtypes.bfloat16, "int8")]:
    rng = np.random.default_rng(0)
    w = rng.standard_normal(5003).astype(dtype)
    opt = fastadam.AdamW([w], lr=1e-2, state_dtype=state, rounding="stochastic" if state else None)
    for _ in range(3):
        opt.step([(rng.standard_normal(5003) * 10.0 ** rng.uniform(-6, 0, 5003)).astype(dtype)])
    digest.update(w.tobytes())
    for value in opt.state[0].values():
        digest.update(np.asarray(value).tobytes())
print(_ext.simd_level(), digest.hexdigest())
"""


def test_every_level_the_cpu_runs_computes_the_same_bits():
    """FASTADAM_SIMD picks the level the kernels run at, as the library loads: each
    level this CPU runs gives the bits of the default one, and a name that is no
    level leaves the default (tests/test_golden.py checks every algorithm and format,
    and other machines)."""
    import os
    import platform
    import subprocess
    import sys

    def run(level):
        env = os.environ | {"FASTADAM_SIMD": level}
        command = [sys.executable, "-c", _LEVEL_STEPS]
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        return done.stdout.split()

    default_level, default_digest = run("no such level")
    assert default_level == fastadam._ext.simd_level()
    arm = platform.machine().lower() in ("aarch64", "arm64")
    ran = {}
    for level in ("sve", "neon") if arm else ("avx512", "avx2", "baseline"):
        got, digest = run(level)
        assert digest == default_digest, (level, got)
        ran[level] = got
    # A level the CPU runs is taken when named (the last, the baseline, runs everywhere
    # unless the build has a single level: FASTADAM_NATIVE=1 or no dispatch).
    reachable = {default_level, *ran.values()}
    assert all(got == level or level not in reachable for level, got in ran.items())
