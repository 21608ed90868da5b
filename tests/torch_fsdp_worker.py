"""One rank of the tests in test_torch_distributed.py: fastadam.torch under FSDP2
(``fully_shard``) and under ZeroRedundancyOptimizer, on gloo.

    python torch_fsdp_worker.py RANK WORLD_SIZE PORT OUTPUT

Each rank joins a gloo group on 127.0.0.1:PORT and, for every case of ``CASES``,
trains ``build()`` on its slice of ``batch()`` (the loss is the mean over the
slice, and the engine averages the gradients across ranks):

* ``fsdp``: every Linear and the root wrapped with ``fully_shard``, so params,
  grads and optimizer state are DTensors sharded on dim 0 (the 1-element params
  leave rank 1 of 2 an empty shard). After ``SPLIT`` steps the full model and
  optimizer state dicts are taken (``full_state_dict=True, cpu_offload=True``) and
  training goes on to ``STEPS``. Then a fresh model (another init) and optimizer
  load both state dicts from rank 0 (``broadcast_from_rank0=True``) and train
  from ``SPLIT`` to ``STEPS`` again.
* ``zero``: ZeroRedundancyOptimizer(optimizer_class=fastadam.torch.<name>) on the
  plain model, the gradients averaged with all_reduce and a division, as DDP does.

Then ``_rejections`` feeds a sharded param grads that do not line up with it.
Every warning is an error here, but for the one known at the import of
torch.distributed.optim. Rank 0 saves the results to OUTPUT. ``build``,
``batch``, ``loss``, ``CASES`` and ``train_reference`` also drive the
single-process references in the test.
"""

from __future__ import annotations

import io
import sys
import warnings
from collections.abc import Callable
from typing import Any

import torch

import fastadam.torch

STEPS, SPLIT = 6, 3
BATCH = 16
# case: (engine, fastadam.torch / torch.optim class name, hyperparameters)
CASES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "fsdp-Adam": ("fsdp", "Adam", {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True}),
    "fsdp-SGD": ("fsdp", "SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    "zero-AdamW": ("zero", "AdamW", {"lr": 0.01, "amsgrad": True}),
}


class Model(torch.nn.Module):
    """An MLP with a 1-element ``scale`` (FSDP2 shards no 0-d param) and one output,
    so that rank 1 of 2 holds empty shards of ``head`` and ``scale``."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = torch.nn.Sequential(
            torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 8), torch.nn.Tanh()
        )
        self.head = torch.nn.Linear(8, 1)
        self.scale = torch.nn.Parameter(torch.tensor([1.5]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.layers(x)) * self.scale


def build(seed: int = 0) -> Model:
    torch.manual_seed(seed)
    return Model()


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(BATCH, 4, generator=generator), torch.randn(BATCH, 1, generator=generator)


def loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (model(x) - y).square().mean()


def train_reference(
    model: torch.nn.Module, optimizer: Any, steps: int, world_size: int | None
) -> None:
    """Single-process training on the whole batch. With ``world_size`` None the loss
    is the mean over the batch; else each of ``world_size`` slices has its own mean
    and backward, and the grads are averaged as the ranks do: summed, then divided."""
    x, y = batch()
    params = list(model.parameters())
    for _ in range(steps):
        optimizer.zero_grad()
        if world_size is None:
            loss(model, x, y).backward()
        else:
            grads = []
            for xs, ys in zip(x.chunk(world_size), y.chunk(world_size), strict=True):
                model.zero_grad()
                loss(model, xs, ys).backward()
                grads.append([p.grad for p in params])
            for p, slices in zip(params, zip(*grads, strict=True), strict=True):
                total = slices[0]
                for g in slices[1:]:
                    total = total + g
                p.grad = total / world_size
        optimizer.step()


# --------------------------------------------------------------- the ranks' side


def _full(value: Any) -> Any:
    """A DTensor gathered in full (a collective: every rank calls it); else the value."""
    return value.full_tensor() if hasattr(value, "full_tensor") else value


def _local(value: Any) -> Any:
    return value.to_local() if hasattr(value, "to_local") else value


def _full_params(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: _full(p).detach().clone() for name, p in model.named_parameters()}


def _through_bytes(state_dict: dict[str, Any]) -> dict[str, Any]:
    """A copy, as through a checkpoint file: a state dict shares the optimizer's
    "step" tensors, which go on counting (as with torch.optim)."""
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def _sharded(seed: int, name: str, hyper: dict[str, Any]) -> tuple[Model, Any]:
    from torch.distributed.fsdp import fully_shard

    model = build(seed)
    for module in (model.layers[0], model.layers[2], model.head):
        fully_shard(module)
    fully_shard(model)
    return model, getattr(fastadam.torch, name)(model.parameters(), **hyper)


def _fsdp(rank: int, world_size: int, name: str, hyper: dict[str, Any]) -> dict[str, Any]:
    import torch.distributed as dist
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
        get_optimizer_state_dict,
        set_model_state_dict,
        set_optimizer_state_dict,
    )
    from torch.distributed.tensor import DTensor

    full = StateDictOptions(full_state_dict=True, cpu_offload=True)
    x, y = (t.chunk(world_size)[rank] for t in batch())

    def train(model: Model, optimizer: Any, steps: int) -> None:
        for _ in range(steps):
            optimizer.zero_grad()
            loss(model, x, y).backward()
            optimizer.step()

    model, optimizer = _sharded(0, name, hyper)
    train(model, optimizer, SPLIT)
    # What each rank holds: (is a DTensor, local shape) of every param, grad, state.
    layout = {
        fqn: {
            key: (isinstance(value, DTensor), tuple(_local(value).shape))
            for key, value in {"param": p, "grad": p.grad, **optimizer.state[p]}.items()
        }
        for fqn, p in model.named_parameters()
    }
    layouts: list[Any] = [None] * world_size
    dist.all_gather_object(layouts, layout)
    saved_model = _through_bytes(get_model_state_dict(model, options=full))
    saved = _through_bytes(get_optimizer_state_dict(model, optimizer, options=full))
    train(model, optimizer, STEPS - SPLIT)
    final = _full_params(model)
    final_state = get_optimizer_state_dict(model, optimizer, options=full)

    resumed, fresh = _sharded(1, name, hyper)
    load = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True)
    set_model_state_dict(resumed, saved_model if rank == 0 else {}, options=load)
    # A copy again: load_state_dict keeps the given "step" tensors (as torch.optim does).
    checkpoint = _through_bytes(saved) if rank == 0 else {}
    set_optimizer_state_dict(resumed, fresh, checkpoint, options=load)
    reloaded = _through_bytes(get_optimizer_state_dict(resumed, fresh, options=full))
    train(resumed, fresh, STEPS - SPLIT)
    return {
        "layouts": layouts,
        "saved": saved,
        "reloaded": reloaded,
        "final": final,
        "final_state": final_state,
        "resumed": _full_params(resumed),
        "resumed_state": get_optimizer_state_dict(resumed, fresh, options=full),
    }


def _zero(rank: int, world_size: int, name: str, hyper: dict[str, Any]) -> dict[str, Any]:
    import torch.distributed as dist

    with warnings.catch_warnings():
        # torch.distributed.optim scripts functional optimizers on import.
        warnings.filterwarnings(
            "ignore", r"`torch\.jit\.(script|interface)` is deprecated", DeprecationWarning
        )
        from torch.distributed.optim import ZeroRedundancyOptimizer

    x, y = (t.chunk(world_size)[rank] for t in batch())
    model = build(0)
    optimizer = ZeroRedundancyOptimizer(
        model.parameters(), optimizer_class=getattr(fastadam.torch, name), **hyper
    )
    for _ in range(STEPS):
        optimizer.zero_grad()
        loss(model, x, y).backward()
        for p in model.parameters():
            dist.all_reduce(p.grad)
            p.grad /= world_size
        optimizer.step()
    optimizer.consolidate_state_dict(to=0)
    return {
        "final": _full_params(model),
        "final_state": optimizer.state_dict() if rank == 0 else None,
    }


def _rejections(rank: int, world_size: int) -> dict[str, Any]:
    """The errors for a grad or state that does not line up with a sharded param,
    whether each left the param and state alone, and the version counters a step bumps."""
    from torch.distributed.tensor import DTensor, Partial, Replicate, distribute_tensor

    model, _ = _sharded(0, "Adam", {})
    param = model.layers[0].weight  # 16 x 4, Shard(0)
    optimizer = fastadam.torch.Adam([param], lr=0.1)

    def state(exp_avg: torch.Tensor) -> dict[str, Any]:
        return {
            "step": torch.tensor(0.0),
            "exp_avg": exp_avg,
            "exp_avg_sq": torch.zeros_like(param),
        }

    cases: dict[str, tuple[Callable[[], Any], Callable[[], Any] | None]] = {
        "replicated grad": (lambda: param.detach().redistribute(placements=[Replicate()]), None),
        "plain grad": (lambda: torch.ones(param.shape), None),
        "plain state": (lambda: torch.ones_like(param), lambda: state(torch.zeros(param.shape))),
        "float64 state": (
            lambda: torch.ones_like(param),
            lambda: state(torch.zeros_like(param, dtype=torch.float64)),
        ),
        "wrong shape state": (
            lambda: torch.ones_like(param),
            lambda: state(torch.zeros_like(model.layers[2].weight)),
        ),
    }
    errors: dict[str, Any] = {}
    untouched = True

    def attempt(case: str, opt: Any, p: torch.Tensor, grad: Any, entry: Any) -> None:
        nonlocal untouched
        before = _local(p).clone()
        p.grad = grad()
        opt.state.clear()
        if entry is not None:
            opt.state[p] = entry()
        try:
            opt.step()
        except (TypeError, ValueError) as error:
            errors[case] = (type(error).__name__, str(error))
        else:
            errors[case] = None
        left = opt.state.get(p, {})
        untouched &= torch.equal(_local(p), before) and (
            all(not _local(value).any() for value in left.values()) if entry else not left
        )

    for case, (grad, entry) in cases.items():
        attempt(case, optimizer, param, grad, entry)
    # Local shards of equal shapes, which only the placements tell apart.
    mesh = param.device_mesh
    replicated = torch.nn.Parameter(distribute_tensor(torch.zeros(4, 4), mesh, [Replicate()]))
    attempt(
        "partial grad of a replicated param",
        fastadam.torch.Adam([replicated]),
        replicated,
        lambda: DTensor.from_local(torch.ones(4, 4), mesh, [Partial()]),
        None,
    )
    plain = torch.nn.Parameter(torch.zeros(param.shape))
    attempt(
        "sharded state of a plain param",
        fastadam.torch.Adam([plain]),
        plain,
        lambda: torch.ones(param.shape),
        lambda: state(torch.zeros_like(param)),
    )
    optimizer.state.clear()
    param.grad = torch.ones_like(param)
    versions = param._version, _local(param)._version
    optimizer.step()
    bumped = param._version > versions[0] and _local(param)._version > versions[1]
    return {"errors": errors, "untouched": untouched, "bumped": bumped}


ENGINES: dict[str, Callable[[int, int, str, dict[str, Any]], dict[str, Any]]] = {
    "fsdp": _fsdp,
    "zero": _zero,
}


def main(rank: int, world_size: int, port: int, output: str) -> None:
    import torch.distributed as dist

    warnings.simplefilter("error")
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size
    )
    try:
        results = {
            case: ENGINES[engine](rank, world_size, name, hyper)
            for case, (engine, name, hyper) in CASES.items()
        }
        results["rejections"] = _rejections(rank, world_size)
        if rank == 0:
            torch.save(results, output)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
