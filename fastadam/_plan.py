"""The step planner's policy, shared by every front end: which buffers a param's step
needs and in which format, as the algorithm table (fastadam._table) and a param
group's format options say.

A param's state keeps the format it was created in; a group whose kernel has
compressed formats holds the options of FORMAT_DEFAULTS that differ from them,
and its state may then be bfloat16 or 8-bit codes (with one float32 absmax per
block), its params bfloat16 with float32 master weights. Everything here reads
only dtypes, shapes and sizes, so fastadam.torch hands it stand-ins of tensors
(``numpy.broadcast_to`` of a 0-d array: no memory).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple, TypeAlias

import cython
import numpy as np

from . import _ext, _formats
from . import _validate as check
from ._table import Algorithm, Prepared

Group = Mapping[str, Any]
Layout: TypeAlias = "tuple[_formats.Spec | None, tuple[str | None, ...] | None, str | None]"

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
    def of(cls, group: Group) -> Format:
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


def compressed_buffers(
    main: tuple[Any, ...],
    copy: bool,
    state: Mapping[str, Any],
    absmax: tuple[str | None, ...] | None,
    master: str | None,
) -> tuple[Any, ...]:
    """A param's buffers for ``Batch.add`` with the compressed tail, as ``Batch.add_group``
    assembles them: master weights (of a bfloat16 param: ``copy``) in the param's place
    and the param as their copy, then the absmax of each state buffer."""
    param_copy = None
    if master is not None and copy:
        main, param_copy = (state[master], *main[1:]), main[0]
    marks = [None if k is None else state.get(k) for k in absmax or ()]
    padding = [None] * (_ext.MAX_STATE - len(marks))
    return (*main, *[None] * (_ext.MAX_BUFS - len(main)), *marks, *padding, param_copy)


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


def format_of(algorithm: Algorithm, group: Group) -> Format | None:
    """The group's checked format options (None for kernels without formats)."""
    return Format.of(group) if algorithm.formats else None


def check_group(algorithm: Algorithm, group: Group) -> None:
    """Raise if the group's hyperparameters or format options are invalid."""
    algorithm.check(group)
    format_of(algorithm, group)


def batch_labels(algorithm: Algorithm) -> tuple[str, ...]:
    """The names of a Batch's buffers, for its error messages."""
    return _batch_labels(algorithm.slots, algorithm.formats)


def slot_names(algorithm: Algorithm, group: Group) -> tuple[str | None, ...]:
    """The state buffers in kernel order, with None for those the group does not use."""
    return _used_slots(algorithm.slots, algorithm.used(group))


def layout(algorithm: Algorithm, group: Group, slots: tuple[str | None, ...]) -> Layout:
    """The compressed side of a group's buffers, as ``Batch.add_group`` takes it:
    the format spec, the keys of the state's absmax (8-bit state) and of master weights."""
    fmt = format_of(algorithm, group)
    if fmt is None:
        return None, None, None
    if fmt is DEFAULT_FORMAT:
        return _formats.DEFAULT_SPEC, None, None
    absmax = None
    if fmt.state_dtype == "int8":
        absmax = tuple(None if s is None else absmax_key(s) for s in slots)
    return fmt.spec(), absmax, MASTER if fmt.master_weights else None


_IMMUTABLE = frozenset({bool, int, float, str, type(None)})


def _immutable(value: object) -> bool:
    """Whether a hyperparameter cannot change in place: a number, string, None or tuple
    of them (not a list, array or tensor)."""
    if type(value) is tuple:
        return all(type(v) in _IMMUTABLE for v in value)
    return type(value) in _IMMUTABLE


# (the group as read, its slots, its layout, and its coefficients by step once prepared)
GroupPlan: TypeAlias = "tuple[Group, tuple[str | None, ...], Layout, list[Prepared]]"


class Plans:
    """The plan of each param group: the group as the algorithm table reads it
    (``read``: fastadam.torch turns tensor hyperparameters into numbers), the state
    slots its settings use, its layout (slot_names, layout) and, once a step has
    needed them, its coefficients as a function of the step (Algorithm.prepared).

    A plan is kept between steps while its group holds the same keys and the same
    value objects, each immutable (numbers, strings, tuples of them), so that nothing
    it depends on can have changed: its hyperparameters, checked once, are as valid
    as they were. A group holding a list, array or tensor is planned, and checked,
    afresh at every step. Every buffer is read and checked at every step.
    """

    def __init__(
        self, algorithm: Algorithm, read: Callable[[Group], Group] = lambda group: group
    ) -> None:
        self.algorithm = algorithm
        self.read = read
        self.labels = batch_labels(algorithm)  # a Batch's buffer names, for its errors
        self._kept: dict[int, tuple[tuple[str, ...], tuple[object, ...], GroupPlan]] = {}

    def of(self, group: Group) -> GroupPlan:
        kept = self._kept.get(id(group))
        if kept is not None and _unchanged(kept[0], kept[1], group):
            return kept[2]
        hyper = self.read(group)
        slots = slot_names(self.algorithm, hyper)
        plan: GroupPlan = hyper, slots, layout(self.algorithm, hyper, slots), []
        if hyper is group and all(_immutable(v) for k, v in group.items() if k != "params"):
            if len(self._kept) > 64:  # groups come and go: keep the latest only
                self._kept.clear()
            self._kept[id(group)] = (tuple(group), tuple(group.values()), plan)
        return plan


@cython.locals(i=cython.Py_ssize_t)
def _unchanged(keys: tuple[str, ...], values: tuple[object, ...], group: Group) -> bool:
    """Whether ``group`` holds ``keys``, in order, with the same value objects."""
    if len(group) != len(keys):
        return False
    for i, (key, value) in enumerate(group.items()):  # i typed: a C counter
        if value is not values[i] or (key is not keys[i] and key != keys[i]):
            return False
    return True


def queue(
    batch: _ext.Batch,
    plans: Plans,
    groups: Sequence[Group],
    state: Mapping[Any, Any],
    grads: list[Any] | None = None,
) -> list[dict[str, Any]]:
    """Queue in ``batch`` every param of the groups that has a grad, with its state:
    the step of the NumPy classes and of fastadam.torch, where every param with a grad
    has its state (else StateMissing, and the front end makes it).

    ``grads`` align with the params in group order, and ``state`` is keyed by param
    number; with ``grads`` None (fastadam.torch) each param's ``.grad`` is read and
    ``state`` is keyed by param, whose step counts the batch adds 1 to when it runs.
    Returns the state dicts queued.
    """
    algorithm = plans.algorithm
    if algorithm.scalars:  # per-param coefficients: the front end's general step
        raise _ext.StateMissing()
    queued: list[dict[str, Any]] = []
    counts = grads is not None or algorithm.counts_steps
    first = 0
    for group in groups:
        hyper, slots, (spec, absmax, master), prepared = plans.of(group)
        if prepared:
            coefficients = prepared[0]
        else:  # prepared when a param of the group first has a grad
            coefficients = functools.partial(_prepare, algorithm, hyper, prepared)
        params = group["params"]
        n = len(params)
        mine = grads if grads is None or n == len(grads) else grads[first : first + n]
        queued += batch.add_group(
            first, params, mine, state, slots, coefficients, spec, absmax, master, counts
        )
        first += n
    return queued


def _prepare(algorithm: Algorithm, hyper: Group, prepared: list[Prepared], step: int) -> Any:
    """The coefficients at ``step`` of a group whose coefficients are not yet prepared:
    prepares them (checking its hyperparameters) and keeps them in ``prepared``."""
    if not prepared:
        prepared.append(algorithm.prepared(hyper))
    return prepared[0](step)


def wanted(
    algorithm: Algorithm,
    param: np.ndarray,
    group: Group,
    slots: Iterable[str | None] | None = None,
    store: np.dtype | None = None,
) -> dict[str, tuple[np.dtype, tuple]]:
    """The state buffers a param needs under its group's settings: key -> (dtype, shape).

    ``slots`` (default: those the group's settings use) are the state buffers,
    ``store`` their dtype (default: what the group creates).
    """
    fmt = format_of(algorithm, group)
    if store is None:
        store = param.dtype if fmt is None else fmt.storage(param)
    slots = slot_names(algorithm, group) if slots is None else slots
    needed = {s: (store, param.shape) for s in slots if s is not None}
    if store == np.uint8:
        if fmt is None:  # the group's state_dtype changed since the state was made
            raise ValueError(
                "the state holds 8-bit codes, but its param group now has no state_dtype: "
                "8-bit state cannot change format (delete the param's state to start afresh)"
            )
        blocks = _formats.blocks(param.size, fmt.block_size)
        needed |= {absmax_key(s): (np.dtype(np.float32), (blocks,)) for s in list(needed)}
    if fmt is not None and fmt.master(param):
        needed[MASTER] = (np.dtype(np.float32), param.shape)
    return needed


def initial_fits(name: str, value: float, largest: float, dtype: object) -> float:
    """``value``, the start of state buffer ``name`` (Adagrad's ``initial_accumulator_value``),
    if it is finite in the param's dtype (whose largest finite value is ``largest``);
    else ValueError, rather than a buffer of infinities or torch's RuntimeError."""
    if abs(value) > largest:
        raise ValueError(
            f"{name} would start at {value!r} (the group's initial value), beyond the "
            f"range of the param's dtype {dtype}"
        )
    return value


def stored(algorithm: Algorithm, entry: Mapping[str, Any], param: np.ndarray) -> np.dtype | None:
    """The format a saved entry's state is in, if it is one the param's state may have:
    state keeps the format it was created in, even if the group's options changed since."""
    saved = next((entry[s] for s in algorithm.slots if s in entry), None)
    if not algorithm.formats or not isinstance(saved, np.ndarray):
        return None
    dtype = saved.dtype
    if dtype == param.dtype:
        return dtype
    if param.dtype != np.float64 and dtype in _formats.STATE_STORAGE.values():
        return dtype
    return None


def check_entry(
    algorithm: Algorithm, index: object, entry: Mapping[str, Any], param: np.ndarray, group: Group
) -> tuple[int, list[str]]:
    """Check the saved state ``entry`` of ``param`` (numbered ``index``) under ``group``:
    its entries, its step count, its scalar state and each buffer's dtype and shape, in
    the format the state was saved in. Returns the step count and the keys of the
    buffers to load."""
    store = stored(algorithm, entry, param)
    expected = wanted(algorithm, param, group, store=store)
    known = {"step", *algorithm.scalars, *algorithm.slots}
    if algorithm.formats:
        known |= {MASTER, *(absmax_key(s) for s in algorithm.slots)}
    unknown = set(entry) - known
    if unknown:
        raise ValueError(f"state[{index}] has unexpected entries {sorted(unknown)}")
    every = wanted(algorithm, param, group, algorithm.slots, store)
    for slot in algorithm.slots:  # buffers of features now switched off are kept as they are
        if slot in entry:
            expected[slot] = every[slot]
            if absmax_key(slot) in every:
                expected[absmax_key(slot)] = every[absmax_key(slot)]
    if "step" not in entry:
        raise ValueError(f'state[{index}] is missing "step"')
    step = check.step_count(entry["step"], f'state[{index}]["step"]')
    for name in algorithm.scalars:
        if name not in entry:
            raise ValueError(f'state[{index}] is missing "{name}"')
    algorithm.stored_scalars(entry, f"state[{index}]")
    keys = sorted(expected)
    for key in keys:
        if key not in entry:
            raise ValueError(f'state[{index}] is missing "{key}"')
        _check_buffer(f'state[{index}]["{key}"]', entry[key], param, *expected[key])
    return step, keys


def check_8bit_state(
    algorithm: Algorithm,
    param: np.ndarray,
    state: Mapping[str, Any],
    group: Group,
    where: str,
    drop: str,
) -> None:
    """Raise a clear error if the param's 8-bit ``state`` (arrays) no longer fits its
    group's format: state keeps the format it was created in, and 8-bit state needs
    its number of blocks too. ``where`` names the state, ``drop`` is how to delete it.
    Anything else (a param that is not an array, say) is left to the step's own checks."""
    if not isinstance(param, np.ndarray):
        return
    marks = (state[absmax_key(s)] for s in algorithm.slots if absmax_key(s) in state)
    absmax = next(marks, None)
    if stored(algorithm, state, param) != np.uint8 or not isinstance(absmax, np.ndarray):
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
