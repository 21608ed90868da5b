"""Stateful optimizers over NumPy arrays, shaped like torch.optim.

An optimizer owns param groups (lists of arrays with per-group
hyperparameters) and per-param state, created on first use in the param's
dtype. ``step(grads)`` validates every group and buffer, then updates all
params in one fused C call; after an exception nothing has changed.

A new algorithm is a subclass that names its kernel and state buffers and
turns a group's hyperparameters into the kernel's coefficients. One whose
kernel has compressed formats (``_ext`` / ``fastadam.h``) sets ``_formats`` and
takes the options of FORMAT_DEFAULTS: the base class then keeps its state as
bfloat16 or 8-bit codes, updates bfloat16 params, and keeps master weights.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar, NamedTuple

import numpy as np

from . import _algorithms, _ext, _formats
from . import _validate as check

__all__ = ["SGD", "Adagrad", "Adam", "AdamW", "Adamax", "Lion", "Optimizer", "RMSprop"]

ParamGroup = dict[str, Any]
Params = Iterable[np.ndarray] | Iterable[Mapping[str, Any]]

# The format options of a class with compressed formats, per param group.
FORMAT_DEFAULTS: dict[str, Any] = {
    "state_dtype": None,
    "rounding": None,
    "block_size": 256,
    "min_8bit_size": 4096,
    "master_weights": False,
    "seed": 0,
}
MASTER = "master_param"  # the state entry of float32 master weights


def absmax_key(slot: str) -> str:
    """The state entry holding the absmax of 8-bit state buffer ``slot``."""
    return f"{slot}_absmax"


class Format(NamedTuple):
    """A param group's format options, checked."""

    state_dtype: str | None
    rounding: str | None
    block_size: int
    min_8bit_size: int
    master_weights: bool
    seed: int

    @classmethod
    def of(cls, group: Mapping[str, Any]) -> Format:
        """The options of a group; a group holds only those that differ from the defaults."""
        if group.keys().isdisjoint(FORMAT_DEFAULTS):
            return DEFAULT_FORMAT
        get = {**FORMAT_DEFAULTS, **group}.__getitem__
        return cls(
            _formats.state_dtype(get("state_dtype")),
            _formats.rounding(get("rounding")),
            _formats.block_size(get("block_size")),
            _formats.min_8bit_size(get("min_8bit_size")),
            check.flag("master_weights", get("master_weights")),
            _formats.seed(get("seed")),
        )

    def storage(self, param: np.ndarray) -> np.dtype:
        """The dtype of the param's state buffers (uint8: 8-bit codes)."""
        return _formats.state_storage(param, self.state_dtype, self.min_8bit_size)

    def master(self, param: np.ndarray) -> bool:
        """Whether the param (bfloat16) is the copy of float32 master weights."""
        return self.master_weights and param.dtype == _formats.BFLOAT16

    def spec(self) -> _formats.Spec:
        """The kernels' (stochastic, block_size, seed); stochastic None: the default rounding,
        stochastic where round-to-nearest stalls (see _formats.DEFAULT_SPEC)."""
        return _formats.spec(self.rounding, self.block_size, self.seed)


DEFAULT_FORMAT = Format(**FORMAT_DEFAULTS)


def format_options(**options: Any) -> dict[str, Any]:
    """The options that differ from FORMAT_DEFAULTS (a group holds only these)."""
    unknown = set(options) - set(FORMAT_DEFAULTS)
    if unknown:
        raise TypeError(f"unexpected keyword arguments {sorted(unknown)}")
    return {k: v for k, v in options.items() if not _same(v, FORMAT_DEFAULTS[k])}


def _same(a: object, b: object) -> bool:
    return type(a) is type(b) and a == b


def _compressed_buffers(
    main: tuple[Any, ...],
    param: np.ndarray,
    state: Mapping[str, Any],
    absmax: tuple[str | None, ...] | None,
    master: str | None,
) -> tuple[Any, ...]:
    """A param's buffers for ``Batch.add`` with the compressed tail, as ``Batch.add_group``
    assembles them: master weights (of a bfloat16 param) in the param's place and
    the param as their copy, then the absmax of each state buffer."""
    copy = None
    if master is not None and param.dtype == _formats.BFLOAT16:
        main, copy = (state[master], *main[1:]), param
    marks = [None if k is None else state.get(k) for k in absmax or ()]
    padding = [None] * (_ext.MAX_STATE - len(marks))
    return (*main, *[None] * (_ext.MAX_BUFS - len(main)), *marks, *padding, copy)


@functools.cache
def _batch_labels(slots: tuple[str, ...], formats: bool) -> tuple[str, ...]:
    """The names of a Batch's buffers, for its error messages."""
    if not formats:
        return ("params", "grads", *slots)
    padding = ("",) * (_ext.MAX_STATE - len(slots))
    absmax = tuple(absmax_key(s) for s in slots)
    return ("params", "grads", *slots, *padding, *absmax, *padding, "param_copies")


@functools.cache
def _used_slots(slots: tuple[str, ...], active: tuple[bool, ...]) -> tuple[str | None, ...]:
    """The slots, with None for those not ``active``."""
    return tuple(s if on else None for s, on in zip(slots, active, strict=True))


def _check_buffer(
    label: str, value: object, param: np.ndarray, dtype: np.dtype, shape: tuple
) -> None:
    """Raise unless a loaded state buffer is an array of the dtype and shape it needs."""
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{label} must be a numpy.ndarray, got {type(value).__name__}")
    if value.dtype != dtype:
        needs = "the param has" if dtype == param.dtype else "the state format needs"
        raise TypeError(f"{label} has dtype {value.dtype} but {needs} {dtype}")
    if value.shape != shape:
        needs = "the param has shape" if shape == param.shape else "its absmax has one per block:"
        raise ValueError(f"{label} has shape {value.shape} but {needs} {shape}")


class Optimizer:
    """Base class: param groups, state, state_dict and the fused step.

    Subclasses set ``_kernel`` and ``_slots`` (state buffers in kernel order) and
    implement ``_coefficients`` and ``_active``.
    """

    _kernel: ClassVar[int]
    _slots: ClassVar[tuple[str, ...]]
    _formats: ClassVar[bool] = False  # compressed formats: groups hold FORMAT_DEFAULTS' options

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
        self._format(group)

    def _format(self, group: ParamGroup) -> Format | None:
        """The group's checked format options (None for classes without formats)."""
        return Format.of(group) if self._formats else None

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
            batch = _ext.Batch(self._kernel, ("params",), params_only=True)
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
            except ValueError:
                owners = [(p, g) for g in self.param_groups for p in g["params"]]
                for i, (param, group) in enumerate(owners):
                    if aligned[i] is not None and i in self.state:
                        where, drop = f"state[{i}]", f"del optimizer.state[{i}]"
                        self._check_8bit_state(param, self.state[i], group, where, drop)
                raise
            if guard:
                batch.check()
                if not batch.grads_finite():
                    return False
            batch.run()
            self.state.update(created)
            for state in stepped:
                state["step"] += 1
        return True

    def _check_8bit_state(
        self, param: np.ndarray, state: Mapping[str, Any], group: ParamGroup, where: str, drop: str
    ) -> None:
        """Raise a clear error if the param's 8-bit ``state`` (arrays) no longer fits its
        group's format: state keeps the format it was created in, and 8-bit state needs
        its number of blocks too. ``where`` names the state, ``drop`` is how to delete it."""
        absmax = next((state[absmax_key(s)] for s in self._slots if absmax_key(s) in state), None)
        if self._stored(state, param) != np.uint8 or not isinstance(absmax, np.ndarray):
            return
        fmt = Format.of(group)
        if fmt.state_dtype == "int8" and _formats.blocks(param.size, fmt.block_size) == absmax.size:
            return
        fits = (b for b in _formats.BLOCK_SIZES if _formats.blocks(param.size, b) == absmax.size)
        block = next(fits, None)  # the smallest: with a single block, any computes the same
        if block is None:
            return
        raise ValueError(
            f"{where} holds 8-bit codes in blocks of {block} elements, but its param group "
            f"now asks for state_dtype={fmt.state_dtype!r}, block_size={fmt.block_size}: "
            "8-bit state cannot change format or block size. Set the "
            f'group\'s state_dtype back to "int8" and block_size to {block}, or drop the state '
            f"({drop}) to start it afresh"
        )

    def _labels(self) -> tuple[str, ...]:
        return _batch_labels(self._slots, self._formats)

    def _slot_names(self, group: ParamGroup) -> tuple[str | None, ...]:
        return _used_slots(self._slots, self._active(group))

    def _layout(
        self, group: ParamGroup, slots: tuple[str | None, ...]
    ) -> tuple[tuple[bool, int, int] | None, tuple[str | None, ...] | None, str | None]:
        """The compressed side of a group's buffers, as ``Batch.add_group`` takes it:
        the format spec, the keys of the state's absmax (8-bit state) and of master weights."""
        fmt = self._format(group)
        if fmt is None:
            return None, None, None
        if fmt is DEFAULT_FORMAT:
            return _formats.DEFAULT_SPEC, None, None
        absmax = None
        if fmt.state_dtype == "int8":
            absmax = tuple(None if s is None else absmax_key(s) for s in slots)
        return fmt.spec(), absmax, MASTER if fmt.master_weights else None

    def _wanted(
        self,
        param: np.ndarray,
        group: ParamGroup,
        slots: Iterable[str | None] | None = None,
        store: np.dtype | None = None,
    ) -> dict[str, tuple[np.dtype, tuple]]:
        """The state buffers a param needs under its group's settings: key -> (dtype, shape).

        ``slots`` (default: those the group's settings use) are the state buffers,
        ``store`` their dtype (default: what the group creates).
        """
        fmt = self._format(group)
        if store is None:
            store = param.dtype if fmt is None else fmt.storage(param)
        slots = self._slot_names(group) if slots is None else slots
        wanted = {s: (store, param.shape) for s in slots if s is not None}
        if store == np.uint8:
            blocks = _formats.blocks(param.size, fmt.block_size)  # type: ignore[union-attr]
            wanted |= {absmax_key(s): (np.dtype(np.float32), (blocks,)) for s in list(wanted)}
        if fmt is not None and fmt.master(param):
            wanted[MASTER] = (np.dtype(np.float32), param.shape)
        return wanted

    def _new_entry(self, key: str, param: np.ndarray, group: ParamGroup) -> np.ndarray:
        """A state buffer on first use: master weights are the param in float32, state zeros."""
        if key == MASTER:
            return param.astype(np.float32)
        dtype, shape = self._wanted(param, group)[key]
        if dtype == param.dtype and shape == param.shape:
            return self._new_buffer(key, param, group)
        return np.zeros(shape, dtype)

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
            layout = self._layout(group, slots)
            stepped += batch.add_group(
                first, params, group_grads, self.state, slots, coef_id, *layout
            )
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
            spec, absmax, master = self._layout(group, slots)
            coef_ids: dict[tuple[int, bool], int] = {}
            for param in group["params"]:
                grad = grads[index]
                if grad is not None:
                    state = self.state.get(index)
                    if state is None:
                        state = created[index] = {"step": 0}
                    store = self._stored(state, param)  # existing state keeps its format
                    missing = [k for k in self._wanted(param, group, store=store) if k not in state]
                    if missing:
                        fresh = {k: self._new_entry(k, param, group) for k in missing}
                        state = created[index] = {**state, **fresh}
                    key = (state["step"] + 1, any(s in missing for s in slots))
                    if key not in coef_ids:
                        coef_ids[key] = batch.add_coef(self._coefficients(group, *key))
                    buffers = (param, grad, *[None if s is None else state[s] for s in slots])
                    if absmax is not None or master is not None:
                        buffers = _compressed_buffers(buffers, param, state, absmax, master)
                    batch.add(index, buffers, coef_ids[key], spec, key[0])
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
        step, keys = self._check_entry(index, entry, param, group)
        return {"step": step, **{k: np.array(entry[k], order="C", copy=True) for k in keys}}

    def _check_entry(
        self, index: int, entry: Mapping[str, Any], param: np.ndarray, group: ParamGroup
    ) -> tuple[int, list[str]]:
        """Check the saved state ``entry`` of ``param`` (numbered ``index``) under ``group``:
        its entries, its step count and each buffer's dtype and shape, in the format the
        state was saved in. Returns the step count and the keys of the buffers to load.
        Reads only dtypes, shapes and sizes (fastadam.torch hands it stand-ins)."""
        store = self._stored(entry, param)
        expected = self._wanted(param, group, store=store)
        known = {"step", *self._slots}
        if self._formats:
            known |= {MASTER, *(absmax_key(s) for s in self._slots)}
        unknown = set(entry) - known
        if unknown:
            raise ValueError(f"state[{index}] has unexpected entries {sorted(unknown)}")
        every = self._wanted(param, group, self._slots, store)
        for slot in self._slots:  # buffers of features now switched off are kept as they are
            if slot in entry:
                expected[slot] = every[slot]
                if absmax_key(slot) in every:
                    expected[absmax_key(slot)] = every[absmax_key(slot)]
        if "step" not in entry:
            raise ValueError(f'state[{index}] is missing "step"')
        step = entry["step"]
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
            raise ValueError(f'state[{index}]["step"] must be an integer >= 0, got {step!r}')
        keys = sorted(expected)
        for key in keys:
            if key not in entry:
                raise ValueError(f'state[{index}] is missing "{key}"')
            _check_buffer(f'state[{index}]["{key}"]', entry[key], param, *expected[key])
        return int(step), keys

    def _stored(self, entry: Mapping[str, Any], param: np.ndarray) -> np.dtype | None:
        """The format a saved entry's state is in, if it is one the param's state may have:
        state keeps the format it was created in, even if the group's options changed since."""
        saved = next((entry[s] for s in self._slots if s in entry), None)
        if not self._formats or not isinstance(saved, np.ndarray):
            return None
        dtype = saved.dtype
        if dtype == param.dtype:
            return dtype
        if param.dtype != np.float64 and dtype in _formats.STATE_STORAGE.values():
            return dtype
        return None

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

    _kernel = _ext.ADAM
    _slots = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    _formats = True

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
