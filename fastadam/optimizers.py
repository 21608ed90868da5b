"""Stateful optimizers over NumPy arrays, shaped like torch.optim.

An optimizer owns param groups (lists of arrays with per-group
hyperparameters) and per-param state, created on first use in the param's
dtype. ``step(grads)`` validates every group and buffer, then updates all
params in one fused C call; after an exception nothing has changed.

A new algorithm is a subclass that names its kernel and state buffers and
turns a group's hyperparameters into the kernel's coefficients.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from . import _algorithms, _ext
from . import _validate as check

__all__ = ["SGD", "Adagrad", "Adam", "AdamW", "Adamax", "Lion", "Optimizer", "RMSprop"]

ParamGroup = dict[str, Any]
Params = Iterable[np.ndarray] | Iterable[Mapping[str, Any]]


class Optimizer:
    """Base class: param groups, state, state_dict and the fused step.

    Subclasses set ``_kernel`` and ``_slots`` (state buffers in kernel order) and
    implement ``_coefficients`` and ``_active``.
    """

    _kernel: ClassVar[int]
    _slots: ClassVar[tuple[str, ...]]

    def __init__(self, params: Params, defaults: Mapping[str, Any]) -> None:
        self.defaults: dict[str, Any] = dict(defaults)
        self._check_group(self.defaults)
        self.param_groups: list[ParamGroup] = []
        self.state: dict[int, dict[str, Any]] = {}
        self._lock = threading.RLock()
        if isinstance(params, np.ndarray):
            raise TypeError(
                "params must be a sequence of arrays or of param-group dicts, got one array; "
                "wrap it in a list"
            )
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], Mapping):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    # ------------------------------------------------------------ subclass hooks

    def _coefficients(self, group: ParamGroup, step: int, fresh: bool) -> tuple[float, ...]:
        """Check ``group`` and return the kernel's coefficients for ``step``.

        ``fresh`` is true when the param's state buffers were created by this step.
        """
        raise NotImplementedError

    def _active(self, group: ParamGroup) -> tuple[bool, ...]:
        """Which of ``_slots`` the group's settings use."""
        return (True,) * len(self._slots)

    def _new_buffer(self, slot: str, param: np.ndarray, group: ParamGroup) -> np.ndarray:
        """A state buffer on first use: zeros like the param."""
        return np.zeros_like(param)

    # ------------------------------------------------------------------ groups

    def _check_group(self, group: ParamGroup) -> None:
        self._coefficients(group, 1, True)
        self._active(group)

    def add_param_group(self, param_group: Mapping[str, Any]) -> None:
        """Add a group ``{"params": [...], **hyperparameters}``; missing ones take the defaults."""
        if not isinstance(param_group, Mapping) or "params" not in param_group:
            raise TypeError('a param group must be a dict with a "params" entry')
        params = param_group["params"]
        params = [params] if isinstance(params, np.ndarray) else list(params)
        group: ParamGroup = {**self.defaults, **param_group, "params": params}
        self._check_group(group)
        with self._lock:
            everything = [p for g in self.param_groups for p in g["params"]] + params
            batch = _ext.Batch(self._kernel, ("params", "grads"))
            none = batch.add_coef(())
            for index, param in enumerate(everything):
                batch.add(index, (param, None), none)
            try:
                batch.check()
            except ValueError as error:
                raise ValueError(
                    f"{error}; a param may appear only once across all param groups"
                ) from None
            self.param_groups.append(group)

    def _align(self, grads: Sequence[np.ndarray | None] | np.ndarray) -> list[np.ndarray | None]:
        count = sum(len(g["params"]) for g in self.param_groups)
        if isinstance(grads, np.ndarray):
            if count != 1:
                raise TypeError(
                    f"grads must be a sequence with one entry per param ({count} params); "
                    "a single array is accepted only with one param"
                )
            return [grads]
        if type(grads) is not list and (
            isinstance(grads, (str, bytes)) or not isinstance(grads, Sequence)
        ):
            raise TypeError(f"grads must be a sequence of arrays, got {type(grads).__name__}")
        if len(grads) != count:
            raise ValueError(f"grads has {len(grads)} entries but the optimizer has {count} params")
        return list(grads)

    # -------------------------------------------------------------------- step

    def step(
        self,
        grads: Sequence[np.ndarray | None] | np.ndarray,
        *,
        skip_if_nonfinite: bool = False,
    ) -> bool:
        """Update every param whose grad is not None, in place, in one fused call.

        Parameters
        ----------
        grads : sequence of numpy.ndarray or None, or numpy.ndarray
            Aligned with the params in group order; None skips that param (its
            state and step count stay as they are). A bare array is accepted
            when there is one param.
        skip_if_nonfinite : bool
            The mixed-precision guard: if any gradient holds a NaN or an
            infinity, skip the whole step, changing nothing. It costs one extra
            read of the gradients. Without it, a non-finite gradient element
            propagates into that element's param and state, as in torch.

        Returns
        -------
        bool
            Whether the step was applied (False only when skipped by the guard).

        Everything is checked before anything is modified; state is created on
        first use and kept only if the step succeeds.
        """
        guard = check.flag("skip_if_nonfinite", skip_if_nonfinite)
        aligned = self._align(grads)
        with self._lock:
            try:
                batch, stepped = self._queue(aligned)
                created: dict[int, dict[str, Any]] = {}
            except _ext.StateMissing:
                batch, stepped, created = self._queue_creating(aligned)
            if guard:
                batch.check()
                if not batch.grads_finite():
                    return False
            batch.run()
            self.state.update(created)
            for state in stepped:
                state["step"] += 1
        return True

    def _labels(self) -> tuple[str, ...]:
        return ("params", "grads", *self._slots)

    def _slot_names(self, group: ParamGroup) -> tuple[str | None, ...]:
        active = self._active(group)
        return tuple(s if on else None for s, on in zip(self._slots, active, strict=True))

    def _queue(self, grads: list[np.ndarray | None]) -> tuple[_ext.Batch, list[dict[str, Any]]]:
        """The fast path, when every param with a grad has its state: C walks the groups."""
        batch = _ext.Batch(self._kernel, self._labels())
        stepped: list[dict[str, Any]] = []
        first = 0
        for group in self.param_groups:
            params = group["params"]
            coef_ids: dict[int, int] = {}

            def coef_id(step: int, group: ParamGroup = group, ids: dict = coef_ids) -> int:
                if step not in ids:
                    ids[step] = batch.add_coef(self._coefficients(group, step, False))
                return ids[step]

            group_grads = grads[first : first + len(params)]
            slots = self._slot_names(group)
            stepped += batch.add_group(first, params, group_grads, self.state, slots, coef_id)
            first += len(params)
        return batch, stepped

    def _queue_creating(
        self, grads: list[np.ndarray | None]
    ) -> tuple[_ext.Batch, list[dict[str, Any]], dict[int, dict[str, Any]]]:
        """The general path: new state buffers are made for the step, kept only if it succeeds."""
        batch = _ext.Batch(self._kernel, self._labels())
        stepped: list[dict[str, Any]] = []
        created: dict[int, dict[str, Any]] = {}
        index = 0
        for group in self.param_groups:
            slots = self._slot_names(group)
            coef_ids: dict[tuple[int, bool], int] = {}
            for param in group["params"]:
                grad = grads[index]
                if grad is not None:
                    state = self.state.get(index)
                    if state is None:
                        state = created[index] = {"step": 0}
                    missing = [s for s in slots if s is not None and s not in state]
                    if missing:
                        fresh = {s: self._new_buffer(s, param, group) for s in missing}
                        state = created[index] = {**state, **fresh}
                    key = (state["step"] + 1, bool(missing))
                    if key not in coef_ids:
                        coef_ids[key] = batch.add_coef(self._coefficients(group, *key))
                    buffers = tuple(None if s is None else state[s] for s in slots)
                    batch.add(index, (param, grad, *buffers), coef_ids[key])
                    stepped.append(state)
                index += 1
        return batch, stepped, created

    # -------------------------------------------------------------- state dict

    def state_dict(self) -> dict[str, Any]:
        """``{"state": {index: {...}}, "param_groups": [...]}`` as torch.optim lays it out.

        Params are numbered across groups in order; arrays are copies.
        """
        with self._lock:
            groups = []
            first = 0
            for group in self.param_groups:
                packed = {k: v for k, v in group.items() if k != "params"}
                packed["params"] = list(range(first, first + len(group["params"])))
                first += len(group["params"])
                groups.append(packed)
            state = {
                i: {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in s.items()}
                for i, s in self.state.items()
            }
            return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Load a dict from ``state_dict``; a mismatch raises and changes nothing."""
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict must be a dict, got {type(state_dict).__name__}")
        for key in ("state", "param_groups"):
            if key not in state_dict:
                raise ValueError(f'state_dict has no "{key}" entry')
        with self._lock:
            groups = self._load_groups(state_dict["param_groups"])
            state = self._load_state(state_dict["state"], groups)
            self.param_groups = groups
            self.state = state

    def _load_groups(self, saved: object) -> list[ParamGroup]:
        if not isinstance(saved, Sequence) or len(saved) != len(self.param_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        groups = []
        for number, (mine, theirs) in enumerate(zip(self.param_groups, saved, strict=True)):
            if not isinstance(theirs, Mapping) or "params" not in theirs:
                raise ValueError(f'param_groups[{number}] must be a dict with a "params" entry')
            if len(theirs["params"]) != len(mine["params"]):
                raise ValueError(
                    f"loaded state dict contains a parameter group that doesn't match the size "
                    f"of optimizer's group (param_groups[{number}] has {len(theirs['params'])} "
                    f"params, the optimizer's has {len(mine['params'])})"
                )
            group = {**{k: v for k, v in theirs.items() if k != "params"}, "params": mine["params"]}
            self._check_group(group)
            groups.append(group)
        return groups

    def _load_state(self, saved: object, groups: list[ParamGroup]) -> dict[int, dict[str, Any]]:
        if not isinstance(saved, Mapping):
            raise TypeError(f'state_dict["state"] must be a dict, got {type(saved).__name__}')
        owner = [(p, g) for g in groups for p in g["params"]]
        state: dict[int, dict[str, Any]] = {}
        for index, entry in saved.items():
            if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
                raise TypeError(f"state keys must be param indices, got {index!r}")
            if not 0 <= index < len(owner):
                raise ValueError(
                    f"state has an entry for param {index}, but there are {len(owner)} params"
                )
            param, group = owner[index]
            if not isinstance(entry, Mapping):
                raise TypeError(f"state[{index}] must be a dict, got {type(entry).__name__}")
            state[int(index)] = self._load_entry(index, entry, param, group)
        return state

    def _load_entry(
        self, index: int, entry: Mapping[str, Any], param: np.ndarray, group: ParamGroup
    ) -> dict[str, Any]:
        wanted = {s for s, on in zip(self._slots, self._active(group), strict=True) if on}
        kept = {s for s in self._slots if s in entry}  # buffers of features now switched off
        unknown = set(entry) - set(self._slots) - {"step"}
        if unknown:
            raise ValueError(f"state[{index}] has unexpected entries {sorted(unknown)}")
        if "step" not in entry:
            raise ValueError(f'state[{index}] is missing "step"')
        step = entry["step"]
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
            raise ValueError(f'state[{index}]["step"] must be an integer >= 0, got {step!r}')
        loaded: dict[str, Any] = {"step": int(step)}
        for slot in sorted(wanted | kept):
            if slot not in entry:
                raise ValueError(f'state[{index}] is missing "{slot}"')
            value = entry[slot]
            if not isinstance(value, np.ndarray):
                raise TypeError(
                    f'state[{index}]["{slot}"] must be a numpy.ndarray, got {type(value).__name__}'
                )
            if value.dtype != param.dtype:
                raise TypeError(
                    f'state[{index}]["{slot}"] has dtype {value.dtype} '
                    f"but the param has {param.dtype}"
                )
            if value.shape != param.shape:
                raise ValueError(
                    f'state[{index}]["{slot}"] has shape {value.shape} but the param has '
                    f"shape {param.shape}"
                )
            loaded[slot] = np.array(value, order="C", copy=True)
        return loaded

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for number, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {number}")
            lines += [f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params"]
        return "\n".join([*lines, ")"])


class Adam(Optimizer):
    """Adam (Kingma & Ba, arXiv:1412.6980), as ``torch.optim.Adam``.

    Parameters
    ----------
    params : sequence of numpy.ndarray or of dict
        Arrays (float32/float64, C-contiguous, writable) or param groups
        ``{"params": [...], "lr": ...}`` with per-group hyperparameters.
    lr, betas, eps, weight_decay, amsgrad, maximize, decoupled_weight_decay
        As in ``torch.optim.Adam``; see :func:`fastadam.functional.adam`.

    Examples
    --------
    >>> import numpy as np, fastadam
    >>> w = np.zeros(3, np.float32)
    >>> opt = fastadam.Adam([w], lr=0.1)
    >>> for _ in range(3):
    ...     opt.step([2 * (w - 1)])        # gradient of |w - 1|^2
    >>> w.round(2)
    array([0.3, 0.3, 0.3], dtype=float32)
    """

    _kernel = _ext.ADAM
    _slots = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        decoupled_weight_decay: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": amsgrad,
            "maximize": maximize,
            "decoupled_weight_decay": decoupled_weight_decay,
        }
        super().__init__(params, defaults)

    def _coefficients(self, group: ParamGroup, step: int, fresh: bool) -> tuple[float, ...]:
        beta1, beta2 = check.betas(group["betas"])
        return _algorithms.adam(
            step=step,
            lr=group["lr"],
            beta1=beta1,
            beta2=beta2,
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            decoupled_weight_decay=group["decoupled_weight_decay"],
            maximize=group["maximize"],
        )

    def _active(self, group: ParamGroup) -> tuple[bool, ...]:
        return (True, True, check.flag("amsgrad", group["amsgrad"]))


class AdamW(Adam):
    """AdamW (Loshchilov & Hutter, arXiv:1711.05101): Adam with decoupled weight decay.

    As ``torch.optim.AdamW``: the param is multiplied by ``1 - lr * weight_decay``
    before the Adam update; default ``weight_decay=1e-2``.
    """

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        super().__init__(
            params,
            lr,
            betas,
            eps,
            weight_decay,
            amsgrad,
            maximize=maximize,
            decoupled_weight_decay=True,
        )


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, as ``torch.optim.SGD``.

    See :func:`fastadam.functional.sgd` for the update; the momentum buffer is
    set to the gradient on its first step.
    """

    _kernel = _ext.SGD
    _slots = ("momentum_buffer",)

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _coefficients(self, group: ParamGroup, step: int, fresh: bool) -> tuple[float, ...]:
        return _algorithms.sgd(
            lr=group["lr"],
            momentum=group["momentum"],
            dampening=group["dampening"],
            weight_decay=group["weight_decay"],
            nesterov=group["nesterov"],
            maximize=group["maximize"],
            first_step=fresh,
        )

    def _active(self, group: ParamGroup) -> tuple[bool, ...]:
        return (check.momentum(group["momentum"]) != 0,)


class RMSprop(Optimizer):
    """RMSprop, as ``torch.optim.RMSprop`` (see :func:`fastadam.functional.rmsprop`)."""

    _kernel = _ext.RMSPROP
    _slots = ("square_avg", "grad_avg", "momentum_buffer")

    def __init__(
        self,
        params: Params,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "alpha": alpha,
            "eps": eps,
            "weight_decay": weight_decay,
            "momentum": momentum,
            "centered": centered,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _coefficients(self, group: ParamGroup, step: int, fresh: bool) -> tuple[float, ...]:
        return _algorithms.rmsprop(
            lr=group["lr"],
            alpha=group["alpha"],
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            momentum=group["momentum"],
            centered=group["centered"],
            maximize=group["maximize"],
        )

    def _active(self, group: ParamGroup) -> tuple[bool, ...]:
        centered = check.flag("centered", group["centered"])
        return (True, centered, check.momentum(group["momentum"]) > 0)


class Adagrad(Optimizer):
    """Adagrad, as ``torch.optim.Adagrad`` (see :func:`fastadam.functional.adagrad`)."""

    _kernel = _ext.ADAGRAD
    _slots = ("sum",)

    def __init__(
        self,
        params: Params,
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "lr_decay": lr_decay,
            "weight_decay": weight_decay,
            "initial_accumulator_value": initial_accumulator_value,
            "eps": eps,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _coefficients(self, group: ParamGroup, step: int, fresh: bool) -> tuple[float, ...]:
        _algorithms.initial_accumulator_value(group["initial_accumulator_value"])
        return _algorithms.adagrad(
            step=step,
            lr=group["lr"],
            lr_decay=group["lr_decay"],
            weight_decay=group["weight_decay"],
            eps=group["eps"],
            maximize=group["maximize"],
        )

    def _new_buffer(self, slot: str, param: np.ndarray, group: ParamGroup) -> np.ndarray:
        return np.full_like(param, group["initial_accumulator_value"])


class Adamax(Optimizer):
    """Adamax, as ``torch.optim.Adamax`` (see :func:`fastadam.functional.adamax`)."""

    _kernel = _ext.ADAMAX
    _slots = ("exp_avg", "exp_inf")

    def __init__(
        self,
        params: Params,
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _coefficients(self, group: ParamGroup, step: int, fresh: bool) -> tuple[float, ...]:
        beta1, beta2 = check.betas(group["betas"])
        return _algorithms.adamax(
            step=step,
            lr=group["lr"],
            beta1=beta1,
            beta2=beta2,
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            maximize=group["maximize"],
        )


class Lion(Optimizer):
    """Lion (Chen et al., arXiv:2302.06675); see :func:`fastadam.functional.lion`."""

    _kernel = _ext.LION
    _slots = ("exp_avg",)

    def __init__(
        self,
        params: Params,
        lr: float = 1e-4,
        betas: tuple[float, float] = (0.9, 0.99),
        weight_decay: float = 0.0,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = {"lr": lr, "betas": betas, "weight_decay": weight_decay, "maximize": maximize}
        super().__init__(params, defaults)

    def _coefficients(self, group: ParamGroup, step: int, fresh: bool) -> tuple[float, ...]:
        beta1, beta2 = check.betas(group["betas"])
        return _algorithms.lion(
            lr=group["lr"],
            beta1=beta1,
            beta2=beta2,
            weight_decay=group["weight_decay"],
            maximize=group["maximize"],
        )
