"""Sharded optimizer state over MPI, for NumPy users (ZeRO stage 1).

A flat parameter vector is replicated on every rank; each rank keeps the
optimizer state of one shard only, so state memory per rank is 1/W of the
whole (8N/W bytes for Adam in float32 instead of 8N). A step is

1. a reduce-scatter of the ranks' gradients (summed, then divided by W), so
   that each rank receives the averaged gradient of its shard;
2. the fused kernel on the local shard (any fastadam optimizer);
3. an all-gather of the updated shards into every rank's parameter vector.

Each rank sends and receives 2(W-1)/W * N elements per step, the same as the
all-reduce of plain data-parallel training. Shards start at multiples of 64
elements. At two ranks the result is bitwise identical to one process stepping
on the averaged gradient ``(g0 + g1) / 2``; with more ranks the summation
order of the reduction may change the last bits.

Launch with ``mpirun -n 4 python train.py``; needs ``mpi4py`` (the ``mpi``
extra: ``pip install "fastadam[mpi]"``) and an MPI library. In ``train.py``::

    params = np.zeros(1_000_000, np.float32)    # the same on every rank
    opt = ShardedAdam(params, lr=1e-3)
    for batch in my_shard_of_the_data:
        opt.step(gradient(params, batch))       # every rank, every step
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from . import optimizers

__all__ = [
    "SHARD_ALIGNMENT",
    "ShardedAdam",
    "ShardedAdamW",
    "ShardedOptimizer",
    "shard_bounds",
]

SHARD_ALIGNMENT = 64


def _mpi() -> Any:
    try:
        from mpi4py import MPI
    except ImportError as error:
        raise ImportError(
            'fastadam.distributed needs mpi4py and an MPI library: pip install "fastadam[mpi]"'
        ) from error
    return MPI


def shard_bounds(
    n: int, world: int, rank: int, alignment: int = SHARD_ALIGNMENT
) -> tuple[int, int]:
    """Elements ``[lo, hi)`` of an ``n``-vector that ``rank`` of ``world`` owns.

    Shards have equal sizes, rounded up to a multiple of ``alignment``; the last
    ones may be shorter or empty.
    """
    for name, value, least in (("n", n, 0), ("world", world, 1), ("alignment", alignment, 1)):
        if not isinstance(value, numbers.Integral) or isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
        if value < least:
            raise ValueError(f"{name} must be at least {least}, got {value}")
    if not isinstance(rank, numbers.Integral) or isinstance(rank, (bool, np.bool_)):
        raise TypeError(f"rank must be an integer, got {type(rank).__name__}")
    if not 0 <= rank < world:
        raise ValueError(f"rank must be in [0, {world}), got {rank}")
    per = -(-n // world)
    per = -(-per // alignment) * alignment
    lo = min(rank * per, n)
    return lo, min(lo + per, n)


class ShardedOptimizer:
    """Data-parallel training of one flat vector with sharded optimizer state.

    Parameters
    ----------
    optimizer_class : type
        A fastadam optimizer (``fastadam.Adam``, ``AdamW``, ``SGD``, ...): it
        runs on this rank's shard.
    params : numpy.ndarray
        1-D, C-contiguous float32 or float64, identical on every rank; updated
        in place on every rank by each step.
    comm : mpi4py.MPI.Comm, optional
        The communicator (default ``MPI.COMM_WORLD``).
    **hyperparameters
        Passed to ``optimizer_class``.
    """

    def __init__(
        self,
        optimizer_class: Callable[..., optimizers.Optimizer],
        params: np.ndarray,
        *,
        comm: Any = None,
        **hyperparameters: Any,
    ) -> None:
        mpi = _mpi()
        self.comm = mpi.COMM_WORLD if comm is None else comm
        self._check_vector("params", params, None)
        layouts = self.comm.allgather((params.size, params.dtype.str))
        if len(set(layouts)) != 1:
            raise ValueError(f"params differ across ranks (size, dtype): {layouts}")
        self.params = params
        world, rank = self.comm.Get_size(), self.comm.Get_rank()
        self.bounds = [shard_bounds(params.size, world, r) for r in range(world)]
        self._counts = [hi - lo for lo, hi in self.bounds]
        self._displacements = [lo for lo, _ in self.bounds]
        self._mpi_type = mpi.FLOAT if params.dtype == np.float32 else mpi.DOUBLE
        self._in_place = mpi.IN_PLACE
        self._sum, self._and = mpi.SUM, mpi.LAND
        lo, hi = self.bounds[rank]
        self.shard = params[lo:hi]
        self.optimizer = optimizer_class([self.shard], **hyperparameters)
        self._grad = np.empty_like(self.shard)

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        """The local optimizer's groups; change ``lr`` here on every rank alike."""
        return self.optimizer.param_groups

    def _check_vector(self, name: str, array: object, like: np.ndarray | None) -> None:
        if not isinstance(array, np.ndarray):
            raise TypeError(f"{name} must be a numpy.ndarray, got {type(array).__name__}")
        if array.ndim != 1 or not array.flags.c_contiguous:
            raise ValueError(f"{name} must be a 1-D C-contiguous array, got shape {array.shape}")
        if array.dtype not in (np.float32, np.float64):
            raise TypeError(
                f"{name} has dtype {array.dtype}; fastadam supports float32 and float64"
            )
        if like is not None and (array.dtype != like.dtype or array.shape != like.shape):
            raise ValueError(
                f"{name} has dtype {array.dtype} and shape {array.shape}, "
                f"but params have {like.dtype} and {like.shape}"
            )

    def step(self, grad: np.ndarray) -> None:
        """Average the ranks' gradients, update this rank's shard, share the result.

        Collective: every rank calls it with its own gradient of the whole
        vector. A bad gradient on any rank raises on every rank, before any
        communication of data or any update.
        """
        error = None
        try:
            self._check_vector("grad", grad, self.params)
        except (TypeError, ValueError) as caught:
            error = caught
        if not self.comm.allreduce(error is None, op=self._and):
            raise error or ValueError("the grad of another rank was rejected")
        world = self.comm.Get_size()
        self.comm.Reduce_scatter(
            [grad, self._mpi_type], [self._grad, self._mpi_type], self._counts, op=self._sum
        )
        np.divide(self._grad, world, out=self._grad)
        self.optimizer.step([self._grad])
        self.comm.Allgatherv(
            self._in_place, [self.params, (self._counts, self._displacements), self._mpi_type]
        )

    def state_dict(self, root: int = 0) -> dict[str, Any] | None:
        """The whole optimizer state, gathered on ``root`` (None elsewhere). Collective.

        The result has the layout of a single-process optimizer with one param
        (the whole vector), so it loads into any world size, one included.
        """
        local = self.optimizer.state_dict()
        entry = local["state"].get(0, {})
        names = sorted(k for k, v in entry.items() if isinstance(v, np.ndarray))
        if len(set(self.comm.allgather(tuple(names)))) != 1:
            raise RuntimeError("ranks disagree on the optimizer state's buffers")
        gathered: dict[str, Any] = {k: v for k, v in entry.items() if k not in names}
        is_root = self.comm.Get_rank() == root
        for name in names:
            whole = np.empty_like(self.params) if is_root else None
            self.comm.Gatherv(
                [entry[name], self._mpi_type],
                [whole, (self._counts, self._displacements), self._mpi_type],
                root=root,
            )
            gathered[name] = whole
        if not is_root:
            return None
        return {"state": {0: gathered} if entry else {}, "param_groups": local["param_groups"]}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Load a whole-vector state dict (from ``state_dict`` at any world size, or
        from a single-process optimizer with this one param). Every rank passes it."""
        if not isinstance(state_dict, Mapping) or "state" not in state_dict:
            raise ValueError('state_dict must be a dict with a "state" entry')
        saved = state_dict["state"]
        if not isinstance(saved, Mapping):
            raise TypeError(f'state_dict["state"] must be a dict, got {type(saved).__name__}')
        lo, hi = self.bounds[self.comm.Get_rank()]
        state = {}
        for index, entry in saved.items():
            if not isinstance(entry, Mapping):
                raise TypeError(f"state[{index!r}] must be a dict, got {type(entry).__name__}")
            state[index] = dict(entry)
            for key, value in entry.items():
                if isinstance(value, np.ndarray):
                    if value.shape != self.params.shape:
                        raise ValueError(
                            f'state[{index}]["{key}"] has shape {value.shape} '
                            f"but params have shape {self.params.shape}"
                        )
                    state[index][key] = value[lo:hi]
        self.optimizer.load_state_dict({**state_dict, "state": state})


class ShardedAdam(ShardedOptimizer):
    """:class:`fastadam.Adam`, state sharded across MPI ranks; see :class:`ShardedOptimizer`."""

    def __init__(self, params: np.ndarray, *, comm: Any = None, **hyperparameters: Any) -> None:
        super().__init__(optimizers.Adam, params, comm=comm, **hyperparameters)


class ShardedAdamW(ShardedOptimizer):
    """:class:`fastadam.AdamW`, state sharded across MPI ranks; see :class:`ShardedOptimizer`."""

    def __init__(self, params: np.ndarray, *, comm: Any = None, **hyperparameters: Any) -> None:
        super().__init__(optimizers.AdamW, params, comm=comm, **hyperparameters)
