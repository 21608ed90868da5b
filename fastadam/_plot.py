"""Pictures: matplotlib behind the optional ``plot`` extra, and the benchmark plot.

matplotlib is imported only when a picture is drawn. Figures are built with
matplotlib's object API on an Agg canvas: no pyplot, no window, no global
backend switch, so drawing works without a screen and leaves an interactive
session's matplotlib alone.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["PLOT_EXTRA", "MissingPlotExtra", "new_figure", "plot_bench", "require_plot_extra"]

PLOT_EXTRA = 'pip install "fastadam[plot]"'

DPI = 100

# One colour per benchmark implementation; the ceiling is drawn dashed in black.
BENCH_STYLE: dict[str, dict[str, Any]] = {
    "ceiling": {"color": "black", "linestyle": "--", "marker": "", "label": "memory ceiling"},
    "fastadam": {"color": "tab:red", "linewidth": 2.5},
    "fastadam.AdamW": {"color": "tab:orange"},
    "torch-fused": {"color": "tab:purple"},
    "torch-foreach": {"color": "tab:pink"},
    "torch-forloop": {"color": "tab:brown"},
    "numpy-inplace": {"color": "tab:blue"},
    "numpy": {"color": "tab:cyan"},
}


class MissingPlotExtra(ImportError):
    """matplotlib or pillow is not installed."""


def require_plot_extra(user: str) -> None:
    """Import matplotlib and pillow, or raise :class:`MissingPlotExtra` naming ``user``.

    Parameters
    ----------
    user : str
        What needs them, for the message, e.g. ``"the demo"``.
    """
    try:
        import matplotlib  # noqa: F401
        import PIL  # noqa: F401
    except ImportError as error:
        raise MissingPlotExtra(f"{user} needs the plot extra: {PLOT_EXTRA}") from error


def new_figure(size: tuple[int, int]) -> Figure:
    """A figure of ``size`` pixels (width, height) on an Agg canvas, constrained layout."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    width, height = size
    figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _results(report: object) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The results as dicts and the machine info, from a benchmark report (a dataclass,
    fastadam.bench.Report, which this module does not import) or its JSON form."""
    if dataclasses.is_dataclass(report) and not isinstance(report, type):
        data = dataclasses.asdict(report)
    elif isinstance(report, Mapping):
        data = dict(report)
    else:
        raise TypeError(f"report must be a benchmark Report or its JSON form, got {report!r}")
    return [dict(r) for r in data["results"]], dict(data.get("machine", {}))


def _panels(results: list[dict[str, Any]]) -> dict[tuple[str, int], list[dict[str, Any]]]:
    """Single-tensor results grouped by (dtype, threads), in order of appearance."""
    panels: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in results:
        if r["tensors"] == 1:
            panels.setdefault((r["dtype"], r["threads"]), []).append(r)
    return panels


def _draw_panel(ax: Axes, results: list[dict[str, Any]]) -> None:
    impls = list(dict.fromkeys(r["impl"] for r in results))
    for impl in impls:
        rows = sorted((r["elements"], r["gbps"]) for r in results if r["impl"] == impl)
        style = {"marker": "o", "markersize": 4, "linewidth": 1.8, "label": impl}
        style.update(BENCH_STYLE.get(impl, {}))
        ax.plot([n for n, _ in rows], [g for _, g in rows], **style)
    ax.set_xscale("log")
    ax.grid(True, which="major", alpha=0.3)
    ax.set_xlabel("elements (one tensor)")


def plot_bench(
    report: object,
    path: str | os.PathLike[str],
    size: tuple[int, int] | None = None,
) -> None:
    """Draw the benchmark's throughput against size, one panel per dtype and thread count.

    Each implementation is a line of GB/s (Adam's traffic, 7 x itemsize bytes per
    element, divided by the median time) against the element count on a log
    axis; the memory ceiling measured in the same run is the dashed black line.
    Panels are laid out with a row per dtype and a column per thread count, on
    one GB/s scale. Multi-tensor results (the GPT-2 shapes) are left out.

    Parameters
    ----------
    report : fastadam.bench.Report or dict
        The benchmark's report, or its JSON form (``dataclasses.asdict(report)``).
    path : str or path-like
        Where to write the picture; the format follows the suffix (``.png``, ``.svg``).
    size : tuple of int, optional
        Width and height in pixels; by default about 450 x 330 per panel.
    """
    require_plot_extra("plotting the benchmark")
    results, machine = _results(report)
    panels = _panels(results)
    if not panels:
        raise ValueError("the report has no single-tensor results to plot")
    dtypes = list(dict.fromkeys(dtype for dtype, _ in panels))
    threads = sorted({t for _, t in panels})
    if size is None:
        size = (450 * len(threads) + 170, 330 * len(dtypes) + 60)
    figure = new_figure(size)
    grid = figure.subplots(len(dtypes), len(threads), sharex=True, sharey=True, squeeze=False)
    for row, dtype in enumerate(dtypes):
        for col, count in enumerate(threads):
            ax = grid[row][col]
            rows = panels.get((dtype, count))
            if rows is None:
                ax.set_visible(False)
                continue
            _draw_panel(ax, rows)
            ax.set_title(f"{dtype}, {count} thread{'s' if count > 1 else ''}", fontsize=11)
            ax.label_outer()
    top = max(r["gbps"] for rows in panels.values() for r in rows)
    grid[0][0].set_ylim(0, top * 1.08)
    for row in grid:
        row[0].set_ylabel("GB/s")
    handles, labels = _legend_entries(grid)
    figure.legend(handles, labels, loc="outside right center", frameon=False)
    figure.suptitle(_bench_title(machine))
    figure.savefig(path)


def _legend_entries(grid: Any) -> tuple[list[Any], list[str]]:
    """One legend entry per implementation across all panels."""
    entries: dict[str, Any] = {}
    for ax in (ax for row in grid for ax in row):
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            entries.setdefault(label, handle)
    return list(entries.values()), list(entries)


def _bench_title(machine: Mapping[str, Any]) -> str:
    parts = [
        f"fastadam {machine.get('fastadam', '')} Adam step (GB/s = 7 x itemsize x elements / time)"
    ]
    if machine.get("processor"):
        parts.append(str(machine["processor"]))
    if machine.get("simd"):
        parts.append(f"kernels: {machine['simd']}")
    return ", ".join(parts)
