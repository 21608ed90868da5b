"""One rank of the ZeroRedundancyOptimizer test in test_torch_dropin.py.

    python torch_zero_worker.py RANK WORLD_SIZE PORT OUTPUT

Each rank joins a gloo group on 127.0.0.1:PORT, wraps fastadam.torch.Adam in
ZeroRedundancyOptimizer(parameters_as_bucket_view=True), which re-points every
param's ``.data`` into a flat bucket after building the local optimizer, and
trains on its shard of the batch, averaging the gradients across ranks (as DDP
would). Rank 0 saves the final params and the consolidated state dict to OUTPUT.
``build``, ``batch``, ``loss`` and ``HYPER`` also drive the single-process reference.
"""

from __future__ import annotations

import sys
from typing import Any

import torch

import fastadam.torch

STEPS = 8
HYPER: dict[str, Any] = {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True}


def build() -> tuple[list[torch.Tensor], list[dict[str, Any]], torch.nn.Module]:
    """The params (a small MLP's, then a 0-d scale) and two param groups; the second,
    with only the scale, leaves one rank's local group empty."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.Sigmoid(), torch.nn.Linear(8, 3), torch.nn.Sigmoid()
    ).double()
    scale = torch.nn.Parameter(torch.tensor(1.5, dtype=torch.float64))
    groups = [{"params": list(model.parameters())}, {"params": [scale], "lr": 0.02}]
    return [*model.parameters(), scale], groups, model


def batch() -> torch.Tensor:
    return torch.randn(16, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def loss(model: torch.nn.Module, scale: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return (model(x) * scale).square().mean()


def main(rank: int, world_size: int, port: int, output: str) -> None:
    # Imported here: torch.distributed.optim warns on import (it scripts functional
    # optimizers with the deprecated torch.jit.script), and the test imports this module.
    import torch.distributed as dist
    from torch.distributed.optim import ZeroRedundancyOptimizer

    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size
    )
    try:
        params, groups, model = build()
        addresses = [p.data_ptr() for p in params]
        optimizer = ZeroRedundancyOptimizer(
            groups,
            optimizer_class=fastadam.torch.Adam,
            parameters_as_bucket_view=True,
            **HYPER,
        )
        moved = [p.data_ptr() != a for p, a in zip(params, addresses, strict=True)]
        local = [len(g["params"]) for g in optimizer.optim.param_groups]
        shard = batch().chunk(world_size)[rank]
        for _ in range(STEPS):
            optimizer.zero_grad()
            loss(model, params[-1], shard).backward()
            for p in params:
                dist.all_reduce(p.grad)
                p.grad /= world_size
            optimizer.step()
        group_sizes: list[Any] = [None] * world_size
        dist.all_gather_object(group_sizes, local)
        optimizer.consolidate_state_dict(to=0)
        if rank == 0:
            result = {
                "params": [p.detach().clone() for p in params],
                "moved": moved,
                "group_sizes": group_sizes,
                "state_dict": optimizer.state_dict(),
            }
            torch.save(result, output)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
