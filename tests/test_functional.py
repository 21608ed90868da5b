"""fastadam.functional against the float64 NumPy twin, for every algorithm and flag combination.

Float32 trajectories must stay within 1e-5 (relative to max|p|) of the float64
twin, float64 ones within 1e-12; results must not depend on array length,
offset or the number of threads (the kernels promise the same bits).
"""

import zlib

import numpy as np
import pytest
import twin

import fastadam
from fastadam import _ext
from fastadam import functional as F

DTYPES = [np.float32, np.float64]
SHAPES = [(), (0,), (1,), (7,), (1023,), (31, 33)]


def _seed(*parts) -> int:
    return zlib.crc32(repr(parts).encode())


def _run_functional(name, hp, param, grads, buffers=None, first_step=1):
    """Apply the functional over ``grads`` in place; returns the state buffers."""
    if buffers is None:
        buffers = twin.new_buffers(name, hp, param)
    for t, grad in enumerate(grads, first_step):
        before = grad.copy()
        result = twin.functional_call(getattr(F, name), name, hp, param, grad, buffers, t)
        assert result is None
        assert grad.tobytes() == before.tobytes(), "the gradient must only be read"
    return buffers


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)) or "0d")
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize(("name", "hp"), twin.CASES, ids=twin.IDS)
def test_trajectory_matches_twin(name, hp, dtype, shape):
    rng = np.random.default_rng(_seed(name, hp, dtype, shape))
    param = rng.standard_normal(shape).astype(dtype)
    param0 = param.copy()
    data_pointer = param.ctypes.data
    nsteps = 100 if param.size >= 1000 else 20
    grads = [rng.standard_normal(shape).astype(dtype) for _ in range(nsteps)]

    # The first step alone, then the whole trajectory.
    buffers = _run_functional(name, hp, param, grads[:1])
    ref_param, ref_state = twin.trajectory(name, hp, param0, grads[:1])
    twin.assert_matches(name, dtype, param, buffers, ref_param, ref_state, "step 1: ")
    if param.size:
        # Every element moves, bar those the twin moves by less than an ulp: RAdam's
        # first step, lr*grad, rounds away for a tiny grad (no other case has any).
        moves = np.abs(ref_param - param0) >= np.abs(np.spacing(param0))
        assert moves.mean() > 0.99, "the twin moves the elements on the first step"
        assert (param != param0)[moves].all(), "every element moves on the first step"
    _run_functional(name, hp, param, grads[1:], buffers, first_step=2)
    ref_param, ref_state = twin.trajectory(name, hp, param0, grads)
    twin.assert_matches(name, dtype, param, buffers, ref_param, ref_state, f"step {nsteps}: ")

    assert param.shape == shape
    assert param.ctypes.data == data_pointer, "updated in place"
    assert set(buffers) == set(twin.state_slots(name, hp))
    for slot in twin.active_slots(name, hp):
        assert buffers[slot].shape == shape
        assert buffers[slot].dtype == dtype
    assert np.isfinite(param).all()


def _carve(big, n, count, start=3):
    """``count`` disjoint length-n views into ``big`` from an odd offset, some adjacent.

    Returns the views and a mask of the elements of ``big`` they cover.
    """
    views, pos = [], start
    inside = np.zeros(big.size, bool)
    for k in range(count):
        views.append(big[pos : pos + n])
        inside[pos : pos + n] = True
        pos += n + (k % 2)  # alternately adjacent and one element apart
    assert pos <= big.size
    return views, inside


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize(("name", "hp"), twin.CASES, ids=twin.IDS)
def test_views_at_odd_offsets_match_contiguous_arrays(name, hp, dtype):
    n, nsteps = 37, 12
    rng = np.random.default_rng(_seed("views", name, hp, dtype))
    param0 = rng.standard_normal(n).astype(dtype)
    grads = [rng.standard_normal(n).astype(dtype) for _ in range(nsteps)]

    # Reference: ordinary arrays.
    param = param0.copy()
    buffers = _run_functional(name, hp, param, grads)

    # The same, every buffer a view into one big buffer full of sentinels.
    slots = twin.active_slots(name, hp)
    sentinel = dtype(-1234.5)
    big = np.full(3 + (n + 1) * (2 + len(slots)) + 5, sentinel, dtype)
    (pv, gv, *state_views), inside = _carve(big, n, 2 + len(slots))
    pv[...] = param0
    view_buffers = twin.buffers_in(name, hp, param0, dict(zip(slots, state_views, strict=True)))
    for t, grad in enumerate(grads, 1):
        gv[...] = grad
        twin.functional_call(getattr(F, name), name, hp, pv, gv, view_buffers, t)

    assert np.array_equal(pv, param)
    assert set(view_buffers) == set(buffers)
    for slot, buf in buffers.items():
        assert np.array_equal(view_buffers[slot], buf), slot
    assert (big[~inside] == sentinel).all(), "nothing outside the views may be written"
    assert inside.sum() == n * (2 + len(slots))


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", twin.ALGORITHMS)
def test_each_element_depends_only_on_its_inputs(name, dtype):
    """Slices of a run compute the same bits as the whole (length, offset, vector tail)."""
    hp = twin.richest(name)
    n, nsteps = 1000, 10
    rng = np.random.default_rng(_seed("slices", name, dtype))
    param0 = rng.standard_normal(n).astype(dtype)
    grads = [rng.standard_normal(n).astype(dtype) for _ in range(nsteps)]
    param = param0.copy()
    buffers = _run_functional(name, hp, param, grads)
    for lo, hi in [(0, 1), (0, 7), (5, 38), (1, 1000), (333, 1000), (999, 1000)]:
        part = param0[lo:hi].copy()
        part_buffers = _run_functional(name, hp, part, [g[lo:hi].copy() for g in grads])
        assert np.array_equal(part, param[lo:hi]), (lo, hi)
        for slot in twin.active_slots(name, hp):
            assert np.array_equal(part_buffers[slot], buffers[slot][lo:hi]), (slot, lo, hi)
        for key in twin.initial_scalars(name):  # one per run, whatever its length
            assert part_buffers[key] == buffers[key], (key, lo, hi)


LARGE = 2_500_003  # odd, so every vector body ends in a scalar tail


@pytest.mark.parametrize(
    ("name", "dtype"),
    [(name, np.float32) for name in twin.ALGORITHMS] + [("adam", np.float64)],
    ids=[f"{name}-f32" for name in twin.ALGORITHMS] + ["adam-f64"],
)
def test_millions_of_elements_match_twin(name, dtype):
    hp = twin.richest(name)
    if name == "rmsprop":
        # With L2 decay, g = grad + wd*p cancels to ~1e-7 for a few of millions of elements,
        # and RMSprop's g / (sqrt(...) + eps) is then ill-conditioned: float32 rounding of g
        # shows up 1e-5 large in the momentum buffer. Decay is covered by the small cases.
        hp = {**hp, "weight_decay": 0.0}
    rng = np.random.default_rng(_seed("large", name, dtype))
    param = rng.standard_normal(LARGE, dtype=np.float32).astype(dtype)
    param0 = param.copy()
    grads = [rng.standard_normal(LARGE, dtype=np.float32).astype(dtype) for _ in range(3)]
    buffers = _run_functional(name, hp, param, grads)
    ref_param, ref_state = twin.trajectory(name, hp, param0, grads)
    twin.assert_matches(name, dtype, param, buffers, ref_param, ref_state)


@pytest.mark.parametrize("name", twin.ALGORITHMS)
def test_thread_count_does_not_change_the_bits(name):
    hp = twin.richest(name)
    n = 300_001
    rng = np.random.default_rng(_seed("threads", name))
    param0 = rng.standard_normal(n).astype(np.float32)
    grads = [rng.standard_normal(n).astype(np.float32) for _ in range(3)]
    threads = fastadam.get_num_threads()
    results = []
    try:
        for count in (1, 2, 3) if _ext.has_openmp() else (1,):
            fastadam.set_num_threads(count)
            assert fastadam.get_num_threads() == count
            param = param0.copy()
            buffers = _run_functional(name, hp, param, grads)
            results.append((param, buffers))
    finally:
        fastadam.set_num_threads(threads)
    param, buffers = results[0]
    ref_param, ref_state = twin.trajectory(name, hp, param0, grads)
    twin.assert_matches(name, np.float32, param, buffers, ref_param, ref_state)
    for other_param, other_buffers in results[1:]:
        assert np.array_equal(other_param, param)
        for slot, buf in buffers.items():
            assert np.array_equal(other_buffers[slot], buf), slot


# ------------------------------------------------------------ hand-computed steps


def test_adam_first_step_by_hand_float64():
    # m = 0.05, v = 0.00025, m_hat = 0.5, v_hat = 0.25: p = 1 - lr * 0.5 / (0.5 + eps).
    p = np.ones(3)
    g = np.array([0.5, -0.5, 0.5])
    m, v = np.zeros(3), np.zeros(3)
    F.adam(p, g, m, v, step=1, lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8)
    tiny = 0.5 / (0.5 + 1e-8)  # 1 - 2e-8
    np.testing.assert_allclose(p, [1 - 0.1 * tiny, 1 + 0.1 * tiny, 1 - 0.1 * tiny], rtol=4e-16)
    assert abs(p[0] - 0.9) < 3e-9
    assert p[0] > 0.9
    np.testing.assert_allclose(m, [0.05, -0.05, 0.05], rtol=1e-15)
    np.testing.assert_allclose(v, [0.00025] * 3, rtol=1e-15)


def test_adam_first_step_by_hand_float32():
    p = np.ones(4, np.float32)
    g = np.array([0.5, -0.5, 2.0, -1e-3], np.float32)
    m, v = np.zeros_like(p), np.zeros_like(p)
    F.adam(p, g, m, v, step=1, lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8)
    # The first Adam step moves every element by lr * sign(g) * |g| / (|g| + eps), whatever |g|:
    # 0.1 * (1 - 2e-8) for |g| = 0.5 and 2, 0.1 * (1 - 1e-5) for |g| = 1e-3.
    expected = np.array([0.9, 1.1, 0.9, 1.1 - 1e-6])
    assert p.dtype == np.float32
    assert m.dtype == np.float32
    assert v.dtype == np.float32
    assert np.max(np.abs(p - expected)) <= 2 * np.spacing(np.float32(1.0))
    assert np.array_equal(p[:3].round(6), np.float32([0.9, 1.1, 0.9]))


def test_adam_maximize_and_decoupled_first_step_by_hand():
    p = np.full(2, 2.0)
    g = np.array([0.5, -0.5])
    m, v = np.zeros(2), np.zeros(2)
    F.adam(
        p,
        g,
        m,
        v,
        step=1,
        lr=0.1,
        beta1=0.9,
        beta2=0.999,
        eps=0.0,
        weight_decay=0.5,
        decoupled_weight_decay=True,
        maximize=True,
    )
    # p = 2 * (1 - 0.05) + 0.1 * sign(g) (ascending).
    np.testing.assert_allclose(p, [1.9 + 0.1, 1.9 - 0.1], rtol=1e-15)


def test_adam_l2_first_step_by_hand():
    p = np.full(1, 2.0)
    g = np.array([0.5])
    m, v = np.zeros(1), np.zeros(1)
    F.adam(p, g, m, v, step=1, lr=0.1, beta1=0.9, beta2=0.999, eps=0.0, weight_decay=0.5)
    # The L2 term joins the gradient: g = 0.5 + 0.5 * 2 = 1.5, so m = 0.15.
    np.testing.assert_allclose(m, [0.15], rtol=1e-15)
    np.testing.assert_allclose(p, [1.9], rtol=1e-15)


def test_adam_amsgrad_keeps_the_maximum():
    p = np.zeros(1)
    m, v, vmax = np.zeros(1), np.zeros(1), np.zeros(1)
    kw = {"lr": 0.1, "beta1": 0.0, "beta2": 0.5, "eps": 0.0, "amsgrad": True}
    F.adam(p, np.array([4.0]), m, v, step=1, max_exp_avg_sq=vmax, **kw)
    assert v[0] == 8.0
    assert vmax[0] == 8.0
    F.adam(p, np.array([0.0]), m, v, step=2, max_exp_avg_sq=vmax, **kw)
    assert v[0] == 4.0
    assert vmax[0] == 8.0


def test_sgd_by_hand():
    p = np.ones(2)
    b = np.zeros(2)
    g = np.array([0.5, -0.5])
    F.sgd(p, g, b, step=1, lr=0.1, momentum=0.9, dampening=0.5)
    # The first step sets the buffer to the gradient, undamped.
    np.testing.assert_allclose(b, [0.5, -0.5], rtol=1e-15)
    np.testing.assert_allclose(p, [0.95, 1.05], rtol=1e-15)
    F.sgd(p, g, b, step=2, lr=0.1, momentum=0.9, dampening=0.5)
    np.testing.assert_allclose(b, [0.7, -0.7], rtol=1e-15)  # 0.9 * 0.5 + 0.5 * 0.5
    np.testing.assert_allclose(p, [0.88, 1.12], rtol=1e-15)


def test_sgd_nesterov_by_hand():
    p = np.ones(1)
    b = np.zeros(1)
    F.sgd(p, np.array([1.0]), b, step=1, lr=0.1, momentum=0.5, nesterov=True)
    # b = g = 1; update g + 0.5 b = 1.5.
    np.testing.assert_allclose(p, [0.85], rtol=1e-15)


def test_sgd_plain_by_hand():
    p = np.array([1.0, -2.0], np.float32)
    F.sgd(p, np.array([0.5, 0.5], np.float32), step=1, lr=0.5, weight_decay=1.0)
    # g + wd * p = [1.5, -1.5]
    assert np.array_equal(p, np.float32([0.25, -1.25]))


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_sgd_first_step_ignores_the_old_buffer(dtype):
    rng = np.random.default_rng(5)
    p0 = rng.standard_normal(50).astype(dtype)
    g = rng.standard_normal(50).astype(dtype)
    kw = {"lr": 0.1, "momentum": 0.9, "dampening": 0.3}
    p1, b1 = p0.copy(), np.zeros_like(p0)
    p2, b2 = p0.copy(), np.full_like(p0, np.nan)
    F.sgd(p1, g, b1, step=1, **kw)
    F.sgd(p2, g, b2, step=1, **kw)
    assert np.array_equal(p1, p2)
    assert np.array_equal(b1, b2)
    assert np.array_equal(b1, g)
    # After the first step the buffer's contents matter.
    p3, b3 = p0.copy(), np.full_like(p0, np.nan)
    F.sgd(p3, g, b3, step=2, **kw)
    assert np.isnan(p3).all()


def test_rmsprop_by_hand():
    p = np.ones(2)
    s = np.zeros(2)
    F.rmsprop(p, np.array([1.0, -1.0]), s, lr=0.01, alpha=0.99, eps=0.0)
    np.testing.assert_allclose(s, [0.01, 0.01], rtol=1e-14)
    np.testing.assert_allclose(p, [0.9, 1.1], rtol=1e-14)


def test_rmsprop_centered_momentum_by_hand():
    p = np.ones(1)
    s, a, b = np.zeros(1), np.zeros(1), np.zeros(1)
    kw = {"lr": 0.1, "alpha": 0.5, "eps": 0.0, "centered": True, "momentum": 0.5}
    F.rmsprop(p, np.array([2.0]), s, grad_avg=a, momentum_buffer=b, **kw)
    # s = 2, a = 1, avg = sqrt(2 - 1) = 1, b = 2, p = 1 - 0.2
    np.testing.assert_allclose([s[0], a[0], b[0], p[0]], [2.0, 1.0, 2.0, 0.8], rtol=1e-15)


def test_adagrad_by_hand():
    p = np.ones(2)
    s = np.full(2, 5.0)
    F.adagrad(p, np.array([2.0, -2.0]), s, step=3, lr=0.1, eps=0.0, lr_decay=0.5)
    # s = 5 + 4 = 9, clr = 0.1 / (1 + 2 * 0.5) = 0.05, p -= 0.05 * 2 / 3
    np.testing.assert_allclose(s, [9.0, 9.0], rtol=1e-15)
    np.testing.assert_allclose(p, [1 - 0.1 / 3, 1 + 0.1 / 3], rtol=1e-15)


def test_adamax_by_hand():
    p = np.ones(2)
    m, u = np.zeros(2), np.array([0.0, 10.0])
    F.adamax(p, np.array([1.0, -1.0]), m, u, step=1, lr=0.1, beta1=0.9, beta2=0.5, eps=0.0)
    # m = +-0.1, u = max(0.5 u, |g|) = [1, 5], clr = 0.1 / 0.1 = 1
    np.testing.assert_allclose(m, [0.1, -0.1], rtol=1e-14)
    np.testing.assert_allclose(u, [1.0, 5.0], rtol=1e-15)
    np.testing.assert_allclose(p, [0.9, 1.02], rtol=1e-14)


def test_lion_by_hand():
    p = np.ones(4)
    m = np.array([0.0, 0.0, 0.0, 10.0])
    g = np.array([0.5, -2.0, 0.0, -1.0])
    F.lion(p, g, m, lr=0.1, beta1=0.9, beta2=0.99, weight_decay=0.5)
    # c = [0.05, -0.2, 0, 8.9]; p = 0.95 - 0.1 sign(c); m = 0.99 m + 0.01 g
    np.testing.assert_allclose(p, [0.85, 1.05, 0.95, 0.85], rtol=1e-15)
    np.testing.assert_allclose(m, [0.005, -0.02, 0.0, 9.89], rtol=1e-15)


def test_lion_maximize_by_hand():
    p = np.zeros(2, np.float32)
    m = np.zeros(2, np.float32)
    F.lion(p, np.float32([3.0, -3.0]), m, lr=0.25, beta1=0.9, beta2=0.99, maximize=True)
    assert np.array_equal(p, np.float32([0.25, -0.25]))


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", twin.ALGORITHMS)
def test_scalar_param(name, dtype):
    """A 0-d array is a valid param; it stays 0-d and in its dtype."""
    hp = twin.richest(name)
    param = np.array(0.75, dtype)
    grads = [np.array(x, dtype) for x in (0.5, -0.25, 1.5)]
    buffers = _run_functional(name, hp, param, grads)
    ref_param, ref_state = twin.trajectory(name, hp, np.array(0.75, dtype), grads)
    assert param.ndim == 0
    assert all(buffers[slot].ndim == 0 for slot in twin.active_slots(name, hp))
    twin.assert_matches(name, dtype, param, buffers, ref_param, ref_state)
    assert param != np.array(0.75, dtype)


@pytest.mark.parametrize("name", twin.ALGORITHMS)
def test_empty_arrays_are_a_no_op(name):
    hp = twin.richest(name)
    for dtype in DTYPES:
        for shape in [(0,), (3, 0), (0, 4, 2)]:
            param = np.empty(shape, dtype)
            buffers = _run_functional(name, hp, param, [np.empty(shape, dtype)] * 2)
            assert param.shape == shape
            assert param.dtype == dtype
            assert all(
                buffers[slot].shape == shape and buffers[slot].dtype == dtype
                for slot in twin.active_slots(name, hp)
            )
