"""No Python value passed to a public function crashes the interpreter.

Odd values (None, a number, a list, bytes, a str, a 0-d array, arrays of another
dtype, shape or layout, read-only ones, ...) go into every buffer argument of every
function of ``fastadam.functional``, into every state entry of every optimizer
class after one good step (NumPy and ``fastadam.torch``), and in place of the
grads. Each call must raise TypeError or ValueError and leave every buffer, the
state and the odd value itself bit for bit as they were. The odd values that are
valid inputs are listed in VALID, with the reason; they must succeed.

A crash must fail a test, not end pytest. So the cases run in a worker process,
``python tests/test_crash.py numpy|torch``, which imports once and forks a child
per API (a function or an optimizer setting) that runs all of its cases. If the
child dies (a signal, or a sanitizer's exit code), the case it died in runs again
in a child of its own, to tell a crash of that case from one that earlier cases
prepared, and the cases after it run in a new child. The worker never runs a
kernel itself, so every child forks from a process without OpenMP threads.
"""

from __future__ import annotations

import fnmatch
import inspect
import json
import math
import os
import select
import signal
import subprocess
import sys
import time
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import ml_dtypes
import numpy as np
import pytest

import fastadam
from fastadam import functional
from fastadam._table import ALGORITHMS

SHAPE = (8, 25)  # 2-D, so that Fortran order and transposes are layouts, not shapes
BLOCK = 64  # 8-bit state: 200 elements in 4 blocks, the last one partial
BFLOAT16 = np.dtype(ml_dtypes.bfloat16)
ALLOWED = ("TypeError", "ValueError")
TIMEOUT = 120.0  # seconds for one forked child, and for one worker

# ----------------------------------------------------------------------- settings

# A required keyword of a functional, by name, unless its row in FUNCTIONAL_SETTINGS
# gives one: a function added later with these hyperparameters is tested as it is.
GENERIC_KEYWORDS: dict[str, Any] = {
    "step": 3,
    "lr": 1e-3,
    "beta1": 0.9,
    "beta2": 0.999,
    "eps": 1e-8,
    "alpha": 0.99,
    "mu_product": 0.5,
}
STATE_CODES = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")

# Per function, its settings: name -> (keywords, kinds of buffers). The kinds cover
# the optional buffers the setting uses and any buffer not of the default kind,
# "float32" (see _good_buffer). Across its settings a function must use every buffer
# it takes.
FUNCTIONAL_SETTINGS: dict[str, dict[str, tuple[dict[str, Any], dict[str, str]]]] = {
    "adam": {
        "amsgrad": ({"amsgrad": True}, {"max_exp_avg_sq": "float32"}),
        "8-bit": (
            {"amsgrad": True, "block_size": BLOCK},
            {
                **dict.fromkeys(STATE_CODES, "codes"),
                **{f"{key}_absmax": "absmax" for key in STATE_CODES},
                "param_copy": "copy",
            },
        ),
    },
    "sgd": {"momentum": ({"momentum": 0.9}, {"momentum_buffer": "float32"})},
    "rmsprop": {
        "centered, momentum": (
            {"centered": True, "momentum": 0.9},
            {"grad_avg": "float32", "momentum_buffer": "float32"},
        )
    },
    "adagrad": {"": ({}, {})},
    "adamax": {"": ({}, {})},
    "lion": {"": ({}, {})},
    "rprop": {
        "": (
            {"etaminus": 0.5, "etaplus": 1.2, "step_size_min": 1e-6, "step_size_max": 50.0},
            {},
        )
    },
}

# The optimizer settings, for both fastadam's classes and fastadam.torch's:
# name -> (class name, constructor keywords, param dtype). Each uses every state
# entry its class may have with those options.
CLASS_SETTINGS: dict[str, tuple[str, dict[str, Any], str]] = {
    "Adam": ("Adam", {}, "float32"),
    "AdamW": ("AdamW", {}, "float32"),
    "SGD(momentum)": ("SGD", {"momentum": 0.9}, "float32"),
    "RMSprop(centered, momentum)": ("RMSprop", {"centered": True, "momentum": 0.9}, "float32"),
    "Adagrad": ("Adagrad", {}, "float32"),
    "Adamax": ("Adamax", {}, "float32"),
    "Lion": ("Lion", {}, "float32"),
    "NAdam": ("NAdam", {}, "float32"),
    "RAdam": ("RAdam", {}, "float32"),
    "Rprop": ("Rprop", {}, "float32"),
    "Adam(amsgrad)": ("Adam", {"amsgrad": True}, "float32"),
    "Adam(amsgrad, int8)": (
        "Adam",
        {"amsgrad": True, "state_dtype": "int8", "block_size": BLOCK, "min_8bit_size": 0},
        "float32",
    ),
    "Adam(bfloat16, master_weights)": ("Adam", {"master_weights": True}, "bfloat16"),
}

TORCH_APIS = tuple(f"torch.{setting}" for setting in CLASS_SETTINGS)
CLASS_APIS = (*CLASS_SETTINGS, *TORCH_APIS)
ADAM_CLASSES = ("Adam", "AdamW", "Adam(*", "torch.Adam", "torch.AdamW", "torch.Adam(*")

# The odd values that are valid inputs, so the call must succeed: rows of (APIs,
# targets, values, reason), each an fnmatch pattern. Every other case must raise.
VALID: list[tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], str]] = [
    (("*",), ("grad", "grads"), ("read-only",), "a grad is only read"),
    (("NAdam",), ("mu_product",), ("NumPy float32", "zero"), "numbers in [0, 1]"),
    (
        ("torch.NAdam",),
        ("mu_product",),
        ("None", "float64", "bfloat16", "1-element"),
        "None is made afresh (as torch.optim does); the others are floating scalars",
    ),
    (CLASS_APIS, ("grad",), ("None",), "a None grad skips its param"),
    (("functional.adam(*",), ("grad",), ("bfloat16",), "Adam takes bfloat16 grads"),
    (("functional.adam(amsgrad)",), ("param",), ("bfloat16",), "Adam takes bfloat16 params"),
    (("functional.adam(8-bit)",), ("param_copy",), ("None",), "the param copy is optional"),
    (ADAM_CLASSES, ("grad", "grads"), ("bfloat16", "float32"), "Adam takes either grad dtype"),
    (
        ("functional.adam(8-bit)", "Adam(amsgrad, int8)", "torch.Adam(amsgrad, int8)"),
        ("*_absmax",),
        ("other shape",),
        "an absmax is checked by its number of values, one per block, not by its shape",
    ),
    (
        ("torch.*",),
        ("*",),
        ("None",),
        "fastadam.torch takes a None state entry as absent and makes it afresh, as "
        "torch.optim.SGD does a None momentum_buffer",
    ),
]

# Where another exception than TypeError or ValueError is right: rows of (APIs,
# targets, values, exception type, reason), as in VALID. None so far: where torch
# itself raises (a RuntimeError), fastadam.torch names the tensor in a TypeError or
# ValueError instead.
OTHER_ERRORS: list[tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], str, str]] = []


def _rows(table: list[tuple[Any, ...]], api: str, target: str, value: str) -> list[tuple]:
    """The rows of ``table`` whose patterns match the case."""
    return [
        row
        for row in table
        if all(
            any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)
            for name, patterns in zip((api, target, value), row[:3], strict=True)
        )
    ]


# --------------------------------------------------------------------- odd values


def _dtype(name: str) -> np.dtype:
    return BFLOAT16 if name == "bfloat16" else np.dtype(name)


ODD_DTYPES = ("float16", "float32", "float64", "bfloat16", "uint8", "int32", "complex64", "bool")


def _filled(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Distinct values in (0.5, 1.5) as ``dtype``: valid for every buffer of every algorithm."""
    n = math.prod(shape)
    return np.linspace(0.5, 1.5, n).astype(dtype).reshape(shape)


def _read_only(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def _misaligned(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    raw = np.zeros(math.prod(shape) * dtype.itemsize + 1, np.uint8)
    a = raw[1:].view(dtype).reshape(shape)
    a[...] = _filled(shape, dtype)
    return a


def _other_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """A shape of as many elements."""
    return shape[::-1] if len(shape) > 1 else (*shape, 1)


def _smaller(shape: tuple[int, ...]) -> tuple[int, ...]:
    return (shape[0] - 1, *shape[1:])


def numpy_odd_values(ref: np.ndarray) -> dict[str, Callable[[], object]]:
    """Odd values in place of the buffer ``ref``, by name; each call makes a fresh one."""
    shape, dtype = ref.shape, ref.dtype
    two_d = shape if len(shape) == 2 else (ref.size, 2)
    values: dict[str, Callable[[], object]] = {
        "None": lambda: None,
        "int": lambda: 1,
        "float": lambda: 0.5,
        "list": lambda: ref.astype(np.float64).tolist(),
        "bytes": lambda: ref.tobytes(),
        "bytearray": lambda: bytearray(ref.tobytes()),
        "str": lambda: "exp_avg",
        "0-d": lambda: _filled((), dtype),
        "object": lambda: _filled(shape, np.dtype(object)),
    }
    for name in ODD_DTYPES:
        if _dtype(name) != dtype:
            values[name] = lambda name=name: _filled(shape, _dtype(name))
    values |= {
        "other shape": lambda: _filled(_other_shape(shape), dtype),
        "smaller": lambda: _filled(_smaller(shape), dtype),
        "empty": lambda: _filled((0,), dtype),
        "strided": lambda: _filled((*shape[:-1], 2 * shape[-1]), dtype)[..., ::2],
        "Fortran": lambda: np.asfortranarray(_filled(two_d, dtype)),
        "broadcast": lambda: np.broadcast_to(_filled((1,), dtype), shape),
        "read-only": lambda: _read_only(_filled(shape, dtype)),
    }
    if dtype.itemsize > 1:
        values["misaligned"] = lambda: _misaligned(shape, dtype)
    if dtype in (np.float32, np.float64):
        values["byteswapped"] = lambda: _filled(shape, dtype.newbyteorder())
    return values


# Scalar state (NAdam's mu_product): a number in the NumPy classes, a 1-element tensor
# in fastadam.torch; its odd values are numbers out of range and things of other kinds.
SCALAR_STATE = {name for record in ALGORITHMS.values() for name in record.scalars}


def numpy_scalar_odd_values() -> dict[str, Callable[[], object]]:
    return {
        "None": lambda: None,
        "str": lambda: "0.5",
        "list": lambda: [0.5],
        "bool": lambda: True,
        "array": lambda: np.full(3, 0.5),
        "0-d": lambda: np.array(0.5),
        "nan": lambda: math.nan,
        "inf": lambda: math.inf,
        "above 1": lambda: 1.5,
        "negative": lambda: -0.5,
        "NumPy float32": lambda: np.float32(0.5),
        "zero": lambda: 0,
    }


def torch_scalar_odd_values(torch: ModuleType) -> dict[str, Callable[[], object]]:
    return {
        "None": lambda: None,
        "float": lambda: 0.5,
        "str": lambda: "0.5",
        "list": lambda: [0.5],
        "ndarray": lambda: np.array(0.5),
        "int32": lambda: torch.tensor(0, dtype=torch.int32),
        "float64": lambda: torch.tensor(0.5, dtype=torch.float64),
        "bfloat16": lambda: torch.tensor(0.5, dtype=torch.bfloat16),
        "1-element": lambda: torch.full((1, 1), 0.5),
        "3 elements": lambda: torch.full((3,), 0.5),
        "nan": lambda: torch.tensor(math.nan),
        "above 1": lambda: torch.tensor(1.5),
        "meta": lambda: torch.empty((), device="meta"),
        "sparse": lambda: torch.full((1,), 0.5).to_sparse(),
    }


def torch_odd_values(torch: ModuleType, ref: Any) -> dict[str, Callable[[], object]]:
    """Odd values in place of the tensor ``ref`` (a grad or a state entry), by name."""
    shape, dtype = tuple(ref.shape), ref.dtype

    def filled(shape: tuple[int, ...], dtype: Any = dtype) -> Any:
        n = math.prod(shape)
        return torch.linspace(0.5, 1.5, n, dtype=torch.float64).to(dtype).reshape(shape)

    values: dict[str, Callable[[], object]] = {
        "None": lambda: None,
        "int": lambda: 1,
        "float": lambda: 0.5,
        "list": lambda: ref.double().tolist(),
        "bytes": lambda: bytes(ref.numel()),
        "str": lambda: "exp_avg",
        "ndarray": lambda: _filled(shape, np.dtype(np.float32)),
        "0-d": lambda: filled(()),
    }
    for name in ODD_DTYPES:
        odd = getattr(torch, name)
        if odd != dtype:
            values[name] = lambda odd=odd: filled(shape, odd)
    values |= {
        "other shape": lambda: filled(_other_shape(shape)),
        "smaller": lambda: filled(_smaller(shape)),
        "empty": lambda: filled((0,)),
        "strided": lambda: filled((*shape[:-1], 2 * shape[-1]))[..., ::2],
        "expanded": lambda: filled((1,)).expand(shape),
        "sparse": lambda: filled(shape).to_sparse(),
        "meta": lambda: torch.empty(shape, dtype=dtype, device="meta"),
    }
    if len(shape) == 2:
        values["transposed"] = lambda: filled(shape[::-1]).t()
    return values


# -------------------------------------------------------------------------- cases
#
# A case is (target, value, prepare): prepare() makes everything afresh and returns
# the call to make and the objects it must leave as they were when it raises.

Prepared = tuple[Callable[[], object], dict[str, object]]
Case = tuple[str, str, Callable[[], Prepared]]


def buffer_parameters(fn: Callable[..., object]) -> dict[str, bool]:
    """The ndarray parameters of ``fn``, in order, each with whether it is required."""
    hints = typing.get_type_hints(fn)
    found = {}
    for name, parameter in inspect.signature(fn).parameters.items():
        hint = hints.get(name)
        if hint is np.ndarray or np.ndarray in typing.get_args(hint):
            found[name] = parameter.default is inspect.Parameter.empty
    return found


def functional_settings(name: str) -> dict[str, tuple[dict[str, Any], dict[str, str]]]:
    """The settings of functional ``name``; a function without a row gets one setting
    of generic keywords, which must be enough (checked by functional_setup)."""
    return FUNCTIONAL_SETTINGS.get(name, {"": ({}, {})})


def functional_apis() -> list[str]:
    return [
        f"functional.{name}" + (f"({setting})" if setting else "")
        for name in functional.__all__
        for setting in functional_settings(name)
    ]


def functional_setup(api: str) -> tuple[Callable[..., object], dict[str, Any], dict[str, str]]:
    """The function, its keywords and its buffers by kind, for ``functional.NAME(SETTING)``;
    raises, naming what to add, if the settings table cannot serve the function."""
    name, _, setting = api.removeprefix("functional.").partition("(")
    fn = getattr(functional, name)
    settings = functional_settings(name)
    keywords, kinds = settings[setting.removesuffix(")")]
    buffers = buffer_parameters(fn)
    unused = set(buffers) - {b for b, required in buffers.items() if required}
    for _, setting_kinds in settings.values():
        unused -= set(setting_kinds)
    if unused:
        raise LookupError(
            f"no setting of functional.{name} uses its buffers {sorted(unused)}: "
            "add one to FUNCTIONAL_SETTINGS"
        )
    keywords = dict(keywords)
    for parameter in inspect.signature(fn).parameters.values():
        if parameter.kind is parameter.KEYWORD_ONLY and parameter.default is parameter.empty:
            if parameter.name not in keywords and parameter.name not in GENERIC_KEYWORDS:
                raise LookupError(
                    f"functional.{name} needs keyword {parameter.name!r}: give it in "
                    "FUNCTIONAL_SETTINGS or GENERIC_KEYWORDS"
                )
            if parameter.name not in keywords:
                keywords[parameter.name] = GENERIC_KEYWORDS[parameter.name]
    used = {b: kinds.get(b, "float32") for b, required in buffers.items() if required or b in kinds}
    return fn, keywords, used


def _good_buffer(kind: str, seed: int) -> np.ndarray:
    """A valid buffer of ``kind``: "float32" (a param, grad or state buffer), "codes"
    (uint8 8-bit state), "absmax" (float32, one per block) or "copy" (a bfloat16 param
    copy)."""
    rng = np.random.default_rng(seed)
    if kind == "codes":
        return rng.integers(0, 256, SHAPE, dtype=np.uint8)
    if kind == "absmax":
        return rng.uniform(0.5, 1.5, -(-math.prod(SHAPE) // BLOCK)).astype(np.float32)
    dtype = BFLOAT16 if kind == "copy" else np.dtype(np.float32)
    return rng.uniform(0.5, 1.5, SHAPE).astype(dtype)


def functional_cases(api: str) -> list[Case]:
    fn, keywords, kinds = functional_setup(api)

    def buffers() -> dict[str, object]:
        return {b: _good_buffer(kind, seed) for seed, (b, kind) in enumerate(kinds.items())}

    def prepare(target: str | None = None, make: Callable[[], object] | None = None) -> Prepared:
        given = buffers()
        if target is not None and make is not None:
            given[target] = make()
        return (lambda: fn(**given, **keywords)), given

    # An optional buffer the setting leaves out takes the kind another setting gives it.
    known = {
        b: k for _, others in functional_settings(fn.__name__).values() for b, k in others.items()
    }
    cases: list[Case] = [("", "baseline", prepare)]
    for target in buffer_parameters(fn):
        ref = _good_buffer(kinds.get(target, known.get(target, "float32")), 0)
        for value, make in numpy_odd_values(ref).items():
            if value == "None" and target not in kinds:
                continue  # the default of an optional buffer the setting leaves out
            cases.append((target, value, lambda t=target, m=make: prepare(t, m)))
    return cases


def _numpy_optimizer(setting: str) -> tuple[Any, np.ndarray, np.ndarray]:
    """An optimizer of ``setting`` after one good step, its param and a good grad."""
    name, options, dtype = CLASS_SETTINGS[setting]
    param = _filled(SHAPE, _dtype(dtype))
    grad = _filled(SHAPE, _dtype(dtype))[::-1].copy()
    optimizer = getattr(fastadam, name)([param], **options)
    optimizer.step([grad])
    return optimizer, param, grad


def numpy_class_cases(setting: str) -> list[Case]:
    def prepare(key: str | None = None, make: Callable[[], object] | None = None) -> Prepared:
        optimizer, param, grad = _numpy_optimizer(setting)
        state = optimizer.state[0]
        watched = {"param": param, "grad": grad, "state": state}
        if key is not None and make is not None:
            state[key] = make()
        return (lambda: optimizer.step([grad])), watched

    def prepare_grads(target: str, make: Callable[[], object]) -> Prepared:
        optimizer, param, _ = _numpy_optimizer(setting)
        odd = make()
        watched = {"param": param, "state": optimizer.state[0], target: odd}
        if target == "grads":
            return (lambda: optimizer.step(odd)), watched
        return (lambda: optimizer.step([odd])), watched

    optimizer, _, grad = _numpy_optimizer(setting)
    cases: list[Case] = [("", "baseline", prepare)]
    for key, ref in optimizer.state[0].items():
        if key != "step":  # a count, not a buffer: the kernels get it as a number
            odd = numpy_scalar_odd_values() if key in SCALAR_STATE else numpy_odd_values(ref)
            for value, make in odd.items():
                cases.append((key, value, lambda k=key, m=make: prepare(k, m)))
    for target in ("grad", "grads"):  # as the grad of the only param, or as all grads
        for value, make in numpy_odd_values(grad).items():
            cases.append((target, value, lambda t=target, m=make: prepare_grads(t, m)))
    return cases


def _set_grad(torch: ModuleType, param: Any, grad: object) -> None:
    """Set ``param.grad`` to ``grad`` as far as torch allows: of another dtype with
    ``grad_dtype = None``, of another shape through ``.data``."""
    param.grad_dtype = None
    try:
        param.grad = grad
    except RuntimeError:
        param.grad = torch.zeros_like(param)
        param.grad.data = grad


def _settable(torch: ModuleType, param: Any, grad: object) -> bool:
    """Whether torch lets ``grad`` be the grad of a param like ``param``."""
    try:
        _set_grad(torch, param.detach().clone().requires_grad_(), grad)
    except (TypeError, RuntimeError):
        return False
    return True


def torch_class_cases(setting: str) -> list[Case]:
    import torch

    import fastadam.torch

    name, options, dtype = CLASS_SETTINGS[setting]

    def make_optimizer() -> tuple[Any, Any]:
        param = torch.linspace(0.5, 1.5, math.prod(SHAPE)).to(getattr(torch, dtype))
        param = param.reshape(SHAPE).requires_grad_()
        param.grad = param.detach().flip(0).clone()
        optimizer = getattr(fastadam.torch, name)([param], **options)
        optimizer.step()
        return optimizer, param

    def prepare(key: str | None = None, make: Callable[[], object] | None = None) -> Prepared:
        optimizer, param = make_optimizer()
        state = optimizer.state[param]
        if key is not None and make is not None:
            state[key] = make()
        return optimizer.step, {"param": param, "grad": param.grad, "state": state}

    def prepare_grad(make: Callable[[], object]) -> Prepared:
        optimizer, param = make_optimizer()
        _set_grad(torch, param, make())
        return optimizer.step, {"param": param, "grad": param.grad, "state": optimizer.state[param]}

    optimizer, param = make_optimizer()
    cases: list[Case] = [("", "baseline", prepare)]
    for key, ref in optimizer.state[param].items():
        if key != "step":  # a count, not a buffer: the kernels get it as a number
            odd = (
                torch_scalar_odd_values(torch)
                if key in SCALAR_STATE
                else torch_odd_values(torch, ref)
            )
            for value, make in odd.items():
                cases.append((key, value, lambda k=key, m=make: prepare(k, m)))
    for value, make in torch_odd_values(torch, param.grad).items():
        if _settable(torch, param, make()):  # the others torch refuses itself
            cases.append(("grad", value, lambda m=make: prepare_grad(m)))
    return cases


def cases_of(api: str) -> list[Case]:
    if api.startswith("functional."):
        return functional_cases(api)
    if api.startswith("torch."):
        return torch_class_cases(api.removeprefix("torch."))
    return numpy_class_cases(api)


# ------------------------------------------------------------------ bit-for-bit


def frozen(x: object) -> object:
    """A comparable record of ``x``: its identity, type and every bit it holds."""
    torch = sys.modules.get("torch")
    if isinstance(x, dict):
        return ("dict", id(x), tuple((k, frozen(v)) for k, v in x.items()))
    if isinstance(x, list):
        return ("list", id(x), tuple(frozen(v) for v in x))
    if isinstance(x, np.ndarray):
        content = tuple(map(id, x.flat)) if x.dtype == object else x.tobytes()
        return ("ndarray", id(x), x.dtype.str, x.shape, x.strides, content)
    if torch is not None and isinstance(x, torch.Tensor):
        head = ("tensor", id(x), str(x.dtype), tuple(x.shape), str(x.layout), x.device.type)
        if x.device.type != "cpu":
            return head
        if x.layout != torch.strided:
            return (*head, _bits(torch, x._indices()), _bits(torch, x._values()))
        return (*head, x.stride(), x.storage_offset(), _bits(torch, x))
    if isinstance(x, bytearray):
        return ("bytearray", id(x), bytes(x))
    return (type(x).__name__, repr(x))


def _bits(torch: ModuleType, tensor: Any) -> bytes:
    if tensor.numel() == 0:  # an empty tensor's stride may be 0, which view() refuses
        return b""
    # A fresh tensor has the standard strides, which contiguous() keeps only in general:
    # a tensor with a size-1 dim may stay "contiguous" with an odd stride that view refuses.
    dense = torch.empty(tensor.shape, dtype=tensor.dtype).copy_(tensor.detach())
    return dense.reshape(-1).view(torch.uint8).numpy().tobytes()


def changed(before: dict[str, object], watched: dict[str, object]) -> list[str]:
    """The names of the watched objects that differ from their records ``before``."""
    return [name for name, x in watched.items() if frozen(x) != before[name]]


# ------------------------------------------------------------------------- worker


def run_case(case: Case) -> dict[str, object]:
    """The case's outcome: "ok" or the exception's type, and what the call changed."""
    target, value, prepare = case
    try:
        call, watched = prepare()
    except Exception as error:
        return _record(target, value, "setup failed", _describe(error))
    before = {name: frozen(x) for name, x in watched.items()}
    try:
        call()
    except Exception as error:
        result = _record(target, value, type(error).__name__, str(error)[:300])
    else:
        result = _record(target, value, "ok")
    return {**result, "changed": changed(before, watched)}


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _in_child(work: Callable[[int], None]) -> tuple[list[dict[str, object]], str | None]:
    """Run ``work(fd)`` in a forked child, which writes JSON lines to ``fd``. Returns the
    lines and, if the child did not exit 0, how it ended."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        code = 0
        try:
            work(write)
        except BaseException:
            code = 3
        os._exit(code)
    os.close(write)
    data, deadline, hung = b"", time.monotonic() + TIMEOUT, False
    with os.fdopen(read, "rb", buffering=0) as pipe:
        while select.select([pipe], [], [], max(0.0, deadline - time.monotonic()))[0]:
            chunk = pipe.read(65536)
            if not chunk:
                break
            data += chunk
        else:
            os.kill(pid, signal.SIGKILL)
            hung = True
    _, status = os.waitpid(pid, 0)
    lines = [json.loads(line) for line in data.splitlines()]
    if hung:
        return lines, f"hung for {TIMEOUT:.0f} s"
    if os.WIFSIGNALED(status):
        return lines, f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    code = os.waitstatus_to_exitcode(status)
    return lines, None if code == 0 else f"exit code {code}"


def _write(fd: int, record: object) -> None:
    os.write(fd, (json.dumps(record) + "\n").encode())


def run_api(api: str) -> list[dict[str, object]]:
    """Every case of ``api`` with its outcome, run in a child. If the child dies, the
    case it died in runs again alone, to tell a crash of its own from one after the
    cases before it; then the cases after it run in a new child, and so on."""
    results: list[dict[str, object]] = []
    while True:
        first = len(results)
        lines, death = _in_child(lambda fd, first=first: _run_cases(fd, api, first, None))
        results += [line for line in lines if line["outcome"] is not None]
        if death is None:
            return results
        if not lines or lines[-1]["outcome"] is not None:  # it died outside the cases
            return [*results, _record("", "cases", "crash", death)]
        number = len(results)
        alone, death_alone = _in_child(lambda fd, n=number: _run_cases(fd, api, n, n + 1))
        if death_alone is None:
            death += f" after the cases before it; alone it gave {alone[-1]}"
        results.append({**lines[-1], "outcome": "crash", "message": death_alone or death})


def _record(target: str, value: str, outcome: str | None, message: str = "") -> dict[str, object]:
    return {"target": target, "value": value, "outcome": outcome, "message": message}


def _run_cases(fd: int, api: str, start: int, stop: int | None) -> None:
    """Run cases ``start:stop`` of ``api``, writing each case before and after it runs."""
    try:
        cases = cases_of(api)[start:stop]
    except Exception as error:
        _write(fd, _record("", "cases", "setup failed", _describe(error)))
        return
    for target, value, prepare in cases:
        _write(fd, _record(target, value, None))
        _write(fd, run_case((target, value, prepare)))


def worker(group: str) -> None:
    """Print, as JSON, the results of every API of ``group``: "numpy" (the functionals
    and NumPy classes) or "torch" (fastadam.torch)."""
    if group == "torch":  # import once, before forking: the first optimizer imports more
        import torch

        import fastadam.torch

        fastadam.torch.SGD([torch.zeros(1, requires_grad=True)])  # no step: no kernel here
        apis = list(TORCH_APIS)
    else:
        apis = [*functional_apis(), *CLASS_SETTINGS]
    print(json.dumps({api: run_api(api) for api in apis}))


# -------------------------------------------------------------------------- tests


def _run_worker(group: str) -> dict[str, list[dict[str, object]]]:
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), group],
        capture_output=True,
        text=True,
        env=env,
        timeout=10 * TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, f"the {group} worker failed:\n{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def numpy_results() -> dict[str, list[dict[str, object]]]:
    return _run_worker("numpy")


@pytest.fixture(scope="module")
def torch_results(torch: ModuleType) -> dict[str, list[dict[str, object]]]:
    return _run_worker("torch")


def problems(api: str, results: list[dict[str, object]]) -> Iterator[str]:
    """What is wrong with each case of ``api``, crashes first."""
    crashes, others = [], []
    for r in results:
        case = f"{r['target']}={r['value']}" if r["target"] else str(r["value"])
        outcome, message = r["outcome"], r.get("message", "")
        if outcome == "crash":
            crashes.append(f"{case}: CRASHED the interpreter ({message})")
            continue
        if outcome == "setup failed":
            others.append(f"{case}: could not be set up: {message}")
            continue
        valid = r["value"] == "baseline" or _rows(VALID, api, r["target"], r["value"])
        other = tuple(row[3] for row in _rows(OTHER_ERRORS, api, r["target"], r["value"]))
        expected = ("ok",) if valid else ALLOWED + other
        if outcome not in expected:
            got = f"{outcome} ({message})" if outcome != "ok" else "no error"
            modified = f", modified {', '.join(r['changed'])}" if r.get("changed") else ""
            others.append(f"{case}: {got}{modified}; expected {' or '.join(expected)}")
        elif outcome != "ok" and r["changed"]:
            others.append(f"{case}: {outcome}, but modified {', '.join(r['changed'])}")
    yield from crashes
    yield from others


def check(api: str, results: dict[str, list[dict[str, object]]]) -> None:
    assert api in results, f"the worker did not run {api}"
    found = list(problems(api, results[api]))
    assert not found, f"{len(found)} of {len(results[api])} cases of {api}:\n" + "\n".join(found)


@pytest.mark.parametrize("api", functional_apis())
def test_functional(numpy_results: dict[str, list[dict[str, object]]], api: str) -> None:
    """Odd values in every buffer argument of every function of fastadam.functional."""
    check(api, numpy_results)


@pytest.mark.parametrize("api", list(CLASS_SETTINGS))
def test_numpy_class(numpy_results: dict[str, list[dict[str, object]]], api: str) -> None:
    """Odd values in every state entry of a fastadam optimizer, and as its grads."""
    check(api, numpy_results)


@pytest.mark.parametrize("api", TORCH_APIS)
def test_torch_class(torch_results: dict[str, list[dict[str, object]]], api: str) -> None:
    """Odd values in every state entry of a fastadam.torch optimizer, and as .grad."""
    check(api, torch_results)


if __name__ == "__main__":
    worker(sys.argv[1])
