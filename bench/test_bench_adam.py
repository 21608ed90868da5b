"""pytest-benchmark suite: ``pytest bench/ --benchmark-only``.

Times one Adam step of each implementation in fastadam.bench (fastadam, the
memory-traffic ceiling, NumPy in-place and as written, torch for-loop, foreach
and fused when torch is installed) per size, dtype and thread count. Compare
implementations within one run: ``--benchmark-group-by=param:n,param:dtype,param:threads``.
"""

import numpy as np
import pytest

from fastadam import bench

SIZES = [1_000, 100_000, 10_000_000]
IMPLS = [i for i in bench.IMPLEMENTATIONS if bench.torch_available() or i not in bench.NEEDS_TORCH]
THREADS = sorted({1, bench._config.available_cpus()})


CASES = [
    (impl, n, dtype, threads)
    for impl in IMPLS
    for n in SIZES
    for dtype in ("float32", "float64")
    for threads in THREADS
]


@pytest.mark.parametrize(("impl", "n", "dtype", "threads"), CASES)
def test_adam_step(benchmark, impl, n, dtype, threads):
    bench.set_threads(threads)
    step = bench.IMPLEMENTATIONS[impl](bench.make_tensors([(n,)], getattr(np, dtype)))
    benchmark.extra_info["bytes"] = 7 * np.dtype(dtype).itemsize * n
    benchmark(step)
    bench.set_threads(bench._config.available_cpus())


@pytest.mark.parametrize("count", [1, 100])
def test_adam_class_small_tensors(benchmark, count):
    """The per-step overhead a trainer with many small tensors pays."""
    step = bench.make_fastadam_class(bench.make_tensors([(1000,)] * count, np.float32))
    benchmark(step)
