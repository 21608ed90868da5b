"""The optimizer race: surfaces, trajectories as numerical facts, then the pictures."""

import dataclasses
import sys

import numpy as np
import pytest
from pictures import colours, frames, rgb

from fastadam import demo
from fastadam.surfaces import SURFACES, Surface

ALL = list(SURFACES.values())


def _ids(surface: Surface) -> str:
    return surface.name


# ------------------------------------------------------------------ surfaces


@pytest.mark.parametrize("surface", ALL, ids=_ids)
def test_gradient_matches_finite_differences(surface):
    xmin, xmax, ymin, ymax = surface.bounds
    rng = np.random.default_rng(0)
    points = rng.uniform([xmin, ymin], [xmax, ymax], size=(50, 2))
    h = 1e-6
    for p in [*points, np.array(surface.start)]:
        numeric = [
            (surface.value(p + h * e) - surface.value(p - h * e)) / (2 * h) for e in np.eye(2)
        ]
        scale = 1 + np.abs(numeric).max()
        np.testing.assert_allclose(surface.gradient(p), numeric, rtol=1e-6, atol=1e-6 * scale)


@pytest.mark.parametrize("surface", ALL, ids=_ids)
def test_minima_are_stationary_and_the_first_is_lowest(surface):
    values = [surface.value(m) for m in surface.minima]
    assert values[0] == min(values)
    for point in [*surface.minima, *surface.saddles]:
        np.testing.assert_allclose(surface.gradient(point), 0.0, atol=1e-6)


@pytest.mark.parametrize("surface", ALL, ids=_ids)
def test_start_and_minima_lie_in_the_plotted_region(surface):
    xmin, xmax, ymin, ymax = surface.bounds
    for x, y in [surface.start, *surface.minima]:
        assert xmin < x < xmax
        assert ymin < y < ymax


def test_grid_and_values_agree_with_value():
    surface = SURFACES["beale"]
    x, y, z = surface.grid(resolution=7)
    assert x.shape == y.shape == z.shape == (7, 7)
    assert z[3, 4] == pytest.approx(surface.value((x[3, 4], y[3, 4])))
    points = np.array([surface.start, surface.minima[0]])
    np.testing.assert_allclose(surface.values(points), [surface.value(p) for p in points])


# ------------------------------------------------------- trajectories: facts


@pytest.fixture(scope="module")
def races():
    """The default race on every surface (what the plain demo command draws)."""
    return {s.name: demo.race(s) for s in ALL}


def test_every_optimizer_has_a_tuned_learning_rate_on_every_surface():
    assert set(demo.LEARNING_RATES) == set(SURFACES)
    for rates in demo.LEARNING_RATES.values():
        assert set(rates) == set(demo.OPTIMIZERS)


@pytest.mark.parametrize("surface", ALL, ids=_ids)
def test_default_race_stays_finite_and_lowers_the_loss(surface, races):
    start = surface.value(surface.start)
    for name, t in races[surface.name].items():
        assert not t.diverged, name
        assert t.points.shape == (surface.steps + 1, 2)
        assert np.isfinite(t.points).all()
        assert surface.value(t.final) < start, name


def test_every_optimizer_descends_the_convex_valley(races):
    surface = SURFACES["valley"]
    for name, t in races["valley"].items():
        losses = surface.values(t.points)
        assert losses[-1] < 0.01 * losses[0], name
        assert losses[:10].min() < losses[0], name


def test_local_minimum_traps_sgd_while_adaptive_methods_reach_the_global_one(races):
    surface = SURFACES["local-minimum"]
    ends = {name: demo.outcome(surface, t) for name, t in races["local-minimum"].items()}
    assert ends["sgd"] == "local minimum"
    for name in ("rmsprop", "adagrad", "adamax", "adam", "adamw", "lion"):
        assert ends[name] == "global minimum", name


def test_momentum_escapes_the_local_minimum_late(races):
    """Momentum first rolls into the local dip, then out of it to the global minimum."""
    surface = SURFACES["local-minimum"]
    local = np.array(surface.minima[1])
    for name in ("momentum", "nesterov"):
        t = races["local-minimum"][name]
        assert demo.outcome(surface, t) == "global minimum"
        assert np.linalg.norm(t.points - local, axis=1).min() < 0.35, name
        adam_path = races["local-minimum"]["adam"].points
        assert np.linalg.norm(adam_path - local, axis=1).min() > 0.5


def test_adam_walks_diagonally_where_sgd_follows_the_steepest_slope(races):
    """The first step: SGD moves by lr * grad, Adam by lr in every coordinate."""
    surface = SURFACES["local-minimum"]
    g = surface.gradient(surface.start)
    sgd, adam = races["local-minimum"]["sgd"], races["local-minimum"]["adam"]
    np.testing.assert_allclose(sgd.points[1] - sgd.points[0], -sgd.lr * g, rtol=1e-12)
    np.testing.assert_allclose(adam.points[1] - adam.points[0], -adam.lr * np.sign(g), rtol=1e-6)


def test_saddle_holds_sgd_long_after_adam_has_left(races):
    trajectories = races["saddle"]
    assert abs(trajectories["sgd"].points[60, 1]) < 0.05
    assert abs(trajectories["momentum"].points[60, 1]) < 0.1
    for name in ("rmsprop", "adagrad", "adam"):
        assert abs(trajectories[name].points[60, 1]) > 0.9, name
    assert demo.outcome(SURFACES["saddle"], trajectories["adam"]) == "global minimum"


def test_adam_solves_rosenbrock_where_sgd_crawls(races):
    surface = SURFACES["rosenbrock"]
    assert demo.outcome(surface, races["rosenbrock"]["adam"]) == "global minimum"
    assert demo.outcome(surface, races["rosenbrock"]["sgd"]) == "on its way"
    sgd_loss = surface.value(races["rosenbrock"]["sgd"].final)
    assert surface.value(races["rosenbrock"]["adam"].final) < 1e-3 * sgd_loss


def test_race_options_and_divergence():
    surface = SURFACES["valley"]
    out = demo.race(surface, ["sgd", "adam"], steps=5, lr={"adam": 0.5})
    assert list(out) == ["sgd", "adam"]
    assert out["adam"].lr == 0.5
    assert out["sgd"].lr == demo.LEARNING_RATES["valley"]["sgd"]
    assert out["sgd"].points.shape == (6, 2)
    blown = demo.race(surface, ["sgd"], steps=500, lr={"sgd": 3.0})["sgd"]
    assert blown.diverged
    assert len(blown.points) < 501
    assert demo.outcome(surface, blown) == "diverged"
    with pytest.raises(ValueError, match="unknown optimizers"):
        demo.race(surface, ["adam", "sophia"])


def test_race_on_a_new_surface_needs_learning_rates():
    bowl = dataclasses.replace(SURFACES["valley"], name="my-bowl", steps=3)
    with pytest.raises(ValueError, match="no learning rate for"):
        demo.race(bowl, ["adam"])
    assert demo.race(bowl, ["adam"], lr={"adam": 0.1})["adam"].points.shape == (4, 2)


def test_summary_names_each_optimizer_and_where_it_ended(races):
    text = demo.summary(SURFACES["local-minimum"], races["local-minimum"])
    lines = text.splitlines()
    assert len(lines) == len(demo.OPTIMIZERS)
    assert lines[0].startswith("  SGD ")
    assert lines[0].endswith("local minimum")
    assert any(line.startswith("  Adam ") and "global minimum" in line for line in lines)


# ------------------------------------------------------------------ pictures


def test_png_has_requested_size_and_every_optimizer_colour(tmp_path, races):
    path = tmp_path / "race.png"
    demo.plot_race(SURFACES["local-minimum"], races["local-minimum"], path, size=(800, 400))
    (frame,) = frames(path, "PNG", (800, 400))
    drawn = colours(frame)
    for contender in demo.OPTIMIZERS.values():
        assert rgb(contender.color) in drawn, contender.label


def test_gif_animates_the_race(tmp_path):
    surface = SURFACES["saddle"]
    trajectories = demo.race(surface, ["sgd", "adam"], steps=30)
    path = tmp_path / "race.gif"
    demo.animate_race(surface, trajectories, path, size=(480, 240), frames=8)
    shown = frames(path, "GIF", (480, 240))
    assert len(shown) == 8
    assert not np.array_equal(shown[0], shown[-1])


# ----------------------------------------------------------------------- CLI


def test_cli_writes_png_and_gif(tmp_path, capsys):
    written = demo.main(
        [
            "--surface", "saddle", "--optimizers", "sgd", "adam",
            "--steps", "12", "--lr", "adam=0.05", "--out", str(tmp_path / "out"), "--gif",
        ]
    )  # fmt: skip
    assert [p.name for p in written] == ["demo-saddle.png", "demo-saddle.gif"]
    frames(tmp_path / "out" / "demo-saddle.png", "PNG", demo.PNG_SIZE)
    assert len(frames(tmp_path / "out" / "demo-saddle.gif", "GIF", demo.GIF_SIZE)) == 13
    text = capsys.readouterr().out
    assert "lr 0.05" in text
    assert "12 steps" in text


@pytest.mark.parametrize(
    "argv",
    [["--lr", "adam"], ["--lr", "sophia=0.1"], ["--lr", "adam=-1"], ["--surface", "moon"]],
)
def test_cli_rejects_bad_options(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        demo.parse_args(argv)
    assert exit_info.value.code == 2
    assert "error" in capsys.readouterr().err


def test_cli_without_the_plot_extra_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(SystemExit) as exit_info:
        demo.main(["--out", str(tmp_path)])
    assert exit_info.value.code == 'the demo needs the plot extra: pip install "fastadam[plot]"'
    assert not list(tmp_path.iterdir())
