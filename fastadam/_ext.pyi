"""Type stub for the compiled boundary module (fastadam/_ext.pyx)."""

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from typing_extensions import Self, disjoint_base

from ._formats import Spec as _Spec  # (stochastic or None: default, block_size, seed)

ADAM: int
SGD: int
RMSPROP: int
ADAGRAD: int
ADAMAX: int
LION: int
NADAM: int
RADAM: int
RPROP: int
TRAFFIC: int
MAX_BUFS: int
MAX_STATE: int
MAX_COEF: int
ALL_BUFS: int

def set_code_map(
    number: int,
    values: np.ndarray,
    zero: int,
    nearest_binades: np.ndarray,
    nearest_buckets: np.ndarray,
    floor_binades: np.ndarray,
    floor_buckets: np.ndarray,
) -> None: ...
def q8_encode(number: int, x: np.ndarray, codes: np.ndarray) -> None: ...
def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
def has_openmp() -> bool: ...
def simd_level() -> str: ...
def q8_lookups() -> str: ...
def set_byte_tables(enable: bool) -> None: ...
def set_tensor_types(
    classes: tuple[type, ...], to_dlpack: Callable[[Any], object], bfloat16: object
) -> None: ...
def active_mask(slots: tuple[str | None, ...]) -> int: ...
def run1(
    algo: int,
    names: tuple[str, ...],
    buffers: tuple[np.ndarray | None, ...],
    coef: tuple[float, ...],
    spec: _Spec | None = None,
    step: int = 0,
) -> None: ...

class StateMissing(LookupError): ...

@disjoint_base
class Batch:
    def __new__(
        cls, algo: int, names: tuple[str, ...], tensors: bool = False, params_only: bool = False
    ) -> Self: ...
    def add_coef(self, coef: tuple[float, ...]) -> int: ...
    def set_coef(self, coef_id: int, coef: tuple[float, ...]) -> None: ...
    def add(
        self,
        index: int,
        buffers: tuple[Any, ...],
        coef_id: int,
        spec: _Spec | None = None,
        step: int = 0,
        required: int = 0,
    ) -> None: ...
    def check(self) -> None: ...
    def grads_finite(self) -> bool: ...
    def add_group(
        self,
        first: int,
        params: list[Any],
        grads: list[Any] | None,
        state: Mapping[Any, dict[str, Any]],
        slots: tuple[str | None, ...],
        coefficients_for: Callable[[int], tuple[float, ...]],
        spec: _Spec | None = None,
        absmax: tuple[str | None, ...] | None = None,
        master: str | None = None,
        counts: bool = True,
    ) -> list[dict[str, Any]]: ...
    def written(self) -> list[Any]: ...
    def run(self) -> None: ...
    def __len__(self) -> int: ...
