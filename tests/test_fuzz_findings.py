"""The findings of the fuzz targets (tests/fuzz/), each kept as a regression test.

Each test is the smallest form of an input the fuzzer found that raised an
undocumented exception (a KeyError, an AttributeError, an OverflowError, a
ZeroDivisionError) instead of a TypeError or ValueError naming the problem. Every
one must now raise a documented error and change nothing.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import require_module
from test_crash import frozen

import fastadam
from fastadam import functional


def stepped_after(state_change, algorithm=fastadam.Adam):
    """An optimizer of one param after one step, then ``state_change(state)``."""
    p = np.ones(4, np.float32)
    opt = algorithm([p])
    opt.step([np.full_like(p, 0.5)])
    state_change(opt.state[0])
    return opt, p


def assert_refused(call, watched, error, match):
    """``call`` raises ``error`` matching ``match`` and changes nothing ``watched``."""
    before = frozen(watched)
    with pytest.raises(error, match=match):
        call()
    assert frozen(watched) == before


def _adam_args() -> tuple[list[np.ndarray], dict[str, float]]:
    p, g = np.ones(4, np.float32), np.full(4, 0.5, np.float32)
    return [p, g, np.zeros_like(p), np.zeros_like(p)], {"lr": 0.1, "beta1": 0.9, "beta2": 0.999}


@pytest.mark.parametrize("step", [2**64, 2**70])
def test_functional_step_beyond_uint64(step):
    """functional.adam(step=2**64) raised OverflowError from the C boundary."""
    buffers, hp = _adam_args()
    before = frozen(buffers)
    with pytest.raises(ValueError, match=rf"^Invalid step value: {step} \(at most 2\*\*64 - 1\)$"):
        functional.adam(*buffers, step=step, eps=1e-8, **hp)
    assert frozen(buffers) == before


def test_functional_step_at_uint64_max_runs():
    buffers, hp = _adam_args()
    functional.adam(*buffers, step=2**64 - 1, eps=1e-8, **hp)
    assert buffers[0][0] < 1.0


@pytest.mark.parametrize(
    ("cls", "key"),
    [(fastadam.Adagrad, "lr"), (fastadam.Adam, "amsgrad"), (fastadam.NAdam, "momentum_decay")],
)
def test_param_group_without_a_hyperparameter(cls, key):
    """A hyperparameter deleted from a param group raised KeyError at the next step."""
    p = np.ones(4, np.float32)
    opt = cls([p])
    opt.step([np.full_like(p, 0.5)])
    del opt.param_groups[0][key]
    watched = [p, opt.state]
    before = frozen(watched)
    with pytest.raises(ValueError, match=rf'^param group has no "{key}" entry$'):
        opt.step([np.full_like(p, 0.5)])
    assert frozen(watched) == before


def test_loaded_param_group_without_a_hyperparameter():
    """load_state_dict of a group without "amsgrad" raised KeyError."""
    p = np.ones(4, np.float32)
    opt = fastadam.Adam([p])
    saved = opt.state_dict()
    del saved["param_groups"][0]["amsgrad"]
    with pytest.raises(ValueError, match=r'^param group has no "amsgrad" entry$'):
        opt.load_state_dict(saved)
    assert opt.param_groups[0]["amsgrad"] is False


def test_state_without_a_step_count():
    """A state entry whose "step" was deleted raised KeyError at the next step."""
    opt, p = stepped_after(lambda state: state.pop("step"))
    step = lambda: opt.step([np.full_like(p, 0.5)])  # noqa: E731
    assert_refused(step, [p, opt.state], ValueError, r'^state\[0\] has no "step" entry$')


@pytest.mark.parametrize("count", [-5, 2**64 - 1, 2**70, 1.5, "2", True])
@pytest.mark.parametrize("complete", [True, False])
def test_state_with_an_odd_step_count(count, complete):
    """A negative "step" in a NumPy optimizer's state raised OverflowError at the C
    boundary; one that is not an integer raised TypeError or went on as a float."""

    def change(state):
        state["step"] = count
        if not complete:  # the step must create a buffer: the general path
            del state["exp_avg"]

    opt, p = stepped_after(change)
    step = lambda: opt.step([np.full_like(p, 0.5)])  # noqa: E731
    message = r'^state\[0\]\["step"\] must be an integer >= 0'
    assert_refused(step, [p, opt.state], ValueError, message)


def test_hyperparameter_beyond_float():
    """An int hyperparameter beyond float's range raised OverflowError from float()."""
    p = np.ones(4, np.float32)
    with pytest.raises(ValueError, match=r"^lr is too large for a float: 1000000000"):
        fastadam.Adam([p], lr=10**400)
    with pytest.raises(ValueError, match=r"^lr is too large for a float"):
        functional.adam(
            p,
            p.copy(),
            np.zeros_like(p),
            np.zeros_like(p),
            step=1,
            lr=10**400,
            beta1=0.9,
            beta2=0.999,
            eps=1e-8,
        )


def test_initial_accumulator_value_beyond_the_param_dtype(torch):
    """Adagrad's initial_accumulator_value of 1e308 raised RuntimeError from torch.full_like
    for float32 params (fastadam.torch); the NumPy class made a state of infinities."""
    import fastadam.torch

    with pytest.raises(
        ValueError, match=r'^state "sum" would start at 1e\+308 .* dtype (torch\.)?float32$'
    ):
        fastadam.torch.Adagrad([torch.ones(3)], initial_accumulator_value=1e308)
    p = np.ones(4, np.float32)
    opt = fastadam.Adagrad([p], initial_accumulator_value=1e308)
    step = lambda: opt.step([np.full_like(p, 0.5)])  # noqa: E731
    message = r'^state "sum" would start at 1e\+308 .* dtype float32$'
    assert_refused(step, [p, opt.state], ValueError, message)
    q = np.ones(4, np.float64)  # fits float64
    fastadam.Adagrad([q], initial_accumulator_value=1e308).step([np.full_like(q, 0.5)])
    assert np.isfinite(q).all()


def test_state_without_its_scalar_state():
    """A NAdam state entry whose "mu_product" was deleted raised KeyError at the next step."""
    opt, p = stepped_after(lambda state: state.pop("mu_product"), fastadam.NAdam)
    step = lambda: opt.step([np.full_like(p, 0.5)])  # noqa: E731
    message = r'^state\[0\] has no "mu_product" entry$'
    assert_refused(step, [p, opt.state], ValueError, message)


def test_load_state_dict_with_a_param_that_is_not_an_array():
    """A param replaced in param_groups by a list made load_state_dict raise AttributeError."""
    p = np.ones(4, np.float32)
    opt = fastadam.Adam([p])
    opt.step([np.full_like(p, 0.5)])
    saved = opt.state_dict()
    opt.param_groups[0]["params"][0] = [1.0, 2.0]
    with pytest.raises(TypeError, match=r"^param 0 is a list, not a numpy.ndarray$"):
        opt.load_state_dict(saved)
    assert opt.state[0]["step"] == 1


@pytest.mark.parametrize("with_state", [False, True])
def test_step_with_a_param_that_is_not_an_array(with_state):
    """A param replaced in param_groups by bytes made step raise AttributeError while it
    planned the state to create (found again after the merge of the planner)."""
    p, q = np.ones(4, np.float32), np.ones(3, np.float32)
    opt = fastadam.Adam([p, q])
    if with_state:
        opt.step([np.full_like(p, 0.5), np.full_like(q, 0.5)])
        del opt.state[1]  # the step must create state, so it takes the general path
    opt.param_groups[0]["params"][0] = b"\x00\x01"
    watched = [q, opt.state]
    before = frozen(watched)
    with pytest.raises(TypeError, match=r"^params\[0\] must be a numpy.ndarray, not bytes"):
        opt.step([np.full_like(p, 0.5), np.full_like(q, 0.5)])
    assert frozen(watched) == before


def test_step_error_before_a_param_that_is_not_an_array():
    """A bad grad raised its ValueError before the step reached a later param replaced by
    None; the explanation of 8-bit state that follows such an error then read that
    param's dtype and raised AttributeError instead."""
    params = [np.ones(4, np.float32) for _ in range(3)]
    opt = fastadam.Adam(params)
    opt.step([np.full_like(p, 0.5) for p in params])
    opt.param_groups[0]["params"][2] = None
    misaligned = np.zeros(17, np.uint8)[1:].view(np.float32)
    grads = [np.full(4, 0.5, np.float32), misaligned, np.full(4, 0.5, np.float32)]
    assert_refused(
        lambda: opt.step(grads), [*params, opt.state], ValueError, r"^grads\[1\] is not aligned"
    )


# ------------------------------------------------------------------ fastadam.torch


@pytest.fixture
def torch_adam(torch):
    import fastadam.torch

    p = torch.ones(4, requires_grad=True)
    p.grad = torch.full((4,), 0.5)
    opt = fastadam.torch.Adam([p])
    opt.step()
    return opt, p


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        (
            lambda sd: sd.pop("param_groups"),
            ValueError,
            r'^state_dict has no "param_groups" entry$',
        ),
        (lambda sd: sd.pop("state"), ValueError, r'^state_dict has no "state" entry$'),
        (lambda sd: sd.update(state=[1]), TypeError, r'^state_dict\["state"\] must be a dict'),
        (
            lambda sd: sd.update(param_groups="ab"),
            TypeError,
            r'^state_dict\["param_groups"\] must be a list, got str$',
        ),
        (
            lambda sd: sd["param_groups"].__setitem__(0, 5),
            ValueError,
            r'^param_groups\[0\] must be a dict with a "params" list$',
        ),
        (
            lambda sd: sd["state"].__setitem__(0, object()),
            TypeError,
            r"^state\[0\] must be a dict, got object$",
        ),
        (
            lambda sd: sd["state"][0].__setitem__(
                "exp_avg", __import__("torch").empty(4, device="meta")
            ),
            ValueError,
            r"^state\[0\]\['exp_avg'\] is a torch.strided torch.float32 tensor of shape \(4,\) "
            r"on meta: it holds no data$",
        ),
    ],
)
def test_torch_load_state_dict_outline(torch_adam, change, error, message):
    """fastadam.torch's load_state_dict raised KeyError (no "param_groups") or, at the next
    step, AttributeError (a state entry that is not a dict) from inside torch.optim."""
    opt, p = torch_adam
    saved = opt.state_dict()
    change(saved)
    watched = [p, opt.state[p], opt.param_groups]
    before = frozen(watched)
    with pytest.raises(error, match=message):
        opt.load_state_dict(saved)
    assert frozen(watched) == before
    with pytest.raises(TypeError, match=r"^state_dict must be a dict, got list$"):
        opt.load_state_dict([])


# ------------------------------------------------------------ fastadam.distributed


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        ((10, 0, 0), ValueError, r"^world must be at least 1, got 0$"),
        ((10, 2, 0, 0), ValueError, r"^alignment must be at least 1, got 0$"),
        ((-1, 2, 0), ValueError, r"^n must be at least 0, got -1$"),
        ((10, 2, 2), ValueError, r"^rank must be in \[0, 2\), got 2$"),
        ((10, 2, -1), ValueError, r"^rank must be in \[0, 2\), got -1$"),
        ((10.0, 2, 0), TypeError, r"^n must be an integer, got float$"),
        ((10, True, 0), TypeError, r"^world must be an integer, got bool$"),
        ((10, 2, None), TypeError, r"^rank must be an integer, got NoneType$"),
    ],
)
def test_shard_bounds_arguments(args, error, message):
    """shard_bounds(n, 0, 0) raised ZeroDivisionError; a rank past the world gave a shard."""
    from fastadam.distributed import shard_bounds

    with pytest.raises(error, match=message):
        shard_bounds(*args)


def test_shard_bounds_numpy_integers():
    from fastadam.distributed import shard_bounds

    assert shard_bounds(np.int64(1000), np.int32(3), np.int64(2)) == (768, 1000)


@pytest.mark.parametrize(
    ("state", "message"),
    [
        (np.zeros(3), r'^state_dict\["state"\] must be a dict, got ndarray$'),
        ({0: [1, 2]}, r"^state\[0\] must be a dict, got list$"),
    ],
)
def test_sharded_load_state_dict_of_odd_state(state, message):
    """ShardedOptimizer.load_state_dict({"state": array}) raised AttributeError."""
    require_module("mpi4py", "FASTADAM_REQUIRE_MPI")
    from mpi4py import MPI

    from fastadam.distributed import ShardedAdam

    params = np.ones(100, np.float32)
    opt = ShardedAdam(params, comm=MPI.COMM_SELF)
    opt.step(np.full_like(params, 0.5))
    watched = [params, opt.optimizer.state]
    before = frozen(watched)
    with pytest.raises(TypeError, match=message):
        opt.load_state_dict({"state": state, "param_groups": opt.param_groups})
    assert frozen(watched) == before


@pytest.mark.parametrize(
    "step",
    [
        lambda torch: torch.tensor(1.0, device="meta"),
        lambda torch: torch.tensor([1.0, 2.0]),
        lambda torch: torch.tensor(1 + 0j),
        lambda torch: torch.tensor([1.0]).to_sparse(),
        lambda torch: torch.tensor(True),
        lambda torch: torch.tensor(-3.0),
        lambda torch: torch.tensor(float("nan")),
    ],
    ids=["meta", "two-elements", "complex", "sparse", "bool", "negative", "nan"],
)
def test_torch_step_count_without_one_real_value(torch_adam, torch, step):
    """A "step" entry on the meta device raised RuntimeError (Tensor.item() on meta) at the
    next step; a sparse or bool one raised RuntimeError from the in-place increment after
    the kernels had updated the param (a half-done step); two elements, RuntimeError."""
    opt, p = torch_adam
    opt.state[p]["step"] = step(torch)
    p.grad = torch.full((4,), 0.5)
    watched = [p, opt.state[p]]
    before = frozen(watched)
    with pytest.raises(
        ValueError,
        match=r'^state "step" of param 0 of group 0 must (be a 1-element real CPU|hold a count)',
    ):
        opt.step()
    assert frozen(watched) == before


@pytest.mark.parametrize("general", [False, True])
def test_torch_step_count_sharing_memory_with_the_param(torch, general):
    """A "step" entry that was the (1-element, float64) param itself passed every check,
    and the increment after the kernels added 1 to the param."""
    import fastadam.torch

    p = torch.ones(1, dtype=torch.float64, requires_grad=True)
    p.grad = torch.full((1,), 0.5, dtype=torch.float64)
    opt = fastadam.torch.Adam([p])
    opt.step()
    opt.state[p]["step"] = p.data
    if general:  # a missing buffer: the general path, whose increment is torch's
        del opt.state[p]["exp_avg_sq"]
    message = r'state "step" count'
    assert_refused(opt.step, [p, opt.state[p]], ValueError, message)


def test_torch_nadam_mu_product_sharing_memory_with_the_param(torch):
    """NAdam's "mu_product" that was the 0-d param itself: the product written after the
    kernels overwrote the param."""
    import fastadam.torch

    p = torch.ones((), dtype=torch.float32, requires_grad=True)
    p.grad = torch.full((), 0.5)
    opt = fastadam.torch.NAdam([p])
    opt.step()
    opt.state[p]["mu_product"] = p.data
    message = r"scalar state tensor shares memory"
    assert_refused(opt.step, [p, opt.state[p]], ValueError, message)
