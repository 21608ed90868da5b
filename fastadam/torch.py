"""PyTorch drop-in: torch.optim's optimizers, stepped by fastadam's fused C kernels.

Change one import and keep the training loop::

    import fastadam.torch
    opt = fastadam.torch.Adam(model.parameters(), lr=1e-3)  # was torch.optim.Adam
    loss.backward()
    opt.step()

Each class is a ``torch.optim.Optimizer`` with its torch.optim twin's constructor
arguments, defaults, param groups, hooks, ``zero_grad``, ``state_dict`` format and
error messages, so lr schedulers, checkpoints and wrappers such as
``ZeroRedundancyOptimizer`` work unchanged. ``step`` updates every param that has a
grad, of all groups, in one fused C call on the tensors' own memory, with the GIL
released: no copies, and nothing is modified unless every tensor passes the checks.

It serves CPU tensors that are dense, contiguous and float32 or float64; any other
param, grad or state tensor (CUDA, sparse, float16, bfloat16, non-contiguous, a
grad of another dtype or shape) raises an error that names it. ``capturable=True``
and ``differentiable=True`` are rejected; ``foreach`` and ``fused`` are accepted and
kept in the param groups (so checkpoints round-trip) but change nothing, as
fastadam's step is always one fused kernel.

Params sharded as ``DTensor`` (FSDP2's ``fully_shard``) are updated shard by shard:
the kernel runs on the local shards (``to_local()``) of param, grad and state, and
the state is made with ``zeros_like(param)``, a DTensor laid out as the param, so
distributed checkpoints see full shapes. Grad and state must then be DTensors on
the param's mesh with its placements.

Lion, which torch.optim lacks, follows the same conventions.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

try:
    import torch
except ImportError as error:  # pragma: no cover - exercised in a subprocess
    raise ImportError(
        'fastadam.torch needs PyTorch, which is not installed: pip install "fastadam[torch]"'
    ) from error

from . import _ext, optimizers

__all__ = ["SGD", "Adagrad", "Adam", "AdamW", "Adamax", "Lion", "Optimizer", "RMSprop"]

Params = Iterable[torch.Tensor] | Iterable[dict[str, Any]] | Iterable[tuple[str, torch.Tensor]]

_DTYPES = (torch.float32, torch.float64)

# torch.optim options fastadam cannot honour, with the reason.
_UNSUPPORTED = {
    "capturable": "it is for CUDA graph capture, and fastadam steps CPU tensors",
    "differentiable": "fastadam's step is a C kernel that autograd cannot differentiate",
}


def _settings(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """A constructor's ``locals()`` less self and params: the defaults torch.optim keeps."""
    return {k: v for k, v in arguments.items() if k not in ("self", "params", "__class__")}


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


def _dtensor_class() -> type | None:
    """The ``DTensor`` class if torch.distributed.tensor is loaded, else None: without
    that module no DTensor can exist, so it is never imported here (and builds of
    torch without distributed support need nothing)."""
    for name in ("torch.distributed.tensor", "torch.distributed._tensor"):  # torch 2.4: _tensor
        cls = getattr(sys.modules.get(name), "DTensor", None)
        if isinstance(cls, type):
            return cls
    return None


def _local(tensor: Any, dtensor: type | None) -> Any:
    """A DTensor's local shard (a view of its memory); any other value as it is."""
    return tensor.to_local() if dtensor is not None and isinstance(tensor, dtensor) else tensor


def _sharding_problem(
    tensor: torch.Tensor, label: str, param: torch.Tensor, dtensor: type | None
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
    tensor: object, label: str, param: torch.Tensor | None, dtensor: type | None = None
) -> Exception | None:
    """Why fastadam cannot update ``tensor`` in place (None if it can); ``param`` is the
    param whose grad or state it is. A DTensor is checked as a whole against ``param``
    (``dtensor`` is the DTensor class), then its local shard as any tensor."""
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
    if tensor.dtype not in _DTYPES:
        return TypeError(
            f"{label} has dtype {tensor.dtype}; fastadam.torch supports torch.float32 and "
            "torch.float64, and never updates a converted copy"
        )
    if param is not None and tensor.dtype != param.dtype:
        return TypeError(f"{label} has dtype {tensor.dtype} but the param has {param.dtype}")
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


class Optimizer(torch.optim.Optimizer):
    """A ``torch.optim.Optimizer`` whose step is one fused fastadam call.

    A subclass names ``_twin``, the NumPy optimizer of :mod:`fastadam.optimizers`
    whose algorithm it takes over: the kernel, the state buffers (``_slots``) and
    the methods that check a group and give a step's coefficients
    (``_coefficients``, ``_active``), so both APIs validate and compute alike.

    Hyperparameters are read from ``self.param_groups`` at every step, state lives
    in ``self.state[param]`` as tensors, and each tensor's memory is looked up
    afresh at every step, so wrappers may re-point ``param.data`` at any time.
    """

    _twin: ClassVar[type[optimizers.Optimizer]]
    _keeps_step: ClassVar[bool] = True  # a "step" count in the state, as torch keeps it
    _kernel: ClassVar[int]
    _slots: ClassVar[tuple[str, ...]]
    _flags: ClassVar[dict[str, bool | None]] = {}  # the constructor's switches and defaults

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._flags = {
            name: p.default
            for name, p in inspect.signature(cls.__init__).parameters.items()
            if isinstance(p.default, bool) or (p.default is None and name != "self")
        }
        twin = cls.__dict__.get("_twin")
        if twin is not None:
            cls._kernel = twin._kernel
            cls._slots = twin._slots
            cls._coefficients = twin._coefficients  # type: ignore[method-assign]
            cls._active = twin._active  # type: ignore[method-assign]

    def _coefficients(self, group: Mapping[str, Any], step: int, fresh: bool) -> tuple[float, ...]:
        """Check ``group`` and return the kernel's coefficients for ``step`` (the twin's)."""
        raise NotImplementedError

    def _active(self, group: Mapping[str, Any]) -> tuple[bool, ...]:
        """Which of ``_slots`` the group's settings use (the twin's)."""
        raise NotImplementedError

    def __init__(self, params: Params, defaults: dict[str, Any]) -> None:
        self._check_group(defaults)
        super().__init__(params, defaults)

    # ------------------------------------------------------------ groups and state

    def _hyperparameters(self, group: Mapping[str, Any]) -> Mapping[str, Any]:
        """The group as the NumPy twin reads it, after rejecting options fastadam lacks."""
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
        hyper = self._hyperparameters(group)
        self._coefficients(hyper, 1, True)
        self._active(hyper)

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
        if self._keeps_step:
            for entry in self.state.values():
                if (
                    isinstance(entry, dict)
                    and "step" in entry
                    and not torch.is_tensor(entry["step"])
                ):
                    entry["step"] = torch.tensor(float(entry["step"]), dtype=_step_dtype())

    def _new_buffer(self, slot: str, param: torch.Tensor) -> torch.Tensor:
        """A state buffer on first use: zeros like the param."""
        return torch.zeros_like(param, memory_format=torch.preserve_format)

    def _new_state(self, param: torch.Tensor, keys: Iterable[str]) -> dict[str, Any]:
        return {
            k: torch.tensor(0.0, dtype=_step_dtype()) if k == "step" else self._new_buffer(k, param)
            for k in keys
        }

    def _missing(self, state: Mapping[str, Any] | None, slots: tuple[str | None, ...]) -> list[str]:
        """The state entries a step needs that ``state`` lacks (or holds as None)."""
        wanted = [s for s in slots if s is not None]
        if self._keeps_step:
            wanted.insert(0, "step")
        if state is None:
            return wanted
        return [k for k in wanted if state.get(k) is None]

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
        with torch.no_grad():
            self._fused_step()
        return loss

    def _fused_step(self) -> None:
        batch = _ext.Batch(self._kernel, ("params", "grads", *self._slots))
        created: list[tuple[torch.Tensor, dict[str, Any]]] = []
        steps: list[torch.Tensor] = []
        written: list[torch.Tensor] = []
        index = -1  # params are numbered across groups, as in state_dict()
        dtensor = _dtensor_class()
        for number, group in enumerate(self.param_groups):
            hyper = self._hyperparameters(group)
            active = self._active(hyper)
            slots = tuple(s if on else None for s, on in zip(self._slots, active, strict=True))
            coef_ids: dict[tuple[int, bool], int] = {}
            for position, param in enumerate(group["params"]):
                index += 1
                grad = param.grad
                if grad is None:
                    continue
                state = self.state.get(param)
                missing = self._missing(state, slots)
                if missing:
                    state = {**(state or {}), **self._new_state(param, missing)}
                    created.append((param, state))
                step = 1
                if self._keeps_step:
                    count = state["step"]
                    if not isinstance(count, torch.Tensor):
                        raise TypeError(
                            f'state "step" of param {position} of group {number} must be a '
                            f"tensor, as torch.optim keeps it, got {type(count).__name__}"
                        )
                    step = int(count) + 1
                    steps.append(count)
                key = (step, bool(missing))
                coef_id = coef_ids.get(key)
                if coef_id is None:
                    coef_id = coef_ids[key] = batch.add_coef(self._coefficients(hyper, *key))
                tensors = (param, grad, *[None if s is None else state[s] for s in slots])
                views = tensors
                if dtensor is not None and isinstance(param, dtensor):
                    # Shards that do not line up could pass the kernel's checks; a DTensor
                    # grad or state of a plain param fails .numpy(), and _rejection says why.
                    self._check_sharding(number, position, tensors, slots, dtensor)
                    views = tuple(None if t is None else _local(t, dtensor) for t in tensors)
                    written += [t for t in tensors[:1] + tensors[2:] if t is not None]
                try:
                    # Zero-copy views, made afresh at every step: memory is never cached.
                    arrays = tuple(None if t is None else t.detach().numpy() for t in views)
                    batch.add(index, arrays, coef_id)
                except (TypeError, ValueError, RuntimeError, AttributeError) as error:
                    problem = self._rejection(number, position, tensors, slots, dtensor)
                    if problem is None:
                        raise
                    raise problem from error
                # The versions of the tensors written (a DTensor's and its local shard's).
                written += [t for t in views[:1] + views[2:] if t is not None]
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
        if written:
            torch.autograd.graph.increment_version(written)

    @staticmethod
    def _labels(number: int, position: int, slots: tuple[str | None, ...]) -> tuple[str, ...]:
        where = f"param {position} of group {number}"
        return (where, f"the grad of {where}", *[f'state "{s}" of {where}' for s in slots])

    def _check_sharding(
        self,
        number: int,
        position: int,
        tensors: tuple[Any, ...],
        slots: tuple[str | None, ...],
        dtensor: type,
    ) -> None:
        """Raise unless grad and state are sharded as the param is (see _sharding_problem)."""
        param = tensors[0]
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
        dtensor: type | None = None,
    ) -> Exception | None:
        """The first tensor of a param's step that fastadam cannot update, as an error naming it."""
        param = tensors[0]
        for label, tensor in zip(self._labels(number, position, slots), tensors, strict=True):
            if tensor is not None:
                problem = _problem(tensor, label, None if tensor is param else param, dtensor)
                if problem is not None:
                    return problem
        return None


# ---------------------------------------------------------------- the optimizers


class Adam(Optimizer):
    """Adam, as ``torch.optim.Adam``; see :class:`fastadam.Adam` for the update.

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

    _twin = optimizers.Adam

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
    ) -> None:
        super().__init__(params, _settings(locals()))


class AdamW(Adam):
    """AdamW, as ``torch.optim.AdamW``: Adam with decoupled weight decay (default 1e-2)."""

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
    ) -> None:
        super().__init__(params, **_settings(locals()), decoupled_weight_decay=True)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:  # as torch.optim.AdamW, even for an Adam checkpoint
            group["decoupled_weight_decay"] = True


class SGD(Optimizer):
    """SGD with momentum, as ``torch.optim.SGD``: the state holds only a
    ``momentum_buffer`` per param, and nothing when momentum is 0."""

    _twin = optimizers.SGD
    _keeps_step = False

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

    _twin = optimizers.RMSprop

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

    _twin = optimizers.Adagrad

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
                self.state[param] = self._new_state(param, ("step", "sum"))

    def _new_buffer(self, slot: str, param: torch.Tensor) -> torch.Tensor:
        value = self.defaults["initial_accumulator_value"]
        return torch.full_like(param, value, memory_format=torch.preserve_format)


class Adamax(Optimizer):
    """Adamax, as ``torch.optim.Adamax``; see :class:`fastadam.Adamax`."""

    _twin = optimizers.Adamax

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


class Lion(Optimizer):
    """Lion (Chen et al., arXiv:2302.06675), which torch.optim lacks; as :class:`fastadam.Lion`.

    The state of a param is ``{"step": 0-d tensor, "exp_avg": tensor like the param}``,
    laid out as torch.optim's Adam keeps its state.
    """

    _twin = optimizers.Lion

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
