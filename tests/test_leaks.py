"""No leaks: a hundred thousand calls leave memory and reference counts where they were.

Each scenario runs a warm-up (free lists, caches and lazily created state settle),
takes a census, runs many more calls and takes it again. The census counts:

* the reference counts of every array involved (params, grads, state buffers):
  a leaked reference per call would add 100 000;
* the memory blocks Python's allocator has handed out (``sys.getallocatedblocks``)
  and the objects the garbage collector tracks: a leaked tuple, float or
  exception per call would add about 100 000;
* the resident set size: a leaked ``malloc`` of 16 bytes per call would add 3 MB.

Under AddressSanitizer (.ci/sanitize) the allocator and its shadow memory grow by a
few MB over the first hundred thousand calls and then stay flat, so that run sets
FASTADAM_LEAK_RSS_SLACK (bytes) higher; the other counts stay exact there too.
"""

from __future__ import annotations

import gc
import os
import re
import sys
from collections.abc import Callable

import numpy as np
import pytest

import fastadam
from fastadam import functional as F

WARMUP = 2_000
BLOCK_SLACK = 200  # allocator blocks that may come and go (free lists, caches)
RSS_SLACK = int(os.environ.get("FASTADAM_LEAK_RSS_SLACK", 1 << 20))  # bytes


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _census(arrays: list[np.ndarray]) -> dict:
    gc.collect()
    return {
        "refcounts": [sys.getrefcount(a) for a in arrays],
        "blocks": sys.getallocatedblocks(),
        "objects": len(gc.get_objects()),
        "rss": _rss(),
    }


def _assert_steady(run: Callable[[int], None], arrays: Callable[[], list[np.ndarray]], n: int):
    run(WARMUP)
    tracked = arrays()
    before = _census(tracked)
    run(n)
    after = _census(tracked)
    assert after["refcounts"] == before["refcounts"]
    assert abs(after["blocks"] - before["blocks"]) <= BLOCK_SLACK, (before, after)
    assert after["objects"] <= before["objects"] + BLOCK_SLACK, (before, after)
    assert after["rss"] - before["rss"] <= RSS_SLACK, (before, after)


def _small_problem():
    params = [np.ones(8, np.float32), np.ones((2, 3)), np.ones(())]
    grads = [np.full(p.shape, 0.5, p.dtype) for p in params]
    return params, grads


def _state_arrays(opt: fastadam.Optimizer) -> list[np.ndarray]:
    return [v for s in opt.state.values() for v in s.values() if isinstance(v, np.ndarray)]


CLASSES = [
    (fastadam.Adam, {"amsgrad": True, "weight_decay": 0.1}),
    (fastadam.SGD, {"momentum": 0.9, "nesterov": True}),
    (fastadam.RMSprop, {"centered": True, "momentum": 0.5}),
    (fastadam.Lion, {}),
]


@pytest.mark.parametrize(("cls", "kwargs"), CLASSES, ids=[c.__name__ for c, _ in CLASSES])
def test_optimizer_steps(cls, kwargs):
    params, grads = _small_problem()
    opt = cls(params, lr=1e-3, **kwargs)

    def run(n):
        for _ in range(n):
            opt.step(grads)

    n = 100_000 if cls is fastadam.Adam else 20_000
    _assert_steady(run, lambda: [*params, *grads, *_state_arrays(opt)], n)
    assert opt.state[0]["step"] == WARMUP + n
    assert all(np.isfinite(p).all() for p in params)


def test_optimizer_steps_that_skip_params():
    """Grads of None, and a state dict grown on a later step, on the steady path."""
    params, grads = _small_problem()
    opt = fastadam.Adam(params)
    opt.step([grads[0], None, None])

    def run(n):
        for k in range(n):
            opt.step([grads[0], grads[1] if k % 2 else None, grads[2]])

    _assert_steady(run, lambda: [*params, *grads, *_state_arrays(opt)], 50_000)


def test_functional_calls():
    p = np.ones(8, np.float32)
    g = np.full(8, 0.5, np.float32)
    m, v, vmax = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)
    counter = [0]

    def run(n):
        for _ in range(n):
            counter[0] += 1
            F.adam(
                p, g, m, v, step=counter[0], lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
                amsgrad=True, max_exp_avg_sq=vmax,
            )  # fmt: skip
            F.sgd(p, g, m, step=counter[0], lr=1e-3, momentum=0.9)

    _assert_steady(run, lambda: [p, g, m, v, vmax], 100_000)


def _raising(call: Callable[[], None], error: type[Exception], match: str):
    def run(n):
        for _ in range(n):
            with pytest.raises(error, match=re.escape(match)):
                call()

    return run


def test_optimizer_step_that_raises():
    """The fast path (state exists) fails at the last param: queued tensors are dropped."""
    params, grads = _small_problem()
    opt = fastadam.Adam(params, amsgrad=True)
    opt.step(grads)
    bad = [grads[0], grads[1], np.ones(2)]
    state_before = [a.tobytes() for a in _state_arrays(opt)]
    run = _raising(lambda: opt.step(bad), ValueError, "grads[2] has shape (2,)")
    _assert_steady(run, lambda: [*params, *grads, *bad, *_state_arrays(opt)], 100_000)
    assert [a.tobytes() for a in _state_arrays(opt)] == state_before
    assert opt.state[0]["step"] == 1


def test_optimizer_step_that_raises_after_creating_state():
    """The first step fails after its state buffers were made: they must all be freed."""
    params, grads = _small_problem()
    opt = fastadam.Adam(params, amsgrad=True)
    bad = [grads[0], params[1], grads[2]]  # a param as its own grad: found after creation
    run = _raising(lambda: opt.step(bad), ValueError, "overlaps")
    _assert_steady(run, lambda: [*params, *grads], 50_000)
    assert opt.state == {}


def test_functional_calls_that_raise():
    p = np.ones(8, np.float32)
    g = np.full(8, 0.5, np.float32)
    m = np.zeros_like(p)
    calls = [
        (lambda: F.adam(p, g, m, m, step=1, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8), "overlaps"),
        (lambda: F.adam(p, g, m, g, step=1, lr=-1.0, beta1=0.9, beta2=0.9, eps=0), "learning rate"),
        (lambda: F.lion(p, g, m.astype(np.float64), lr=1e-3, beta1=0.9, beta2=0.99), "dtype"),
    ]

    def run(n):
        for k in range(n):
            call, match = calls[k % len(calls)]
            _raising(call, (TypeError, ValueError), match)(1)

    _assert_steady(run, lambda: [p, g, m], 100_000)
    assert p.tobytes() == np.ones(8, np.float32).tobytes()
