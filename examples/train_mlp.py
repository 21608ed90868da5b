"""Train a small MLP with PyTorch twice: with torch.optim.Adam, then with fastadam.torch.Adam.

The data are synthetic (a noisy smooth function of random inputs), the two runs
start from the same weights and see the same batches, so their losses agree step
by step; the script prints both, and each optimizer's time per ``step()``.

    python examples/train_mlp.py                  # 300 steps, 64-512-512-1 MLP
    python examples/train_mlp.py --steps 20 --hidden 32 --print-every 5

The only change between the runs is the optimizer's import:
``torch.optim.Adam(...)`` becomes ``fastadam.torch.Adam(...)``.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

import fastadam.torch


def make_data(args: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs x ~ N(0, 1) and targets sin(2 x @ w) + 0.1 * noise, in the chosen dtype."""
    gen = torch.Generator().manual_seed(args.seed)
    dtype = getattr(torch, args.dtype)
    x = torch.randn(args.samples, args.inputs, generator=gen, dtype=dtype)
    w = torch.randn(args.inputs, 1, generator=gen, dtype=dtype) / args.inputs**0.5
    y = torch.sin(2 * x @ w) + 0.1 * torch.randn(args.samples, 1, generator=gen, dtype=dtype)
    return x, y


def make_model(args: argparse.Namespace) -> torch.nn.Module:
    torch.manual_seed(args.seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(args.inputs, args.hidden),
        torch.nn.Tanh(),
        torch.nn.Linear(args.hidden, args.hidden),
        torch.nn.Tanh(),
        torch.nn.Linear(args.hidden, 1),
    )
    return model.to(getattr(torch, args.dtype))


def train(
    model: torch.nn.Module,
    make_optimizer: Callable[[Any], torch.optim.Optimizer],
    data: tuple[torch.Tensor, torch.Tensor],
    args: argparse.Namespace,
) -> tuple[list[float], list[float]]:
    """Train for args.steps minibatches; return the losses and the seconds of each step()."""
    x, y = data
    optimizer = make_optimizer(model.parameters())
    order = torch.Generator().manual_seed(args.seed + 1)
    losses, seconds = [], []
    for _ in range(args.steps):
        batch = torch.randint(0, len(x), (args.batch,), generator=order)
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x[batch]), y[batch])
        loss.backward()
        start = time.perf_counter()
        optimizer.step()
        seconds.append(time.perf_counter() - start)
        losses.append(loss.item())
    return losses, seconds


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="minibatches (default 300)")
    parser.add_argument("--batch", type=int, default=128, help="batch size (default 128)")
    parser.add_argument("--hidden", type=int, default=512, help="hidden width (default 512)")
    parser.add_argument("--inputs", type=int, default=64, help="input features (default 64)")
    parser.add_argument("--samples", type=int, default=4096, help="data set size (default 4096)")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--lr", type=float, default=1e-3, help="learning rate (default 1e-3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--print-every", type=int, default=50, help="loss rows (default 50)")
    args = parser.parse_args(argv)

    data = make_data(args)
    model = make_model(args)
    runs = {
        "torch.optim.Adam": lambda params: torch.optim.Adam(params, lr=args.lr),
        "fastadam.torch.Adam": lambda params: fastadam.torch.Adam(params, lr=args.lr),
    }
    results = {name: train(copy.deepcopy(model), make, data, args) for name, make in runs.items()}

    (theirs, their_time), (ours, our_time) = results.values()
    print(
        f"MLP {args.inputs}-{args.hidden}-{args.hidden}-1, {args.steps} steps of batch "
        f"{args.batch}, {args.dtype}, Adam lr={args.lr}"
    )
    print(f"{'step':>6}  {'torch.optim.Adam':>18}  {'fastadam.torch.Adam':>20}")
    for step in range(args.steps):
        if (step + 1) % args.print_every == 0 or step in (0, args.steps - 1):
            print(f"{step + 1:>6}  {theirs[step]:>18.6f}  {ours[step]:>20.6f}")
    difference = max(abs(a - b) / max(abs(a), 1e-30) for a, b in zip(theirs, ours, strict=True))
    print(f"max relative loss difference: {difference:.2e}")
    for name, (_, seconds) in results.items():
        print(f"{name} step time: {1e3 * statistics.median(seconds):.3f} ms (median)")
    print(f"speed-up of step(): {statistics.median(their_time) / statistics.median(our_time):.1f}x")


if __name__ == "__main__":
    main()
