"""fastadam: fused, memory-bandwidth-bound optimizers for NumPy arrays on CPUs.

Every update (Adam, AdamW, SGD, RMSprop, Adagrad, Adamax, NAdam, RAdam, Rprop, Lion) is one
pass of a
C loop over contiguous float32/float64 buffers, in place, with the GIL released
(from 4 096 elements per call).

>>> import numpy as np, fastadam
>>> w = np.zeros(1000, np.float32)
>>> opt = fastadam.Adam([w], lr=1e-2)
>>> opt.step([w - 1.0])  # the gradient of |w - 1|^2 / 2; True: the step was applied
True
>>> float(w[0])  # Adam's first step moves every element by lr
0.009999999776482582
"""

from . import functional
from ._config import get_num_threads, set_num_threads, show_config
from ._version import __version__
from .checkpoint import CheckpointError, load, save
from .optimizers import (
    SGD,
    Adagrad,
    Adam,
    Adamax,
    AdamW,
    Lion,
    NAdam,
    Optimizer,
    RAdam,
    RMSprop,
    Rprop,
)

__all__ = [
    "SGD",
    "Adagrad",
    "Adam",
    "AdamW",
    "Adamax",
    "CheckpointError",
    "Lion",
    "NAdam",
    "Optimizer",
    "RAdam",
    "RMSprop",
    "Rprop",
    "__version__",
    "functional",
    "get_num_threads",
    "load",
    "save",
    "set_num_threads",
    "show_config",
]
