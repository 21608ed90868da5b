# The part of Cython's pure-Python mode that fastadam's compiled modules use: compiled,
# these declare C types; interpreted, they are no-ops (Cython's Shadow module).
from collections.abc import Callable
from typing import Any, TypeVar

_F = TypeVar("_F", bound=Callable[..., Any])

double: type[float]
Py_ssize_t: type[int]

def locals(**types: object) -> Callable[[_F], _F]: ...
def cpow(value: bool) -> Callable[[_F], _F]: ...
def declare(type: object, value: Any = ...) -> Any: ...
