"""The benchmark plot: GB/s against size per implementation, the ceiling dashed."""

import dataclasses
import json
import sys

import pytest
from pictures import colours, frames, rgb

from fastadam import _plot, bench


def _report() -> bench.Report:
    """A small synthetic report: two dtypes x two thread counts, three sizes, a GPT-2 row."""
    report = bench.Report(machine={"fastadam": "0.1.0", "processor": "Test CPU", "simd": "avx2"})
    speeds = {"ceiling": 40.0, "fastadam": 36.0, "numpy-inplace": 5.0}
    for dtype in ("float32", "float64"):
        for threads in (1, 4):
            for n in (1_000, 100_000, 10_000_000):
                for impl, gbps in speeds.items():
                    seconds = 7 * 4 * n / (gbps * threads * 1e9)
                    report.results.append(
                        bench.Result(impl, dtype, threads, n, 1, seconds, gbps * threads)
                    )
    report.results.append(bench.Result("fastadam.AdamW", "float32", 1, 124_439_808, 148, 0.1, 35.0))
    return report


def test_plot_bench_draws_each_implementation(tmp_path):
    path = tmp_path / "bench.png"
    _plot.plot_bench(_report(), path, size=(900, 600))
    (frame,) = frames(path, "PNG", (900, 600))
    drawn = colours(frame)
    for impl in ("fastadam", "numpy-inplace"):
        assert rgb(_plot.BENCH_STYLE[impl]["color"]) in drawn
    assert rgb(_plot.BENCH_STYLE["fastadam.AdamW"]["color"]) not in drawn  # GPT-2 row left out


def test_plot_bench_accepts_the_json_form(tmp_path):
    data = json.loads(json.dumps(dataclasses.asdict(_report())))
    path = tmp_path / "bench.png"
    _plot.plot_bench(data, path)
    frames(path, "PNG", (450 * 2 + 170, 330 * 2 + 60))


def test_plot_bench_needs_single_tensor_results(tmp_path):
    report = bench.Report(machine={})
    report.results.append(bench.Result("fastadam.AdamW", "float32", 1, 10, 2, 1.0, 1.0))
    with pytest.raises(ValueError, match="no single-tensor results"):
        _plot.plot_bench(report, tmp_path / "bench.png")


def test_plot_bench_without_the_plot_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r'pip install "fastadam\[plot\]"'):
        _plot.plot_bench(_report(), tmp_path / "bench.png")


def test_bench_cli_plot(tmp_path, capsys):
    path = tmp_path / "bench.png"
    bench.main(
        [
            "--sizes", "1000", "3000", "--dtypes", "float32", "--threads", "1",
            "--min-time", "0.01", "--impls", "ceiling", "fastadam", "numpy-inplace",
            "--no-small", "--quiet", "--plot", str(path),
        ]
    )  # fmt: skip
    assert "% ceiling" in capsys.readouterr().out
    (frame,) = frames(path, "PNG", (450 + 170, 330 + 60))
    assert rgb("black") in colours(frame)
