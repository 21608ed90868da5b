"""Stateful optimizers over NumPy arrays, shaped like torch.optim.

An optimizer owns param groups (lists of arrays with per-group
hyperparameters) and per-param state, created on first use in the param's
dtype. ``step(grads)`` validates every group and buffer, then updates all
params in one fused C call; after an exception nothing has changed.

Each class is the constructor of one record of the algorithm table
(fastadam._table): the record gives its kernel, state buffers, coefficients and
formats, and the step planner's policy (fastadam._plan) which buffers a step
needs. A record with compressed formats takes the options of FORMAT_DEFAULTS:
the base class then keeps its state as bfloat16 or 8-bit codes, updates bfloat16
params, and keeps master weights.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar, NamedTuple

import numpy as np

from . import _ext, _formats, _plan
from . import _validate as check
from ._ext import Batch, StateMissing
from ._plan import FORMAT_DEFAULTS, MASTER, format_options
from ._plan import queue as plan_queue
from ._table import ALGORITHMS, Algorithm
from ._validate import flag as check_flag

__all__ = [
    "FORMAT_DEFAULTS",
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

ParamGroup = dict[str, Any]
Params = Iterable[np.ndarray] | Iterable[Mapping[str, Any]]


class Queued(NamedTuple):
    """One step's tensors, queued in a batch, and what to do once it has run."""

    batch: _ext.Batch
    stepped: list[dict[str, Any]]  # the state of every param stepped: its count goes up
    created: dict[int, dict[str, Any]]  # state made for the step, kept if it succeeds
    scaled: list[tuple[dict[str, Any], dict[str, float]]]  # scalar state as the step leaves it


class Optimizer:
    """Base class: param groups, state, state_dict and the fused step.

    A subclass names its ``algorithm`` (a record of fastadam._table) and gives the
    constructor's signature; everything else is read from the record.
    """

    algorithm: ClassVar[Algorithm]

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
        groups: list[Any] = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], Mapping):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    # ------------------------------------------------------------------ groups

    def _check_group(self, group: ParamGroup) -> None:
        _plan.check_group(self.algorithm, group)

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
            batch = _ext.Batch(self.algorithm.kernel, ("params",), params_only=True)
            none = batch.add_coef(())
            for index, param in enumerate(everything):
                batch.add(index, (param,), none, _formats.DEFAULT_SPEC)
            try:
                batch.check()
            except ValueError as error:
                raise ValueError(
                    f"{error}; a param may appear only once across all param groups"
                ) from None
            self.param_groups.append(group)

    def _align(self, grads: Sequence[np.ndarray | None] | np.ndarray) -> list[np.ndarray | None]:
        count = 0
        for group in self.param_groups:
            count += len(group["params"])
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
        guard = check_flag("skip_if_nonfinite", skip_if_nonfinite)
        aligned = self._align(grads)
        with self._lock:
            try:
                batch, stepped = self._queue(aligned)
                created: dict[int, dict[str, Any]] = {}
                scaled: list[tuple[dict[str, Any], dict[str, float]]] = []
            except StateMissing:
                batch, stepped, created, scaled = self._queue_creating(aligned)
            except ValueError:
                owners = [(p, g) for g in self.param_groups for p in g["params"]]
                for i, (param, group) in enumerate(owners):
                    if aligned[i] is not None and i in self.state:
                        where, drop = f"state[{i}]", f"del optimizer.state[{i}]"
                        _plan.check_8bit_state(
                            self.algorithm, param, self.state[i], group, where, drop
                        )
                raise
            if guard:
                batch.check()
                if not batch.grads_finite():
                    return False
            batch.run()
            if created:
                self.state.update(created)
            for state in stepped:
                state["step"] += 1
            for state, scalars in scaled:
                state.update(scalars)
        return True

    def _new_entry(self, key: str, param: np.ndarray, group: ParamGroup) -> np.ndarray:
        """A state buffer on first use: master weights are the param in float32, state as
        the algorithm starts it (zeros, or Adagrad's initial_accumulator_value)."""
        if key == MASTER:
            return param.astype(np.float32)
        dtype, shape = _plan.wanted(self.algorithm, param, group)[key]
        initial = self.algorithm.initial
        if dtype == param.dtype and shape == param.shape and initial is not None:
            value = initial(key, group)
            largest = float(np.finfo(dtype).max)
            return np.full_like(param, _plan.initial_fits(f'state "{key}"', value, largest, dtype))
        return np.zeros(shape, dtype)

    def _queue(self, grads: list[np.ndarray | None]) -> tuple[_ext.Batch, list[dict[str, Any]]]:
        """The fast path, when every param with a grad has its state: C walks the groups.
        Returns the batch and the state of every param queued."""
        plans = self.__dict__.get("_plans")
        if plans is None:
            plans = self.__dict__["_plans"] = _plan.Plans(self.algorithm)
        batch = Batch(self.algorithm.kernel, plans.labels)
        return batch, plan_queue(batch, plans, self.param_groups, self.state, grads)

    def _queue_creating(self, grads: list[np.ndarray | None]) -> Queued:
        """The general path: new state buffers are made for the step, kept only if it succeeds."""
        algorithm = self.algorithm
        batch = _ext.Batch(algorithm.kernel, _plan.batch_labels(algorithm))
        queued = Queued(batch, [], {}, [])
        index = 0
        for group in self.param_groups:
            slots = _plan.slot_names(algorithm, group)
            spec, absmax, master = _plan.layout(algorithm, group, slots)
            required = _ext.active_mask(slots)
            coef_ids: dict[tuple, int] = {}
            for param in group["params"]:
                grad = grads[index]
                if grad is not None:
                    if not isinstance(param, np.ndarray):  # replaced in param_groups
                        raise TypeError(
                            f"params[{index}] must be a numpy.ndarray, not {type(param).__name__}"
                        )
                    state = self.state.get(index)
                    if state is None:
                        state = queued.created[index] = {"step": 0, **algorithm.scalars}
                    store = _plan.stored(algorithm, state, param)  # state keeps its format
                    needed = _plan.wanted(algorithm, param, group, store=store)
                    missing = [k for k in needed if k not in state]
                    if missing:
                        fresh = {k: self._new_entry(k, param, group) for k in missing}
                        state = queued.created[index] = {**state, **fresh}
                    if "step" not in state:
                        raise ValueError(f'state[{index}] has no "step" entry')
                    step = check.step_count(state["step"], f'state[{index}]["step"]') + 1
                    scalars = algorithm.stored_scalars(state, f"state[{index}]")
                    if algorithm.scalars:
                        scalars = algorithm.advanced(group, step, scalars)
                        queued.scaled.append((state, scalars))
                    started = any(s in missing for s in slots)
                    key = (step, started, *scalars.values())
                    if key not in coef_ids:
                        coef = algorithm.coefficients(group, step, started, scalars)
                        coef_ids[key] = batch.add_coef(coef)
                    buffers = (param, grad, *[None if s is None else state[s] for s in slots])
                    if absmax is not None or master is not None:
                        copy = param.dtype == _formats.BFLOAT16
                        buffers = _plan.compressed_buffers(buffers, copy, state, absmax, master)
                    batch.add(index, buffers, coef_ids[key], spec, step, required)
                    queued.stepped.append(state)
                index += 1
        return queued

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
            if not isinstance(param, np.ndarray):
                raise TypeError(f"param {index} is a {type(param).__name__}, not a numpy.ndarray")
            state[int(index)] = self._load_entry(int(index), entry, param, group)
        return state

    def _load_entry(
        self, index: int, entry: Mapping[str, Any], param: np.ndarray, group: ParamGroup
    ) -> dict[str, Any]:
        step, keys = _plan.check_entry(self.algorithm, index, entry, param, group)
        scalars = self.algorithm.stored_scalars(entry, f"state[{index}]")
        buffers = {k: np.array(entry[k], order="C", copy=True) for k in keys}
        return {"step": step, **scalars, **buffers}

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
        Arrays (float32/float64/bfloat16, C-contiguous, writable) or param
        groups ``{"params": [...], "lr": ...}`` with per-group hyperparameters
        (the format options below too, so embeddings or norms can keep float32).
    lr, betas, eps, weight_decay, amsgrad, maximize, decoupled_weight_decay
        As in ``torch.optim.Adam``; see :func:`fastadam.functional.adam`.
    state_dtype : {None, "float32", "bfloat16", "int8"}
        How the state is stored. None: in the param's dtype (float32 for
        bfloat16 params). "int8": block-wise 8-bit codes with one float32 absmax
        per ``block_size`` elements (state entries ``exp_avg_absmax``, ...), for
        params of at least ``min_8bit_size`` elements (smaller ones keep float32).
        Set before the first step: existing state keeps its format (and 8-bit
        state its block size: a step raises if the group no longer allows them).
    rounding : {None, "nearest", "stochastic"}
        How bfloat16 and 8-bit stores round; None: stochastic where
        round-to-nearest stalls (bfloat16 or 8-bit state, bfloat16 params
        without master weights), else nearest.
    block_size : int
        Elements per absmax of 8-bit state, a power of two from 64 to 2048.
    min_8bit_size : int
        Params with fewer elements keep float32 state under ``state_dtype="int8"``.
    master_weights : bool
        For bfloat16 params: keep float32 master weights in the state
        (``master_param``), update them, and write their rounding to nearest
        into the bfloat16 param, in the same pass.
    seed : int
        Stochastic rounding hashes (seed, param index, step, element index):
        runs repeat bit for bit at any thread count.

    Examples
    --------
    >>> import numpy as np, fastadam
    >>> w = np.zeros(3, np.float32)
    >>> opt = fastadam.Adam([w], lr=0.1)
    >>> for _ in range(3):
    ...     _ = opt.step([2 * (w - 1)])    # gradient of |w - 1|^2; returns True
    >>> w.round(2)
    array([0.3, 0.3, 0.3], dtype=float32)
    """

    algorithm = ALGORITHMS["Adam"]

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
        state_dtype: str | None = None,
        rounding: str | None = None,
        block_size: int = 256,
        min_8bit_size: int = 4096,
        master_weights: bool = False,
        seed: int = 0,
    ) -> None:
        defaults = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": amsgrad,
            "maximize": maximize,
            "decoupled_weight_decay": decoupled_weight_decay,
            **format_options(
                state_dtype=state_dtype,
                rounding=rounding,
                block_size=block_size,
                min_8bit_size=min_8bit_size,
                master_weights=master_weights,
                seed=seed,
            ),
        }
        super().__init__(params, defaults)


class AdamW(Adam):
    """AdamW (Loshchilov & Hutter, arXiv:1711.05101): Adam with decoupled weight decay.

    As ``torch.optim.AdamW``: the param is multiplied by ``1 - lr * weight_decay``
    before the Adam update; default ``weight_decay=1e-2``. Takes Adam's format
    options (``state_dtype``, ``rounding``, ...) as keywords.
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
        **formats: Any,
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
            **formats,
        )


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, as ``torch.optim.SGD``.

    See :func:`fastadam.functional.sgd` for the update; the momentum buffer is
    set to the gradient on its first step.
    """

    algorithm = ALGORITHMS["SGD"]

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


class RMSprop(Optimizer):
    """RMSprop, as ``torch.optim.RMSprop`` (see :func:`fastadam.functional.rmsprop`)."""

    algorithm = ALGORITHMS["RMSprop"]

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


class Adagrad(Optimizer):
    """Adagrad, as ``torch.optim.Adagrad`` (see :func:`fastadam.functional.adagrad`)."""

    algorithm = ALGORITHMS["Adagrad"]

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


class Adamax(Optimizer):
    """Adamax, as ``torch.optim.Adamax`` (see :func:`fastadam.functional.adamax`)."""

    algorithm = ALGORITHMS["Adamax"]

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


class Lion(Optimizer):
    """Lion (Chen et al., arXiv:2302.06675); see :func:`fastadam.functional.lion`."""

    algorithm = ALGORITHMS["Lion"]

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


class Rprop(Optimizer):
    r"""Rprop (Riedmiller & Braun 1993), as ``torch.optim.Rprop``: a step size per
    element, grown by ``etas[1]`` while its gradient keeps its sign and shrunk by
    ``etas[0]`` when the sign flips (that step then skips the element), clamped to
    ``step_sizes``; the update uses only the gradient's sign. The state of a param is
    ``{"step", "prev", "step_size"}``, each step size starting at the group's ``lr``.
    See :func:`fastadam.functional.rprop`.

    Examples
    --------
    >>> import numpy as np, fastadam
    >>> w = np.zeros(2)
    >>> opt = fastadam.Rprop([w], lr=0.1)
    >>> _ = opt.step([np.array([1.0, -1.0])])
    >>> _ = opt.step([np.array([1.0, 1.0])])
    >>> w, opt.state[0]["step_size"]
    (array([-0.22,  0.1 ]), array([0.12, 0.05]))
    """

    algorithm = ALGORITHMS["Rprop"]

    def __init__(
        self,
        params: Params,
        lr: float = 1e-2,
        etas: tuple[float, float] = (0.5, 1.2),
        step_sizes: tuple[float, float] = (1e-6, 50),
        *,
        maximize: bool = False,
    ) -> None:
        defaults = {"lr": lr, "etas": etas, "step_sizes": step_sizes, "maximize": maximize}
        super().__init__(params, defaults)


def _hyperparameters(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """A constructor's ``locals()`` less self and params: the group defaults it was given."""
    return {k: v for k, v in arguments.items() if k not in ("self", "params", "__class__")}


class NAdam(Optimizer):
    r"""NAdam (Dozat 2016, "Incorporating Nesterov Momentum into Adam"), as ``torch.optim.NAdam``.

    Adam whose first moment looks one step ahead: the momentum coefficient
    :math:`\mu_t = \beta_1 (1 - \tfrac12 \cdot 0.96^{t\,\psi})` (``momentum_decay``
    :math:`\psi`) warms up, and the state keeps :math:`\prod \mu` in ``mu_product``
    (a float, 1.0 before the first step). See :func:`fastadam.functional.nadam`.

    Examples
    --------
    >>> import numpy as np, fastadam
    >>> w = np.zeros(3, np.float32)
    >>> opt = fastadam.NAdam([w], lr=0.1)
    >>> _ = opt.step([2 * (w - 1)])
    >>> sorted(opt.state[0])
    ['exp_avg', 'exp_avg_sq', 'mu_product', 'step']
    """

    algorithm = ALGORITHMS["NAdam"]

    def __init__(
        self,
        params: Params,
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum_decay: float = 4e-3,
        decoupled_weight_decay: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        super().__init__(params, _hyperparameters(locals()))


class RAdam(Optimizer):
    """RAdam (Liu et al., arXiv:1908.03265), as ``torch.optim.RAdam``.

    Adam with the variance of its adaptive step rectified: while the length of
    the approximated simple moving average is at most 5 (the first steps), the
    update is bias-corrected momentum SGD. See :func:`fastadam.functional.radam`.
    """

    algorithm = ALGORITHMS["RAdam"]

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        decoupled_weight_decay: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        super().__init__(params, _hyperparameters(locals()))
