"""NaN and inf in gradients: they propagate elementwise, or the guard skips the step."""

import numpy as np
import pytest

import fastadam
from fastadam import functional as F

OPTIMIZERS = [
    fastadam.Adam,
    fastadam.AdamW,
    fastadam.SGD,
    fastadam.RMSprop,
    fastadam.Adagrad,
    fastadam.Adamax,
    fastadam.Lion,
]


def _problem(dtype, sizes=(5, 100_001, 17)):
    rng = np.random.default_rng(0)
    params = [rng.standard_normal(n).astype(dtype) for n in sizes]
    grads = [rng.standard_normal(n).astype(dtype) for n in sizes]
    return params, grads


@pytest.mark.parametrize("cls", OPTIMIZERS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize(("tensor", "element"), [(0, 0), (1, 50_000), (1, -1), (2, 16)])
def test_guard_skips_the_whole_step(cls, dtype, bad, tensor, element):
    params, grads = _problem(dtype)
    opt = cls(params, lr=1e-2)
    assert opt.step(grads, skip_if_nonfinite=True) is True
    before_params = [p.copy() for p in params]
    before_state = opt.state_dict()
    poisoned = [g.copy() for g in grads]
    poisoned[tensor][element] = bad
    assert opt.step(poisoned, skip_if_nonfinite=True) is False
    assert all(np.array_equal(a, b) for a, b in zip(params, before_params, strict=True))
    after_state = opt.state_dict()
    for index, entry in before_state["state"].items():
        for key, value in entry.items():
            assert np.array_equal(after_state["state"][index][key], value), (index, key)
    assert opt.step(grads, skip_if_nonfinite=True) is True  # and training goes on
    assert not all(np.array_equal(a, b) for a, b in zip(params, before_params, strict=True))


def test_guard_on_the_first_step_creates_no_state():
    params, grads = _problem(np.float32)
    opt = fastadam.Adam(params)
    grads[1][7] = np.nan
    assert opt.step(grads, skip_if_nonfinite=True) is False
    assert opt.state == {}


def test_guard_ignores_params_without_grad():
    params, grads = _problem(np.float64)
    opt = fastadam.SGD(params, lr=0.1)
    assert opt.step([grads[0], None, grads[2]], skip_if_nonfinite=True) is True


def test_guard_must_be_a_bool():
    params, grads = _problem(np.float32)
    opt = fastadam.Adam(params)
    with pytest.raises(TypeError, match="skip_if_nonfinite must be a bool"):
        opt.step(grads, skip_if_nonfinite=1)
    assert opt.state == {}


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_without_guard_a_bad_element_only_spoils_itself(bad, dtype):
    """As in torch: the non-finite value reaches that element's param and state only."""
    rng = np.random.default_rng(3)
    n, i = 1001, 500
    p = rng.standard_normal(n).astype(dtype)
    g = rng.standard_normal(n).astype(dtype)
    clean = [p.copy(), np.zeros_like(p), np.zeros_like(p)]
    dirty = [p.copy(), np.zeros_like(p), np.zeros_like(p)]
    g_bad = g.copy()
    g_bad[i] = bad
    for step in (1, 2):
        F.adam(
            clean[0], g, clean[1], clean[2], step=step, lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8
        )
        F.adam(
            dirty[0],
            g_bad,
            dirty[1],
            dirty[2],
            step=step,
            lr=1e-2,
            beta1=0.9,
            beta2=0.999,
            eps=1e-8,
        )
    others = np.arange(n) != i
    for a, b in zip(clean, dirty, strict=True):
        assert np.array_equal(a[others], b[others])
    assert np.isnan(dirty[0][i])
    assert not np.isfinite(dirty[2][i])
