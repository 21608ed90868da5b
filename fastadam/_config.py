"""Build and run-time configuration: threads, instruction set, versions."""

from __future__ import annotations

import os
import platform

import numpy as np

from . import _ext
from ._version import __version__

__all__ = ["available_cpus", "get_num_threads", "set_num_threads", "show_config"]


def available_cpus() -> int:
    """The number of CPUs this process may run on (its affinity mask where known)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def set_num_threads(n: int) -> None:
    """Use ``n`` threads in every later fused call (results do not depend on ``n``).

    Calls below about 32 K elements per thread run on one thread anyway. Without
    OpenMP in the build, only 1 is possible.
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer):
        raise TypeError(f"n must be an integer, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if n > 1 and not _ext.has_openmp():
        raise ValueError("this build of fastadam has no OpenMP; only 1 thread is available")
    _ext.set_num_threads(int(n))


def get_num_threads() -> int:
    """The number of threads fused calls use."""
    return int(_ext.get_num_threads())


def config() -> dict[str, object]:
    """The configuration as a dict (what ``show_config`` prints)."""
    return {
        "fastadam": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "simd": _ext.simd_level(),
        "int8 lookups": _ext.q8_lookups(),
        "openmp": _ext.has_openmp(),
        "threads": get_num_threads(),
        "cpus available": available_cpus(),
    }


def show_config() -> None:
    """Print the version, the instruction set the kernels dispatch to, and threads."""
    for key, value in config().items():
        print(f"{key + ':':16} {value}")


if _ext.has_openmp():
    _ext.set_num_threads(available_cpus())
