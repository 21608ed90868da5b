"""The compressed-state rows of ``python -m fastadam.bench``: bytes moved and kept, speed.

Each format (param / grad / state storage) runs one Adam step over the same
number of elements with :func:`fastadam.functional.adam`, interleaved with
fastadam's float32 step, torch's fused float32 Adam, DeepSpeed's CPU Adam (when
installed and its extension builds) and, when installed, the compressed-state
optimizers of torchao and bitsandbytes (``pip install fastadam[peers]``), each on
buffers of its own, so the ratios are times of one run on one machine.
"""

from __future__ import annotations

import importlib.util
import itertools
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _formats, functional

Step = Callable[[], object]

LR, BETA1, BETA2, EPS = 1e-3, 0.9, 0.999, 1e-8
BLOCK = 256

# (param, grad, state); param "master" is float32 master weights writing a bfloat16 copy.
FORMATS = [
    ("float32", "float32", "float32"),
    ("float32", "float32", "bfloat16"),
    ("float32", "float32", "int8"),
    ("float32", "bfloat16", "bfloat16"),
    ("float32", "bfloat16", "int8"),
    ("bfloat16", "bfloat16", "float32"),
    ("bfloat16", "bfloat16", "bfloat16"),
    ("master", "bfloat16", "int8"),
]
# The same formats with round-to-nearest stores, where stochastic rounding is the default.
NEAREST = [("float32", "float32", "int8")]
SIZE = {"float32": 4, "bfloat16": 2, "int8": 1}
DTYPE = {"float32": np.dtype(np.float32), "bfloat16": _formats.BFLOAT16, "int8": np.dtype(np.uint8)}


@dataclass
class CompressedResult:
    format: str  # param/grad/state
    threads: int
    elements: int
    bytes_per_element: float  # moved per step
    resident_bytes: float  # kept per element: param (and master), state, absmax
    seconds: float
    vs_float32: float | None = None  # fastadam's float32 step time / this time
    vs_torch_fused: float | None = None
    vs_deepspeed: float | None = None
    vs_peer: float | None = None  # the peer with this state format's time / this time


def label(param: str, grad: str, state: str, rounding: str | None = None) -> str:
    name = f"{'fp32+bf16 copy' if param == 'master' else param}/{grad}/{state}"
    return name if rounding is None else f"{name}, {rounding}"


def traffic(param: str, grad: str, state: str, block: int = BLOCK) -> tuple[float, float]:
    """(bytes moved per element and step, bytes kept per element): Adam's two state buffers."""
    absmax = 4 / block if state == "int8" else 0.0
    master = param == "master"
    p = 4 if master else SIZE[param]
    moved = 2 * p + SIZE[grad] + 2 * (2 * SIZE[state] + 2 * absmax) + (2 if master else 0)
    kept = p + 2 * (SIZE[state] + absmax) + (2 if master else 0)
    return moved, kept


def make_step(
    n: int, param: str, grad: str, state: str, rounding: str | None = None, seed: int = 0
) -> Step:
    """One Adam step per call over n elements stored as given, on buffers of its own,
    rounding its stores as ``rounding`` says (None: the format's default)."""
    rng = np.random.default_rng(seed)
    bufs: dict[str, Any] = {
        "param": rng.standard_normal(n).astype(np.float32 if param == "master" else DTYPE[param]),
        "grad": (rng.standard_normal(n) * 1e-2).astype(DTYPE[grad]),
        "exp_avg": np.zeros(n, DTYPE[state]),
        "exp_avg_sq": np.zeros(n, DTYPE[state]),
    }
    if state == "int8":
        blocks = _formats.blocks(n, BLOCK)
        bufs["exp_avg_absmax"] = np.zeros(blocks, np.float32)
        bufs["exp_avg_sq_absmax"] = np.zeros(blocks, np.float32)
    if param == "master":
        bufs["param_copy"] = np.zeros(n, _formats.BFLOAT16)
    count = itertools.count(1)

    def run() -> None:
        functional.adam(
            **bufs, step=next(count), lr=LR, beta1=BETA1, beta2=BETA2, eps=EPS, rounding=rounding
        )

    return run


def make_torch_fused(n: int) -> Step:
    import torch

    param = torch.nn.Parameter(torch.randn(n))
    param.grad = torch.randn(n) * 1e-2
    return torch.optim.Adam([param], lr=LR, fused=True).step


def deepspeed_available() -> bool:
    """Whether DeepSpeed's CPU Adam is installed and its extension builds (a first
    build compiles it with ninja, which takes minutes)."""
    if importlib.util.find_spec("deepspeed") is None:
        return False
    try:
        make_deepspeed(8)()
    except Exception:  # a failed build of a third-party extension: leave it out
        return False
    return True


def make_deepspeed(n: int) -> Step:
    import torch
    from deepspeed.ops.adam import DeepSpeedCPUAdam

    param = torch.nn.Parameter(torch.randn(n))
    param.grad = torch.randn(n) * 1e-2
    return DeepSpeedCPUAdam([param], lr=LR, adamw_mode=False).step


@dataclass(frozen=True)
class Peer:
    """A compressed-state Adam of another library, timed as a row of its own (AdamW with
    no weight decay: Adam)."""

    name: str
    module: str  # what must be importable
    optimizer: str  # "module:Class"
    state: str  # the fastadam state format it compares with ("int8", ...)
    moved: float  # bytes per element and step: fp32 param and grad, its state and scales
    kept: float  # bytes kept per element: fp32 param, its state and scales

    def make(self, n: int) -> Step:
        """Its step over n float32 params. Its warnings (torch.compile's, say) are its
        own: they are silenced, not turned into the caller's errors."""
        import torch

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module, name = self.optimizer.split(":")
            optimizer = getattr(importlib.import_module(module), name)
        param = torch.nn.Parameter(torch.randn(n))
        param.grad = torch.randn(n) * 1e-2
        step = optimizer([param], lr=LR, betas=(BETA1, BETA2), eps=EPS, weight_decay=0.0).step

        def run() -> object:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return step()

        return run


def _peer_bytes(state_bits: int, block: int) -> tuple[float, float]:
    """(moved, kept) per element: fp32 param (read, written) and grad, two state buffers
    of ``state_bits`` each with an fp32 scale per ``block`` (read and written)."""
    state = 2 * (state_bits / 8 + 4 / block)
    return 12 + 2 * state, 4 + state


PEERS = [
    Peer("torchao AdamW8bit", "torchao", "torchao.optim:AdamW8bit", "int8", *_peer_bytes(8, 256)),
    Peer("torchao AdamWFp8", "torchao", "torchao.optim:AdamWFp8", "fp8", *_peer_bytes(8, 256)),
    Peer("torchao AdamW4bit", "torchao", "torchao.optim:AdamW4bit", "int4", *_peer_bytes(4, 128)),
    Peer(
        "bitsandbytes AdamW8bit",
        "bitsandbytes",
        "bitsandbytes.optim:AdamW8bit",
        "int8",
        *_peer_bytes(8, 256),
    ),
]


def peers_available(torch_ok: bool) -> list[Peer]:
    """The peers installed whose step runs here (a library that fails on this machine,
    say without a compiler for torch.compile, is left out)."""
    if not torch_ok:
        return []
    available = []
    for peer in PEERS:
        if importlib.util.find_spec(peer.module) is None:
            continue
        try:
            peer.make(8192)()
        except Exception:  # a third-party library that does not run here: leave it out
            continue
        available.append(peer)
    return available


def steps(
    n: int, torch_ok: bool, deepspeed_ok: bool, peers: list[Peer] | None = None
) -> dict[str, Step]:
    """Every step to time: the formats (and the round-to-nearest ones), then torch's and
    DeepSpeed's float32 Adam and the compressed-state peers."""
    out = {label(*f): make_step(n, *f) for f in FORMATS}
    out |= {label(*f, "nearest"): make_step(n, *f, "nearest") for f in NEAREST}
    if torch_ok:
        out["torch fused fp32"] = make_torch_fused(n)
    if deepspeed_ok:
        out["DeepSpeed CPU Adam fp32"] = make_deepspeed(n)
    for peer in peers or []:
        out[peer.name] = peer.make(n)
    return out


def results(times: dict[str, float], n: int, threads: int) -> list[CompressedResult]:
    """The rows of one timed configuration, as ratios to the float32 steps of the run and
    (for float32 params and grads) to the fastest peer keeping the same state format."""
    fp32 = times[label(*FORMATS[0])]
    torch_fused = times.get("torch fused fp32")
    deepspeed = times.get("DeepSpeed CPU Adam fp32")
    rows = []
    for f, rounding in [*((f, None) for f in FORMATS), *((f, "nearest") for f in NEAREST)]:
        seconds = times[label(*f, rounding)]
        moved, kept = traffic(*f)
        peer = min(
            (times[p.name] for p in PEERS if p.name in times and p.state == f[2]), default=None
        )
        rows.append(
            CompressedResult(
                label(*f, rounding),
                threads,
                n,
                moved,
                kept,
                seconds,
                fp32 / seconds,
                None if torch_fused is None else torch_fused / seconds,
                None if deepspeed is None else deepspeed / seconds,
                None if peer is None or f[:2] != ("float32", "float32") else peer / seconds,
            )
        )
    others = [("torch fused fp32", 28.0, 12.0), ("DeepSpeed CPU Adam fp32", 28.0, 12.0)]
    others += [(p.name, p.moved, p.kept) for p in PEERS]
    for name, moved, kept in others:
        if name in times:
            rows.append(
                CompressedResult(name, threads, n, moved, kept, times[name], fp32 / times[name])
            )
    return rows


# The table's columns: heading, width, and the row's value as text.
COLUMNS: list[tuple[str, int, Callable[[CompressedResult], str]]] = [
    ("param/grad/state", -29, lambda r: r.format),
    ("thr", 3, lambda r: str(r.threads)),
    ("B/elem/step", 11, lambda r: f"{r.bytes_per_element:.2f}"),
    ("resident B", 10, lambda r: f"{r.resident_bytes:.2f}"),
    ("ms/step", 9, lambda r: f"{r.seconds * 1e3:.3f}"),
    ("x fp32", 7, lambda r: _ratio(r.vs_float32)),
    ("x torch", 8, lambda r: _ratio(r.vs_torch_fused)),
    ("x DeepSpeed", 11, lambda r: _ratio(r.vs_deepspeed)),
    ("x peer", 6, lambda r: _ratio(r.vs_peer)),
]


def _ratio(x: float | None) -> str:
    return "" if x is None else f"{x:.2f}"


def format_table(rows: list[CompressedResult]) -> str:
    """One line per row, the columns of COLUMNS (a negative width aligns left)."""

    def line(cells: list[str]) -> str:
        widths = [w for _, w, _ in COLUMNS]
        return " ".join(
            f"{c:<{-w}}" if w < 0 else f"{c:>{w}}" for c, w in zip(cells, widths, strict=True)
        ).rstrip()

    header = line([heading for heading, _, _ in COLUMNS])
    body = [line([cell(r) for _, _, cell in COLUMNS]) for r in rows]
    return "\n".join([header, "-" * len(header), *body])


def goals(rows: list[CompressedResult], check: Callable[[str, float | None, float], None]) -> None:
    """The speed goals at 10 M elements: on 1 thread, bfloat16 state at least 1.3 x
    fastadam's float32 step, int8 state 1.5 x, each 1.5 x torch fused and DeepSpeed; int8
    state with round-to-nearest at least level with the fastest installed int8 peer at
    every thread count."""
    for r in rows:
        if r.elements < 10_000_000 or not r.format.startswith("float32/"):
            continue
        if r.format == label(*NEAREST[0], "nearest"):
            check(f"{r.format} state vs int8 peer, {r.threads} thread(s)", r.vs_peer, 1.0)
            continue
        state = r.format.rsplit("/", 1)[1]
        if r.threads != 1 or state == "float32":
            continue
        check(
            f"{r.format} state vs fastadam float32",
            r.vs_float32,
            1.3 if state == "bfloat16" else 1.5,
        )
        check(f"{r.format} state vs torch fused float32", r.vs_torch_fused, 1.5)
        check(f"{r.format} state vs DeepSpeed CPU Adam", r.vs_deepspeed, 1.5)
