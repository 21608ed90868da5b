"""``python -m fastadam``: the configuration and a short fastadam-vs-NumPy timing.

For the full comparison (torch, threads, the memory ceiling) run
``python -m fastadam.bench``.
"""

from __future__ import annotations

import numpy as np

from . import bench, show_config
from ._config import available_cpus


def main() -> None:
    show_config()
    n = 1_000_000
    print(f"\nAdam step on {n:,} float32 elements, one thread (median):")
    bench.set_threads(1)
    impls = ["fastadam", "numpy-inplace", "numpy"]
    for r in bench.measure(impls, [(n,)], np.float32, 1, min_time=0.2):
        print(f"  {r.impl:14} {r.seconds * 1e3:8.3f} ms   {r.vs_numpy:5.1f} x numpy-inplace")
    bench.set_threads(available_cpus())


if __name__ == "__main__":
    main()
