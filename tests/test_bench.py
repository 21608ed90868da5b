"""The benchmark: its implementations compute the same Adam, and the CLI reports ratios."""

import json

import numpy as np
import pytest

from fastadam import bench


@pytest.mark.parametrize("impl", ["fastadam", "fastadam.Adam", "numpy-inplace", "numpy"])
def test_implementations_compute_the_same_adam(impl, monkeypatch):
    """Each compared implementation does a real Adam step (like is compared with like)."""
    made = {}
    original = bench._buffers

    def spy(shapes, dtype, seed=0):
        made["buffers"] = original(shapes, dtype, seed)
        return made["buffers"]

    monkeypatch.setattr(bench, "_buffers", spy)
    step = bench.IMPLEMENTATIONS[impl]([(1000,)], np.float64)
    p0 = original([(1000,)], np.float64)[0]
    for _ in range(3):
        step()
    p, g = made["buffers"][0][0], p0[1]
    m = np.zeros(1000)
    v = np.zeros(1000)
    ref = p0[0].copy()
    for t in (1, 2, 3, 4, 5):  # the maker may warm up; count steps from the state
        m = bench.BETA1 * m + (1 - bench.BETA1) * g
        v = bench.BETA2 * v + (1 - bench.BETA2) * g * g
        ref = ref - bench.LR * (m / (1 - bench.BETA1**t)) / (
            np.sqrt(v / (1 - bench.BETA2**t)) + bench.EPS
        )
        if t == 3:
            np.testing.assert_allclose(p, ref, rtol=1e-12, atol=1e-15)


def test_cli_reports_table_and_json(tmp_path, capsys):
    out_file = tmp_path / "bench.json"
    report = bench.main(
        [
            "--sizes", "2000", "--dtypes", "float32", "--threads", "1", "--min-time", "0.01",
            "--impls", "ceiling", "fastadam", "numpy-inplace", "--no-small", "--quiet",
            "--json", str(out_file),
        ]
    )  # fmt: skip
    text = capsys.readouterr().out
    assert "% ceiling" in text
    assert "fastadam" in text
    data = json.loads(out_file.read_text())
    impls = [r["impl"] for r in data["results"]]
    assert impls == ["ceiling", "fastadam", "numpy-inplace"]
    by = {r.impl: r for r in report.results}
    assert by["ceiling"].of_ceiling == pytest.approx(1.0)
    assert by["numpy-inplace"].vs_numpy == pytest.approx(1.0)
    assert by["fastadam"].gbps == pytest.approx(7 * 4 * 2000 / by["fastadam"].seconds / 1e9)


def test_gpt2_small_shapes():
    assert len(bench.GPT2_SMALL) == 148
    assert sum(int(np.prod(s)) for s in bench.GPT2_SMALL) == 124_439_808
