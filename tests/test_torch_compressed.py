"""fastadam.torch's Adam and AdamW in compressed formats, against the NumPy classes.

The reference is fastadam.Adam (tests/test_compressed_*.py hold it bit for bit to the
NumPy twin of the formats): on the same data, fastadam.torch must give the same
bits in every param and state entry, step after step, for every combination of
param, grad and state dtype, master weights, amsgrad and AdamW, because both run
the same kernels with the same stochastic-rounding keys (seed, param index, step).
The state is kept as torch tensors that round-trip through torch.save exactly;
bad options and bad checkpoints raise before anything changes.
"""

from __future__ import annotations

import importlib
import io
import subprocess
import sys
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import twin_compressed as tw
from test_compressed_api import BAD_OPTIONS

import fastadam
from fastadam.optimizers import FORMAT_DEFAULTS

BF16 = tw.BF16
DTYPES = {"float32": np.dtype(np.float32), "bfloat16": BF16}
SHAPES = [(64, 80), (300,), ()]  # 8-bit state (5120 >= 4096), float32 fallbacks


@pytest.fixture
def ft(torch: ModuleType) -> ModuleType:
    """The fastadam.torch module (imported only once torch is known to be there)."""
    return importlib.import_module("fastadam.torch")


def to_tensor(torch: ModuleType, array: np.ndarray) -> Any:
    """A torch tensor holding a copy of ``array`` (bfloat16 through its bits)."""
    if array.dtype == BF16:
        return torch.from_numpy(array.view(np.int16).copy()).view(torch.bfloat16)
    return torch.from_numpy(array.copy())


def to_array(torch: ModuleType, tensor: Any) -> np.ndarray:
    """A NumPy view of a tensor's memory (bfloat16 as ml_dtypes.bfloat16)."""
    tensor = tensor.detach()
    if tensor.dtype == torch.bfloat16:
        return tensor.view(torch.int16).numpy().view(BF16)
    return tensor.numpy()


def twin_params(torch: ModuleType, dtype: str, seed: int = 0) -> tuple[list, list]:
    """The same seeded params as NumPy arrays and as torch tensors (any grad dtype allowed)."""
    rng = np.random.default_rng(seed)
    arrays = [np.array(rng.standard_normal(s), DTYPES[dtype]) for s in SHAPES]
    tensors = [to_tensor(torch, a).requires_grad_() for a in arrays]
    for t in tensors:
        t.grad_dtype = None  # torch allows a grad of another dtype only so
    return arrays, tensors


def grad_stream(shapes: list[tuple], dtype: str, seed: int = 1):
    rng = np.random.default_rng(seed)
    while True:
        yield [np.array(rng.standard_normal(s) * 0.1, DTYPES[dtype]) for s in shapes]


def step_torch(torch: ModuleType, optimizer: Any, tensors: list, grads: list) -> None:
    for t, g in zip(tensors, grads, strict=True):
        t.grad = None if g is None else to_tensor(torch, g)
    optimizer.step()


def assert_same_bits(torch: ModuleType, numpy_opt: Any, arrays: list, torch_opt: Any) -> None:
    """Params and every state entry bit for bit, with matching dtypes; equal step counts
    and format options."""
    tensors = [p for g in torch_opt.param_groups for p in g["params"]]
    for index, (array, tensor) in enumerate(zip(arrays, tensors, strict=True)):
        assert to_array(torch, tensor).tobytes() == array.tobytes(), f"param {index}"
        theirs, ours = numpy_opt.state.get(index, {}), torch_opt.state.get(tensor, {})
        assert set(ours) == set(theirs), index
        for key, value in theirs.items():
            if key == "step":
                assert ours[key].item() == value, (index, key)
                continue
            mine = to_array(torch, ours[key])
            assert (mine.dtype, mine.shape) == (value.dtype, value.shape), (index, key)
            assert mine.tobytes() == value.tobytes(), (index, key)
    for g, h in zip(numpy_opt.param_groups, torch_opt.param_groups, strict=True):
        assert {k: g[k] for k in FORMAT_DEFAULTS if k in g} == {
            k: h[k] for k in FORMAT_DEFAULTS if k in h
        }


# ------------------------------------------------------- the same bits as fastadam.Adam

COMBINATIONS = [
    (param, grad, {"state_dtype": state})
    for param in DTYPES
    for grad in DTYPES
    for state in ("float32", "bfloat16", "int8")
] + [
    ("bfloat16", "bfloat16", {"master_weights": True}),
    ("bfloat16", "bfloat16", {"master_weights": True, "state_dtype": "bfloat16"}),
    ("bfloat16", "float32", {"master_weights": True, "state_dtype": "int8", "block_size": 64}),
    ("bfloat16", "bfloat16", {"state_dtype": None}),
    ("float32", "bfloat16", {"state_dtype": "int8", "amsgrad": True, "seed": 7}),
    ("bfloat16", "bfloat16", {"state_dtype": "bfloat16", "amsgrad": True, "maximize": True}),
    ("float32", "float32", {"state_dtype": "bfloat16", "rounding": "nearest"}),
    ("bfloat16", "bfloat16", {"AdamW": True, "master_weights": True, "state_dtype": "int8"}),
    ("float32", "bfloat16", {"AdamW": True, "state_dtype": "int8", "min_8bit_size": 0}),
]


def _id(case: tuple[str, str, dict[str, Any]]) -> str:
    param, grad, options = case
    return "-".join([param, grad, *(f"{k}={v}" for k, v in options.items())])


@pytest.mark.parametrize("case", COMBINATIONS, ids=[_id(c) for c in COMBINATIONS])
def test_matches_numpy_adam_bit_for_bit(torch: ModuleType, ft: ModuleType, case: tuple) -> None:
    """Five steps over two groups (the second with its own lr and seed), a param
    without a grad in step 3: params, state and step counts equal fastadam.Adam's."""
    param, grad, options = case
    options = dict(options)
    name = "AdamW" if options.pop("AdamW", False) else "Adam"
    arrays, tensors = twin_params(torch, param)
    second = {"lr": 3e-3, "seed": 11, "weight_decay": 0.1}
    numpy_opt = getattr(fastadam, name)(
        [{"params": arrays[:1]}, {"params": arrays[1:], **second}], lr=1e-2, **options
    )
    torch_opt = getattr(ft, name)(
        [{"params": tensors[:1]}, {"params": tensors[1:], **second}], lr=1e-2, **options
    )
    grads = grad_stream(SHAPES, grad)
    for step in range(5):
        g: list[Any] = next(grads)
        if step == 2:
            g[1] = None
        numpy_opt.step(g)
        step_torch(torch, torch_opt, tensors, g)
        assert_same_bits(torch, numpy_opt, arrays, torch_opt)
    moved = to_array(torch, tensors[0]).astype(np.float32)
    assert not np.array_equal(moved, twin_params(torch, param)[0][0].astype(np.float32))


def test_state_tensors_have_the_formats_dtypes(torch: ModuleType, ft: ModuleType) -> None:
    """bfloat16 state as torch.bfloat16, codes as torch.uint8 with one float32 absmax per
    block, master weights float32; small params keep float32 (min_8bit_size)."""
    _, tensors = twin_params(torch, "bfloat16")
    opt = ft.AdamW(
        [{"params": tensors[:2]}, {"params": tensors[2:], "state_dtype": "bfloat16"}],
        state_dtype="int8",
        master_weights=True,
        block_size=128,
    )
    step_torch(torch, opt, tensors, next(grad_stream(SHAPES, "bfloat16")))
    big, small, scalar = (opt.state[t] for t in tensors)
    assert {k: (v.dtype, tuple(v.shape)) for k, v in big.items()} == {
        "step": (torch.float32, ()),
        "exp_avg": (torch.uint8, (64, 80)),
        "exp_avg_sq": (torch.uint8, (64, 80)),
        "exp_avg_absmax": (torch.float32, (40,)),
        "exp_avg_sq_absmax": (torch.float32, (40,)),
        "master_param": (torch.float32, (64, 80)),
    }
    assert {k: v.dtype for k, v in small.items() if k != "step"} == dict.fromkeys(
        ("exp_avg", "exp_avg_sq", "master_param"), torch.float32
    )  # 300 < min_8bit_size: float32 state
    assert scalar["exp_avg"].dtype == torch.bfloat16  # the group's override
    assert torch.equal(big["master_param"].to(torch.bfloat16), tensors[0].detach())


def test_a_group_without_formats_keeps_float32_and_torch_optim_groups(
    torch: ModuleType, ft: ModuleType
) -> None:
    """A group with state_dtype=None keeps float32 state as torch.optim.Adam does, and
    a constructor without format options keeps exactly torch.optim's param groups."""
    _, tensors = twin_params(torch, "float32")
    opt = ft.Adam([{"params": tensors[:1], "state_dtype": None}, {"params": tensors[1:]}],
                  state_dtype="int8", min_8bit_size=0)  # fmt: skip
    step_torch(torch, opt, tensors, next(grad_stream(SHAPES, "float32")))
    assert opt.state[tensors[0]]["exp_avg"].dtype == torch.float32
    assert "exp_avg_absmax" not in opt.state[tensors[0]]
    assert opt.state[tensors[1]]["exp_avg"].dtype == torch.uint8
    plain = ft.Adam(tensors[:1]).state_dict()["param_groups"]
    assert plain == torch.optim.Adam(tensors[:1]).state_dict()["param_groups"]


def test_bfloat16_params_with_default_options_match_numpy(
    torch: ModuleType, ft: ModuleType
) -> None:
    """Without options, bfloat16 params take fastadam.Adam's defaults: float32 state,
    stochastic rounding into the param (which keeps moving at a tiny lr)."""
    arrays, tensors = twin_params(torch, "bfloat16")
    numpy_opt, torch_opt = fastadam.Adam(arrays, lr=1e-5), ft.Adam(tensors, lr=1e-5)
    grads = grad_stream(SHAPES, "bfloat16")
    for _ in range(3):
        g = next(grads)
        numpy_opt.step(g)
        step_torch(torch, torch_opt, tensors, g)
    assert_same_bits(torch, numpy_opt, arrays, torch_opt)
    assert torch_opt.state[tensors[0]]["exp_avg"].dtype == torch.float32


# ---------------------------------------------------------------------- checkpoints


def _through_bytes(torch: ModuleType, state_dict: dict[str, Any]) -> dict[str, Any]:
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


RELOADS = [
    {"state_dtype": "int8", "block_size": 128, "min_8bit_size": 0},
    {"state_dtype": "bfloat16", "amsgrad": True},
    {"master_weights": True, "state_dtype": "int8", "min_8bit_size": 0},
    {"master_weights": True},
]


@pytest.mark.parametrize("options", RELOADS, ids=["int8", "bf16-amsgrad", "master-int8", "master"])
def test_reload_and_continue_bit_for_bit(
    torch: ModuleType, ft: ModuleType, options: dict[str, Any]
) -> None:
    """3 steps, torch.save/torch.load (weights_only) into a new optimizer over copies of
    the params, 3 more steps: the same bits as 6 steps without the checkpoint."""
    dtype = "bfloat16" if options.get("master_weights") else "float32"
    _, straight = twin_params(torch, dtype)
    _, resumed = twin_params(torch, dtype)
    grads = [next(grad_stream(SHAPES, dtype, seed)) for seed in range(6)]
    opt = ft.Adam(straight, lr=1e-2, **options)
    for g in grads:
        step_torch(torch, opt, straight, g)
    before = ft.Adam(resumed, lr=1e-2, **options)
    for g in grads[:3]:
        step_torch(torch, before, resumed, g)
    saved = _through_bytes(torch, before.state_dict())
    assert {k: saved["param_groups"][0][k] for k in options} == options
    copies = [p.detach().clone().requires_grad_() for p in resumed]
    for p in copies:
        p.grad_dtype = None
    after = ft.Adam(copies, lr=1e-2)  # the options come from the checkpoint
    after.load_state_dict(saved)
    for p, q in zip(resumed, copies, strict=True):
        assert after.state[q].keys() == before.state[p].keys()
        for key, value in before.state[p].items():
            loaded = after.state[q][key]
            assert loaded.dtype == value.dtype, key
            assert torch.equal(loaded, value), key
    for g in grads[3:]:
        step_torch(torch, after, copies, g)
    for p, q in zip(straight, copies, strict=True):
        assert to_array(torch, p).tobytes() == to_array(torch, q).tobytes()
        for key, value in opt.state[p].items():
            loaded = after.state[q][key]
            assert to_array(torch, value).tobytes() == to_array(torch, loaded).tobytes(), key


def _int8_checkpoint(torch: ModuleType, ft: ModuleType) -> tuple[Any, dict[str, Any]]:
    _, tensors = twin_params(torch, "float32")
    opt = ft.Adam(tensors, state_dtype="int8")
    step_torch(torch, opt, tensors, next(grad_stream(SHAPES, "float32")))
    return opt, opt.state_dict()


def _spoil_step(saved: dict[str, Any]) -> None:
    saved["state"][0]["step"] = saved["state"][0]["step"] - 2


LOAD_ERRORS = {
    "codes as float32": (
        lambda s: s["state"][0].update(exp_avg_sq=s["state"][0]["exp_avg_sq"].float()),
        TypeError,
        r'state\[0\]\["exp_avg_sq"\] has dtype float32 but the state format needs uint8',
    ),
    "absmax short": (
        lambda s: s["state"][0].update(exp_avg_absmax=s["state"][0]["exp_avg_absmax"][:-1]),
        ValueError,
        r'state\[0\]\["exp_avg_absmax"\] has shape \(19,\) but its absmax has one per block',
    ),
    "absmax missing": (
        lambda s: s["state"][0].pop("exp_avg_absmax"),
        ValueError,
        r'state\[0\] is missing "exp_avg_absmax"',
    ),
    "codes of another shape": (
        lambda s: s["state"][0].update(exp_avg=s["state"][0]["exp_avg"].reshape(80, 64)),
        ValueError,
        r'state\[0\]\["exp_avg"\] has shape \(80, 64\) but the param has shape \(64, 80\)',
    ),
    "unexpected entry": (
        lambda s: s["state"][0].update(surprise=s["state"][0]["exp_avg"]),
        ValueError,
        r"state\[0\] has unexpected entries \['surprise'\]",
    ),
    "negative step": (_spoil_step, ValueError, r'state\[0\]\["step"\] must be an integer >= 0'),
    "bad option": (
        lambda s: s["param_groups"][0].update(state_dtype="int4"),
        ValueError,
        r"Invalid state_dtype: 'int4'",
    ),
}


@pytest.mark.parametrize("case", list(LOAD_ERRORS))
def test_load_state_dict_checks_and_changes_nothing(
    torch: ModuleType, ft: ModuleType, case: str
) -> None:
    spoil, error, match = LOAD_ERRORS[case]
    opt, saved = _int8_checkpoint(torch, ft)
    before = {p: {k: v.clone() for k, v in s.items()} for p, s in opt.state.items()}
    groups = [dict(g) for g in opt.param_groups]
    spoiled = _through_bytes(torch, saved)
    spoil(spoiled)
    with pytest.raises(error, match=match):
        opt.load_state_dict(spoiled)
    assert opt.param_groups == groups
    assert set(opt.state) == set(before)
    for p, entry in before.items():
        assert set(opt.state[p]) == set(entry)
        for key, value in entry.items():
            assert opt.state[p][key].dtype == value.dtype, key
            assert torch.equal(opt.state[p][key], value), key


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(("options", "error", "match"), BAD_OPTIONS)
@pytest.mark.parametrize("name", ["Adam", "AdamW"])
def test_rejects_bad_format_options(
    torch: ModuleType, ft: ModuleType, name: str, options: dict[str, Any], error: type, match: str
) -> None:
    """From the constructor and from add_param_group, which then adds nothing."""
    p, q = (torch.zeros(3, requires_grad=True) for _ in range(2))
    with pytest.raises(error, match=match):
        getattr(ft, name)([p], **options)
    opt = getattr(ft, name)([p])
    with pytest.raises(error, match=match):
        opt.add_param_group({"params": [q], **options})
    assert len(opt.param_groups) == 1


def test_compressed_state_of_a_float64_param_raises_and_changes_nothing(
    torch: ModuleType, ft: ModuleType
) -> None:
    good = torch.randn(5000, requires_grad=True)
    wide = torch.randn(5000, dtype=torch.float64, requires_grad=True)
    opt = ft.Adam([good, wide], state_dtype="bfloat16")
    for p in (good, wide):
        p.grad = torch.ones_like(p)
    before = [good.detach().clone(), wide.detach().clone()]
    with pytest.raises(TypeError, match="needs float32 or bfloat16 params, got a float64 param"):
        opt.step()
    assert torch.equal(good.detach(), before[0])
    assert torch.equal(wide.detach(), before[1])
    assert len(opt.state) == 0


@pytest.mark.parametrize(("grad_dtype", "message"), [
    ("uint8", "the grad of param 0 of group 0 has dtype torch.uint8 but the param has"),
    ("float16", "the grad of param 0 of group 0 has dtype torch.float16; fastadam.torch"),
])  # fmt: skip
def test_rejects_grads_the_formats_lack(
    torch: ModuleType, ft: ModuleType, grad_dtype: str, message: str
) -> None:
    p = torch.zeros(3, requires_grad=True)
    p.grad_dtype = None
    p.grad = torch.zeros(3, dtype=getattr(torch, grad_dtype))
    with pytest.raises(TypeError, match=message):
        ft.Adam([p], state_dtype="bfloat16").step()
    assert torch.equal(p.detach(), torch.zeros(3))


DTENSOR_SCRIPT = """
import os, torch, torch.distributed as dist
from torch.distributed.tensor import DeviceMesh, Shard, distribute_tensor
import fastadam.torch as ft

dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
mesh = DeviceMesh("cpu", [0])
for options, dtype in [({"state_dtype": "int8"}, torch.float32), ({}, torch.bfloat16)]:
    param = distribute_tensor(torch.ones(8, dtype=dtype), mesh, [Shard(0)]).requires_grad_()
    param.grad = distribute_tensor(torch.ones(8, dtype=dtype), mesh, [Shard(0)])
    opt = ft.Adam([param], **options)
    try:
        opt.step()
    except ValueError as error:
        print(error)
    assert torch.equal(param.full_tensor(), torch.ones(8, dtype=dtype)) and not opt.state
dist.destroy_process_group()
"""


def test_compressed_formats_of_dtensor_params_raise(torch: ModuleType, ft: ModuleType) -> None:
    """Left out: formats on FSDP2 shards (absmax blocks would follow the local shard).
    They raise, naming the param, and change nothing (a 1-process gloo group)."""
    result = subprocess.run(
        [sys.executable, "-c", DTENSOR_SCRIPT], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert all(line.startswith("param 0 of group 0 is a DTensor") for line in lines)


def test_options_changed_mid_training_match_numpy(torch: ModuleType, ft: ModuleType) -> None:
    """state_dtype set after a step: existing state keeps its format, new state (of a
    param without a grad until then) takes the new one, as in fastadam.Adam."""
    arrays, tensors = twin_params(torch, "bfloat16")
    numpy_opt, torch_opt = fastadam.Adam(arrays), ft.Adam(tensors)
    grads = grad_stream(SHAPES, "bfloat16")
    for step in range(3):
        g: list[Any] = next(grads)
        if step == 0:
            g[0] = None
        if step == 1:
            for opt in (numpy_opt, torch_opt):
                opt.param_groups[0].update(state_dtype="int8", min_8bit_size=0)
        numpy_opt.step(g)
        step_torch(torch, torch_opt, tensors, g)
    assert_same_bits(torch, numpy_opt, arrays, torch_opt)
    assert torch_opt.state[tensors[0]]["exp_avg"].dtype == torch.uint8
    assert torch_opt.state[tensors[1]]["exp_avg"].dtype == torch.float32


def test_8bit_state_cannot_change_format(torch: ModuleType, ft: ModuleType) -> None:
    """As in fastadam.Adam: a group changed under 8-bit state raises, naming the param
    and both ways on, and changes nothing."""
    param = torch.nn.Parameter(torch.linspace(-1, 1, 5000))
    param.grad = torch.full((5000,), 0.1)
    opt = ft.Adam([param], state_dtype="int8")
    opt.step()
    before = [param.detach().clone(), *(v.clone() for v in opt.state[param].values())]
    opt.param_groups[0]["state_dtype"] = "bfloat16"
    match = r"the state of param 0 of group 0 holds 8-bit codes .*del optimizer.state\[param\]"
    with pytest.raises(ValueError, match=match):
        opt.step()
    after = [param.detach(), *opt.state[param].values()]
    assert all(torch.equal(a, b) for a, b in zip(after, before, strict=True))
