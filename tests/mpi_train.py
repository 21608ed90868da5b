"""Worker for tests/test_distributed.py, run under mpirun: train a flat vector with
fastadam.distributed and write the final params and gathered state from rank 0.

python mpi_train.py OPTIMIZER DTYPE N STEPS OUT [--save-at K CKPT] [--resume CKPT]
"""

import argparse

import numpy as np
from mpi4py import MPI

import fastadam
from fastadam.distributed import ShardedOptimizer

HYPER = {
    "Adam": {"lr": 1e-2, "weight_decay": 0.1},
    "AdamW": {"lr": 1e-2},
    "SGD": {"lr": 0.1, "momentum": 0.9},
}


def initial_params(n, dtype):
    return np.random.default_rng(12345).standard_normal(n).astype(dtype)


def grad(step, rank, n, dtype):
    return np.random.default_rng([step, rank]).standard_normal(n).astype(dtype)


def flatten(state_dict):
    """The arrays and steps of a one-param state dict, for np.savez."""
    entry = state_dict["state"].get(0, {})
    return {k: np.asarray(v) for k, v in entry.items()}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("optimizer")
    parser.add_argument("dtype")
    parser.add_argument("n", type=int)
    parser.add_argument("steps", type=int)
    parser.add_argument("out")
    parser.add_argument("--save-at", nargs=2)
    parser.add_argument("--resume")
    parser.add_argument("--bad-rank", type=int, help="this rank passes a float16 grad at step 1")
    args = parser.parse_args()
    comm = MPI.COMM_WORLD
    dtype = np.dtype(args.dtype)
    params = initial_params(args.n, dtype)
    opt = ShardedOptimizer(getattr(fastadam, args.optimizer), params, **HYPER[args.optimizer])
    first = 1
    if args.resume:
        saved = np.load(args.resume)
        params[...] = saved["params"]
        entry = {k: saved[k] for k in saved.files if k != "params"}
        entry["step"] = int(entry["step"])
        first = entry["step"] + 1
        opt.load_state_dict({"state": {0: entry}, "param_groups": opt.param_groups})
    for step in range(first, args.steps + 1):
        g = grad(step, comm.Get_rank(), args.n, dtype)
        if comm.Get_rank() == args.bad_rank:
            g = g.astype(np.float16)
        opt.step(g)
        if args.save_at and step == int(args.save_at[0]):
            state = opt.state_dict()
            if comm.Get_rank() == 0:
                np.savez(args.save_at[1], params=params, **flatten(state))
    state = opt.state_dict()
    if comm.Get_rank() == 0:
        np.savez(args.out, params=params, **flatten(state))


if __name__ == "__main__":
    main()
