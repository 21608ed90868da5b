"""``python -m fastadam.demo``: watch fastadam's optimizers race on 2-D test surfaces.

Every optimizer starts from the same point of a surface and steps a 2-element
float64 param through its real fused kernel, fed the surface's analytic
gradient. The trajectories are computed first (:func:`race`, plain NumPy) and
drawn afterwards (:func:`plot_race`, :func:`animate_race`), which needs the
optional ``plot`` extra (matplotlib and pillow)::

    pip install "fastadam[plot]"
    python -m fastadam.demo                  # a PNG per surface in ./fastadam-demo/
    python -m fastadam.demo --surface local-minimum --gif
    python -m fastadam.demo --surface rosenbrock --optimizers sgd adam --lr adam=0.02

The learning rates of :data:`LEARNING_RATES` are chosen per surface so that each
optimizer's character shows: on ``local-minimum`` plain SGD settles in the local
minimum, momentum rolls through it and out, and RMSprop and Adam head straight
for the global one.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import numpy.typing as npt

from . import _plot
from .optimizers import SGD, Adagrad, Adam, Adamax, AdamW, Lion, Optimizer, RMSprop
from .surfaces import SURFACES, Surface

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from PIL import Image

__all__ = [
    "LEARNING_RATES",
    "OPTIMIZERS",
    "Contender",
    "Trajectory",
    "animate_race",
    "loss_gap",
    "main",
    "outcome",
    "plot_race",
    "race",
    "run",
    "summary",
]

DEFAULT_OUT = "fastadam-demo"
PNG_SIZE = (1200, 560)
GIF_SIZE = (960, 450)
GIF_FRAMES = 60
CMAP = "viridis"
CONTOURS = 24
FLOOR_QUANTILE = 0.01
GAP_FLOOR = 1e-9


@dataclass(frozen=True)
class Contender:
    """An optimizer in the race: how to make it, and how to draw it."""

    label: str
    make: Callable[..., Optimizer]  # make(params, lr=...)
    color: str
    linestyle: str = "-"


OPTIMIZERS: dict[str, Contender] = {
    "sgd": Contender("SGD", SGD, "#222222"),
    "momentum": Contender("Momentum 0.9", partial(SGD, momentum=0.9), "tab:blue"),
    "nesterov": Contender(
        "Nesterov 0.9", partial(SGD, momentum=0.9, nesterov=True), "tab:cyan", "--"
    ),
    "rmsprop": Contender("RMSprop", RMSprop, "tab:green"),
    "adagrad": Contender("Adagrad", Adagrad, "tab:olive"),
    "adamax": Contender("Adamax", Adamax, "tab:purple"),
    "adam": Contender("Adam", Adam, "tab:red"),
    "adamw": Contender("AdamW", AdamW, "tab:orange", "--"),
    "lion": Contender("Lion", Lion, "tab:pink"),
}

# Per surface and optimizer: the learning rate of the default race.
LEARNING_RATES: dict[str, dict[str, float]] = {
    "valley": {
        "sgd": 0.9,
        "momentum": 0.2,
        "nesterov": 0.2,
        "rmsprop": 0.1,
        "adagrad": 1.0,
        "adamax": 0.3,
        "adam": 0.2,
        "adamw": 0.2,
        "lion": 0.05,
    },
    "saddle": {
        "sgd": 0.05,
        "momentum": 0.01,
        "nesterov": 0.01,
        "rmsprop": 0.02,
        "adagrad": 0.3,
        "adamax": 0.05,
        "adam": 0.05,
        "adamw": 0.05,
        "lion": 0.04,
    },
    "local-minimum": {
        "sgd": 0.1,
        "momentum": 0.02,
        "nesterov": 0.02,
        "rmsprop": 0.02,
        "adagrad": 0.5,
        "adamax": 0.1,
        "adam": 0.1,
        "adamw": 0.1,
        "lion": 0.04,
    },
    "rosenbrock": {
        "sgd": 0.001,
        "momentum": 0.0005,
        "nesterov": 0.0005,
        "rmsprop": 0.005,
        "adagrad": 0.5,
        "adamax": 0.2,
        "adam": 0.1,
        "adamw": 0.1,
        "lion": 0.003,
    },
    "beale": {
        "sgd": 0.004,
        "momentum": 0.0008,
        "nesterov": 0.0008,
        "rmsprop": 0.02,
        "adagrad": 1.0,
        "adamax": 0.4,
        "adam": 0.1,
        "adamw": 0.1,
        "lion": 0.01,
    },
}

# A run stops when it leaves this many plot extents around the plotted region.
ESCAPE = 10.0


# ---------------------------------------------------------------- the race


@dataclass(frozen=True)
class Trajectory:
    """One optimizer's path on a surface.

    Attributes
    ----------
    optimizer : str
        The key in :data:`OPTIMIZERS`.
    lr : float
        Its learning rate.
    points : numpy.ndarray
        ``(n + 1, 2)`` float64: the start, then the param after each of ``n`` steps.
    diverged : bool
        True if the run was stopped early because the param left the region
        ``ESCAPE`` times the plot's size (or stopped being finite).
    """

    optimizer: str
    lr: float
    points: npt.NDArray[np.float64]
    diverged: bool = False

    @property
    def final(self) -> npt.NDArray[np.float64]:
        """Where the run ended."""
        return self.points[-1]


def _escaped(surface: Surface, point: npt.NDArray[np.float64]) -> bool:
    xmin, xmax, ymin, ymax = surface.bounds
    half = ESCAPE * max(xmax - xmin, ymax - ymin)
    center = np.array([(xmin + xmax) / 2, (ymin + ymax) / 2])
    return not np.all(np.isfinite(point)) or bool(np.any(np.abs(point - center) > half))


def run(surface: Surface, optimizer: str, lr: float, steps: int) -> Trajectory:
    """Run one optimizer on ``surface`` for ``steps`` steps from its start.

    Parameters
    ----------
    surface : Surface
        The loss and its gradient.
    optimizer : str
        A key of :data:`OPTIMIZERS`.
    lr : float
        The learning rate.
    steps : int
        How many steps (``opt.step([grad])`` calls) to take.

    Returns
    -------
    Trajectory
        ``steps + 1`` points, or fewer if the run diverged.
    """
    param = np.array(surface.start, dtype=np.float64)
    opt = OPTIMIZERS[optimizer].make([param], lr=lr)
    points = [param.copy()]
    for _ in range(steps):
        opt.step([surface.gradient(param)])
        points.append(param.copy())
        if _escaped(surface, param):
            return Trajectory(optimizer, lr, np.array(points), diverged=True)
    return Trajectory(optimizer, lr, np.array(points))


def race(
    surface: Surface,
    optimizers: Sequence[str] | None = None,
    steps: int | None = None,
    lr: Mapping[str, float] | None = None,
) -> dict[str, Trajectory]:
    """Run each optimizer on ``surface`` from the same start.

    Parameters
    ----------
    surface : Surface
        The surface, e.g. ``fastadam.surfaces.SURFACES["rosenbrock"]``.
    optimizers : sequence of str, optional
        Keys of :data:`OPTIMIZERS`; all of them by default.
    steps : int, optional
        Steps per optimizer; the surface's ``steps`` by default.
    lr : mapping, optional
        Learning rates overriding the surface's defaults in :data:`LEARNING_RATES`.

    Returns
    -------
    dict
        Optimizer key to :class:`Trajectory`, in the order of ``optimizers``.
    """
    names = list(OPTIMIZERS) if optimizers is None else list(optimizers)
    unknown = [n for n in names if n not in OPTIMIZERS]
    if unknown:
        raise ValueError(f"unknown optimizers {unknown}; choose from {list(OPTIMIZERS)}")
    rates = {**LEARNING_RATES.get(surface.name, {}), **(lr or {})}
    missing = [n for n in names if n not in rates]
    if missing:
        raise ValueError(f"no learning rate for {missing} on {surface.name!r}; pass lr={{...}}")
    count = surface.steps if steps is None else steps
    return {name: run(surface, name, rates[name], count) for name in names}


def outcome(surface: Surface, trajectory: Trajectory, tolerance: float = 0.05) -> str:
    """Where a trajectory ended, in words.

    Parameters
    ----------
    surface : Surface
        The surface it ran on.
    trajectory : Trajectory
        From :func:`run` or :func:`race`.
    tolerance : float
        How close to a minimum counts as having reached it.

    Returns
    -------
    str
        ``"global minimum"``, ``"local minimum"`` (within ``tolerance`` of one),
        ``"diverged"``, or ``"on its way"`` (anywhere else).
    """
    if trajectory.diverged:
        return "diverged"
    index, distance = surface.nearest_minimum(trajectory.final)
    if distance > tolerance:
        return "on its way"
    return "global minimum" if surface.is_global(surface.minima[index]) else "local minimum"


def summary(surface: Surface, trajectories: Mapping[str, Trajectory]) -> str:
    """A line per optimizer: learning rate, steps, end point, loss and outcome."""
    lines = []
    for name, t in trajectories.items():
        x, y = t.final
        lines.append(
            f"  {OPTIMIZERS[name].label:17} lr {t.lr:<7g} {len(t.points) - 1:5} steps  "
            f"ends at ({x:7.3f}, {y:7.3f})  f = {surface.value(t.final):<10.4g} "
            f"{outcome(surface, t)}"
        )
    return "\n".join(lines)


# --------------------------------------------------------------- the pictures


def _log_excess(z: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """``log(f - min f + floor)``: a grid's values on a scale that shows valleys and peaks."""
    excess = z - z.min()
    floor = float(np.quantile(excess[excess > 0], FLOOR_QUANTILE))
    return np.log(excess + floor)


def _draw_surface(ax: Axes, surface: Surface) -> None:
    """Filled contours, the start, the minima and saddle points."""
    x, y, z = surface.grid()
    height = _log_excess(z)
    levels = np.linspace(height.min(), height.max(), CONTOURS)
    ax.contourf(x, y, height, levels=levels, cmap=CMAP, alpha=0.55)
    ax.contour(
        x, y, height, levels=levels, colors="white", linewidths=0.6, alpha=0.8,
        negative_linestyles="solid",
    )  # fmt: skip
    ax.set_xlim(surface.bounds[0], surface.bounds[1])
    ax.set_ylim(surface.bounds[2], surface.bounds[3])
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    _mark_points(ax, surface)


def _mark_points(ax: Axes, surface: Surface) -> None:
    """The start, the minima (global ones gold) and the saddle points, each kind labelled once."""
    marks: dict[str, Any] = {"markeredgecolor": "black", "linestyle": "none", "zorder": 5}
    ax.plot(*surface.start, "o", color="white", markersize=10, label="start", **marks)
    labelled = set()
    for point in surface.minima:
        is_global = surface.is_global(point)
        kind = "global minimum" if is_global else "local minimum"
        color, size = ("gold", 18) if is_global else ("white", 15)
        label = None if kind in labelled else kind
        labelled.add(kind)
        ax.plot(*point, "*", color=color, markersize=size, label=label, **marks)
    for number, point in enumerate(surface.saddles):
        label = None if number else "saddle point"
        ax.plot(*point, "X", color="white", markersize=10, label=label, **marks)


@dataclass
class _Drawn:
    """One trajectory's artists: its path, its head and its loss curve."""

    trajectory: Trajectory
    gap: npt.NDArray[np.float64]
    path: Line2D
    head: Line2D
    loss: Line2D

    def show(self, step: int) -> None:
        """Show the race up to ``step`` only (for an animation frame)."""
        shown = self.trajectory.points[: step + 1]
        self.path.set_data(shown[:, 0], shown[:, 1])
        self.head.set_data(shown[-1:, 0], shown[-1:, 1])
        self.loss.set_data(np.arange(len(shown)), self.gap[: len(shown)])


def loss_gap(surface: Surface, trajectory: Trajectory) -> npt.NDArray[np.float64]:
    """``f - f(global minimum)`` along a trajectory, at least ``GAP_FLOOR`` (for a log axis)."""
    gap = surface.values(trajectory.points) - surface.value(surface.minima[0])
    return np.maximum(gap, GAP_FLOOR)


def _draw_race(
    surface_ax: Axes, loss_ax: Axes, surface: Surface, trajectories: Mapping[str, Trajectory]
) -> list[_Drawn]:
    """Each optimizer's path on the surface and its loss against the step."""
    drawn = []
    for name, t in trajectories.items():
        c = OPTIMIZERS[name]
        style: dict[str, Any] = {"color": c.color, "linestyle": c.linestyle}
        (path,) = surface_ax.plot(
            t.points[:, 0], t.points[:, 1], linewidth=2, label=f"{c.label} (lr {t.lr:g})",
            zorder=3, **style,
        )  # fmt: skip
        (head,) = surface_ax.plot(
            *t.final, "o", color=c.color, markersize=6, markeredgecolor="white", zorder=4
        )
        gap = loss_gap(surface, t)
        (loss,) = loss_ax.plot(np.arange(len(gap)), gap, linewidth=1.6, **style)
        drawn.append(_Drawn(t, gap, path, head, loss))
    return drawn


def _setup_loss_axes(ax: Axes, drawn: list[_Drawn]) -> None:
    gaps = np.concatenate([d.gap for d in drawn])
    ax.set_yscale("log")
    ax.set_ylim(gaps.min() / 3, gaps.max() * 3)
    ax.set_xlim(0, max(len(d.gap) for d in drawn) - 1)
    ax.set_xlabel("step")
    ax.set_ylabel("f - f(global minimum)")
    ax.grid(True, which="major", alpha=0.3)
    ax.set_title("loss", fontsize=11)


def _race_figure(
    surface: Surface, trajectories: Mapping[str, Trajectory], size: tuple[int, int]
) -> tuple[Figure, Axes, list[_Drawn]]:
    """The race drawn whole: surface with paths, loss curves, one legend for both."""
    figure = _plot.new_figure(size)
    surface_ax, loss_ax = figure.subplots(1, 2, width_ratios=[1.4, 1])
    _draw_surface(surface_ax, surface)
    drawn = _draw_race(surface_ax, loss_ax, surface, trajectories)
    _setup_loss_axes(loss_ax, drawn)
    steps = max(len(t.points) for t in trajectories.values()) - 1
    surface_ax.set_title(f"{steps} steps", fontsize=11)
    figure.suptitle(f"{surface.title}:  f = {surface.formula}")
    figure.legend(loc="outside right center", frameon=False, fontsize=9)
    return figure, surface_ax, drawn


def plot_race(
    surface: Surface,
    trajectories: Mapping[str, Trajectory],
    path: str | os.PathLike[str],
    size: tuple[int, int] = PNG_SIZE,
) -> None:
    """Draw the whole race as a picture: each optimizer's path and its loss curve.

    Parameters
    ----------
    surface : Surface
        The surface raced on.
    trajectories : mapping
        From :func:`race`.
    path : str or path-like
        The file to write (format from the suffix, e.g. ``.png``).
    size : tuple of int
        Width and height in pixels.
    """
    _plot.require_plot_extra("the demo")
    figure, _, _ = _race_figure(surface, trajectories, size)
    figure.savefig(path)


def _frame_steps(length: int, frames: int) -> npt.NDArray[np.int64]:
    """The step shown in each frame: evenly spaced, ending at the last step."""
    return np.unique(np.linspace(0, length - 1, max(2, min(frames, length))).round().astype(int))


def animate_race(
    surface: Surface,
    trajectories: Mapping[str, Trajectory],
    path: str | os.PathLike[str],
    size: tuple[int, int] = GIF_SIZE,
    frames: int = GIF_FRAMES,
    frame_ms: int = 80,
) -> None:
    """Write the race as an animated GIF, every optimizer moving step by step.

    Parameters
    ----------
    surface : Surface
        The surface raced on.
    trajectories : mapping
        From :func:`race`.
    path : str or path-like
        The GIF file to write.
    size : tuple of int
        Width and height in pixels.
    frames : int
        How many frames (at most one per step); the last one is held for 2 s.
    frame_ms : int
        Milliseconds per frame.
    """
    _plot.require_plot_extra("the demo")
    figure, surface_ax, drawn = _race_figure(surface, trajectories, size)
    figure.canvas.draw()
    figure.set_layout_engine("none")  # keep the layout of the whole race: steadier, faster
    length = max(len(t.points) for t in trajectories.values())
    images = []
    for step in _frame_steps(length, frames):
        for d in drawn:
            d.show(step)
        surface_ax.set_title(f"step {step}", fontsize=11)
        images.append(_snapshot(figure))
    _save_gif(images, path, frame_ms)


def _snapshot(figure: Figure) -> Image.Image:
    from PIL import Image

    canvas = cast("FigureCanvasAgg", figure.canvas)
    canvas.draw()
    return Image.fromarray(np.asarray(canvas.buffer_rgba())).convert("RGB")


def _save_gif(images: list[Image.Image], path: str | os.PathLike[str], frame_ms: int) -> None:
    """Save frames with one shared palette (taken from the last, fullest frame)."""
    from PIL import Image

    palette = images[-1].quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    frames = [im.quantize(palette=palette, dither=Image.Dither.NONE) for im in images]
    durations = [frame_ms] * (len(frames) - 1) + [2000]
    frames[0].save(
        path, save_all=True, append_images=frames[1:], duration=durations, loop=0, optimize=True
    )


# ------------------------------------------------------------------------ CLI


def _learning_rate(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    if not sep or name not in OPTIMIZERS:
        raise argparse.ArgumentTypeError(
            f"expected NAME=VALUE with NAME one of {', '.join(OPTIMIZERS)}, got {text!r}"
        )
    try:
        rate = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if not rate > 0:
        raise argparse.ArgumentTypeError(f"a learning rate must be > 0, got {value!r}")
    return name, rate


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line of ``python -m fastadam.demo``."""
    parser = argparse.ArgumentParser(
        prog="python -m fastadam.demo",
        description="Race fastadam's optimizers on 2-D test surfaces and draw their paths.",
        epilog=f"Needs the plot extra: {_plot.PLOT_EXTRA}",
    )
    parser.add_argument(
        "--surface",
        nargs="+",
        default=["all"],
        choices=["all", *SURFACES],
        metavar="NAME",
        help=f"surfaces to race on: {', '.join(SURFACES)} or all (default)",
    )
    parser.add_argument(
        "--optimizers",
        nargs="+",
        choices=list(OPTIMIZERS),
        default=list(OPTIMIZERS),
        metavar="NAME",
        help=f"optimizers to race (default: all of {', '.join(OPTIMIZERS)})",
    )
    parser.add_argument(
        "--steps", type=int, metavar="N", help="steps per optimizer (default: per surface)"
    )
    parser.add_argument(
        "--lr",
        type=_learning_rate,
        nargs="+",
        default=[],
        metavar="NAME=VALUE",
        help="learning rates overriding the tuned defaults, e.g. --lr adam=0.05 sgd=0.01",
    )
    parser.add_argument(
        "--out",
        default=DEFAULT_OUT,
        metavar="DIR",
        help=f"folder for demo-SURFACE.png (and .gif); default ./{DEFAULT_OUT}",
    )
    parser.add_argument("--gif", action="store_true", help="also write an animated GIF per surface")
    args = parser.parse_args(argv)
    if args.steps is not None and args.steps < 1:
        parser.error("--steps must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> list[Path]:
    """Run the demo; returns the files written."""
    args = parse_args(argv)
    try:
        _plot.require_plot_extra("the demo")
    except _plot.MissingPlotExtra as error:
        raise SystemExit(str(error)) from None
    names = list(SURFACES) if "all" in args.surface else list(dict.fromkeys(args.surface))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in names:
        surface = SURFACES[name]
        trajectories = race(surface, args.optimizers, args.steps, dict(args.lr))
        paths = [out / f"demo-{name}.png"]
        plot_race(surface, trajectories, paths[0])
        if args.gif:
            paths.append(out / f"demo-{name}.gif")
            animate_race(surface, trajectories, paths[1])
        print(f"{surface.title}: {', '.join(map(str, paths))}")
        print(summary(surface, trajectories))
        written += paths
    return written


if __name__ == "__main__":
    main()
