"""The benchmark: its implementations compute the same Adam, and the CLI reports ratios."""

import dataclasses
import json
import re

import numpy as np
import pytest

from fastadam import bench

# Every step the benchmark times: the implementations, and the small calls by name.
MAKERS = {
    **bench.IMPLEMENTATIONS,
    **{name: make for name, (make, _) in bench.SMALL_CALLS.items()},
}


@pytest.mark.parametrize("impl", [i for i in MAKERS if i != "ceiling"])
def test_implementations_compute_the_same_adam(impl, torch_if_needed):
    """Each compared implementation does a real Adam step, or AdamW with decoupled weight
    decay in the model rows (like is compared with like)."""
    weight_decay = bench.WEIGHT_DECAY if impl in bench.ADAMW else 0.0
    tensors = bench.make_tensors([(1000,), (3, 5)], np.float64)
    start = [tuple(b.copy() for b in t) for t in tensors]
    step = MAKERS[impl](tensors)
    for _ in range(3):
        step()
    for (p, _, m, v), (p0, g, _, _) in zip(tensors, start, strict=True):
        ref, m_ref, v_ref = p0.copy(), np.zeros_like(p0), np.zeros_like(p0)
        for t in (1, 2, 3):
            ref = ref * (1 - bench.LR * weight_decay)
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
    if "torch" in request.node.callspec.params["impl"]:  # as bench.NEEDS_TORCH
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
    assert all(r.vs_torch_fused is None for r in report.results)  # no torch fused in the run
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


def test_gpt2_tiny_shapes():
    """2 layers, 128 wide, vocabulary 512, 256 positions, in Hugging Face's GPT-2 layout."""
    shapes = bench.GPT2_TINY
    assert len(shapes) == 28
    assert sum(int(np.prod(s)) for s in shapes) == 495_104
    assert shapes[:2] == [(512, 128), (256, 128)]
    layer = [(128,), (128,), (128, 384), (384,), (128, 128), (128,)]
    layer += [(128,), (128,), (128, 512), (512,), (512, 128), (128,)]
    assert shapes[2:] == layer * 2 + [(128,), (128,)]
    assert bench.gpt2_shapes(50257, 1024, 768, 12) == bench.GPT2_SMALL


@pytest.mark.parametrize(
    ("argv", "models"),
    [
        ([], []),
        (["--gpt2"], ["gpt2-small", "gpt2-tiny"]),
        (["--suite", "full"], ["gpt2-small", "gpt2-tiny"]),
        (["--models", "gpt2-tiny"], ["gpt2-tiny"]),
        (["--models", "gpt2-tiny", "gpt2-small", "gpt2-tiny"], ["gpt2-tiny", "gpt2-small"]),
    ],
)
def test_model_rows_are_selectable(argv, models):
    assert bench.selected_models(bench.parse_args(argv)) == models


def test_cli_model_rows_and_small_calls(tmp_path, capsys, torch):
    """The model rows step AdamW with both front ends and torch fused, as ratios to torch
    fused of the same run; the small calls time both front ends and torch fused Adam."""
    out_file = tmp_path / "bench.json"
    report = bench.main(
        [
            "--models", "gpt2-tiny", "--impls", *bench.MODEL_IMPLS, "--sizes", "1000",
            "--dtypes", "float32", "--threads", "1", "--min-time", "0", "--quiet",
            "--json", str(out_file),
        ]
    )  # fmt: skip
    text = capsys.readouterr().out
    rows = [r for r in report.results if r.tensors == 28]
    assert [r.impl for r in rows] == list(bench.MODEL_IMPLS)
    assert {(r.dtype, r.threads, r.elements) for r in rows} == {("float32", 1, 495_104)}
    fused = next(r for r in rows if r.impl == "torch-fused-AdamW")
    assert fused.vs_torch_fused == pytest.approx(1.0)
    for r in rows:
        assert r.seconds > 0
        assert r.vs_torch_fused == pytest.approx(fused.seconds / r.seconds)
        assert r.vs_numpy is None
        assert r.of_ceiling is not None
        assert r.of_ceiling > 0
        line = next(line for line in text.splitlines() if f"  {r.impl} " in line and " 28 " in line)
        assert line.endswith(f"{r.vs_torch_fused:.2f}")
    assert "x torch-fused" in text
    assert "Model rows: AdamW" in text
    goals = [g for g in report.goals if "fastadam.torch.AdamW float32 495,104" in g]
    assert len(goals) == 1
    assert "vs torch fused" in goals[0]
    assert "(goal >= 1.4 x)" in goals[0]  # the tiny model's goal, not the vector rows' 1.05
    numpy_class = next(r for r in rows if r.impl == "fastadam.AdamW")
    [floor] = report.torch_floors
    read = float(re.search(r" \+ 5 x 28 x ([0-9.]+) us", floor).group(1)) * 1e-6
    bound = float(re.search(r"at most ([0-9.]+) x torch fused", floor).group(1))
    expected = fused.seconds / (numpy_class.seconds + 5 * 28 * read)
    assert bound == pytest.approx(expected, rel=0.01, abs=0.01)
    # The reads only add time; the bound is printed to two decimals, so it is compared with
    # the ratio rounded the same way (rounding keeps the order, and may make the two equal).
    assert read > 0
    assert 0 < bound <= float(f"{fused.seconds / numpy_class.seconds:.2f}")
    assert floor in text

    labels = [
        "functional.adam, 1 x 1000",
        "functional.adam, 1 x 16",
        "Adam.step, 1 x 1000",
        "Adam.step, 100 x 1000",
        "fused call alone, 100 x 1000",
        "fastadam.torch.Adam.step, 1 x 1000",
        "fastadam.torch.Adam.step, 100 x 1000",
        "torch-fused Adam.step, 1 x 1000",
        "torch-fused Adam.step, 100 x 1000",
    ]
    assert list(report.small_calls_us) == labels
    assert all(us > 0 for us in report.small_calls_us.values())
    assert all(label in text for label in labels)

    data = json.loads(out_file.read_text())
    assert all("vs_torch_fused" in r for r in data["results"])
    assert [r for r in data["results"] if r["tensors"] == 28] == [
        pytest.approx(dataclasses.asdict(r)) for r in rows
    ]
    assert data["small_calls_us"] == pytest.approx(report.small_calls_us)


def _small_call_goals(calls: dict[str, float]) -> list[str]:
    report = bench.Report(machine={}, small_calls_us=calls)
    bench.evaluate_goals(report)
    return report.goals


def test_a_step_goal_below_the_fused_call_alone_is_out_of_reach() -> None:
    """A step cannot take less than the one C call it ends in: when that call alone takes
    the whole budget, the goal is reported out of reach, with what the step adds."""
    goals = _small_call_goals({"Adam.step, 100 x 1000": 93.0, "fused call alone, 100 x 1000": 60.0})
    assert goals == [
        "[out of reach] Adam.step, 100 x 1000: 93 us (goal <= 50.0 us): the fused call "
        "alone takes 60 us here; the step adds 0.33 us per tensor"
    ]
    goals = _small_call_goals({"Adam.step, 100 x 1000": 93.0, "fused call alone, 100 x 1000": 40.0})
    assert goals == ["[MISSED] Adam.step, 100 x 1000: 93 us (goal <= 50.0 us)"]
    goals = _small_call_goals(
        {
            "functional.adam, 1 x 1000": 1.6,
            "Adam.step, 1 x 1000": 3.5,
            "Adam.step, 100 x 1000": 45.0,
            "fused call alone, 100 x 1000": 40.0,
        }
    )
    assert goals == [
        "[MISSED] functional.adam, 1 x 1000: 1.6 us (goal <= 1.5 us)",
        "[ok] Adam.step, 1 x 1000: 3.5 us (goal <= 4.0 us)",
        "[ok] Adam.step, 100 x 1000: 45 us (goal <= 50.0 us)",
    ]


def test_a_batch_takes_new_coefficients_for_its_next_run() -> None:
    batch = bench._ext.Batch(bench._ext.ADAM, bench.BUFFER_NAMES)
    coef = batch.add_coef((0.9,) * 8)
    batch.set_coef(coef, (0.5,) * 8)
    with pytest.raises(ValueError, match="no coefficients 1: the batch has 1"):
        batch.set_coef(1, (0.5,) * 8)
