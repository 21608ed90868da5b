"""The optimizer classes: defaults, param groups, state, state_dict.

Every class trajectory is checked bitwise against the functional API (the same
kernel, run param by param) and within tolerance against the float64 twin.
"""

import copy
import inspect
import zlib

import numpy as np
import pytest
import twin
from registry import OPTIMIZER_CLASSES

import fastadam
from fastadam import functional as F

CLASSES = OPTIMIZER_CLASSES

# torch.optim's defaults (torch 2.x), hard-coded; Lion's from Chen et al. 2023.
TORCH_DEFAULTS = {
    fastadam.Adam: {
        "lr": 1e-3,
        "betas": (0.9, 0.999),
        "eps": 1e-8,
        "weight_decay": 0.0,
        "amsgrad": False,
        "maximize": False,
        "decoupled_weight_decay": False,
    },
    fastadam.AdamW: {
        "lr": 1e-3,
        "betas": (0.9, 0.999),
        "eps": 1e-8,
        "weight_decay": 1e-2,
        "amsgrad": False,
        "maximize": False,
        "decoupled_weight_decay": True,
    },
    fastadam.SGD: {
        "lr": 1e-3,
        "momentum": 0.0,
        "dampening": 0.0,
        "weight_decay": 0.0,
        "nesterov": False,
        "maximize": False,
    },
    fastadam.RMSprop: {
        "lr": 1e-2,
        "alpha": 0.99,
        "eps": 1e-8,
        "weight_decay": 0.0,
        "momentum": 0.0,
        "centered": False,
        "maximize": False,
    },
    fastadam.Adagrad: {
        "lr": 1e-2,
        "lr_decay": 0.0,
        "weight_decay": 0.0,
        "initial_accumulator_value": 0.0,
        "eps": 1e-10,
        "maximize": False,
    },
    fastadam.Adamax: {
        "lr": 2e-3,
        "betas": (0.9, 0.999),
        "eps": 1e-8,
        "weight_decay": 0.0,
        "maximize": False,
    },
    fastadam.NAdam: {
        "lr": 2e-3,
        "betas": (0.9, 0.999),
        "eps": 1e-8,
        "weight_decay": 0.0,
        "momentum_decay": 4e-3,
        "decoupled_weight_decay": False,
        "maximize": False,
    },
    fastadam.RAdam: {
        "lr": 1e-3,
        "betas": (0.9, 0.999),
        "eps": 1e-8,
        "weight_decay": 0.0,
        "decoupled_weight_decay": False,
        "maximize": False,
    },
    fastadam.Lion: {"lr": 1e-4, "betas": (0.9, 0.99), "weight_decay": 0.0, "maximize": False},
}

# The positional parameters after ``params``, in torch.optim's order.
TORCH_POSITIONAL = {
    fastadam.Adam: ["lr", "betas", "eps", "weight_decay", "amsgrad"],
    fastadam.AdamW: ["lr", "betas", "eps", "weight_decay", "amsgrad"],
    fastadam.SGD: ["lr", "momentum", "dampening", "weight_decay", "nesterov"],
    fastadam.RMSprop: ["lr", "alpha", "eps", "weight_decay", "momentum", "centered"],
    fastadam.Adagrad: ["lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps"],
    fastadam.Adamax: ["lr", "betas", "eps", "weight_decay"],
    fastadam.NAdam: [
        "lr",
        "betas",
        "eps",
        "weight_decay",
        "momentum_decay",
        "decoupled_weight_decay",
    ],
    fastadam.RAdam: ["lr", "betas", "eps", "weight_decay", "decoupled_weight_decay"],
    fastadam.Lion: ["lr", "betas", "weight_decay"],
}

TWIN_NAME = {cls: name for name, cls in CLASSES.items()} | {fastadam.AdamW: "adam"}
ALL_CLASSES = list(TORCH_DEFAULTS)


def _rng(*parts):
    return np.random.default_rng(zlib.crc32(repr(parts).encode()))


def _same_bits(a, b) -> bool:
    """The same bits: arrays of one dtype and shape, or floats (scalar state, as NAdam's)."""
    if isinstance(b, float):
        return type(a) is float and np.float64(a).tobytes() == np.float64(b).tobytes()
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


class Mirror:
    """The same run, param by param, through the functional API and the float64 twin."""

    def __init__(self, name, params):
        self.name = name
        self.params = [p.copy() for p in params]
        self.initial = [p.copy() for p in params]
        self.twin_params = [twin.f64(p) for p in params]
        self.buffers = [None] * len(params)
        self.twin_states = [None] * len(params)
        self.steps = [0] * len(params)

    def step(self, grads, hps):
        """Step param i with hps[i] where grads[i] is not None."""
        for i, grad in enumerate(grads):
            if grad is None:
                continue
            hp = hps[i]
            if self.buffers[i] is None:
                self.buffers[i] = twin.new_buffers(self.name, hp, self.params[i])
                self.twin_states[i] = twin.init_state(self.name, self.twin_params[i], hp)
            self.steps[i] += 1
            fn = getattr(F, self.name)
            twin.functional_call(
                fn, self.name, hp, self.params[i], grad, self.buffers[i], self.steps[i]
            )
            twin.step(self.name, self.twin_params[i], twin.f64(grad), self.twin_states[i], hp)

    def check(self, opt, params, what=""):
        """The optimizer's params and state equal the functional run's bits, and ≈ the twin."""
        for i, param in enumerate(params):
            label = f"{what}param {i}: "
            assert _same_bits(param, self.params[i]), f"{label}differs from the functional run"
            if self.buffers[i] is None:
                assert i not in opt.state, f"{label}state created without a gradient"
                assert _same_bits(param, self.initial[i]), f"{label}moved without a gradient"
                continue
            if not self.buffers[i] and i not in opt.state:
                # No state buffers (SGD without momentum): the step count is checked in
                # test_step_count_is_kept_without_state_buffers, not in every trajectory.
                continue
            state = opt.state[i]
            assert state["step"] == self.steps[i], label
            assert set(state) == {"step", *self.buffers[i]}, label
            for slot, buf in self.buffers[i].items():
                assert _same_bits(state[slot], buf), f"{label}{slot} differs"
            twin.assert_matches(
                self.name,
                param.dtype,
                param,
                state,
                self.twin_params[i],
                self.twin_states[i],
                label,
            )


def _grads(rng, params, pattern=None):
    """Random gradients in each param's dtype; None where ``pattern`` has a 0."""
    pattern = pattern or [1] * len(params)
    return [
        rng.standard_normal(p.shape).astype(p.dtype) if keep else None
        for p, keep in zip(params, pattern, strict=True)
    ]


# ---------------------------------------------------------------------- defaults


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda c: c.__name__)
def test_defaults_equal_torch(cls):
    expected = TORCH_DEFAULTS[cls]
    param = np.zeros(3)
    opt = cls([param])
    assert opt.defaults == expected
    assert len(opt.param_groups) == 1
    group = opt.param_groups[0]
    assert group["params"] == [param]
    assert group["params"][0] is param
    assert {k: v for k, v in group.items() if k != "params"} == expected
    for key, value in expected.items():
        assert type(group[key]) in (type(value), int), key  # 0 for 0.0 is fine
    signature = inspect.signature(cls)
    positional = [
        p.name
        for p in signature.parameters.values()
        if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    ]
    assert positional == ["params", *TORCH_POSITIONAL[cls]]
    for key, value in expected.items():
        if key in signature.parameters:
            assert signature.parameters[key].default == value, key


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda c: c.__name__)
def test_defaults_are_what_a_default_optimizer_runs(cls):
    name = TWIN_NAME[cls]
    rng = _rng("defaults", cls.__name__)
    params = [rng.standard_normal(40), rng.standard_normal(9).astype(np.float32)]
    mirror = Mirror(name, params)
    opt = cls(params)
    hp = dict(TORCH_DEFAULTS[cls])
    for _ in range(10):
        grads = _grads(rng, params)
        opt.step(grads)
        mirror.step(grads, [hp, hp])
    mirror.check(opt, params)


# ----------------------------------------------------------- trajectories


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize(("name", "hp"), twin.CASES, ids=twin.IDS)
def test_class_matches_functional_bitwise_and_twin(name, hp, dtype):
    rng = _rng("class", name, hp, dtype)
    params = [rng.standard_normal(s).astype(dtype) for s in [(40,), (3, 4), ()]]
    mirror = Mirror(name, params)
    opt = CLASSES[name](params, **hp)
    for k in range(30):
        grads = _grads(rng, params)
        opt.step(grads)
        mirror.step(grads, [hp] * 3)
        if k in (0, 9, 29):
            mirror.check(opt, params, f"step {k + 1}: ")


@pytest.mark.parametrize(
    "hp",
    [hp for hp in twin.cases_of("adam") if hp["decoupled_weight_decay"]],
    ids=lambda hp: twin.case_id("adamw", hp),
)
def test_adamw_is_adam_with_decoupled_weight_decay(hp):
    rng = _rng("adamw", hp)
    params = [rng.standard_normal(30), rng.standard_normal(7).astype(np.float32)]
    mirror = Mirror("adam", params)
    kwargs = {k: v for k, v in hp.items() if k != "decoupled_weight_decay"}
    opt = fastadam.AdamW(params, **kwargs)
    assert opt.param_groups[0]["decoupled_weight_decay"] is True
    for _ in range(15):
        grads = _grads(rng, params)
        opt.step(grads)
        mirror.step(grads, [hp, hp])
    mirror.check(opt, params)


@pytest.mark.parametrize("name", twin.ALGORITHMS)
def test_param_groups_use_their_own_hyperparameters(name):
    cases = twin.cases_of(name)
    first, last, defaults = cases[0], cases[-1], cases[len(cases) // 2]
    rng = _rng("groups", name)
    params = [
        rng.standard_normal(20),
        rng.standard_normal(6).astype(np.float32),
        rng.standard_normal((2, 5)),
        rng.standard_normal(11).astype(np.float32),
    ]
    opt = CLASSES[name](
        [
            {"params": params[:2], **first},
            {"params": [params[2]], **last},
            {"params": [params[3]], "lr": 0.05},  # the rest from the defaults
        ],
        **defaults,
    )
    hps = [first, first, last, {**defaults, "lr": 0.05}]
    for group, hp in zip(opt.param_groups, [first, last, hps[3]], strict=True):
        assert {k: v for k, v in group.items() if k != "params"} == hp
    mirror = Mirror(name, params)
    for _ in range(20):
        grads = _grads(rng, params)
        opt.step(grads)
        mirror.step(grads, hps)
    mirror.check(opt, params)


# Rprop's lr is only the step size its state starts at, as in torch: see the next test.
@pytest.mark.parametrize("name", [n for n in twin.ALGORITHMS if n != "rprop"])
def test_lr_changes_take_effect_at_the_next_step(name):
    hp = twin.richest(name)
    rng = _rng("schedule", name)
    params = [rng.standard_normal(25), rng.standard_normal(4).astype(np.float32)]
    opt = CLASSES[name](params, **hp)
    mirror = Mirror(name, params)
    unscheduled = Mirror(name, params)
    for k in range(12):
        lr = hp["lr"] * 0.7**k
        opt.param_groups[0]["lr"] = lr
        grads = _grads(rng, params)
        opt.step(grads)
        mirror.step(grads, [{**hp, "lr": lr}] * 2)
        unscheduled.step(grads, [hp, hp])
        mirror.check(opt, params, f"step {k + 1}: ")
    assert not _same_bits(params[0], unscheduled.params[0]), "the schedule must matter"


def test_rprop_lr_is_the_first_step_size_of_new_state():
    """As torch.optim.Rprop: a param's step sizes start at its group's lr when its state
    is made; changing lr later moves only params whose state is made after."""
    rng = _rng("rprop lr")
    params = [rng.standard_normal(6), rng.standard_normal(6)]
    opt = fastadam.Rprop(params, lr=0.01)
    grads = _grads(rng, params)
    opt.step([grads[0], None])
    opt.param_groups[0]["lr"] = 0.2
    opt.step([grads[0], grads[1]])
    assert np.array_equal(opt.state[0]["step_size"], np.full(6, 0.01 * 1.2))
    assert np.array_equal(opt.state[1]["step_size"], np.full(6, 0.2))
    opt.param_groups[0]["lr"] = -1.0
    with pytest.raises(ValueError, match=r"^Invalid learning rate: -1\.0$"):
        opt.step(grads)


@pytest.mark.parametrize("name", twin.ALGORITHMS)
def test_none_grads_skip_their_param(name):
    hp = twin.richest(name)
    rng = _rng("none", name)
    params = [rng.standard_normal(8), rng.standard_normal(5), rng.standard_normal(3)]
    opt = CLASSES[name](params, **hp)
    mirror = Mirror(name, params)
    patterns = [(1, 0, 1), (1, 0, 0), (0, 0, 0), (0, 1, 1), (1, 1, 1), (0, 1, 0)]
    for k, pattern in enumerate(patterns):
        before = copy.deepcopy(opt.state)
        frozen = [p.copy() for p, keep in zip(params, pattern, strict=True) if not keep]
        grads = _grads(rng, params, list(pattern))
        opt.step(grads)
        mirror.step(grads, [hp] * 3)
        mirror.check(opt, params, f"step {k + 1}: ")
        skipped = [i for i, keep in enumerate(pattern) if not keep]
        for i, old in zip(skipped, frozen, strict=True):
            assert _same_bits(params[i], old)
            if i in before:
                assert opt.state[i]["step"] == before[i]["step"]
                for slot, value in before[i].items():
                    if slot != "step":
                        assert _same_bits(opt.state[i][slot], value), slot
            else:
                assert i not in opt.state
    assert [opt.state[i]["step"] for i in range(3)] == [3, 3, 3]


@pytest.mark.parametrize("name", twin.ALGORITHMS)
def test_bare_array_accepted_with_one_param(name):
    hp = twin.richest(name)
    rng = _rng("bare", name)
    param = rng.standard_normal(17).astype(np.float32)
    initial, as_list, as_tuple = param.copy(), param.copy(), param.copy()
    opt_bare = CLASSES[name]([param], **hp)
    opt_list = CLASSES[name]([as_list], **hp)
    opt_tuple = CLASSES[name]([as_tuple], **hp)
    for _ in range(4):
        grad = rng.standard_normal(17).astype(np.float32)
        opt_bare.step(grad)
        opt_list.step([grad])
        opt_tuple.step((grad,))
    assert _same_bits(param, as_list)
    assert _same_bits(param, as_tuple)
    assert (param != initial).all()


@pytest.mark.parametrize("name", twin.ALGORITHMS)
def test_state_is_created_on_first_use_in_the_param_dtype(name):
    hp = twin.richest(name)
    if name == "adagrad":
        hp = {**hp, "initial_accumulator_value": 0.25}
    rng = _rng("state", name)
    params = [
        rng.standard_normal(6).astype(np.float32),
        rng.standard_normal((2, 3)),
        np.array(1.5, np.float32),
    ]
    opt = CLASSES[name](params, **hp)
    assert opt.state == {}
    opt.step([None, None, None])
    assert opt.state == {}
    grads = _grads(rng, params, [1, 0, 1])
    mirror = Mirror(name, params)
    mirror.step(grads, [hp] * 3)
    opt.step(grads)
    assert set(opt.state) == {0, 2}
    slots = twin.active_slots(name, hp)
    for i in (0, 2):
        state = opt.state[i]
        assert set(state) == {"step", *twin.state_slots(name, hp)}
        assert state["step"] == 1
        for key in twin.initial_scalars(name):  # its value: mirror.check, against the twin
            assert type(state[key]) is float, key
        for slot in slots:
            buf = state[slot]
            assert isinstance(buf, np.ndarray), slot
            assert buf.dtype == params[i].dtype, slot
            assert buf.shape == params[i].shape, slot
            assert buf.flags.c_contiguous
            assert buf.flags.writeable
            assert not np.shares_memory(buf, params[i])
            assert not np.shares_memory(buf, grads[i])
    mirror.check(opt, params)
    if name == "adagrad":  # the accumulator starts at initial_accumulator_value
        sign = -1.0 if hp["maximize"] else 1.0
        g = sign * grads[0].astype(np.float64) + hp["weight_decay"] * mirror.initial[0]
        np.testing.assert_allclose(opt.state[0]["sum"], 0.25 + g**2, rtol=1e-6)


def test_step_count_is_kept_without_state_buffers():
    """SGD without momentum has no state buffers, but its state still counts steps."""
    rng = _rng("sgd step count")
    params = [rng.standard_normal(3), rng.standard_normal(2).astype(np.float32)]
    opt = fastadam.SGD(params, lr=0.1)
    opt.step(_grads(rng, params, [1, 0]))
    assert opt.state == {0: {"step": 1}}
    opt.step(_grads(rng, params))
    assert opt.state == {0: {"step": 2}, 1: {"step": 1}}
    assert opt.state_dict()["state"] == {0: {"step": 2}, 1: {"step": 1}}


@pytest.mark.parametrize("name", twin.ALGORITHMS)
def test_mixed_float32_and_float64_params(name):
    hp = twin.richest(name)
    rng = _rng("mixed", name)
    params = [
        rng.standard_normal(33).astype(np.float32),
        rng.standard_normal(21),
        rng.standard_normal((4, 4)).astype(np.float32),
        rng.standard_normal(1),
    ]
    opt = CLASSES[name](params, **hp)
    mirror = Mirror(name, params)
    for _ in range(25):
        grads = _grads(rng, params)
        opt.step(grads)
        mirror.step(grads, [hp] * 4)
    mirror.check(opt, params)
    assert [p.dtype for p in params] == [np.float32, np.float64, np.float32, np.float64]
    for i, p in enumerate(params):
        assert all(v.dtype == p.dtype for v in opt.state[i].values() if isinstance(v, np.ndarray))


@pytest.mark.parametrize("name", twin.ALGORITHMS)
def test_one_grad_array_may_serve_several_params(name):
    """Gradients are only read, so they may share memory with each other."""
    hp = twin.richest(name)
    rng = _rng("shared grad", name)
    params = [rng.standard_normal(10), rng.standard_normal(10)]
    opt = CLASSES[name](params, **hp)
    mirror = Mirror(name, params)
    for _ in range(5):
        grad = rng.standard_normal(10)
        grad.flags.writeable = False  # a read-only gradient is fine too
        opt.step([grad, grad])
        mirror.step([grad, grad], [hp, hp])
    mirror.check(opt, params)


@pytest.mark.parametrize("name", twin.ALGORITHMS)
def test_add_param_group_between_steps(name):
    cases = twin.cases_of(name)
    rng = _rng("add group", name)
    params = [rng.standard_normal(9), rng.standard_normal(4).astype(np.float32)]
    hps = [twin.richest(name), cases[-1]]
    opt = CLASSES[name]([params[0]], **hps[0])
    mirror = Mirror(name, params)
    for _ in range(3):
        grads = _grads(rng, params[:1])
        opt.step(grads)
        mirror.step([*grads, None], hps)
    opt.add_param_group({"params": params[1], **hps[1]})  # a bare array is one param
    for _ in range(4):
        grads = _grads(rng, params)
        opt.step(grads)
        mirror.step(grads, hps)
    mirror.check(opt, params)
    assert [opt.state[0]["step"], opt.state[1]["step"]] == [7, 4]


# -------------------------------------------------------------------- state_dict


def _two_group_optimizer(name, rng, hp=None):
    hp = hp or twin.richest(name)
    params = [
        rng.standard_normal(4),
        rng.standard_normal(3).astype(np.float32),
        rng.standard_normal((2, 3)),
    ]
    other = {**hp, "lr": hp["lr"] * 2}
    opt = CLASSES[name]([{"params": params[:2]}, {"params": [params[2]], **other}], **hp)
    return opt, params, [hp, hp, other]


@pytest.mark.parametrize("name", twin.ALGORITHMS)
def test_state_dict_layout(name):
    rng = _rng("layout", name)
    opt, params, hps = _two_group_optimizer(name, rng)
    empty = opt.state_dict()
    assert set(empty) == {"state", "param_groups"}
    assert empty["state"] == {}
    for _ in range(2):
        opt.step(_grads(rng, params, [1, 0, 1]))
    sd = opt.state_dict()
    assert set(sd) == {"state", "param_groups"}
    assert [g["params"] for g in sd["param_groups"]] == [[0, 1], [2]]
    for saved, group, hp in zip(
        sd["param_groups"], opt.param_groups, [hps[0], hps[2]], strict=True
    ):
        assert {k: v for k, v in saved.items() if k != "params"} == hp
        assert {k: v for k, v in group.items() if k != "params"} == hp
    assert set(sd["state"]) == {0, 2}
    slots = twin.active_slots(name, hps[0])
    scalars = twin.initial_scalars(name)
    for i in (0, 2):
        entry = sd["state"][i]
        assert set(entry) == {"step", *slots, *scalars}
        assert entry["step"] == 2
        for slot in slots:
            assert _same_bits(entry[slot], opt.state[i][slot])
            assert not np.shares_memory(entry[slot], opt.state[i][slot]), "a copy"
        for key in scalars:
            assert _same_bits(entry[key], opt.state[i][key]), key
    # Changing the returned dict changes nothing in the optimizer.
    kept = copy.deepcopy(opt.state)
    for i in (0, 2):
        for slot in slots:
            sd["state"][i][slot][...] = np.nan
        for key in scalars:
            sd["state"][i][key] = 0.25
        sd["state"][i]["step"] = 99
    sd["param_groups"][0]["lr"] = 99.0
    for i in (0, 2):
        assert opt.state[i]["step"] == kept[i]["step"]
        for slot in (*slots, *scalars):
            assert _same_bits(opt.state[i][slot], kept[i][slot])
    assert opt.param_groups[0]["lr"] == hps[0]["lr"]


@pytest.mark.parametrize("name", twin.ALGORITHMS)
def test_state_dict_round_trip_continues_bitwise(name):
    rng = _rng("round trip", name)
    opt, params, _ = _two_group_optimizer(name, rng)
    patterns = [(1, 1, 0), (1, 0, 1), (1, 1, 1), (0, 1, 1), (1, 1, 1)]
    for pattern in patterns:
        opt.step(_grads(rng, params, list(pattern)))

    sd = opt.state_dict()
    saved = copy.deepcopy(sd)
    clones = [p.copy() for p in params]
    fresh = CLASSES[name]([{"params": clones[:2]}, {"params": [clones[2]]}])  # class defaults
    fresh.load_state_dict(sd)
    # The loaded optimizer owns its state: changing the dict afterwards changes nothing.
    for entry in sd["state"].values():
        for value in entry.values():
            if isinstance(value, np.ndarray):
                value[...] = np.nan
    sd["param_groups"][1]["lr"] = 1e9

    assert [g["params"] for g in fresh.param_groups] == [clones[:2], [clones[2]]]
    for mine, theirs in zip(fresh.param_groups, opt.param_groups, strict=True):
        assert {k: v for k, v in mine.items() if k != "params"} == {
            k: v for k, v in theirs.items() if k != "params"
        }
    again = fresh.state_dict()
    assert again["param_groups"] == saved["param_groups"]
    assert set(again["state"]) == set(saved["state"])
    for i, entry in saved["state"].items():
        assert set(again["state"][i]) == set(entry)
        for key, value in entry.items():
            if isinstance(value, np.ndarray):
                assert _same_bits(again["state"][i][key], value)
            else:
                assert again["state"][i][key] == value

    for pattern in [(1, 1, 1), (0, 1, 1), (1, 0, 1), (1, 1, 1), (1, 1, 0)]:
        grads = _grads(rng, params, list(pattern))
        opt.step(grads)
        fresh.step(grads)
        for p, c in zip(params, clones, strict=True):
            assert _same_bits(p, c)
        assert set(opt.state) == set(fresh.state)
        for i, state in opt.state.items():
            assert set(state) == set(fresh.state[i])
            for key, value in state.items():
                if isinstance(value, np.ndarray):
                    assert _same_bits(fresh.state[i][key], value), key
                else:
                    assert fresh.state[i][key] == value


TOGGLES = [
    ("adam", {"amsgrad": True}, {"amsgrad": False}),
    ("sgd", {"momentum": 0.9}, {"momentum": 0.0}),
    ("rmsprop", {"centered": True}, {"centered": False}),
    ("rmsprop", {"momentum": 0.9}, {"momentum": 0.0}),
]


@pytest.mark.parametrize(
    ("name", "before", "after"), TOGGLES, ids=[f"{n}-{b}" for n, b, _ in TOGGLES]
)
def test_an_optimizer_loads_its_own_state_dict_after_a_feature_is_switched_off(name, before, after):
    """Switching a feature off mid-run leaves its buffer in the state; that must still load."""
    rng = _rng("own state dict", name, before)
    params = [rng.standard_normal(5), rng.standard_normal(3).astype(np.float32)]
    clones = [p.copy() for p in params]
    opt = CLASSES[name](params, **before)
    reference = CLASSES[name](clones, **before)
    for k in range(4):
        if k == 2:
            opt.param_groups[0].update(after)
            reference.param_groups[0].update(after)
        grads = _grads(rng, params)
        opt.step(grads)
        reference.step(grads)
    opt.load_state_dict(opt.state_dict())
    grads = _grads(rng, params)
    opt.step(grads)
    reference.step(grads)
    for p, c in zip(params, clones, strict=True):
        assert _same_bits(p, c)


def _last_slot(name):
    return twin.active_slots(name, twin.richest(name))[-1]


def _set(path, value):
    """A corruption setting sd[path...] = value (value may be a function of the old value)."""

    def corrupt(sd, name):
        target = sd
        for key in path[:-1]:
            target = target[key]
        old = target.get(path[-1]) if isinstance(target, dict) else None
        target[path[-1]] = value(old, name) if callable(value) else value

    return corrupt


def _delete(*path):
    def corrupt(sd, name):
        target = sd
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return corrupt


def _on_slot(fn):
    def corrupt(sd, name):
        entry = sd["state"][2]
        entry[_last_slot(name)] = fn(entry[_last_slot(name)])

    return corrupt


def _without_slot(sd, name):
    del sd["state"][2][_last_slot(name)]


def _extra_group(sd, name):
    sd["param_groups"].append(copy.deepcopy(sd["param_groups"][1]))


def _string_index(sd, name):
    sd["state"]["2"] = sd["state"].pop(2)


def _out_of_range(sd, name):
    sd["state"][3] = copy.deepcopy(sd["state"][2])


CORRUPTIONS = {
    "extra group": (_extra_group, ValueError, "number of parameter groups"),
    "missing group": (_delete("param_groups", 1), ValueError, "number of parameter groups"),
    "too many params": (_set(("param_groups", 1, "params"), [2, 3]), ValueError, "size"),
    "too few params": (_set(("param_groups", 0, "params"), [0]), ValueError, "size"),
    "no state": (_delete("state"), ValueError, "state"),
    "no param_groups": (_delete("param_groups"), ValueError, "param_groups"),
    "no step": (_delete("state", 2, "step"), ValueError, "step"),
    "negative step": (_set(("state", 2, "step"), -1), ValueError, "step"),
    "missing buffer": (_without_slot, ValueError, "missing"),
    "unexpected buffer": (_set(("state", 2, "bogus"), np.zeros((2, 3))), ValueError, "bogus"),
    "wrong shape": (_on_slot(lambda a: a.reshape(3, 2).copy()), ValueError, "shape"),
    "broadcastable shape": (_on_slot(lambda a: a[:1].copy()), ValueError, "shape"),
    "wrong dtype": (_on_slot(lambda a: a.astype(np.float32)), TypeError, "dtype"),
    "not an array": (_on_slot(lambda a: a.tolist()), TypeError, "ndarray"),
    "bad lr": (
        _set(("param_groups", 1, "lr"), -1.0),
        ValueError,
        "Invalid learning rate: -1.0",
    ),
    "lr not a number": (_set(("param_groups", 1, "lr"), "fast"), TypeError, "lr"),
    "bad weight_decay": (
        _set(("param_groups", 1, "weight_decay"), float("nan")),
        ValueError,
        "Invalid weight_decay value: nan",
    ),
    "missing hyperparameter": (_delete("param_groups", 1, "lr"), (KeyError, ValueError), "lr"),
    "state index out of range": (_out_of_range, ValueError, "param 3"),
    "state index a string": (_string_index, TypeError, "indices"),
    "state not a dict": (_set(("state",), [1, 2]), TypeError, "state"),
    "not a dict": (lambda sd, name: sd.clear() or sd.update(x=1), ValueError, "state"),
}


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
@pytest.mark.parametrize("name", twin.ALGORITHMS)
def test_load_state_dict_mismatch_raises_and_changes_nothing(name, corruption):
    corrupt, error, match = CORRUPTIONS[corruption]
    if name == "rprop" and corruption == "bad weight_decay":  # Rprop has none: bad etas
        corrupt = _set(("param_groups", 1, "etas"), (0.5, 0.9))
        error, match = ValueError, "Invalid eta values: 0.5, 0.9"
    rng = _rng("mismatch", name, corruption)
    opt, params, hps = _two_group_optimizer(name, rng)
    clones = [p.copy() for p in params]
    untouched = CLASSES[name]([{"params": clones[:2]}, {"params": [clones[2]], **hps[2]}], **hps[0])
    for _ in range(3):
        grads = _grads(rng, params)
        opt.step(grads)
        untouched.step(grads)
    bad = opt.state_dict()
    corrupt(bad, name)

    groups = [dict(g) for g in opt.param_groups]
    state_objects = {i: dict(s) for i, s in opt.state.items()}
    state_bits = {
        i: {k: (v.tobytes() if isinstance(v, np.ndarray) else v) for k, v in s.items()}
        for i, s in opt.state.items()
    }
    with pytest.raises(error, match=match):
        opt.load_state_dict(bad)

    assert [dict(g) for g in opt.param_groups] == groups
    for mine, before in zip(opt.param_groups, groups, strict=True):
        assert all(a is b for a, b in zip(mine["params"], before["params"], strict=True))
    assert set(opt.state) == set(state_objects)
    for i, entry in opt.state.items():
        assert set(entry) == set(state_objects[i])
        for key, value in entry.items():
            if isinstance(value, np.ndarray):
                assert value is state_objects[i][key]
                assert value.tobytes() == state_bits[i][key]
            else:
                assert value == state_bits[i][key]
    # And it carries on exactly as an optimizer that never saw the bad dict.
    grads = _grads(rng, params)
    opt.step(grads)
    untouched.step(grads)
    for p, c in zip(params, clones, strict=True):
        assert _same_bits(p, c)


def test_load_state_dict_rejects_a_non_mapping():
    opt = fastadam.Adam([np.zeros(2)])
    with pytest.raises(TypeError, match="state_dict must be a dict"):
        opt.load_state_dict([("state", {}), ("param_groups", [])])
