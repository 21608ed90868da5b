"""Two-dimensional test surfaces with analytic gradients, for the optimizer race.

Each :class:`Surface` is a loss ``f(x, y)`` with its gradient, a start point,
its minima (the global one first) and the region worth plotting. ``f`` and
``grad`` work elementwise on floats and on NumPy arrays alike, so one formula
serves the optimizers (a point) and the contour plot (a grid). Pure NumPy: the
pictures are in :mod:`fastadam.demo`.

>>> from fastadam.surfaces import SURFACES
>>> bowl = SURFACES["valley"]
>>> bowl.gradient(bowl.minima[0])
array([0., 0.])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["SURFACES", "Surface"]

Point = tuple[float, float]
Value = Any  # a float, or an array of values for a grid of points
Field = Callable[[Value, Value], Value]
GradField = Callable[[Value, Value], tuple[Value, Value]]


@dataclass(frozen=True)
class Surface:
    """A loss on the plane, with what a race on it needs.

    Attributes
    ----------
    name : str
        Short name, used on the command line and in file names.
    title : str
        What the surface shows, for a plot's title.
    formula : str
        ``f(x, y)`` in matplotlib's mathtext.
    f : callable
        ``f(x, y)``, elementwise on floats or arrays.
    grad : callable
        ``grad(x, y) -> (df/dx, df/dy)``, elementwise.
    start : tuple of float
        Where every optimizer starts.
    minima : tuple of points
        The minima, the global one first (located to about 1e-7).
    bounds : tuple of float
        ``(xmin, xmax, ymin, ymax)`` of the region worth plotting.
    steps : int
        How many steps a race on it takes by default.
    saddles : tuple of points
        Saddle points worth marking.
    """

    name: str
    title: str
    formula: str
    f: Field
    grad: GradField
    start: Point
    minima: tuple[Point, ...]
    bounds: tuple[float, float, float, float]
    steps: int
    saddles: tuple[Point, ...] = ()

    def value(self, point: Sequence[float] | np.ndarray) -> float:
        """The loss at ``point``."""
        return float(self.f(float(point[0]), float(point[1])))

    def gradient(self, point: Sequence[float] | np.ndarray) -> npt.NDArray[np.float64]:
        """The gradient at ``point``, as a float64 array of 2 elements."""
        return np.array(self.grad(float(point[0]), float(point[1])), dtype=np.float64)

    def values(self, points: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """The loss at each row of an ``(n, 2)`` array of points."""
        points = np.asarray(points, dtype=np.float64)
        return np.asarray(self.f(points[:, 0], points[:, 1]), dtype=np.float64)

    def is_global(self, point: Sequence[float] | np.ndarray) -> bool:
        """Whether the loss at ``point`` is as low as at the global minimum."""
        return self.value(point) <= self.value(self.minima[0])

    def nearest_minimum(self, point: Sequence[float] | np.ndarray) -> tuple[int, float]:
        """The index in ``minima`` of the minimum nearest ``point``, and its distance."""
        distances = [float(np.hypot(point[0] - m[0], point[1] - m[1])) for m in self.minima]
        index = int(np.argmin(distances))
        return index, distances[index]

    def grid(
        self, resolution: int = 300
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """``(x, y, f)`` on a ``resolution`` x ``resolution`` grid over ``bounds``."""
        xmin, xmax, ymin, ymax = self.bounds
        x, y = np.meshgrid(np.linspace(xmin, xmax, resolution), np.linspace(ymin, ymax, resolution))
        return x, y, np.asarray(self.f(x, y), dtype=np.float64)


# -------------------------------------------------------------------- valley


def _valley(x: Value, y: Value) -> Value:
    return x**2 / 100 + y**2


def _valley_grad(x: Value, y: Value) -> tuple[Value, Value]:
    return x / 50, 2 * y


# -------------------------------------------------------------------- saddle


def _saddle(x: Value, y: Value) -> Value:
    return x**2 + y**4 / 4 - y**2 / 2


def _saddle_grad(x: Value, y: Value) -> tuple[Value, Value]:
    return 2 * x, y**3 - y


# ------------------------------------------------------------- local minimum
#
# A wide bowl with its bottom at (2, 0), steeper across (y) than along (x), and
# a shallow Gaussian dip near the origin: the dip is a local minimum, higher
# than the bowl's bottom. From the start the gradient points almost straight
# down the steep side into the dip, which is where plain gradient descent goes;
# optimizers that scale each coordinate move diagonally and miss it.

_DIP_DEPTH, _DIP_WIDTH2 = 0.5, 2 * 0.3**2


def _dip(x: Value, y: Value) -> Value:
    return _DIP_DEPTH * np.exp(-(x**2 + y**2) / _DIP_WIDTH2)


def _local_minimum(x: Value, y: Value) -> Value:
    return y**2 + 0.2 * (x - 2) ** 2 - _dip(x, y)


def _local_minimum_grad(x: Value, y: Value) -> tuple[Value, Value]:
    pull = 2 * _dip(x, y) / _DIP_WIDTH2
    return 0.4 * (x - 2) + pull * x, 2 * y + pull * y


# ---------------------------------------------------------------- Rosenbrock


def _rosenbrock(x: Value, y: Value) -> Value:
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


def _rosenbrock_grad(x: Value, y: Value) -> tuple[Value, Value]:
    return -2 * (1 - x) - 400 * x * (y - x**2), 200 * (y - x**2)


# --------------------------------------------------------------------- Beale


def _beale_terms(x: Value, y: Value) -> tuple[Value, Value, Value]:
    return 1.5 - x + x * y, 2.25 - x + x * y**2, 2.625 - x + x * y**3


def _beale(x: Value, y: Value) -> Value:
    a, b, c = _beale_terms(x, y)
    return a**2 + b**2 + c**2


def _beale_grad(x: Value, y: Value) -> tuple[Value, Value]:
    a, b, c = _beale_terms(x, y)
    dx = 2 * a * (y - 1) + 2 * b * (y**2 - 1) + 2 * c * (y**3 - 1)
    dy = 2 * a * x + 4 * b * x * y + 6 * c * x * y**2
    return dx, dy


SURFACES: dict[str, Surface] = {
    s.name: s
    for s in [
        Surface(
            name="valley",
            title="A long narrow valley (convex)",
            formula=r"$x^2/100 + y^2$",
            f=_valley,
            grad=_valley_grad,
            start=(-9.0, 1.6),
            minima=((0.0, 0.0),),
            bounds=(-10.0, 2.0, -2.0, 2.0),
            steps=150,
        ),
        Surface(
            name="saddle",
            title="A saddle point",
            formula=r"$x^2 + y^4/4 - y^2/2$",
            f=_saddle,
            grad=_saddle_grad,
            start=(-1.6, 1e-3),
            minima=((0.0, 1.0), (0.0, -1.0)),
            bounds=(-2.0, 2.0, -1.5, 1.5),
            steps=200,
            saddles=((0.0, 0.0),),
        ),
        Surface(
            name="local-minimum",
            title="A local minimum next to the global one",
            formula=r"$y^2 + (x-2)^2/5 - e^{-(x^2+y^2)/0.18}/2$",
            f=_local_minimum,
            grad=_local_minimum_grad,
            start=(-0.5, 2.0),
            minima=((2.0, 0.0), (0.1511283, 0.0)),
            bounds=(-1.5, 3.5, -1.5, 2.5),
            steps=200,
        ),
        Surface(
            name="rosenbrock",
            title="Rosenbrock's banana valley",
            formula=r"$(1-x)^2 + 100\,(y-x^2)^2$",
            f=_rosenbrock,
            grad=_rosenbrock_grad,
            start=(-1.2, 1.0),
            minima=((1.0, 1.0),),
            bounds=(-1.6, 1.6, -0.6, 1.8),
            steps=1000,
        ),
        Surface(
            name="beale",
            title="Beale's function",
            formula=r"$(1.5-x+xy)^2 + (2.25-x+xy^2)^2 + (2.625-x+xy^3)^2$",
            f=_beale,
            grad=_beale_grad,
            start=(1.0, 1.5),
            minima=((3.0, 0.5),),
            bounds=(-0.5, 4.5, -1.5, 2.0),
            steps=500,
        ),
    ]
}
