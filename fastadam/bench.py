"""Benchmark fastadam's Adam step against NumPy, torch and the memory ceiling.

Run ``python -m fastadam.bench`` (``--help`` for options). An Adam step is
memory-bound: per element it reads param, grad, exp_avg and exp_avg_sq and
writes three of them back, 7 x itemsize bytes. The ceiling is a kernel shipped
in the extension that moves exactly those bytes with trivial maths, measured in
the same run, so every number here is a ratio on one machine at one time.
Times are medians.

The model rows step AdamW over the parameter shapes of GPT-2 models with both
front ends (the NumPy class ``fastadam.AdamW`` and the PyTorch drop-in
``fastadam.torch.AdamW``) and with torch's fused AdamW, interleaved, and report
each as a ratio to torch's fused step. The small calls time one step over 1 000
element tensors with both front ends and with torch's fused Adam: the per-call
overhead a trainer with many small tensors pays (and a functional call on 16
elements: its fixed cost alone).
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from . import _algorithms, _bench_compressed, _config, _ext, functional
from .optimizers import Adam, AdamW

Step = Callable[[], object]

LR, BETA1, BETA2, EPS = 1e-3, 0.9, 0.999, 1e-8
WEIGHT_DECAY = 1e-2  # AdamW's default, in torch.optim and fastadam alike
BUFFER_NAMES = ("param", "grad", "exp_avg", "exp_avg_sq")  # of Adam and of the traffic kernel


def gpt2_shapes(vocab: int, positions: int, width: int, layers: int) -> list[tuple[int, ...]]:
    """The parameter shapes of a GPT-2 in Hugging Face's layout (Conv1D weights are [in, out]).

    wte [vocab, width] and wpe [positions, width]; per layer ln_1 (weight, bias),
    attn.c_attn [width, 3 width] and bias, attn.c_proj [width, width] and bias,
    ln_2, mlp.c_fc [width, 4 width] and bias, mlp.c_proj [4 width, width] and bias;
    then ln_f.
    """
    layer = [
        (width,),
        (width,),
        (width, 3 * width),
        (3 * width,),
        (width, width),
        (width,),
        (width,),
        (width,),
        (width, 4 * width),
        (4 * width,),
        (4 * width, width),
        (width,),
    ]
    return [(vocab, width), (positions, width), *layer * layers, (width,), (width,)]


# GPT-2 small: 124 M parameters in 148 tensors.
GPT2_SMALL = gpt2_shapes(vocab=50257, positions=1024, width=768, layers=12)
# A 2-layer, 128-wide GPT-2: 0.5 M parameters (495 104) in 28 tensors. Its vocabulary
# of 512 tokens and its 256 positions are this benchmark's choices (GPT-2's are 50257
# and 1024).
GPT2_TINY = gpt2_shapes(vocab=512, positions=256, width=128, layers=2)
MODELS: dict[str, list[tuple[int, ...]]] = {"gpt2-small": GPT2_SMALL, "gpt2-tiny": GPT2_TINY}


Tensors = list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]


def make_tensors(shapes: Sequence[tuple[int, ...]], dtype: type, seed: int = 0) -> Tensors:
    """(param, grad, exp_avg, exp_avg_sq) for each shape, with an Adam state of a few steps."""
    rng = np.random.default_rng(seed)
    out = []
    for shape in shapes:
        p: np.ndarray = rng.standard_normal(shape).astype(dtype)
        g: np.ndarray = (rng.standard_normal(shape) * 1e-2).astype(dtype)
        out.append((p, g, np.zeros_like(p), np.zeros_like(p)))
    return out


# ------------------------------------------------------------ implementations
#
# Every implementation updates the same buffers in place (so that one
# configuration needs memory for one model, and runs can be interleaved): a
# maker takes the tensors and returns a function doing one Adam step on them.

Maker = Callable[[Tensors], Step]


def _counter() -> Callable[[], int]:
    step = 0

    def next_step() -> int:
        nonlocal step
        step += 1
        return step

    return next_step


def make_ceiling(tensors: Tensors) -> Step:
    """Adam's memory traffic with trivial maths (values unchanged), shipped in the extension."""

    def run() -> None:
        for buffers in tensors:
            _ext.run1(_ext.TRAFFIC, BUFFER_NAMES, buffers, (0.0,))

    return run


def make_fastadam(tensors: Tensors) -> Step:
    next_step = _counter()

    def run() -> None:
        t = next_step()
        for p, g, m, v in tensors:
            functional.adam(p, g, m, v, step=t, lr=LR, beta1=BETA1, beta2=BETA2, eps=EPS)

    return run


def _class_maker(optimizer: type[Adam], **options: Any) -> Maker:
    """A maker stepping fastadam's NumPy class ``optimizer`` over the tensors and their state."""

    def make(tensors: Tensors) -> Step:
        opt = optimizer([t[0] for t in tensors], lr=LR, **options)
        for index, (_, _, m, v) in enumerate(tensors):
            opt.state[index] = {"step": 0, "exp_avg": m, "exp_avg_sq": v}
        grads = [t[1] for t in tensors]
        return lambda: opt.step(grads)

    return make


make_fastadam_class = _class_maker(Adam)


def make_fused_call(tensors: Tensors) -> Step:
    """The one fused C call that an Adam step over the tensors ends in (with its check
    that no buffers overlap), its buffers queued once: what a step costs without the
    front end's per-step work (reading the group, the state and every buffer)."""
    hyperparameters = _algorithms.adam_hyperparameters(LR, BETA1, BETA2, EPS, 0.0, False, False)
    batch = _ext.Batch(_ext.ADAM, BUFFER_NAMES)
    coef = batch.add_coef(_algorithms.adam_at(hyperparameters, 1))
    for index, (p, g, m, v) in enumerate(tensors):
        batch.add(index, (p, g, m, v), coef)
    next_step = _counter()

    def run() -> None:
        batch.set_coef(coef, _algorithms.adam_at(hyperparameters, next_step()))
        batch.run()

    return run


def make_numpy_inplace(tensors: Tensors) -> Step:
    """Adam with in-place ufuncs and a preallocated scratch array: NumPy at its best."""
    scratch = [np.empty_like(t[0]) for t in tensors]
    next_step = _counter()

    def run() -> None:
        t = next_step()
        step_size = LR / (1 - BETA1**t)
        bc2_sqrt = (1 - BETA2**t) ** 0.5
        for (p, g, m, v), tmp in zip(tensors, scratch, strict=True):
            m *= BETA1
            np.multiply(g, 1 - BETA1, out=tmp)
            m += tmp
            v *= BETA2
            np.multiply(g, g, out=tmp)
            tmp *= 1 - BETA2
            v += tmp
            np.sqrt(v, out=tmp)
            tmp /= bc2_sqrt
            tmp += EPS
            np.divide(m, tmp, out=tmp)
            tmp *= step_size
            p -= tmp

    return run


def make_numpy(tensors: Tensors) -> Step:
    """Adam written as in the paper, one temporary per operation."""
    next_step = _counter()

    def run() -> None:
        t = next_step()
        for p, g, m, v in tensors:
            m[...] = BETA1 * m + (1 - BETA1) * g
            v[...] = BETA2 * v + (1 - BETA2) * g * g
            m_hat = m / (1 - BETA1**t)
            v_hat = v / (1 - BETA2**t)
            p -= LR * m_hat / (np.sqrt(v_hat) + EPS)

    return run


def _torch_maker(optimizer: str, **options: float | bool) -> Maker:
    """A maker stepping the torch optimizer class named ``optimizer`` (``"torch.optim.Adam"``,
    ``"fastadam.torch.AdamW"``, ...; imported when a step is made) over the tensors as torch
    tensors sharing their memory, with ``.grad`` set: ``opt.step()``, as a training loop."""
    module, name = optimizer.rsplit(".", 1)

    def make(tensors: Tensors) -> Step:
        import torch

        cls = getattr(importlib.import_module(module), name)
        params = []
        for p, g, _, _ in tensors:
            tp = torch.from_numpy(p).requires_grad_()
            tp.grad = torch.from_numpy(g)
            params.append(tp)
        opt = cls(params, lr=LR, **options)
        for tp, (_, _, m, v) in zip(params, tensors, strict=True):
            opt.state[tp] = {
                "step": torch.tensor(0.0),
                "exp_avg": torch.from_numpy(m),
                "exp_avg_sq": torch.from_numpy(v),
            }
        return opt.step

    return make


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


make_fastadam_torch = _torch_maker("fastadam.torch.Adam")

IMPLEMENTATIONS: dict[str, Maker] = {
    "ceiling": make_ceiling,
    "fastadam": make_fastadam,
    "torch-fused": _torch_maker("torch.optim.Adam", fused=True),
    "torch-foreach": _torch_maker("torch.optim.Adam", foreach=True),
    "torch-forloop": _torch_maker("torch.optim.Adam", foreach=False),
    "numpy-inplace": make_numpy_inplace,
    "numpy": make_numpy,
    # AdamW, the model rows: both fastadam front ends and torch's fused step
    "fastadam.AdamW": _class_maker(AdamW, weight_decay=WEIGHT_DECAY),
    "fastadam.torch.AdamW": _torch_maker("fastadam.torch.AdamW", weight_decay=WEIGHT_DECAY),
    "torch-fused-AdamW": _torch_maker("torch.optim.AdamW", fused=True, weight_decay=WEIGHT_DECAY),
}
ADAMW = ("fastadam.AdamW", "fastadam.torch.AdamW", "torch-fused-AdamW")
MODEL_IMPLS = ("ceiling", *ADAMW)
NEEDS_TORCH = {name for name in IMPLEMENTATIONS if "torch" in name}
# fastadam.torch against torch's fused AdamW, by model (its number of tensors).
TORCH_MODEL_GOALS = {len(GPT2_TINY): 1.4, len(GPT2_SMALL): 1.0}
# The torch fused step a row is compared with (x torch-fused): the one in its configuration,
# which steps one algorithm (Adam in the vector rows, AdamW in the model rows).
TORCH_FUSED = ("torch-fused", "torch-fused-AdamW")

# The small calls, by label: the maker and the steps timed, each as (number of tensors,
# elements per tensor). A functional call on 16 elements is its fixed cost, nearly
# without the kernel's work.
SMALL_CALLS: dict[str, tuple[Maker, tuple[tuple[int, int], ...]]] = {
    "functional.adam": (make_fastadam, ((1, 1000), (1, 16))),
    "Adam.step": (make_fastadam_class, ((1, 1000), (100, 1000))),
    "fused call alone": (make_fused_call, ((100, 1000),)),
    "fastadam.torch.Adam.step": (make_fastadam_torch, ((1, 1000), (100, 1000))),
    "torch-fused Adam.step": (IMPLEMENTATIONS["torch-fused"], ((1, 1000), (100, 1000))),
}


# ------------------------------------------------------------------ measuring


def set_threads(n: int) -> None:
    _config.set_num_threads(n)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)


@dataclass
class Result:
    impl: str
    dtype: str
    threads: int
    elements: int
    tensors: int
    seconds: float
    gbps: float
    of_ceiling: float | None = None
    vs_numpy: float | None = None
    vs_torch_fused: float | None = None


@dataclass
class Report:
    machine: dict[str, object]
    results: list[Result] = field(default_factory=list)
    small_calls_us: dict[str, float] = field(default_factory=dict)
    compressed: list[_bench_compressed.CompressedResult] = field(default_factory=list)
    torch_floors: list[str] = field(default_factory=list)
    goals: list[str] = field(default_factory=list)


def median_times(
    steps: dict[str, Step], min_time: float, min_rounds: int = 5, batch: int = 1
) -> dict[str, float]:
    """Median seconds per call of each step function, measured in interleaved rounds.

    Each round times ``batch`` calls of every function in turn, so that a change
    in the machine's load during the measurement affects all of them alike.
    """
    for run in steps.values():
        run()
        run()
    samples: dict[str, list[float]] = {name: [] for name in steps}
    start = time.perf_counter()
    rounds = 0
    while rounds < min_rounds or time.perf_counter() - start < min_time * len(steps):
        for name, run in steps.items():
            t0 = time.perf_counter()
            for _ in range(batch):
                run()
            samples[name].append((time.perf_counter() - t0) / batch)
        rounds += 1
        if rounds >= 2000:
            break
    return {name: statistics.median(times) for name, times in samples.items()}


def measure(
    impls: Sequence[str],
    shapes: Sequence[tuple[int, ...]],
    dtype: type,
    threads: int,
    min_time: float,
) -> list[Result]:
    """Time the implementations on one configuration, interleaved, on shared buffers."""
    tensors = make_tensors(shapes, dtype)
    steps = {impl: IMPLEMENTATIONS[impl](tensors) for impl in impls}
    set_threads(threads)  # after the makers, which may import torch
    elements = sum(int(np.prod(s)) for s in shapes)
    batch = max(1, 100_000 // max(elements, 1))
    times = median_times(steps, min_time, batch=batch)
    traffic = 7 * np.dtype(dtype).itemsize * elements
    results = [
        Result(
            impl,
            np.dtype(dtype).name,
            threads,
            elements,
            len(shapes),
            seconds,
            traffic / seconds / 1e9,
        )
        for impl, seconds in times.items()
    ]
    ceiling, numpy_ = times.get("ceiling"), times.get("numpy-inplace")
    fused = next((times[name] for name in TORCH_FUSED if name in times), None)
    for r in results:
        r.of_ceiling = None if ceiling is None else ceiling / r.seconds
        r.vs_numpy = None if numpy_ is None else numpy_ / r.seconds
        r.vs_torch_fused = None if fused is None else fused / r.seconds
    return results


# ---------------------------------------------------------------- the suites


def small_calls(min_time: float) -> dict[str, float]:
    """Microseconds per call for a trainer with many small tensors (float32): each of
    SMALL_CALLS (those of torch if it is installed) at each of its sizes."""
    steps = {
        f"{name}, {count} x {size}": make(make_tensors([(size,)] * count, np.float32))
        for name, (make, sizes) in SMALL_CALLS.items()
        if torch_available() or "torch" not in name
        for count, size in sizes
    }
    set_threads(_config.available_cpus())
    times = {}
    for label, step in steps.items():  # not interleaved: each keeps its own cache warm
        batch = 200 if label.startswith("functional") else 20
        times[label] = median_times({label: step}, min_time, batch=batch)[label] * 1e6
    return times


def _check(goals: list[str], label: str, value: float | None, goal: float, unit: str = "x") -> None:
    if value is None:
        return
    ok = value >= goal if unit == "x" else value <= goal
    sign = ">=" if unit == "x" else "<="
    goals.append(
        f"[{'ok' if ok else 'MISSED'}] {label}: {value:.3g} {unit} (goal {sign} {goal} {unit})"
    )


def evaluate_goals(report: Report) -> None:
    """The performance goals (issue: at the memory-bandwidth ceiling, ahead of torch)."""
    by = {(r.impl, r.dtype, r.threads, r.elements, r.tensors): r for r in report.results}
    goals = report.goals
    for (impl, dtype, threads, n, tensors), r in by.items():
        if impl not in ("fastadam", "fastadam.AdamW", "fastadam.torch.AdamW"):
            continue
        where = f"{impl} {dtype} {n:,} elements in {tensors} tensor(s), {threads} thread(s)"
        floor = 0.92 if threads == 1 else 0.9
        if n >= 1_000_000:
            _check(goals, f"{where} vs ceiling", r.of_ceiling, floor)
        goal = TORCH_MODEL_GOALS.get(tensors, 1.05) if impl == "fastadam.torch.AdamW" else 1.05
        _check(goals, f"{where} vs torch fused", r.vs_torch_fused, goal)
        if n >= 1_000_000 and tensors == 1:
            _check(goals, f"{where} vs numpy in-place", r.vs_numpy, 8.0)
    limits = {
        "functional.adam, 1 x 1000": 1.5,
        "Adam.step, 1 x 1000": 4.0,
        "Adam.step, 100 x 1000": 50.0,
    }
    calls = report.small_calls_us
    for label, us in calls.items():
        step = label.startswith("Adam.step, ")
        alone = calls.get(label.replace("Adam.step", "fused call alone")) if step else None
        if label in limits and alone is not None and alone >= limits[label]:
            # The fused C call alone (the kernels and the overlap check) takes the whole
            # budget on this machine: no front end can meet the goal here.
            count = int(label.split(", ")[1].split(" x ")[0])
            goals.append(
                f"[out of reach] {label}: {us:.3g} us (goal <= {limits[label]} us): the fused "
                f"call alone takes {alone:.3g} us here; the step adds "
                f"{(us - alone) / count:.2f} us per tensor"
            )
        elif label in limits:
            _check(goals, label, us, limits[label], unit="us")
    _bench_compressed.goals(report.compressed, lambda *args: _check(goals, *args))


# fastadam.torch's step reads each tensor it updates or reads through torch's DLPack
# export (memory, dtype, shape, strides, device, with torch's checks, in one call): a
# param of Adam(W) gives five (param, grad, exp_avg, exp_avg_sq, step).
TENSORS_READ_PER_PARAM = 5


def dlpack_seconds(rounds: int = 7, calls: int = 20_000) -> float:
    """Median seconds torch takes to describe one tensor through DLPack (what the torch
    front end pays per tensor per step, on top of the NumPy class's work)."""
    import torch

    x = torch.zeros(1000)
    to_dlpack = torch.utils.dlpack.to_dlpack
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(calls):
            to_dlpack(x)
        times.append((time.perf_counter() - t0) / calls)
    return statistics.median(times)


def torch_floors(results: Sequence[Result], dlpack: float) -> list[str]:
    """For each model row: the fastest fastadam.torch could be, the NumPy class's time
    plus the tensors' DLPack reads, as a ratio to torch's fused step in the same run."""
    by = {(r.impl, r.threads, r.tensors): r for r in results}
    lines = []
    for (impl, threads, tensors), fused in by.items():
        numpy_class = by.get(("fastadam.AdamW", threads, tensors))
        if impl != "torch-fused-AdamW" or numpy_class is None:
            continue
        reads = TENSORS_READ_PER_PARAM * tensors * dlpack
        bound = fused.seconds / (numpy_class.seconds + reads)
        us = numpy_class.seconds * 1e6
        lines.append(
            f"{tensors} tensors, {threads} thread(s): NumPy class {us:.0f} us"
            f" + {TENSORS_READ_PER_PARAM} x {tensors} x {dlpack * 1e6:.2f} us = "
            f"{(numpy_class.seconds + reads) * 1e6:.0f} us: at most {bound:.2f} x torch fused"
        )
    return lines


def machine() -> dict[str, object]:
    info = dict(_config.config())
    info["processor"] = _cpu_name()
    if torch_available():
        import torch

        info["torch"] = torch.__version__
    return info


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


Config = tuple[list[str], Sequence[tuple[int, ...]], type, int]


def run_suite(configs: Sequence[Config], min_time: float, progress: bool) -> list[Result]:
    """Measure each configuration (implementations, shapes, dtype, threads) in turn."""
    results = []
    for number, (impls, shapes, dtype, threads) in enumerate(configs, 1):
        if progress:
            n = sum(int(np.prod(s)) for s in shapes)
            print(
                f"[{number}/{len(configs)}] {np.dtype(dtype).name}, {n:,} elements in "
                f"{len(shapes)} tensor(s), {threads} thread(s): {', '.join(impls)}",
                file=sys.stderr,
                flush=True,
            )
        results += measure(impls, shapes, dtype, threads, min_time)
    return results


def measure_compressed(
    n: int, threads: Sequence[int], min_time: float, progress: bool
) -> list[_bench_compressed.CompressedResult]:
    """Every compressed format's Adam step over n elements, interleaved with the float32
    steps of fastadam, torch (fused) and DeepSpeed (CPU Adam) and the compressed-state
    optimizers of torchao and bitsandbytes, per thread count."""
    deepspeed = _bench_compressed.deepspeed_available()
    if progress and not deepspeed:
        print("DeepSpeed CPU Adam is not available: leaving it out", file=sys.stderr)
    peers = _bench_compressed.peers_available(torch_available())
    if progress:
        missing = [p.name for p in _bench_compressed.PEERS if p not in peers]
        if missing:
            print(f"not installed or not running here: {', '.join(missing)}", file=sys.stderr)
    rows = []
    for count in threads:
        if progress:
            print(f"compressed state, {n:,} elements, {count} thread(s)", file=sys.stderr)
        set_threads(count)
        steps = _bench_compressed.steps(n, torch_available(), deepspeed, peers)
        rows += _bench_compressed.results(median_times(steps, min_time), n, count)
    return rows


# -------------------------------------------------------------------- output


def format_table(results: Sequence[Result]) -> str:
    header = (
        f"{'dtype':8} {'thr':>3} {'elements':>12} {'tensors':>7}  {'implementation':21}"
        f"{'ms/step':>10} {'GB/s':>7} {'% ceiling':>10} {'x numpy':>8} {'x torch-fused':>13}"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        ceiling = f"{100 * r.of_ceiling:9.1f}%" if r.of_ceiling is not None else f"{'':10}"
        speedup = f"{r.vs_numpy:8.2f}" if r.vs_numpy is not None else f"{'':8}"
        fused = f"{r.vs_torch_fused:13.2f}" if r.vs_torch_fused is not None else ""
        lines.append(
            f"{r.dtype:8} {r.threads:3} {r.elements:12,} {r.tensors:7}  {r.impl:21}"
            f"{r.seconds * 1e3:10.3f} {r.gbps:7.1f} {ceiling} {speedup} {fused}".rstrip()
        )
    return "\n".join(lines)


def format_report(report: Report) -> str:
    m = report.machine
    parts = [
        f"fastadam {m['fastadam']} benchmark on {m['processor']} ({m['machine']}), "
        f"kernels: {m['simd']}, int8 lookups: {m['int8 lookups']}, "
        f"{m['cpus available']} CPU(s), numpy {m['numpy']}"
        + (f", torch {m['torch']}" if "torch" in m else ", torch not installed"),
    ]
    if report.results:
        parts += [
            "Adam step; time = median; GB/s = 7 x itemsize x elements / time; "
            "% ceiling = ceiling time / time; x numpy = numpy-inplace time / time; "
            "x torch-fused = torch fused time / time (same run)",
        ]
        if any(r.impl in ADAMW for r in report.results):
            parts += [
                f"Model rows: AdamW (weight_decay={WEIGHT_DECAY}) over GPT-2 parameter shapes, "
                "x torch-fused against torch's fused AdamW"
            ]
        parts += ["", format_table(report.results)]
    if report.torch_floors:
        parts += [
            "",
            "fastadam.torch's floor (NumPy class + DLPack reads of every tensor, same run):",
        ]
        parts += [f"  {line}" for line in report.torch_floors]
    if report.small_calls_us:
        parts += ["", "Small calls (float32, median microseconds per call):"]
        parts += [f"  {k:36} {v:8.2f} us" for k, v in report.small_calls_us.items()]
    if report.compressed:
        parts += [
            "",
            "Compressed state (Adam; B = bytes per element; ratios = time / time, same run):",
        ]
        parts += [_bench_compressed.format_table(report.compressed)]
    if report.goals:
        parts += ["", "Goals:"] + [f"  {g}" for g in report.goals]
    return "\n".join(parts)


# ----------------------------------------------------------------------- CLI


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    cpus = _config.available_cpus()
    parser = argparse.ArgumentParser(
        prog="python -m fastadam.bench",
        description="Time fastadam's fused Adam step against NumPy, torch and the memory ceiling.",
    )
    parser.add_argument(
        "--suite",
        choices=["quick", "full"],
        default="quick",
        help="quick: 10 M elements (~30 s); full: also sizes 1e3..1e8 and every model",
    )
    parser.add_argument("--sizes", type=int, nargs="+", help="element counts (one tensor each)")
    parser.add_argument(
        "--dtypes", nargs="+", default=["float32", "float64"], choices=["float32", "float64"]
    )
    parser.add_argument(
        "--threads", type=int, nargs="+", default=sorted({1, cpus}), help="thread counts"
    )
    parser.add_argument(
        "--impls",
        nargs="+",
        choices=list(IMPLEMENTATIONS),
        help="implementations (default: all available)",
    )
    parser.add_argument(
        "--min-time",
        type=float,
        default=0.25,
        help="seconds spent timing each implementation per configuration (at least 5 runs)",
    )
    parser.add_argument("--no-small", action="store_true", help="skip the small-call timings")
    parser.add_argument(
        "--no-compressed",
        action="store_true",
        help="skip the compressed-state rows (run unless --impls narrows the comparison)",
    )
    parser.add_argument(
        "--only-compressed",
        action="store_true",
        help="only the compressed-state rows (at the largest size, at most 10 M elements)",
    )
    parser.add_argument(
        "--models",
        nargs="+",
        choices=list(MODELS),
        default=[],
        help="add AdamW steps over these models' parameter shapes (the model rows)",
    )
    parser.add_argument(
        "--gpt2", action="store_true", help="add the model rows of every model (GPT-2 small, tiny)"
    )
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--plot", metavar="FILE", help="also draw GB/s against size (plot extra)")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    return parser.parse_args(argv)


def selected_models(args: argparse.Namespace) -> list[str]:
    """The models whose rows run: all with ``--gpt2`` or ``--suite full``, else ``--models``."""
    if args.gpt2 or args.suite == "full":
        return list(MODELS)
    return list(dict.fromkeys(args.models))


def main(argv: Sequence[str] | None = None) -> Report:
    args = parse_args(argv)
    full = args.suite == "full"
    sizes = args.sizes or (
        [1_000, 100_000, 1_000_000, 10_000_000, 100_000_000] if full else [10_000_000]
    )
    have_torch = torch_available()
    impls = [i for i in (args.impls or IMPLEMENTATIONS) if have_torch or i not in NEEDS_TORCH]
    if args.impls and not have_torch and set(args.impls) & NEEDS_TORCH:
        print("torch is not installed: skipping the torch implementations", file=sys.stderr)
    vector_impls = [i for i in impls if i not in ADAMW]
    configs: list[Config] = [
        (vector_impls, [(n,)], getattr(np, dtype), threads)
        for dtype in args.dtypes
        for threads in args.threads
        for n in sizes
    ]
    model_impls = [i for i in MODEL_IMPLS if i in impls]
    configs += [
        (model_impls, MODELS[model], np.float32, t)
        for model in selected_models(args)
        for t in args.threads
    ]
    configs = [config for config in configs if config[0]]
    if args.only_compressed:
        configs = []
    report = Report(machine())
    if not args.no_small and not args.only_compressed:
        # First, while no large step has run: torch's OpenMP threads, busy-waiting after
        # its multi-threaded steps, would take the other core from these short calls.
        report.small_calls_us = small_calls(args.min_time)
    report.results = run_suite(configs, args.min_time, progress=not args.quiet)
    if have_torch and any(r.impl == "fastadam.torch.AdamW" for r in report.results):
        report.torch_floors = torch_floors(report.results, dlpack_seconds())
    if not args.no_compressed and args.impls is None:
        n = min(max(sizes), 10_000_000)
        report.compressed = measure_compressed(n, args.threads, args.min_time, not args.quiet)
    evaluate_goals(report)
    set_threads(_config.available_cpus())
    print(format_report(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(asdict(report), f, indent=2)
    if args.plot:
        from ._plot import plot_bench

        plot_bench(report, args.plot)
    return report


if __name__ == "__main__":
    main()
