"""The fuzz targets: one function of the fuzzer's bytes per public entry point.

Each target builds a call (or a short sequence of calls) from the bytes with
``oracle.Source`` and judges every call with ``oracle.call`` (only documented
exceptions, nothing changed after one) and, on tame input, ``oracle.assert_twin``
(one step equals the float64 twin's). See tests/fuzz/oracle.py for the oracle and
tests/fuzz/run.py for how to run them.
"""

from __future__ import annotations

import copy
import inspect
import os
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np
import twin
from oracle import (
    Finding,
    Source,
    assert_twin,
    call,
    good_array,
    is_tame_array,
    is_tame_hyperparameters,
    mutate_hyperparameters,
    odd_array,
    shape_of,
    tame_hyperparameters,
    twin_keywords,
)
from test_crash import buffer_parameters

import fastadam
from fastadam import functional

FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
ADAM_FORMATS: dict[str, tuple[Any, ...]] = {
    "state_dtype": (None, "float32", "bfloat16", "int8"),
    "rounding": (None, "nearest", "stochastic"),
    "block_size": (64, 128, 256, 2048),
    "min_8bit_size": (0, 4096),
    "master_weights": (False, True),
    "seed": (0, 1),
}


# -------------------------------------------------------------------- functional


def _functional_before(name: str, hp: dict, buffers: dict, step: Any, mu: Any) -> dict:
    """The twin's view of a functional call's inputs (float64 copies)."""
    before: dict[str, Any] = {"step": step - 1 if name in twin.STEPPED else 0}
    for slot in ("param", "grad", *twin.active_slots(name, hp)):
        before[slot] = twin.f64(buffers[twin.FUNCTIONAL_BUFFER.get(slot, slot)])
    if name == "sgd" and step == 1 and "momentum_buffer" in before:
        before["momentum_buffer"] = None  # set to the gradient on the first step
    if name in twin.SCALAR_STATE:
        before[twin.SCALAR_STATE[name]] = mu
    return before


def functional_target(data: bytes) -> None:
    """One call of a function of fastadam.functional with fuzzed arguments."""
    source = Source(data)
    name = source.pick(functional.__all__)
    fn = getattr(functional, name)
    tame = source.chance(50)
    hp = tame_hyperparameters(source, name)
    if not tame:
        mutate_hyperparameters(source, hp, list(hp))
    try:
        kwargs = twin.functional_kwargs(name, hp)
        active = set(twin.active_slots(name, hp))
    except (TypeError, ValueError, AttributeError):
        kwargs, active, tame = dict(hp), set(), False
    step: Any = source.int(1, 1000)
    if not tame and source.chance(30):
        step = source.odd_scalar() if source.bool() else source.any_int()
    if name in twin.STEPPED:
        kwargs["step"] = step
    mu: Any = source.uniform(0.01, 1.0)
    if not tame and source.chance(30):
        mu = source.odd_scalar() if source.bool() else source.any_float()
    if name in twin.SCALAR_STATE:
        kwargs[twin.SCALAR_STATE[name]] = mu
    kwargs.pop("initial_accumulator_value", None)
    dtype = source.pick(FLOATS)
    shape = shape_of(source)
    buffers: dict[str, Any] = {}
    pool: list[Any] = []
    slots = {v: k for k, v in twin.FUNCTIONAL_BUFFER.items()}
    for arg, required in buffer_parameters(fn).items():
        slot = slots.get(arg, arg)
        if required or slot in active:
            if tame or source.chance(75):
                buffers[arg] = good_array(source, shape, dtype, slot)
            else:
                buffers[arg] = odd_array(source, shape, dtype, pool)
        elif not tame and source.chance(15):
            buffers[arg] = odd_array(source, shape, dtype, pool)
        else:
            continue
        pool.append(buffers[arg])
    if not tame and source.chance(10):
        kwargs[source.pick(["block_size", "rounding", "seed", "bogus"])] = source.odd_scalar()
    tame = (
        tame
        and is_tame_hyperparameters(hp)
        and all(is_tame_array(b, slots.get(a, a), dtype) for a, b in buffers.items())
    )
    if tame:
        before = _functional_before(name, hp, buffers, step, mu)
    ok, result = call(lambda: fn(**buffers, **kwargs), {**buffers, **kwargs})
    if tame and not ok:
        raise Finding(f"functional.{name} rejected tame input: {result!r}")
    if ok and tame:
        after = {
            slot: buffers[twin.FUNCTIONAL_BUFFER.get(slot, slot)]
            for slot in ("param", *twin.active_slots(name, hp))
        }
        if name in twin.SCALAR_STATE:
            after[twin.SCALAR_STATE[name]] = result
        assert_twin(name, hp, before, after)


# ---------------------------------------------------------------- NumPy classes


def _shape(x: object) -> tuple[int, ...]:
    """The shape of an array, else (2,): the shape of odd values made in its place."""
    shape = getattr(x, "shape", None)
    return tuple(shape) if isinstance(shape, tuple) else (2,)


def _classes(module: Any) -> dict[str, tuple[Any, str]]:
    """Class name -> (class of ``module``, twin algorithm)."""
    names = {"Adam": "adam", "AdamW": "adam", "SGD": "sgd", "RMSprop": "rmsprop"}
    names |= {"Adagrad": "adagrad", "Adamax": "adamax", "Lion": "lion"}
    names |= {"NAdam": "nadam", "RAdam": "radam"}
    return {cls: (getattr(module, cls), algo) for cls, algo in names.items()}


def _constructor_hp(source: Source, cls: Any, algo: str, tame: bool) -> dict[str, Any]:
    """Keywords for ``cls``: a twin case, mutated unless ``tame``; Adam's format options."""
    accepted = inspect.signature(cls.__init__).parameters
    hp = {k: v for k, v in tame_hyperparameters(source, algo).items() if k in accepted}
    if "amsgrad" in accepted and source.chance(30):
        for key, choices in ADAM_FORMATS.items():
            if source.bool():
                hp[key] = source.pick(choices)
    if not tame:
        mutate_hyperparameters(source, hp, [k for k in accepted if k not in ("self", "params")])
    return hp


def _group_hp(algo: str, group: dict[str, Any]) -> dict[str, Any] | None:
    """The twin's keywords for a group, or None where the twin does not apply."""
    # By identity and type: a value may be an array, whose == has no truth value.
    plain = [group.get(k) for k in ("state_dtype", "master_weights")]
    if any(not (v is None or v is False or (type(v) is int and v == 0)) for v in plain):
        return None
    hp = twin_keywords(algo, group)
    return hp if is_tame_hyperparameters(hp) else None


def _tame_pair(hp: dict | None, p: object, g: object) -> bool:
    """Whether a param and its grad are tame, in a group the twin applies to."""
    if hp is None or not isinstance(p, np.ndarray) or not isinstance(g, np.ndarray):
        return False
    tame = is_tame_array(p, "param", p.dtype) and is_tame_array(g, "grad", p.dtype)
    return tame and g.shape == p.shape


def _tame_state(algo: str, hp: dict, param: np.ndarray, state: dict | None) -> dict | None:
    """The twin's view of a param's state before a step, or None if it is not tame."""
    if state is None:
        fresh = twin.init_state(algo, param, hp)
        return {k: v for k, v in fresh.items() if k != "scale"}
    before: dict[str, Any] = {"step": state.get("step")}
    if type(before["step"]) is not int:
        return None
    for slot in twin.state_slots(algo, hp):
        value = state.get(slot)
        if slot in twin.SCALAR_STATE.values():
            if type(value) is not float or not 0.01 <= value <= 1.0:
                return None
            before[slot] = value
        elif is_tame_array(value, slot, param.dtype) and value.shape == param.shape:
            before[slot] = twin.f64(value)
        else:
            return None
    if set(state) != {"step", *twin.state_slots(algo, hp)}:
        return None
    return before


class Session:
    """One NumPy optimizer with its params, and the operations a fuzz input applies."""

    def __init__(self, source: Source, optimizer: Any, algo: str, params: list) -> None:
        self.source, self.optimizer, self.algo, self.params = source, optimizer, algo, params

    def watched(self, **extra: object) -> dict[str, object]:
        opt = self.optimizer
        return {"params": self.params, "state": opt.state, "groups": opt.param_groups, **extra}

    def grads(self) -> Any:
        source = self.source
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        grads: list[Any] = []
        for p in params:
            if source.chance(10):
                grads.append(None)
            elif source.chance(80) and isinstance(p, np.ndarray):
                grads.append(good_array(source, p.shape, p.dtype, "grad"))
            else:
                grads.append(odd_array(source, _shape(p), np.dtype(np.float32), [*params, *grads]))
        if source.chance(5):
            return grads[:-1] if source.bool() else (grads[0] if grads else None)
        return grads

    def step(self) -> None:
        source, opt = self.source, self.optimizer
        grads = self.grads()
        guard: Any = source.bool() if source.chance(90) else source.odd_scalar()
        plan = []
        count = sum(len(g["params"]) for g in opt.param_groups)
        if isinstance(grads, list) and len(grads) == count:
            index = 0
            for group in opt.param_groups:
                hp = _group_hp(self.algo, group)
                for p in group["params"]:
                    g = grads[index]
                    if _tame_pair(hp, p, g):
                        before = _tame_state(self.algo, hp, p, opt.state.get(index))
                        if before is not None:
                            before |= {"param": twin.f64(p), "grad": twin.f64(g)}
                            plan.append((hp, before, index, p))
                    index += 1
        ok, applied = call(
            lambda: opt.step(grads, skip_if_nonfinite=guard), self.watched(grads=grads)
        )
        if ok and applied:
            for hp, before, index, p in plan:
                assert_twin(self.algo, hp, before, {"param": p, **opt.state[index]})

    def mutate_state(self) -> None:
        source, state = self.source, self.optimizer.state
        if not state:
            return
        entry = state[source.pick(sorted(state))]
        key = source.pick([*entry, "bogus"])
        if source.chance(15):
            entry.pop(key, None)
            return
        ref = entry.get(key)
        shape, dtype = _shape(ref), getattr(ref, "dtype", np.dtype(np.float32))
        if key == "step" and source.bool():
            entry[key] = source.any_int() if source.bool() else source.odd_scalar()
        elif isinstance(ref, float) and source.bool():
            entry[key] = source.any_float()
        else:
            entry[key] = odd_array(source, shape, dtype, [*self.params, *entry.values()])

    def mutate_group(self) -> None:
        source, groups = self.source, self.optimizer.param_groups
        group = source.pick(groups)
        keys = [k for k in group if k != "params"]
        if source.chance(20):
            params = list(group["params"])
            if params and source.bool():
                params[source.int(0, len(params) - 1)] = odd_array(
                    source, (2,), np.dtype(np.float32), self.params
                )
            else:
                params.append(good_array(source, shape_of(source), source.pick(FLOATS), "param"))
            group["params"] = params
            return
        mutate_hyperparameters(source, group, keys)

    def reload(self) -> None:
        source, opt = self.source, self.optimizer
        saved = opt.state_dict()
        mutated = copy.deepcopy(saved) if source.chance(70) else saved
        for _ in range(source.int(0, 3)):
            _mutate_nested(source, mutated, self.params)
        call(lambda: opt.load_state_dict(mutated), self.watched(saved=mutated))

    def add_group(self) -> None:
        source, opt = self.source, self.optimizer
        group: dict[str, Any] = {
            "params": [good_array(source, shape_of(source), source.pick(FLOATS), "param")]
        }
        if source.bool():
            group["params"].append(source.pick(self.params))  # already in a group
        if source.bool():
            mutate_hyperparameters(source, group, list(opt.defaults))
        new = group if source.chance(90) else source.odd_scalar()
        ok, _ = call(lambda: opt.add_param_group(new), self.watched(group=new))
        if ok:
            self.params.extend(p for p in group["params"] if not any(p is q for q in self.params))

    def run(self, count: int) -> None:
        ops: list[Callable[[], None]] = [
            self.step,
            self.step,
            self.mutate_state,
            self.mutate_group,
            self.reload,
            self.add_group,
        ]
        for _ in range(count):
            self.source.pick(ops)()


def _mutate_nested(source: Source, tree: Any, arrays: list) -> None:
    """Change one thing somewhere in a nested dict/list: a value, a key, a removal."""
    node = tree
    for _ in range(source.int(0, 4)):
        children = list(node.items()) if isinstance(node, dict) else list(enumerate(node))
        children = [(k, v) for k, v in children if isinstance(v, (dict, list))]
        if not children:
            break
        node = source.pick(children)[1]
    if isinstance(node, dict) and node:
        key = source.pick(list(node))
        choice = source.int(0, 3)
        if choice == 0:
            del node[key]
        elif choice == 1:
            new = source.odd_scalar() if source.bool() else str(key)
            node[new if getattr(new, "__hash__", None) else str(new)] = node.pop(key)
        else:
            ref = node[key]
            node[key] = (
                odd_array(source, _shape(ref), np.dtype(np.float32), arrays)
                if isinstance(ref, np.ndarray) or source.bool()
                else source.odd_scalar()
            )
    elif isinstance(node, list) and node:
        i = source.int(0, len(node) - 1)
        if source.bool():
            del node[i]
        else:
            node[i] = source.odd_scalar()


def _params(source: Source, dtypes: tuple) -> list[list[np.ndarray]]:
    return [
        [
            good_array(source, shape_of(source), source.pick(dtypes), "param")
            for _ in range(source.int(1, 2))
        ]
        for _ in range(source.int(1, 3))
    ]


def optimizer_target(data: bytes) -> None:
    """A fastadam optimizer built, stepped and mutated by a sequence of fuzzed operations."""
    source = Source(data)
    _, (cls, algo) = source.pick(sorted(_classes(fastadam).items()))
    tame = source.chance(50)
    hp = _constructor_hp(source, cls, algo, tame)
    groups = _params(source, FLOATS)
    flat = [p for g in groups for p in g]
    spec: Any = [{"params": g} for g in groups] if len(groups) > 1 or source.bool() else flat
    if not tame and source.chance(20):
        spec = (
            odd_array(source, (2,), np.dtype(np.float32), flat)
            if source.bool()
            else [*flat, flat[0]]
        )
    ok, optimizer = call(lambda: cls(spec, **hp), {"params": flat, "hp": hp})
    if not ok:
        return
    Session(source, optimizer, algo, flat).run(source.int(1, 6))


# ------------------------------------------------------------------ checkpoints


def checkpoint_optimizers() -> list[Callable[[], Any]]:
    """Makers of the optimizers whose checkpoints the checkpoint target mutates."""

    def params() -> list[dict[str, Any]]:
        rng = np.random.default_rng(0)
        return [
            {"params": [rng.standard_normal((5, 7)).astype(np.float32)]},
            {"params": [rng.standard_normal(300).astype(np.float32)], "lr": 0.01},
        ]

    return [
        lambda: fastadam.Adam(params(), amsgrad=True),
        lambda: fastadam.AdamW(params(), state_dtype="int8", block_size=64, min_8bit_size=0),
        lambda: fastadam.SGD(params(), momentum=0.9),
        lambda: fastadam.NAdam(params()),
        lambda: fastadam.RMSprop(params(), centered=True, momentum=0.5),
        lambda: fastadam.Adagrad(params()),
    ]


def checkpoint_bytes(make: Callable[[], Any]) -> bytes:
    """The checkpoint of an optimizer from ``make`` after two steps."""
    optimizer = make()
    params = [p for g in optimizer.param_groups for p in g["params"]]
    for _ in range(2):
        optimizer.step([np.full_like(p, 0.25) for p in params])
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "opt.ckpt")
        fastadam.save(optimizer, path)
        with open(path, "rb") as f:
            return f.read()


def frame(header: bytes, payload: bytes, version: int = 1) -> bytes:
    """A checkpoint file around ``header`` and ``payload``: preamble, padding, checksum."""
    import hashlib

    from fastadam import checkpoint

    start = -(-(checkpoint._PREAMBLE.size + len(header)) // 64) * 64
    head = checkpoint._PREAMBLE.pack(checkpoint.MAGIC, version, len(header), len(payload))
    body = head + header + bytes(start - len(head) - len(header)) + payload
    return body + hashlib.sha256(body).digest()


def unframe(data: bytes) -> tuple[bytes, bytes]:
    """The header and payload of a checkpoint file (``frame``'s inverse)."""
    from fastadam import checkpoint

    _, _, header_len, payload_len = checkpoint._PREAMBLE.unpack_from(data)
    start = -(-(checkpoint._PREAMBLE.size + header_len) // 64) * 64
    header = data[checkpoint._PREAMBLE.size : checkpoint._PREAMBLE.size + header_len]
    return header, data[start : start + payload_len]


def checkpoint_target(data: bytes) -> None:
    """fastadam.load of mutated bytes into a fresh optimizer.

    Byte 0 picks the optimizer and the mode: raw (the rest is the file) or framed
    (bytes 1-2 the header length, then the header JSON and the payload, wrapped in a
    valid preamble and checksum, so that mutations reach the header's decoding).
    """
    makers = checkpoint_optimizers()
    if len(data) < 3:
        return
    make = makers[data[0] % len(makers)]
    if data[0] & 0x80:
        split = int.from_bytes(data[1:3], "little")
        version = 1 if data[0] & 0x40 == 0 else 1 + data[0] % 3
        body = frame(data[3 : 3 + split], data[3 + split :], version)
    else:
        body = data[1:]
    optimizer = make()
    params = [p for g in optimizer.param_groups for p in g["params"]]
    with tempfile.NamedTemporaryFile(dir=_TMP, suffix=".ckpt", delete=False) as f:
        f.write(body)
    try:
        watched = {"params": params, "state": optimizer.state, "groups": optimizer.param_groups}
        ok, _ = call(lambda: fastadam.load(optimizer, f.name), watched)
    finally:
        os.unlink(f.name)
    if ok:
        grads = [np.full_like(p, 0.5) if isinstance(p, np.ndarray) else None for p in params]
        call(lambda: optimizer.step(grads), watched)
        call(lambda: optimizer.load_state_dict(optimizer.state_dict()), watched)


_TMP = "/dev/shm" if os.path.isdir("/dev/shm") else None


# ------------------------------------------------------------------ fastadam.torch

TORCH_DTYPES = ("float32", "float64", "bfloat16", "float16", "int32", "uint8", "complex64", "bool")


def _odd_tensor(source: Source, torch: Any, ref: Any, pool: list) -> Any:
    """A tensor like ``ref`` in another dtype, shape, stride, layout or device; or a non-tensor."""
    shape = tuple(ref.shape) if ref is not None else (3,)
    dtype = ref.dtype if ref is not None else torch.float32
    kind = source.int(0, 11)
    base = torch.from_numpy(np.random.default_rng(source.seed()).uniform(-2, 2, shape))
    if kind == 0:
        return base.to(getattr(torch, source.pick(TORCH_DTYPES)))
    if kind == 1:
        return torch.from_numpy(np.ones(shape_of(source))).to(dtype)
    if kind == 2 and len(shape) >= 1:
        big = torch.zeros((*shape[:-1], 2 * shape[-1]), dtype=dtype)
        return big[..., ::2]
    if kind == 3 and len(shape) == 2:
        return base.to(dtype).t().contiguous().t()
    if kind == 4:
        return torch.ones(1, dtype=dtype).expand(shape) if shape else base.to(dtype)
    if kind == 5:
        return base.to(dtype).to_sparse() if dtype != torch.bfloat16 else base.to_sparse()
    if kind == 6:
        return torch.empty(shape, dtype=dtype, device="meta")
    if kind == 7 and pool:
        other = source.pick(pool)
        return other.detach() if hasattr(other, "detach") and source.bool() else other
    if kind == 8:
        return base.to(dtype).numpy() if dtype in (torch.float32, torch.float64) else None
    if kind == 9:
        return source.odd_scalar()
    if kind == 10:
        t = base.to(dtype)
        return t.flip(0) if t.dim() else t
    return base.to(dtype)


class TorchSession(Session):
    """A fastadam.torch optimizer, its params and the operations of one input."""

    def __init__(self, source: Source, torch: Any, optimizer: Any, algo: str, params: list) -> None:
        super().__init__(source, optimizer, algo, params)
        self.torch = torch
        self.grad_log: list = []

    def watched(self, **extra: object) -> dict[str, object]:
        opt = self.optimizer
        grads = [p.grad for p in self.params]
        state = {i: opt.state[p] for i, p in enumerate(self.params) if p in opt.state}
        return {
            "params": self.params,
            "grads": grads,
            "state": state,
            "groups": opt.param_groups,
            **extra,
        }

    def set_grads(self) -> None:
        from test_crash import _set_grad

        source, torch = self.source, self.torch
        for p in self.params:
            if source.chance(10):
                p.grad = None
            elif source.chance(80):
                lo, hi = -2.0, 2.0
                g = np.random.default_rng(source.seed()).uniform(lo, hi, tuple(p.shape))
                p.grad = torch.from_numpy(g).to(p.dtype)
            else:
                odd = _odd_tensor(source, torch, p.detach(), self.params)
                try:
                    _set_grad(torch, p, odd)
                except (TypeError, RuntimeError):  # torch itself refuses it
                    p.grad = None

    def step(self) -> None:
        opt = self.optimizer
        self.set_grads()
        plan = []
        for group in opt.param_groups:
            hp = _group_hp(self.algo, group)
            for p in group["params"]:
                g = p.grad
                if (
                    hp is None
                    or g is None
                    or not self.torch.is_tensor(g)
                    or g.layout != self.torch.strided
                ):
                    continue
                if g.device.type != "cpu" or not g.is_contiguous() or g.dtype != p.dtype:
                    continue
                if p.dtype not in (self.torch.float32, self.torch.float64):
                    continue
                param, grad = p.detach().numpy(), g.detach().numpy()
                if not (is_tame_array(param, "param") and is_tame_array(grad, "grad")):
                    continue
                before = self._tame_state(hp, param, opt.state.get(p))
                if before is not None:
                    plan.append(
                        (hp, before | {"param": twin.f64(param), "grad": twin.f64(grad)}, p)
                    )
        ok, _ = call(opt.step, self.watched())
        if ok:
            for hp, before, p in plan:
                after = {k: _numpy(v) for k, v in opt.state[p].items()}
                for key in twin.SCALAR_STATE.values():
                    if key in after:
                        after[key] = float(after[key])
                # torch.optim keeps a scalar state (NAdam's mu_product) as a float32 tensor,
                # so float64 params see its float32 rounding: float32's tolerance.
                f32 = np.dtype(np.float32)
                tol = twin.TOLERANCE[f32] if self.algo in twin.SCALAR_STATE else None
                after["param"] = p.detach().numpy()
                assert_twin(self.algo, hp, before, after, tol, scalar_dtype=f32)

    def _tame_state(self, hp: dict, param: np.ndarray, state: dict | None) -> dict | None:
        if not state:
            return _tame_state(self.algo, hp, param, None)
        plain = {k: _numpy(v) for k, v in state.items()}
        for key in ("step", *twin.SCALAR_STATE.values()):  # 0-d float32 tensors in torch.optim
            value = plain.get(key)
            if isinstance(value, np.ndarray) and value.shape == () and value.dtype == np.float32:
                plain[key] = float(value)
        if not (isinstance(plain.get("step"), float) and plain["step"].is_integer()):
            return None
        plain["step"] = int(plain["step"])
        return _tame_state(self.algo, hp, param, plain)

    def mutate_state(self) -> None:
        source, opt = self.source, self.optimizer
        stateful = [p for p in self.params if p in opt.state]
        if not stateful:
            return
        entry = opt.state[source.pick(stateful)]
        key = source.pick([*entry, "bogus"])
        if source.chance(15):
            entry.pop(key, None)
            return
        ref = entry.get(key)
        entry[key] = _odd_tensor(
            source, self.torch, ref if self.torch.is_tensor(ref) else None, self.params
        )

    def mutate_group(self) -> None:
        source, group = self.source, self.source.pick(self.optimizer.param_groups)
        mutate_hyperparameters(source, group, [k for k in group if k != "params"])

    def reload(self) -> None:
        source, opt = self.source, self.optimizer
        state_dict = opt.state_dict()
        try:
            saved = copy.deepcopy(state_dict)
        except RuntimeError:  # torch's own refusal: a state tensor here is a param whose
            return  # grad has another shape (set through .data), which deepcopy copies too
        except TypeError:  # a value torch.optim's load_state_dict made uncopyable: it loads
            return  # a np.matrix state entry as np.matrix(generator), as torch.optim.Adam does
        for _ in range(source.int(0, 3)):
            _mutate_nested(source, saved, [])
        call(lambda: opt.load_state_dict(saved), self.watched(saved=saved))

    def run(self, count: int) -> None:
        ops = [self.step, self.step, self.mutate_state, self.mutate_group, self.reload]
        for _ in range(count):
            self.source.pick(ops)()


def _numpy(x: Any) -> Any:
    """A CPU float tensor as a NumPy array (other things as they are)."""
    torch = __import__("torch")
    floating = torch.is_tensor(x) and x.dtype in (torch.float32, torch.float64)
    if floating and x.layout == torch.strided and x.device.type == "cpu":
        return x.detach().numpy()
    return x


def torch_target(data: bytes) -> None:
    """A fastadam.torch optimizer on CPU tensors, stepped and mutated by fuzzed operations."""
    import torch

    import fastadam.torch as fatorch

    source = Source(data)
    cls_name, (cls, algo) = source.pick(sorted(_classes(fatorch).items()))
    tame = source.chance(50)
    hp = _constructor_hp(source, cls, algo, tame)
    dtypes = (
        (torch.float32, torch.float64, torch.bfloat16)
        if cls_name.startswith("Adam")
        else (torch.float32, torch.float64)
    )
    params = []
    for _ in range(source.int(1, 3)):
        values = np.random.default_rng(source.seed()).uniform(-2, 2, shape_of(source))
        params.append(torch.from_numpy(values).to(source.pick(dtypes)).requires_grad_())
    ok, optimizer = call(lambda: cls(params, **hp), {"params": params, "hp": hp})
    if not ok:
        return
    TorchSession(source, torch, optimizer, algo, params).run(source.int(1, 6))


# ------------------------------------------------------------ fastadam.distributed


def distributed_target(data: bytes) -> None:
    """shard_bounds' arithmetic and ShardedOptimizer's checks on one process (COMM_SELF)."""
    from fastadam import distributed

    source = Source(data)
    if source.bool():
        args = [source.int(0, 10**7), source.int(1, 64), 0, source.pick([1, 16, 64, 256])]
        args[2] = source.int(0, args[1] - 1)
        valid = True
        if source.chance(30):
            args[source.int(0, 3)] = source.any_int() if source.bool() else source.odd_scalar()
            valid = False
        ok, bounds = call(lambda: distributed.shard_bounds(*args), {"args": args})
        if ok and valid:
            n, world, rank, alignment = args
            shards = [distributed.shard_bounds(n, world, r, alignment) for r in range(world)]
            ends = [0, *(hi for _, hi in shards)]
            if [lo for lo, _ in shards] != ends[:-1] or ends[-1] != n or bounds != shards[rank]:
                raise Finding(f"shard_bounds{tuple(args)}: shards {shards} do not tile [0, {n})")
            if any(lo % alignment and lo != n for lo, _ in shards):
                raise Finding(f"shard_bounds{tuple(args)}: a shard starts off alignment: {shards}")
        return
    from mpi4py import MPI

    dtype = source.pick(FLOATS)
    n = source.int(0, 300)
    params: Any = good_array(source, (n,), dtype, "param")
    if source.chance(20):
        params = odd_array(source, (n,), dtype, [])
    cls = source.pick([distributed.ShardedAdam, distributed.ShardedAdamW])
    hp = {
        k: v
        for k, v in tame_hyperparameters(source, "adam").items()
        if k in ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize")
    }
    if source.chance(30):
        mutate_hyperparameters(source, hp, list(hp))
    ok, opt = call(lambda: cls(params, comm=MPI.COMM_SELF, **hp), {"params": params, "hp": hp})
    if not ok:
        return
    for _ in range(source.int(1, 4)):
        watched = {"params": params, "state": opt.optimizer.state, "groups": opt.param_groups}
        choice = source.int(0, 2)
        if choice == 0:
            grad = (
                good_array(source, (n,), dtype, "grad")
                if source.chance(70)
                else odd_array(source, (n,), dtype, [params])
            )
            call(lambda grad=grad: opt.step(grad), {**watched, "grad": grad})
        elif choice == 1:
            saved = copy.deepcopy(opt.state_dict())
            for _ in range(source.int(0, 3)):
                _mutate_nested(source, saved, [params])
            call(lambda saved=saved: opt.load_state_dict(saved), {**watched, "saved": saved})
        else:
            odd = source.odd_scalar()
            call(lambda odd=odd: opt.load_state_dict(odd), {**watched, "odd": odd})


TARGETS: dict[str, Callable[[bytes], None]] = {
    "functional": functional_target,
    "optimizer": optimizer_target,
    "checkpoint": checkpoint_target,
    "torch": torch_target,
    "distributed": distributed_target,
}
