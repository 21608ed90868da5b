"""PyTorch drop-in: torch.optim's optimizers, stepped by fastadam's fused C kernels.

Change one import and keep the training loop::

    import fastadam.torch
    opt = fastadam.torch.Adam(model.parameters(), lr=1e-3)  # was torch.optim.Adam
    loss.backward()
    opt.step()

Each class is a ``torch.optim.Optimizer`` with its torch.optim counterpart's constructor
arguments, defaults, param groups, hooks, ``zero_grad``, ``state_dict`` format and
error messages, so lr schedulers, checkpoints and wrappers such as
``ZeroRedundancyOptimizer`` work unchanged. ``step`` updates every param that has a
grad, of all groups, in one fused C call on the tensors' own memory, with the GIL
released (from 4 096 elements): no copies, and nothing is modified unless every
tensor passes the checks.

It serves CPU tensors that are dense, contiguous and float32 or float64; any other
param, grad or state tensor (CUDA, sparse, float16, bfloat16, non-contiguous, a
grad of another dtype or shape) raises an error that names it. ``capturable=True``
and ``differentiable=True`` are rejected; ``foreach`` and ``fused`` are accepted and
kept in the param groups (so checkpoints round-trip) but change nothing, as
fastadam's step is always one fused kernel.

Adam and AdamW also take the compressed formats of :class:`fastadam.Adam`, with
the same options, state entries and results: bfloat16 params and grads, state as
bfloat16 or 8-bit codes (uint8 tensors with float32 absmax), float32 master weights.

Params sharded as ``DTensor`` (FSDP2's ``fully_shard``) are updated shard by shard:
the kernel runs on the local shards (``to_local()``) of param, grad and state, and
the state is made with ``zeros_like(param)``, a DTensor laid out as the param, so
distributed checkpoints see full shapes. Grad and state must then be DTensors on
the param's mesh with its placements.

Lion, which torch.optim lacks, follows the same conventions.
"""

from __future__ import annotations

import functools
import inspect
import math
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

try:
    import torch
    import torch.optim.optimizer as _torch_optimizer
    import torch.utils.dlpack
except ImportError as error:  # pragma: no cover - exercised in a subprocess
    raise ImportError(
        'fastadam.torch needs PyTorch, which is not installed: pip install "fastadam[torch]"'
    ) from error

from . import _ext, _formats, _plan
from ._plan import DEFAULT_FORMAT, FORMAT_DEFAULTS, MASTER
from ._table import ALGORITHMS, Algorithm

__all__ = [
    "SGD",
    "Adagrad",
    "Adam",
    "AdamW",
    "Adamax",
    "Lion",
    "NAdam",
    "Optimizer",
    "RAdam",
    "RMSprop",
    "Rprop",
]

Params = Iterable[torch.Tensor] | Iterable[dict[str, Any]] | Iterable[tuple[str, torch.Tensor]]

_DTYPES = (torch.float32, torch.float64)
# Compressed formats (Adam, AdamW): bfloat16 params and grads mix with float32 ones,
# and state may also be bfloat16 or 8-bit codes (uint8).
_LOW = (torch.float32, torch.bfloat16)
_FORMAT_DTYPES = (*_DTYPES, torch.bfloat16)
_TORCH_DTYPES = {
    np.dtype(np.float32): torch.float32,
    np.dtype(np.float64): torch.float64,
    _formats.BFLOAT16: torch.bfloat16,
    np.dtype(np.uint8): torch.uint8,
}
_NUMPY_DTYPES = {v: k for k, v in _TORCH_DTYPES.items()}
# The boundary reads plain tensors (DTensor shards are unwrapped here) through their pointers.
_PLAIN = (torch.Tensor, torch.nn.Parameter)
_ext.set_tensor_types(_PLAIN, torch.utils.dlpack.to_dlpack, torch.bfloat16)
# torch.optim options fastadam cannot honour, with the reason.
_UNSUPPORTED = {
    "capturable": "it is for CUDA graph capture, and fastadam steps CPU tensors",
    "differentiable": "fastadam's step is a C kernel that autograd cannot differentiate",
}


def _settings(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """A constructor's ``locals()`` less self and params: the defaults torch.optim keeps,
    and the format options that differ from FORMAT_DEFAULTS (as the NumPy classes keep
    them, so a group without compressed formats is a torch.optim group)."""
    settings = {k: v for k, v in arguments.items() if k not in ("self", "params", "__class__")}
    formats = {k: settings.pop(k) for k in FORMAT_DEFAULTS if k in settings}
    return {**settings, **_plan.format_options(**formats)}


def _buffers(state: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The state's buffers: its tensors but the step count."""
    return {k: v for k, v in state.items() if k != "step" and isinstance(v, torch.Tensor)}


def _described(key: str, value: object) -> Any:
    """A saved state entry as the planner's checks read it: a tensor as an array of its
    dtype and shape that takes no memory, a 0-d step count as an int if it is whole."""
    if not isinstance(value, torch.Tensor):
        return value
    if key == "step" and value.dim() == 0 and not value.is_meta and float(value).is_integer():
        return int(value)
    dtype = _NUMPY_DTYPES.get(value.dtype)
    if dtype is None:
        try:
            dtype = np.dtype(str(value.dtype).removeprefix("torch."))
        except TypeError:
            dtype = np.dtype(object)
    return np.broadcast_to(np.zeros((), dtype), tuple(value.shape))


def _stored_as_is(key: str, value: object, param: torch.Tensor) -> bool:
    """Whether a saved state tensor is in a storage format (8-bit codes, their absmax,
    bfloat16 state, float32 master weights): of another dtype than its param."""
    return key != "step" and isinstance(value, torch.Tensor) and value.dtype != param.dtype


def _cast_as_torch(key: str, value: object, param: torch.Tensor) -> object:
    """A saved state entry as torch.optim loads it: a floating tensor of a dtype that no
    storage format of the param keeps is cast to the param's dtype (the step count never)."""
    if key == "step" or not isinstance(value, torch.Tensor) or not value.is_floating_point():
        return value
    kept = (param.dtype,) if param.dtype not in _LOW else _LOW
    return value if value.dtype in kept else value.to(dtype=param.dtype)


def _apart(written_after: list[torch.Tensor], written: list[torch.Tensor]) -> None:
    """Raise unless every tensor written after the kernels ran (step counts, incremented
    in place; NAdam's mu_product) has memory of its own: apart from the params and state
    buffers the step updates, and from each other."""
    if not written_after:
        return
    plain = (torch.Tensor, torch.nn.Parameter)
    seen = {t.untyped_storage().data_ptr() for t in written if type(t) in plain}
    for tensor in written_after:
        if type(tensor) not in plain:
            continue
        where = tensor.untyped_storage().data_ptr()
        if where in seen:
            raise ValueError(
                'a state "step" count or scalar state tensor shares memory with a param or '
                "another state tensor that the step updates; every buffer that is updated "
                "must have memory of its own"
            )
        seen.add(where)


def _scalar_tensor(value: object) -> bool:
    """Whether ``value`` is scalar state as torch.optim keeps it: a dense, floating,
    1-element CPU tensor."""
    return (
        isinstance(value, torch.Tensor)
        and value.device.type == "cpu"
        and value.layout == torch.strided
        and value.is_floating_point()
        and value.numel() == 1
    )


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return (
            f"a {value.layout} {value.dtype} tensor of shape {tuple(value.shape)} on {value.device}"
        )
    return type(value).__name__


def _check_layout(state_dict: object) -> None:
    """The outline torch.optim's load_state_dict reads without checking (else a KeyError or
    an AttributeError deep inside it): the NumPy class's messages."""
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"state_dict must be a dict, got {type(state_dict).__name__}")
    for key in ("state", "param_groups"):
        if key not in state_dict:
            raise ValueError(f'state_dict has no "{key}" entry')
    if not isinstance(state_dict["state"], Mapping):
        raise TypeError(f'state_dict["state"] must be a dict, got {_describe(state_dict["state"])}')
    for index, entry in state_dict["state"].items():
        if not isinstance(entry, Mapping):
            raise TypeError(f"state[{index!r}] must be a dict, got {_describe(entry)}")
        for key, value in entry.items():  # torch.optim would cast it: NotImplementedError
            if isinstance(value, torch.Tensor) and value.is_meta:
                raise ValueError(
                    f"state[{index!r}][{key!r}] is {_describe(value)}: it holds no data"
                )
    groups = state_dict["param_groups"]
    if isinstance(groups, (str, bytes)) or not isinstance(groups, Sequence):
        raise TypeError(f'state_dict["param_groups"] must be a list, got {_describe(groups)}')
    for number, group in enumerate(groups):
        if not isinstance(group, Mapping) or not isinstance(group.get("params"), Sequence):
            raise ValueError(f'param_groups[{number}] must be a dict with a "params" list')


def _step_dtype() -> torch.dtype:
    """The dtype torch.optim keeps a step count in: float32, float64 under that default dtype."""
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


def _has_tensor(value: object) -> bool:
    return isinstance(value, torch.Tensor) or (
        type(value) is tuple and any(isinstance(x, torch.Tensor) for x in value)
    )


def _plain(name: str, value: object) -> object:
    """A hyperparameter with 1-element tensors (torch allows them for lr, betas) as floats."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"Tensor {name} must be 1-element")
        return float(value.item())
    if type(value) is tuple:
        return tuple(_plain(name, x) for x in value)
    return value


def _dtensor_class() -> type[Any] | None:
    """The ``DTensor`` class if torch.distributed.tensor is loaded, else None: without
    that module no DTensor can exist, so it is never imported here (and builds of
    torch without distributed support need nothing)."""
    for name in ("torch.distributed.tensor", "torch.distributed._tensor"):  # torch 2.4: _tensor
        cls = getattr(sys.modules.get(name), "DTensor", None)
        if isinstance(cls, type):
            return cls
    return None


def _local(tensor: Any, dtensor: type[Any] | None) -> Any:
    """A DTensor's local shard (a view of its memory); any other value as it is."""
    return tensor.to_local() if dtensor is not None and isinstance(tensor, dtensor) else tensor


def _unwrapped(tensor: Any, dtensor: type[Any] | None) -> Any:
    """A tensor as the boundary reads it: a DTensor's local shard, another subclass's
    plain tensor of the same memory; any other value as it is (the boundary rejects it)."""
    tensor = _local(tensor, dtensor)
    if type(tensor) in _PLAIN or not isinstance(tensor, torch.Tensor):
        return tensor
    return tensor.as_subclass(torch.Tensor)


def _sharding_problem(
    tensor: torch.Tensor, label: str, param: torch.Tensor, dtensor: type[Any] | None
) -> Exception | None:
    """Why the local shards of ``tensor`` and of its ``param`` do not line up, element
    for element (None if they do, or if neither is a DTensor)."""
    if dtensor is None:
        return None
    sharded, param_sharded = isinstance(tensor, dtensor), isinstance(param, dtensor)
    if sharded != param_sharded:
        what = ("a DTensor", "a plain tensor") if sharded else ("a plain tensor", "a DTensor")
        return TypeError(
            f"{label} is {what[0]} but the param is {what[1]}; fastadam.torch updates "
            "local shards in place, so grad and state must be sharded as the param is"
        )
    if not sharded:
        return None
    mine = (tensor.device_mesh, tuple(tensor.placements))  # type: ignore[attr-defined]
    theirs = (param.device_mesh, tuple(param.placements))  # type: ignore[attr-defined]
    if mine != theirs:
        return ValueError(
            f"{label} has placements {mine[1]} on {mine[0]} but the param has {theirs[1]} "
            f"on {theirs[0]}; fastadam.torch updates local shards in place, so they must "
            "line up (redistribute it first)"
        )
    if tensor.shape != param.shape:
        return ValueError(
            f"{label} has shape {tuple(tensor.shape)} but the param has shape {tuple(param.shape)}"
        )
    return None


def _problem(
    tensor: Any,
    label: str,
    param: torch.Tensor | None,
    dtensor: type[Any] | None = None,
    dtypes: tuple[torch.dtype, ...] = _DTYPES,
) -> Exception | None:
    """Why fastadam cannot update ``tensor`` in place (None if it can); ``param`` is the
    param whose grad or state it is, ``dtypes`` those ``tensor`` may have. A DTensor is
    checked as a whole against ``param`` (``dtensor`` is the DTensor class), then its
    local shard as any tensor."""
    if not isinstance(tensor, torch.Tensor):
        return TypeError(f"{label} must be a torch.Tensor, got {type(tensor).__name__}")
    if param is not None:
        problem = _sharding_problem(tensor, label, param, dtensor)
        if problem is not None:
            return problem
        param = _local(param, dtensor)
    if dtensor is not None and isinstance(tensor, dtensor):
        tensor, label = tensor.to_local(), f"the local shard of {label}"
    if tensor.device.type != "cpu":
        return ValueError(
            f"{label} is on {tensor.device}; fastadam.torch updates CPU tensors in place "
            "(use torch.optim for other devices)"
        )
    if tensor.layout != torch.strided:
        return ValueError(
            f"{label} is {tensor.layout}, not dense; fastadam.torch has no sparse update "
            "(torch.optim.SparseAdam has)"
        )
    if tensor.dtype not in dtypes:
        if param is not None and tensor.dtype in (*_FORMAT_DTYPES, torch.uint8):
            return TypeError(f"{label} has dtype {tensor.dtype} but the param has {param.dtype}")
        return TypeError(
            f"{label} has dtype {tensor.dtype}; fastadam.torch supports torch.float32 and "
            "torch.float64 (Adam and AdamW also torch.bfloat16), and never updates a "
            "converted copy"
        )
    if param is not None and tensor.shape != param.shape:
        return ValueError(
            f"{label} has shape {tuple(tensor.shape)} but the param has shape {tuple(param.shape)}"
        )
    if not tensor.is_contiguous():
        return ValueError(
            f"{label} is not contiguous (shape {tuple(tensor.shape)}, stride "
            f"{tensor.stride()}); fastadam.torch updates memory in place, and the update "
            "of a contiguous copy would be lost"
        )
    return None


def _global_step_hooks() -> bool:
    """Whether step hooks are registered for every optimizer
    (``torch.optim.optimizer.register_optimizer_step_pre_hook`` and ``..._post_hook``);
    True where this torch keeps them elsewhere, so that its own wrapper then runs."""
    pre = getattr(_torch_optimizer, "_global_optimizer_pre_hooks", None)
    post = getattr(_torch_optimizer, "_global_optimizer_post_hooks", None)
    return pre is None or post is None or bool(pre) or bool(post)


class Optimizer(torch.optim.Optimizer):
    """A ``torch.optim.Optimizer`` whose step is one fused fastadam call.

    A subclass names its ``algorithm``, a record of the algorithm table
    (fastadam._table): the kernel, the state buffers, how a group gives a step's
    coefficients and which state it uses; the step planner's policy
    (fastadam._plan) says which state entries a param needs in which dtype, as it
    does for the NumPy classes, so both APIs validate, store and compute alike.

    Hyperparameters are read from ``self.param_groups`` at every step, state lives
    in ``self.state[param]`` as tensors, and each tensor's memory is looked up
    afresh at every step, so wrappers may re-point ``param.data`` at any time.
    """

    algorithm: ClassVar[Algorithm]
    _sharded = False  # set once a DTensor param is seen: its steps unwrap local shards
    _flags: ClassVar[dict[str, bool | None]] = {}  # the constructor's switches and defaults

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._flags = {
            name: p.default
            for name, p in inspect.signature(cls.__init__).parameters.items()
            if (isinstance(p.default, bool) or (p.default is None and name != "self"))
            and name not in FORMAT_DEFAULTS  # a group holds format options that differ
        }

    def __init__(self, params: Params, defaults: dict[str, Any]) -> None:
        self._check_group(defaults)
        self._check_defaults(defaults)
        super().__init__(params, defaults)

    def _check_defaults(self, defaults: Mapping[str, Any]) -> None:
        """The constructor's checks beyond a group's (torch.optim's own, where it has any)."""

    @staticmethod
    def profile_hook_step(func: Callable[..., Any]) -> Callable[..., Any]:
        """torch's wrapper of ``step`` (step pre- and post-hooks, the profiler's record of
        the step) wherever anything would see it: a hook is registered or a profiler
        runs. Otherwise ``step`` is called directly: the profiler's record costs about
        15 us a step, a tenth of a small model's whole step."""
        hooked = torch.optim.Optimizer.profile_hook_step(func)

        @functools.wraps(func)
        def step(self: Optimizer, *args: Any, **kwargs: Any) -> Any:
            if (
                self._optimizer_step_pre_hooks
                or self._optimizer_step_post_hooks
                or _global_step_hooks()
                or torch.autograd._profiler_enabled()
            ):
                return hooked(self, *args, **kwargs)
            return func(self, *args, **kwargs)

        return step

    # ------------------------------------------------------------ groups and state

    def _hyperparameters(self, group: Mapping[str, Any]) -> Mapping[str, Any]:
        """The group as the table reads it, after rejecting options fastadam lacks."""
        for option, reason in _UNSUPPORTED.items():
            if group.get(option):
                raise ValueError(
                    f"fastadam.torch.{type(self).__name__} does not support {option}=True: "
                    f"{reason}; use torch.optim for that"
                )
        if not any(_has_tensor(v) for k, v in group.items() if k != "params"):
            return group
        return {k: v if k == "params" else _plain(k, v) for k, v in group.items()}

    def _check_group(self, group: Mapping[str, Any]) -> None:
        _plan.check_group(self.algorithm, self._hyperparameters(group))

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """As ``torch.optim.Optimizer.add_param_group``, checking the hyperparameters first."""
        if isinstance(param_group, dict):
            self._check_group({**self.defaults, **param_group})
        super().add_param_group(param_group)

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Also run by load_state_dict. As torch.optim's classes do: a switch that a
        # checkpoint lacks takes the constructor's default, and a step count saved
        # as a number becomes a tensor.
        super().__setstate__(state)
        for group in self.param_groups:
            for key, value in self._flags.items():
                group.setdefault(key, value)
        counted = ("step",) if self.algorithm.counts_steps else ()
        for entry in self.state.values():
            for key in (*counted, *self.algorithm.scalars):
                if isinstance(entry, dict) and key in entry and not torch.is_tensor(entry[key]):
                    entry[key] = torch.tensor(float(entry[key]), dtype=_step_dtype())

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """As ``torch.optim.Optimizer.load_state_dict``: floating state tensors are cast to
        the param's dtype. With compressed formats (Adam, AdamW), every param's state is
        first checked as the NumPy class checks it (its entries, step, and each tensor's
        dtype and shape in the format it was saved in), so a mismatch raises before
        anything changes, and the tensors of a storage format (codes, absmax, bfloat16
        state, master weights) are loaded as they are: only floating tensors that no
        format stores (say float64 state of float32 params) are cast, as torch casts."""
        _check_layout(state_dict)
        if not self.algorithm.formats:
            super().load_state_dict(state_dict)
            return
        entries = self._checked_entries(state_dict)
        if entries:
            state = {
                i: entries[i][1] if i in entries else e for i, e in state_dict["state"].items()
            }
            state_dict = {**state_dict, "state": state}
        super().load_state_dict(state_dict)
        for param, _, aside in entries.values():
            self.state[param].update({k: v.to(device=param.device) for k, v in aside.items()})

    def _checked_entries(
        self, state_dict: Mapping[str, Any]
    ) -> dict[Any, tuple[torch.Tensor, dict[str, Any], dict[str, Any]]]:
        """Check each saved state entry against its param and group (see load_state_dict);
        return, by saved param id, the param, the entry for torch.optim to load (cast where
        torch casts) and the tensors to load as they are (of a storage format), for the
        entries that torch.optim alone would load otherwise. A state dict whose groups do
        not line up is left to torch.optim's checks."""
        saved = state_dict.get("param_groups") if isinstance(state_dict, Mapping) else None
        entries = state_dict.get("state") if isinstance(state_dict, Mapping) else None
        if not isinstance(saved, Sequence) or not isinstance(entries, Mapping):
            return {}
        if len(saved) != len(self.param_groups):
            return {}
        owners: dict[Any, tuple[torch.Tensor, dict[str, Any]]] = {}
        for mine, theirs in zip(self.param_groups, saved, strict=True):
            ids = theirs.get("params") if isinstance(theirs, Mapping) else None
            if not isinstance(ids, Sequence) or len(ids) != len(mine["params"]):
                return {}
            group = {**self._flags, **theirs, "params": mine["params"]}
            owners.update((i, (p, group)) for i, p in zip(ids, mine["params"], strict=True))
        checked = {}
        for index, entry in entries.items():
            if index not in owners or not isinstance(entry, Mapping):
                continue
            param, group = owners[index]
            cast = {k: _cast_as_torch(k, v, param) for k, v in entry.items()}
            described = {k: _described(k, v) for k, v in cast.items()}
            _plan.check_entry(self.algorithm, index, described, _described("", param), group)
            aside = {k: v for k, v in cast.items() if _stored_as_is(k, v, param)}
            if aside or any(v is not entry[k] for k, v in cast.items()):
                rest = {k: v for k, v in cast.items() if k not in aside}
                checked[index] = (param, rest, aside)
        return checked

    def _new_buffer(self, slot: str, param: torch.Tensor, group: Mapping[str, Any]) -> torch.Tensor:
        """A state buffer on first use, like the param: the algorithm's initial value under
        the param's group (Rprop's step sizes start at its lr), else zeros."""
        initial = self.algorithm.initial
        if initial is None:
            return torch.zeros_like(param, memory_format=torch.preserve_format)
        largest = torch.finfo(param.dtype).max if param.is_floating_point() else math.inf
        value = _plan.initial_fits(f'state "{slot}"', initial(slot, group), largest, param.dtype)
        return torch.full_like(param, value, memory_format=torch.preserve_format)

    def _new_state(
        self,
        param: torch.Tensor,
        keys: Iterable[str],
        group: Mapping[str, Any],
        wanted: Mapping[str, tuple[np.dtype, tuple]] | None = None,
        view: np.ndarray | None = None,
    ) -> dict[str, Any]:
        """New state entries: a 0-d step count and scalar state, master weights (the param
        in float32), and buffers as the algorithm starts them under the param's ``group``
        (zeros for most), like the param unless ``wanted`` (the planner's ``wanted`` of
        the param's ``view``) gives another dtype or shape."""
        like = None if view is None else (view.dtype, view.shape)
        state: dict[str, Any] = {}
        for key in keys:
            if key == "step":
                state[key] = torch.tensor(0.0, dtype=_step_dtype())
            elif key in self.algorithm.scalars:  # as torch.optim keeps them: 0-d tensors
                state[key] = torch.tensor(self.algorithm.scalars[key], dtype=_step_dtype())
            elif key == MASTER:
                state[key] = param.detach().to(torch.float32, copy=True)
            elif wanted is None or wanted[key] == like:
                state[key] = self._new_buffer(key, param, group)
            else:
                dtype, shape = wanted[key]
                state[key] = torch.zeros(shape, dtype=_TORCH_DTYPES[dtype])
        return state

    # -------------------------------------------------------------------- step

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every param whose ``.grad`` is not None, in one fused call.

        ``closure``, if given, re-evaluates the model (with grad enabled) and
        returns the loss, which ``step`` returns. Every param, grad and state
        tensor is checked before any is modified.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if self._sharded or not self._step_planned():
            with torch.no_grad():
                self._fused_step()
        return loss

    def _step_planned(self) -> bool:
        """The step of every param whose state is complete, as planned before (the usual
        case): the boundary reads each tensor through its data pointer, with the checks it
        gives NumPy arrays. False, with nothing changed, where anything is missing or
        rejected: then _fused_step makes the missing state, or says what is wrong."""
        plans = self.__dict__.get("_plans")
        if plans is None:
            plans = self.__dict__["_plans"] = _plan.Plans(self.algorithm, self._hyperparameters)
        batch = _ext.Batch(self.algorithm.kernel, plans.labels, tensors=True)
        try:
            _plan.queue(batch, plans, self.param_groups, self.state)
            batch.run()
        except (LookupError, TypeError, ValueError, RuntimeError, AttributeError):
            return False
        written = batch.written()  # the run added 1 to the step counts too
        if written:
            torch.autograd.graph.increment_version(written)
        return True

    def _fused_step(self) -> None:
        """The general step: makes the state a param lacks (kept only if the step
        succeeds), unwraps DTensor shards, and names the tensor at fault on any error."""
        batch = _ext.Batch(self.algorithm.kernel, _plan.batch_labels(self.algorithm), tensors=True)
        created: list[tuple[torch.Tensor, dict[str, Any]]] = []
        steps: list[torch.Tensor] = []
        scaled: list[tuple[dict[str, Any], dict[str, torch.Tensor]]] = []
        written: list[torch.Tensor] = []
        index = -1  # params are numbered across groups, as in state_dict()
        dtensor = _dtensor_class()
        for number, group in enumerate(self.param_groups):
            hyper = self._hyperparameters(group)
            slots = _plan.slot_names(self.algorithm, hyper)
            spec, absmax, master = _plan.layout(self.algorithm, hyper, slots)
            required = _ext.active_mask(slots)
            coef_ids: dict[tuple[Any, ...], int] = {}
            wanted: dict[tuple, dict[str, tuple[np.dtype, tuple]]] = {}
            for position, param in enumerate(group["params"]):
                index += 1
                grad = param.grad
                if grad is None:
                    continue
                state = self.state.get(param, {})
                shard = dtensor if dtensor is not None and isinstance(param, dtensor) else None
                if shard is not None:
                    self._sharded = True
                    # Shards that do not line up could pass the kernel's checks; a DTensor
                    # grad or state of a plain param is rejected, and _rejection says why.
                    tensors = (param, grad, *[None if s is None else state.get(s) for s in slots])
                    self._check_sharding(number, position, tensors, slots, shard, hyper)
                try:
                    local, state, buffers_of, missing = self._locals(
                        param, state, hyper, shard, wanted
                    )
                    if missing:
                        created.append((param, state))
                    step = 1
                    if self.algorithm.counts_steps:
                        step = self._step_count(number, position, state["step"]) + 1
                        steps.append(state["step"])
                    scalars: dict[str, float] = {}
                    if self.algorithm.advance is not None:
                        # As torch.optim.NAdam: mu_product *= mu_t in its tensor's dtype,
                        # and the step's coefficients from the product.
                        factors = self.algorithm.advance(hyper, step)
                        where = f"the state of param {position} of group {number}"
                        for k in factors:
                            if not _scalar_tensor(state[k]):
                                raise TypeError(
                                    f'{where}["{k}"] must be a 1-element floating CPU tensor, '
                                    f"as torch.optim keeps it, got {_describe(state[k])}"
                                )
                        self.algorithm.stored_scalars({k: state[k].item() for k in factors}, where)
                        product = {k: state[k] * f for k, f in factors.items()}
                        scaled.append((state, product))
                        scalars = {k: float(v) for k, v in product.items()}
                    key: tuple[Any, ...] = (
                        step,
                        any(s in missing for s in slots),
                        *scalars.values(),
                    )
                    coef_id = coef_ids.get(key)
                    if coef_id is None:
                        coef = self.algorithm.coefficients(hyper, step, key[1], scalars)
                        coef_id = coef_ids[key] = batch.add_coef(coef)
                    main = (local, _unwrapped(grad, shard))
                    buffers = (*main, *[None if s is None else buffers_of[s] for s in slots])
                    if absmax is not None or master is not None:
                        copy = local.dtype == torch.bfloat16
                        buffers = _plan.compressed_buffers(
                            buffers, copy, buffers_of, absmax, master
                        )
                    batch.add(index, buffers, coef_id, spec, step, required)
                except (TypeError, ValueError, RuntimeError, AttributeError) as error:
                    tensors = (param, grad, *[None if s is None else state.get(s) for s in slots])
                    problem = self._rejection(number, position, tensors, slots, dtensor)
                    if problem is None:
                        _plan.check_8bit_state(
                            self.algorithm,
                            _described("", _local(param, shard)),
                            {k: _described(k, _local(v, shard)) for k, v in state.items()},
                            hyper,
                            f"the state of param {position} of group {number}",
                            "del optimizer.state[param]",
                        )
                        raise
                    raise problem from error
                # The tensors written (a DTensor's and its local shard's), for their versions.
                touched = [param, *[state[k] for k in buffers_of]]
                written += touched
                if shard is not None:
                    written += [_local(t, shard) for t in touched]
        _apart([*steps, *[state[k] for state, product in scaled for k in product]], written)
        try:
            batch.run()
        except ValueError as error:
            raise ValueError(
                f"{error} (params are numbered across all param groups, as in state_dict())"
            ) from None
        for param, state in created:
            self.state[param] = state
        if steps:
            torch._foreach_add_(steps, 1)
        for state, product in scaled:
            for name, value in product.items():
                state[name].copy_(value)
        if written:
            torch.autograd.graph.increment_version(written)

    def _locals(
        self,
        param: torch.Tensor,
        state: dict[str, Any],
        hyper: Mapping[str, Any],
        shard: type[Any] | None,
        cache: dict[tuple, dict[str, tuple[np.dtype, tuple]]],
    ) -> tuple[torch.Tensor, dict[str, Any], dict[str, Any], list[str]]:
        """The param and the state buffers its step uses, as the plain tensors the
        boundary reads (a DTensor's local shard), with the entries the state lacks made
        (the planner's ``wanted``, read from stand-ins of the tensors' dtypes and shapes:
        existing state keeps its format). Returns the param, its state (a new dict if
        anything was made), the buffers by state key and the keys made. ``shard``: the
        DTensor class if the param is one; ``cache``: the ``_wanted`` of the group's
        params so far, by the param's dtype and shape and the dtype its state is stored in."""
        local = _unwrapped(param, shard)
        like = _described("", local)
        store = _plan.stored(
            self.algorithm, {k: _described(k, v) for k, v in _buffers(state).items()}, like
        )
        key = (like.dtype, like.shape, store)
        wanted = cache.get(key)
        if wanted is None:
            wanted = cache[key] = _plan.wanted(self.algorithm, like, hyper, store=store)
        missing = [k for k in wanted if state.get(k) is None]
        missing += [k for k in self.algorithm.scalars if state.get(k) is None]
        if self.algorithm.counts_steps and state.get("step") is None:
            missing.insert(0, "step")
        if missing:
            state = {**state, **self._new_state(param, missing, hyper, wanted, like)}
        return local, state, {k: _unwrapped(state[k], shard) for k in wanted}, missing

    @staticmethod
    def _step_count(number: int, position: int, count: object) -> int:
        """The step count of a param's state, which torch.optim keeps as a tensor."""
        if not isinstance(count, torch.Tensor):
            raise TypeError(
                f'state "step" of param {position} of group {number} must be a '
                f"tensor, as torch.optim keeps it, got {type(count).__name__}"
            )
        # The step adds 1 to it after the kernels ran: it must take that in place.
        if (
            count.numel() != 1
            or count.device.type != "cpu"
            or count.layout != torch.strided
            or count.dtype == torch.bool
            or count.is_complex()
        ):
            raise ValueError(
                f'state "step" of param {position} of group {number} must be a 1-element '
                f"real CPU tensor, as torch.optim keeps it, got {_describe(count)}"
            )
        value = count.item()
        if not (math.isfinite(value) and 0 <= value < 2.0**53):
            raise ValueError(
                f'state "step" of param {position} of group {number} must hold a count from '
                f"0 to 2**53, got {value}"
            )
        return int(value)

    @staticmethod
    def _labels(number: int, position: int, slots: tuple[str | None, ...]) -> tuple[str, ...]:
        where = f"param {position} of group {number}"
        return (where, f"the grad of {where}", *[f'state "{s}" of {where}' for s in slots])

    def _dtypes(self, which: int, param: torch.Tensor) -> tuple[torch.dtype, ...]:
        """The dtypes tensor ``which`` of a param's step (0: the param, 1: its grad, then
        its state buffers) may have."""
        if which == 0:
            return _FORMAT_DTYPES if self.algorithm.formats else _DTYPES
        if self.algorithm.formats and param.dtype in _LOW:
            return _LOW if which == 1 else (*_LOW, torch.uint8)
        return (param.dtype,)

    def _check_sharding(
        self,
        number: int,
        position: int,
        tensors: tuple[Any, ...],
        slots: tuple[str | None, ...],
        dtensor: type,
        hyper: Mapping[str, Any],
    ) -> None:
        """Raise unless grad and state are sharded as the param is (see _sharding_problem)
        and the param's state is kept as the param is (no compressed formats)."""
        param = tensors[0]
        fmt = _plan.format_of(self.algorithm, hyper)
        if fmt is not None and (param.dtype == torch.bfloat16 or fmt != DEFAULT_FORMAT):
            raise ValueError(
                f"param {position} of group {number} is a DTensor; fastadam.torch keeps "
                "compressed formats (bfloat16 params, state_dtype, master_weights and the other "
                "format options) only for plain tensors, not for sharded ones"
            )
        for label, tensor in zip(self._labels(number, position, slots), tensors, strict=True):
            if tensor is not None and tensor is not param and isinstance(tensor, torch.Tensor):
                problem = _sharding_problem(tensor, label, param, dtensor)
                if problem is not None:
                    raise problem

    def _rejection(
        self,
        number: int,
        position: int,
        tensors: tuple[Any, ...],
        slots: tuple[str | None, ...],
        dtensor: type[Any] | None = None,
    ) -> Exception | None:
        """The first tensor of a param's step that fastadam cannot update, as an error naming it."""
        param = tensors[0]
        labels = self._labels(number, position, slots)
        for which, (label, tensor) in enumerate(zip(labels, tensors, strict=True)):
            if tensor is not None:
                owner = None if tensor is param else param
                problem = _problem(tensor, label, owner, dtensor, self._dtypes(which, param))
                if problem is not None:
                    return problem
        return None


# ---------------------------------------------------------------- the optimizers


class Adam(Optimizer):
    """Adam, as ``torch.optim.Adam``; see :class:`fastadam.Adam` for the update.

    Also takes, as keywords and per param group, the compressed formats of
    :class:`fastadam.Adam`, with the same meaning, state entries and results (bit for
    bit, stochastic rounding included: it hashes the seed, the param's index across
    all groups, the step and the element's index). Params and grads may be
    ``torch.bfloat16`` (and mix with ``torch.float32``); the state is kept as tensors
    (``torch.bfloat16`` state, ``torch.uint8`` 8-bit codes, float32 ``*_absmax`` and
    ``master_param``), and the options are kept in the param groups, so a
    ``state_dict()`` saved with ``torch.save`` reloads exactly. The options take effect
    for new state: existing state keeps its format (8-bit state its block size too: a
    step under a group that no longer allows them raises). Only plain tensors have
    compressed formats; with DTensor params (FSDP2) they raise ``ValueError``.

    Parameters
    ----------
    params, lr, betas, eps, weight_decay, amsgrad, foreach, maximize, fused, ...
        As in ``torch.optim.Adam`` (``capturable`` and ``differentiable`` must be False).
    state_dtype : {None, "float32", "bfloat16", "int8"}
        How the state is stored. None: in the param's dtype (float32 for bfloat16
        params). "int8": block-wise 8-bit codes with one float32 absmax per
        ``block_size`` elements (``exp_avg_absmax``, ...), for params of at least
        ``min_8bit_size`` elements (smaller ones keep float32 state). Compressed state
        needs float32 or bfloat16 params.
    rounding : {None, "nearest", "stochastic"}
        How bfloat16 and 8-bit stores round; None: stochastic where round-to-nearest
        stalls (bfloat16 or 8-bit state, bfloat16 params without master weights).
    block_size : int
        Elements per absmax of 8-bit state, a power of two from 64 to 2048 (256).
    min_8bit_size : int
        Params with fewer elements keep float32 state under ``state_dtype="int8"`` (4096).
    master_weights : bool
        For bfloat16 params: keep float32 master weights (``master_param``), update
        them, and write their rounding to nearest into the bfloat16 param in the same
        pass.
    seed : int
        The seed of stochastic rounding, in [0, 2**32).

    Examples
    --------
    >>> import torch, fastadam.torch
    >>> w = torch.zeros(3, requires_grad=True)
    >>> opt = fastadam.torch.Adam([w], lr=0.1)
    >>> for _ in range(3):
    ...     opt.zero_grad()
    ...     ((w - 1) ** 2).sum().backward()
    ...     opt.step()
    >>> w.detach().round(decimals=2)
    tensor([0.3000, 0.3000, 0.3000])
    """

    algorithm = ALGORITHMS["Adam"]

    def __init__(
        self,
        params: Params,
        lr: float | torch.Tensor = 1e-3,
        betas: tuple[float | torch.Tensor, float | torch.Tensor] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        decoupled_weight_decay: bool = False,
        state_dtype: str | None = None,
        rounding: str | None = None,
        block_size: int = 256,
        min_8bit_size: int = 4096,
        master_weights: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(params, _settings(locals()))

    def _check_defaults(self, defaults: Mapping[str, Any]) -> None:
        """As torch.optim.Adam, after the values: betas are two floats or two tensors."""
        betas = defaults["betas"]
        if not (
            all(isinstance(b, float) for b in betas)
            or all(isinstance(b, torch.Tensor) for b in betas)
        ):
            raise ValueError("betas must be either both floats or both Tensors")


class AdamW(Adam):
    """AdamW, as ``torch.optim.AdamW``: Adam with decoupled weight decay (default 1e-2).

    Takes Adam's format options (``state_dtype``, ``rounding``, ``block_size``,
    ``min_8bit_size``, ``master_weights``, ``seed``); see :class:`Adam`.

    Examples
    --------
    >>> import torch, fastadam.torch
    >>> w = torch.zeros(5000, dtype=torch.bfloat16, requires_grad=True)
    >>> opt = fastadam.torch.AdamW([w], master_weights=True, state_dtype="int8")
    >>> w.grad = torch.ones_like(w)
    >>> opt.step()
    >>> sorted((k, v.dtype) for k, v in opt.state[w].items())[:3]
    [('exp_avg', torch.uint8), ('exp_avg_absmax', torch.float32), ('exp_avg_sq', torch.uint8)]
    """

    def __init__(
        self,
        params: Params,
        lr: float | torch.Tensor = 1e-3,
        betas: tuple[float | torch.Tensor, float | torch.Tensor] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        state_dtype: str | None = None,
        rounding: str | None = None,
        block_size: int = 256,
        min_8bit_size: int = 4096,
        master_weights: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(params, **_settings(locals()), decoupled_weight_decay=True)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:  # as torch.optim.AdamW, even for an Adam checkpoint
            group["decoupled_weight_decay"] = True


class SGD(Optimizer):
    """SGD with momentum, as ``torch.optim.SGD``: the state holds only a
    ``momentum_buffer`` per param, and nothing when momentum is 0."""

    algorithm = ALGORITHMS["SGD"]

    def __init__(
        self,
        params: Params,
        lr: float | torch.Tensor = 1e-3,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float | torch.Tensor = 0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        super().__init__(params, _settings(locals()))


class RMSprop(Optimizer):
    """RMSprop, as ``torch.optim.RMSprop``; see :class:`fastadam.RMSprop`."""

    algorithm = ALGORITHMS["RMSprop"]

    def __init__(
        self,
        params: Params,
        lr: float | torch.Tensor = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum: float = 0,
        centered: bool = False,
        capturable: bool = False,
        foreach: bool | None = None,
        maximize: bool = False,
        differentiable: bool = False,
    ) -> None:
        super().__init__(params, _settings(locals()))


class Adagrad(Optimizer):
    """Adagrad, as ``torch.optim.Adagrad``: like torch, the state of the constructor's
    params is made at once, and every ``sum`` starts at the constructor's
    ``initial_accumulator_value``."""

    algorithm = ALGORITHMS["Adagrad"]

    def __init__(
        self,
        params: Params,
        lr: float | torch.Tensor = 1e-2,
        lr_decay: float = 0,
        weight_decay: float = 0,
        initial_accumulator_value: float = 0,
        eps: float = 1e-10,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        super().__init__(params, _settings(locals()))
        for group in self.param_groups:
            for param in group["params"]:
                self.state[param] = self._new_state(param, ("step", "sum"), group)

    def _new_buffer(self, slot: str, param: torch.Tensor, group: Mapping[str, Any]) -> torch.Tensor:
        value = _plan.initial_fits(
            f'state "{slot}"',
            self.defaults["initial_accumulator_value"],
            torch.finfo(param.dtype).max if param.is_floating_point() else math.inf,
            param.dtype,
        )
        return torch.full_like(param, value, memory_format=torch.preserve_format)


class Adamax(Optimizer):
    """Adamax, as ``torch.optim.Adamax``; see :class:`fastadam.Adamax`."""

    algorithm = ALGORITHMS["Adamax"]

    def __init__(
        self,
        params: Params,
        lr: float | torch.Tensor = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
        differentiable: bool = False,
        capturable: bool = False,
    ) -> None:
        super().__init__(params, _settings(locals()))


class Rprop(Optimizer):
    """Rprop, as ``torch.optim.Rprop``; see :class:`fastadam.Rprop`. The state of a param
    is ``{"step": 0-d tensor, "prev", "step_size"}``, made at its first step, each step
    size starting at its group's lr then."""

    algorithm = ALGORITHMS["Rprop"]

    def __init__(
        self,
        params: Params,
        lr: float | torch.Tensor = 1e-2,
        etas: tuple[float, float] = (0.5, 1.2),
        step_sizes: tuple[float, float] = (1e-6, 50),
        *,
        capturable: bool = False,
        foreach: bool | None = None,
        maximize: bool = False,
        differentiable: bool = False,
    ) -> None:
        super().__init__(params, _settings(locals()))


class Lion(Optimizer):
    """Lion (Chen et al., arXiv:2302.06675), which torch.optim lacks; as :class:`fastadam.Lion`.

    The state of a param is ``{"step": 0-d tensor, "exp_avg": tensor like the param}``,
    laid out as torch.optim's Adam keeps its state.
    """

    algorithm = ALGORITHMS["Lion"]

    def __init__(
        self,
        params: Params,
        lr: float | torch.Tensor = 1e-4,
        betas: tuple[float, float] = (0.9, 0.99),
        weight_decay: float = 0.0,
        *,
        maximize: bool = False,
    ) -> None:
        super().__init__(params, _settings(locals()))


class NAdam(Optimizer):
    """NAdam, as ``torch.optim.NAdam``; see :class:`fastadam.NAdam`. The state holds
    ``step`` and ``mu_product`` (0-d tensors, as torch.optim keeps them), ``exp_avg``
    and ``exp_avg_sq``."""

    algorithm = ALGORITHMS["NAdam"]

    def __init__(
        self,
        params: Params,
        lr: float | torch.Tensor = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum_decay: float = 4e-3,
        decoupled_weight_decay: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
    ) -> None:
        super().__init__(params, _settings(locals()))


class RAdam(Optimizer):
    """RAdam, as ``torch.optim.RAdam``; see :class:`fastadam.RAdam`."""

    algorithm = ALGORITHMS["RAdam"]

    def __init__(
        self,
        params: Params,
        lr: float | torch.Tensor = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        decoupled_weight_decay: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
    ) -> None:
        super().__init__(params, _settings(locals()))
