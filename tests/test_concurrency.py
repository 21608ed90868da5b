"""Python threads: the kernels release the GIL, and each optimizer serialises its own steps.

* Two threads stepping two optimizers (or calling the functionals on two sets of
  buffers) at the same time get the same bits as one thread doing both in turn.
* Two threads stepping the same optimizer are serialised by its lock: with a
  constant gradient the result is that of the same number of steps in a row.
* A checkpoint saved while another thread steps holds a whole number of steps.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np
import pytest

import fastadam
from fastadam import functional as F
from fastadam.checkpoint import load, save

BIG = 2_000_000  # elements: each kernel call runs for milliseconds with the GIL released


@pytest.fixture(autouse=True)
def _two_kernel_threads():
    """OpenMP teams of two inside each Python thread, so the threads also share the cores."""
    before = fastadam.get_num_threads()
    fastadam.set_num_threads(2)
    yield
    fastadam.set_num_threads(before)


def _in_threads(*jobs: Callable[[], None]) -> None:
    """Run ``jobs`` in threads started together; re-raise the first error."""
    barrier = threading.Barrier(len(jobs))
    errors: list[BaseException] = []

    def run(job):
        try:
            barrier.wait()
            job()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
        assert not t.is_alive()
    if errors:
        raise errors[0]


def _bits(opt: fastadam.Optimizer) -> list[bytes]:
    out = [p.tobytes() for g in opt.param_groups for p in g["params"]]
    for i in sorted(opt.state):
        out += [f"{k}={v}".encode() for k, v in opt.state[i].items() if k == "step"]
        out += [v.tobytes() for k, v in sorted(opt.state[i].items()) if k != "step"]
    return out


def _problem(seed: int, dtype, steps: int):
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(BIG).astype(dtype), rng.standard_normal((3, 5)).astype(dtype)]
    grads = [[rng.standard_normal(p.shape).astype(dtype) for p in params] for _ in range(steps)]
    return params, grads


OPTIMIZERS = [
    (fastadam.Adam, {"lr": 1e-3, "amsgrad": True, "weight_decay": 0.1}, np.float32),
    (fastadam.Lion, {"lr": 1e-4, "weight_decay": 0.1}, np.float64),
]


def test_two_optimizers_in_two_threads_match_one_after_the_other():
    steps = 4
    problems = [_problem(seed, dtype, steps) for seed, (_, _, dtype) in enumerate(OPTIMIZERS)]

    def make(params_list):
        return [
            cls([p.copy() for p in params], **kw)
            for (cls, kw, _), params in zip(OPTIMIZERS, params_list, strict=True)
        ]

    together = make([params for params, _ in problems])
    alone = make([params for params, _ in problems])

    def job(opt, grads):
        return lambda: [opt.step(g) for g in grads]

    _in_threads(*(job(opt, grads) for opt, (_, grads) in zip(together, problems, strict=True)))
    for opt, (_, grads) in zip(alone, problems, strict=True):
        job(opt, grads)()
    for a, b in zip(together, alone, strict=True):
        assert a.state[0]["step"] == steps
        assert _bits(a) == _bits(b)
    # And they did move: a step that did nothing would also agree.
    for opt, (params, _) in zip(together, problems, strict=True):
        assert not np.array_equal(opt.param_groups[0]["params"][0], params[0])


def test_functionals_in_two_threads_match_one_after_the_other():
    rng = np.random.default_rng(5)
    base = [rng.standard_normal(BIG).astype(np.float32) for _ in range(4)]

    def adam_job(buffers):
        p, g, m, v = buffers

        def run():
            for t in range(1, 4):
                F.adam(p, g, m, v, step=t, lr=1e-2, beta1=0.9, beta2=0.99, eps=1e-8)

        return run

    def rmsprop_job(buffers):
        p, g, s, b = buffers

        def run():
            for _ in range(3):
                F.rmsprop(p, g, s, lr=1e-2, alpha=0.9, eps=1e-8, momentum=0.5, momentum_buffer=b)

        return run

    def fresh():
        return [a.copy() for a in base[:2]] + [np.zeros(BIG, np.float32) for _ in range(2)]

    together = [fresh(), fresh()]
    alone = [fresh(), fresh()]
    _in_threads(adam_job(together[0]), rmsprop_job(together[1]))
    adam_job(alone[0])()
    rmsprop_job(alone[1])()
    for a, b in zip(together, alone, strict=True):
        assert [x.tobytes() for x in a] == [x.tobytes() for x in b]
    assert together[0][0].tobytes() != together[1][0].tobytes()


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [
        (fastadam.Adam, {"lr": 1e-3, "amsgrad": True}),
        (fastadam.SGD, {"lr": 1e-3, "momentum": 0.9, "dampening": 0.1}),
        (fastadam.Adagrad, {"lr": 1e-2, "lr_decay": 1e-3}),
    ],
    ids=["Adam", "SGD", "Adagrad"],
)
def test_one_optimizer_stepped_by_two_threads_is_serialised(cls, kwargs):
    """Each step's coefficients depend on the step count: a lost or doubled count,
    or two kernels interleaving on one buffer, would change the bits."""
    per_thread = 150
    rng = np.random.default_rng(11)
    shapes = [(200_000,), (7,), ()]
    dtypes = [np.float32, np.float64, np.float32]
    params = [rng.standard_normal(s).astype(d) for s, d in zip(shapes, dtypes, strict=True)]
    grads = [rng.standard_normal(s).astype(d) for s, d in zip(shapes, dtypes, strict=True)]
    clones = [p.copy() for p in params]
    shared = cls([{"params": params[:2]}, {"params": params[2:], "lr": 1e-4}], **kwargs)
    reference = cls([{"params": clones[:2]}, {"params": clones[2:], "lr": 1e-4}], **kwargs)

    def job():
        for _ in range(per_thread):
            shared.step(grads)

    _in_threads(job, job)
    for _ in range(2 * per_thread):
        reference.step(grads)
    assert [s["step"] for s in shared.state.values()] == [2 * per_thread] * 3
    assert _bits(shared) == _bits(reference)


def test_checkpoints_saved_while_another_thread_steps_hold_whole_steps(tmp_path):
    """save() takes the optimizer's lock: each file holds the state after some k steps."""
    saves = 10
    rng = np.random.default_rng(3)
    params = [rng.standard_normal(500_000).astype(np.float32), rng.standard_normal(50)]
    grads = [rng.standard_normal(p.shape).astype(p.dtype) for p in params]
    opt = fastadam.Adam(params, lr=1e-3, amsgrad=True)
    done = threading.Event()
    paths = []

    def stepper():
        for _ in range(100_000):  # until enough checkpoints are written
            if len(paths) >= saves:
                break
            opt.step(grads)
            time.sleep(0.0002)  # the gradient's computation: the lock is free meanwhile
        done.set()

    def saver():
        while not done.is_set():
            path = tmp_path / f"{len(paths)}.ckpt"
            save(opt, path)
            paths.append(path)

    _in_threads(stepper, saver)
    assert len(paths) >= saves

    # Replay the steps in one thread and compare each checkpoint at its step count.
    replay = fastadam.Adam([p.copy() for p in params], lr=1e-3, amsgrad=True)
    snapshots = []
    for path in paths:
        loaded = fastadam.Adam([np.zeros_like(p) for p in params])
        load(loaded, path)
        counts = {s["step"] for s in loaded.state.values()}
        assert len(loaded.state) in (0, 2)
        assert len(counts) <= 1, f"{path.name}: a torn snapshot, step counts {counts}"
        snapshots.append((counts.pop() if counts else 0, path.name, loaded))
    checked = 0
    for k, name, loaded in sorted(snapshots, key=lambda s: s[0]):
        while (replay.state[0]["step"] if replay.state else 0) < k:
            replay.step(grads)
        if k:
            assert _bits(loaded)[2:] == _bits(replay)[2:], name  # the state; params are ours
            checked += 1
    assert checked >= 3
