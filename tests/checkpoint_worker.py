"""Training and saving code shared by tests/test_checkpoint.py and the processes it starts.

Imported by the tests (``pythonpath = ["tests"]``) and run as a script in a new
process (``python tests/checkpoint_worker.py MODE ...``):

``resume DIR``
    For every optimizer of ``CONFIGS``: read the params saved at step ``HALF``
    (``DIR/<name>-p<i>.npy``) and the checkpoint ``DIR/<name>.ckpt``, train steps
    ``HALF + 1 .. TOTAL`` and save the final params as ``DIR/<name>-final-p<i>.npy``.
``save-loop PATH``
    Load the big checkpoint ``PATH`` (if it exists) into the big optimizer, print
    ``loaded <step>``, then forever: step, save to ``PATH``, print ``saved <step>``.
    The test kills it with SIGKILL at random moments.
``save-once PATH LIMIT kill|raise``
    Load ``PATH``, step once, limit the size of any file this process writes to
    ``LIMIT`` bytes (RLIMIT_FSIZE), then save. With ``kill`` the process dies of
    SIGXFSZ in the middle of writing, as a crash would; with ``raise`` the write
    fails with an OSError, which is printed as ``oserror <errno>``.
"""

from __future__ import annotations

import os
import resource
import signal
import sys

import numpy as np

import fastadam
from fastadam.checkpoint import load, save

HALF, TOTAL = 50, 100

# One configuration per optimizer class, with as many features on as possible.
CONFIGS: dict[str, tuple[type[fastadam.Optimizer], dict]] = {
    "Adam": (fastadam.Adam, {"lr": 1e-2, "amsgrad": True, "weight_decay": 0.1}),
    "AdamW": (fastadam.AdamW, {"lr": 1e-2, "betas": (0.8, 0.99), "weight_decay": 0.05}),
    "SGD": (fastadam.SGD, {"lr": 1e-2, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    "RMSprop": (fastadam.RMSprop, {"lr": 1e-3, "centered": True, "momentum": 0.5}),
    "Adagrad": (
        fastadam.Adagrad,
        {"lr": 1e-2, "lr_decay": 0.01, "initial_accumulator_value": 0.1},
    ),
    "Adamax": (fastadam.Adamax, {"lr": 2e-3, "weight_decay": 0.01, "maximize": True}),
    "Lion": (fastadam.Lion, {"lr": 1e-3, "weight_decay": 0.1}),
}

# The params: two dtypes, a 0-d and an empty one, in two groups.
SHAPES = [((5,), np.float32), ((2, 3), np.float64), ((), np.float64), ((0,), np.float32)]
GROUPS = [[0, 1], [2, 3]]


def make_params(seed: int = 0) -> list[np.ndarray]:
    """The initial params of every small optimizer."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(dtype) for shape, dtype in SHAPES]


def make_optimizer(name: str, params: list[np.ndarray]) -> fastadam.Optimizer:
    """``CONFIGS[name]`` over ``params``, the second group with its own lr and a label."""
    cls, kwargs = CONFIGS[name]
    groups = [
        {"params": [params[i] for i in GROUPS[0]]},
        {"params": [params[i] for i in GROUPS[1]], "lr": kwargs["lr"] / 2, "name": "head"},
    ]
    return cls(groups, **kwargs)


def gradients(step: int, params: list[np.ndarray]) -> list[np.ndarray | None]:
    """The gradients of training step ``step`` (1-based): a pull towards 1 plus noise.

    The second param gets no gradient every third step, so the params' step counts differ.
    """
    rng = np.random.default_rng([step, 2024])
    grads: list[np.ndarray | None] = []
    for p in params:
        noise = rng.standard_normal(p.shape)
        grads.append(np.asarray(2 * (p - 1) + noise, dtype=p.dtype))  # 0-d stays an array
    if step % 3 == 0:
        grads[1] = None
    return grads


def train(opt: fastadam.Optimizer, params: list[np.ndarray], first: int, last: int) -> None:
    """Training steps ``first .. last`` (inclusive)."""
    for step in range(first, last + 1):
        opt.step(gradients(step, params))


def param_file(directory: str, name: str, i: int, final: bool = False) -> str:
    return os.path.join(directory, f"{name}-{'final-' if final else ''}p{i}.npy")


def resume(directory: str) -> None:
    for name in CONFIGS:
        params = [np.load(param_file(directory, name, i)) for i in range(len(SHAPES))]
        opt = make_optimizer(name, params)
        load(opt, os.path.join(directory, f"{name}.ckpt"))
        train(opt, params, HALF + 1, TOTAL)
        for i, p in enumerate(params):
            np.save(param_file(directory, name, i, final=True), p)


# ------------------------------------------------------------ the big optimizer

BIG = 2_000_000  # elements of the big optimizer's param: a 24 MB checkpoint


def big_gradient() -> np.ndarray:
    return np.random.default_rng(7).standard_normal(BIG).astype(np.float32)


def big_optimizer() -> fastadam.Optimizer:
    """Adam with amsgrad and no weight decay: its state depends only on the step count."""
    return fastadam.Adam([np.zeros(BIG, np.float32)], lr=1e-3, amsgrad=True)


def big_step(opt: fastadam.Optimizer) -> int:
    """The step count of the big optimizer's param (0 before any step)."""
    return opt.state[0]["step"] if opt.state else 0


def save_loop(path: str) -> None:
    opt = big_optimizer()
    if os.path.exists(path):
        load(opt, path)
    grad = big_gradient()
    print(f"loaded {big_step(opt)}", flush=True)
    while True:
        opt.step([grad])
        save(opt, path)
        print(f"saved {big_step(opt)}", flush=True)


def save_once(path: str, limit: int, how: str) -> None:
    opt = big_optimizer()
    load(opt, path)
    opt.step([big_gradient()])
    if how == "kill":
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # die without a core file
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)  # Python ignores it by default
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    try:
        save(opt, path)
    except OSError as error:
        print(f"oserror {error.errno}", flush=True)
        return
    print("saved", flush=True)


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "resume":
        resume(*args)
    elif mode == "save-loop":
        save_loop(*args)
    elif mode == "save-once":
        save_once(args[0], int(args[1]), args[2])
    else:
        raise SystemExit(f"unknown mode {mode!r}")
