"""The benchmark: its implementations compute the same Adam, and the CLI reports ratios."""

import json

import numpy as np
import pytest

from fastadam import bench


@pytest.mark.parametrize("impl", [i for i in bench.IMPLEMENTATIONS if i != "ceiling"])
def test_implementations_compute_the_same_adam(impl, torch_if_needed):
    """Each compared implementation does a real Adam step (like is compared with like)."""
    tensors = bench.make_tensors([(1000,), (3, 5)], np.float64)
    start = [tuple(b.copy() for b in t) for t in tensors]
    step = bench.IMPLEMENTATIONS[impl](tensors)
    for _ in range(3):
        step()
    for (p, _, m, v), (p0, g, _, _) in zip(tensors, start, strict=True):
        ref, m_ref, v_ref = p0.copy(), np.zeros_like(p0), np.zeros_like(p0)
        for t in (1, 2, 3):
            m_ref = bench.BETA1 * m_ref + (1 - bench.BETA1) * g
            v_ref = bench.BETA2 * v_ref + (1 - bench.BETA2) * g * g
            m_hat = m_ref / (1 - bench.BETA1**t)
            v_hat = v_ref / (1 - bench.BETA2**t)
            ref = ref - bench.LR * m_hat / (np.sqrt(v_hat) + bench.EPS)
        np.testing.assert_allclose(m, m_ref, rtol=1e-12)
        np.testing.assert_allclose(v, v_ref, rtol=1e-12)
        np.testing.assert_allclose(p, ref, rtol=1e-12, atol=1e-15)


def test_ceiling_moves_the_bytes_but_changes_nothing():
    tensors = bench.make_tensors([(1001,)], np.float32)
    before = [b.copy() for b in tensors[0]]
    bench.make_ceiling(tensors)()
    assert all(np.array_equal(a, b) for a, b in zip(tensors[0], before, strict=True))


@pytest.fixture
def torch_if_needed(request):
    if request.node.callspec.params["impl"] in bench.NEEDS_TORCH:
        return request.getfixturevalue("torch")
    return None


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
    assert by["fastadam"].of_ceiling == pytest.approx(
        by["ceiling"].seconds / by["fastadam"].seconds
    )
    assert by["numpy-inplace"].vs_numpy == pytest.approx(1.0)
    assert by["fastadam"].gbps == pytest.approx(7 * 4 * 2000 / by["fastadam"].seconds / 1e9)


def test_cli_only_compressed_rows(capsys):
    report = bench.main(
        ["--only-compressed", "--sizes", "4096", "--threads", "1", "--min-time", "0", "--quiet"]
    )
    text = capsys.readouterr().out
    assert report.results == []
    assert report.small_calls_us == {}
    assert [r.format for r in report.compressed][:3] == [
        "float32/float32/float32",
        "float32/float32/bfloat16",
        "float32/float32/int8",
    ]
    assert "% ceiling" not in text
    assert "float32/float32/int8" in text


def test_gpt2_small_shapes():
    assert len(bench.GPT2_SMALL) == 148
    assert sum(int(np.prod(s)) for s in bench.GPT2_SMALL) == 124_439_808
