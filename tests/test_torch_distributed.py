"""fastadam.torch on torch's distributed engines: FSDP2 (``fully_shard``, whose params,
grads and state are DTensors) and ZeroRedundancyOptimizer, on 2 local gloo processes.

One launch of ``torch_fsdp_worker.py`` on 2 ranks runs every case (see its
docstring); the tests compare what rank 0 saved with single-process runs here:

* bitwise, with a reference that averages the gradients as the ranks do (each
  half-batch's mean loss backpropagated alone, the grads summed and halved). The
  update is elementwise, so running it shard by shard changes no bit; and at 2
  ranks the sum of two grads is the same whichever order the reduction takes
  (with more ranks a reduction order other than the reference's could round
  differently);
* within 1e-6 with the plain reference, one backward of the mean over the whole
  batch: its matmuls sum over all 16 samples at once instead of 8 + 8, which
  rounds the grads differently in the last bits;
* within 1e-5 with torch.optim (``foreach=False``) on the whole batch.
"""

from __future__ import annotations

import re
from types import ModuleType
from typing import Any

import pytest
from conftest import run_ranks

WORLD_SIZE = 2
FSDP_CASES = ["fsdp-Adam", "fsdp-SGD"]
CASES = [*FSDP_CASES, "zero-AdamW"]


@pytest.fixture(scope="module")
def worker(torch: ModuleType) -> ModuleType:
    import torch_fsdp_worker

    return torch_fsdp_worker


@pytest.fixture(scope="module")
def ranks(torch: ModuleType, worker: ModuleType, tmp_path_factory: Any) -> dict[str, Any]:
    """What rank 0 of the 2-rank run saved (about 8 s: torch's import in each rank)."""
    output = tmp_path_factory.mktemp("ranks") / "rank0.pt"
    run_ranks(worker.__file__, WORLD_SIZE, output)
    return torch.load(output, weights_only=True)


def reference(
    torch: ModuleType, worker: ModuleType, case: str, steps: int, world_size: int | None, lib: str
) -> tuple[Any, Any]:
    """A single-process model and optimizer trained as ``worker.train_reference``
    does, with fastadam.torch's optimizer (``lib="fastadam"``) or torch.optim's."""
    import fastadam.torch

    _, name, hyper = worker.CASES[case]
    model = worker.build(0)
    if lib == "fastadam":
        optimizer = getattr(fastadam.torch, name)(model.parameters(), **hyper)
    else:
        optimizer = getattr(torch.optim, name)(model.parameters(), **hyper, foreach=False)
    worker.train_reference(model, optimizer, steps, world_size)
    return model, optimizer


def state_by_name(model: Any, optimizer: Any) -> dict[str, dict[str, Any]]:
    """A single-process optimizer's state keyed by param name, as FSDP2's full one is."""
    names = [name for name, _ in model.named_parameters()]
    return {names[index]: entry for index, entry in optimizer.state_dict()["state"].items()}


def assert_same(
    torch: ModuleType, got: dict[Any, Any], expected: dict[Any, Any], atol: float
) -> None:
    """Equal keys, shapes and dtypes; equal values, bitwise if ``atol`` is 0. Values
    may be tensors or dicts of tensors (optimizer state)."""
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        if isinstance(value, dict):
            assert_same(torch, got[key], value, atol)
            continue
        mine = got[key]
        assert type(mine) is torch.Tensor, (key, type(mine))  # gathered, not a DTensor
        assert (mine.shape, mine.dtype) == (value.shape, value.dtype), key
        if atol == 0:
            assert torch.equal(mine, value), (key, (mine - value).abs().max())
        else:
            torch.testing.assert_close(mine, value, rtol=0, atol=atol, msg=str(key))


def _groups(state_dict: dict[str, Any]) -> list[dict[str, Any]]:
    """The param groups' settings (a round trip through DCP turns tuples to lists)."""
    return [
        {k: list(v) if isinstance(v, tuple) else v for k, v in group.items() if k != "params"}
        for group in state_dict["param_groups"]
    ]


# ------------------------------------------------------------------------ tests


@pytest.mark.parametrize("case", FSDP_CASES)
def test_fsdp2_shards_params_grads_and_state(
    torch: ModuleType, worker: ModuleType, ranks: dict[str, Any], case: str
) -> None:
    """Under fully_shard, param, grad and state are DTensors sharded alike (state
    from zeros_like(param)), rank 1 holds empty shards of the 1-row params, and
    the step count stays a plain 0-d tensor, as torch.optim keeps it."""
    layouts = ranks[case]["layouts"]
    full = dict(worker.build(0).named_parameters())
    for fqn, param in full.items():
        rows = 0
        for layout in layouts:
            entry = layout[fqn]
            local = entry["param"][1]
            rows += local[0]
            for key, (sharded, shape) in entry.items():
                if key == "step":
                    assert (sharded, shape) == (False, ()), fqn
                else:
                    assert (sharded, shape) == (True, local), (fqn, key)
        assert rows == param.shape[0], fqn
    for fqn in ("head.weight", "head.bias", "scale"):
        assert layouts[1][fqn]["param"][1][0] == 0, fqn


@pytest.mark.parametrize("case", CASES)
def test_matches_single_process_bitwise(
    torch: ModuleType, worker: ModuleType, ranks: dict[str, Any], case: str
) -> None:
    """Params and the full optimizer state after training on 2 ranks are bitwise
    those of one process that averages the two half-batch grads as the ranks do."""
    result = ranks[case]
    model, optimizer = reference(torch, worker, case, worker.STEPS, WORLD_SIZE, "fastadam")
    assert_same(torch, result["final"], dict(model.named_parameters()), atol=0)
    expected = optimizer.state_dict()
    # ZeroRedundancyOptimizer's consolidated state is keyed by index, FSDP2's by name.
    state = expected["state"] if case.startswith("zero") else state_by_name(model, optimizer)
    assert_same(torch, result["final_state"]["state"], state, atol=0)
    assert _groups(result["final_state"]) == _groups(expected)


@pytest.mark.parametrize("case", CASES)
def test_matches_single_process_on_the_whole_batch(
    torch: ModuleType, worker: ModuleType, ranks: dict[str, Any], case: str
) -> None:
    """Within 1e-6 of fastadam.torch, and 1e-5 of torch.optim (foreach=False), in
    one process with one backward of the mean loss over the whole batch."""
    final = ranks[case]["final"]
    for lib, atol in (("fastadam", 1e-6), ("torch", 1e-5)):
        model, _ = reference(torch, worker, case, worker.STEPS, None, lib)
        assert_same(torch, final, dict(model.named_parameters()), atol=atol)


@pytest.mark.parametrize("case", FSDP_CASES)
def test_full_optimizer_state_dict_round_trips(
    torch: ModuleType, worker: ModuleType, ranks: dict[str, Any], case: str
) -> None:
    """get_optimizer_state_dict(full_state_dict=True) gives full shapes, bitwise the
    single-process state; set_optimizer_state_dict (from rank 0) into a fresh
    FSDP2 model and optimizer gives it back, and training on from there matches
    the uninterrupted run bitwise."""
    result = ranks[case]
    model, optimizer = reference(torch, worker, case, worker.SPLIT, WORLD_SIZE, "fastadam")
    saved = result["saved"]
    assert_same(torch, saved["state"], state_by_name(model, optimizer), atol=0)
    assert [group["params"] for group in saved["param_groups"]] == [
        [name for name, _ in model.named_parameters()]
    ]
    assert _groups(saved) == _groups(optimizer.state_dict())
    assert_same(torch, result["reloaded"]["state"], saved["state"], atol=0)
    assert _groups(result["reloaded"]) == _groups(saved)
    assert_same(torch, result["resumed"], result["final"], atol=0)
    assert_same(torch, result["resumed_state"]["state"], result["final_state"]["state"], 0)


def test_fsdp2_rejects_shards_that_do_not_line_up(ranks: dict[str, Any]) -> None:
    """A grad or state that is not a DTensor laid out as its sharded param (or is a
    DTensor when the param is not), or whose local shard is of another dtype or
    shape, raises an error naming it and changes nothing;
    a step bumps the version counters of the DTensor and of its local shard."""
    result = ranks["rejections"]
    expected = {
        "replicated grad": ("ValueError", r"the grad of param 0 of group 0 has placements "
                            r"\(Replicate\(\),\) .* but the param has \(Shard\(dim=0\),\)"),
        "plain grad": ("TypeError", "the grad of param 0 of group 0 is a plain tensor but "
                       "the param is a DTensor"),
        "plain state": ("TypeError", 'state "exp_avg" of param 0 of group 0 is a plain tensor'),
        "float64 state": ("TypeError", 'the local shard of state "exp_avg" of param 0 of '
                          "group 0 has dtype torch.float64 but the param has torch.float32"),
        "wrong shape state": ("ValueError", r'state "exp_avg" of param 0 of group 0 has '
                              r"shape \(8, 16\) but the param has shape \(16, 4\)"),
        "partial grad of a replicated param": ("ValueError", r"the grad of param 0 of group 0 "
                                               r"has placements \(Partial\(sum\),\)"),
        "sharded state of a plain param": ("TypeError", 'state "exp_avg" of param 0 of '
                                           "group 0 is a DTensor but the param is a plain"),
    }  # fmt: skip
    assert result["errors"].keys() == expected.keys()
    for case, (kind, pattern) in expected.items():
        error = result["errors"][case]
        assert error is not None, f"{case}: no error"
        assert error[0] == kind, (case, error)
        assert re.search(pattern, error[1]), (case, error[1])
    assert result["untouched"]
    assert result["bumped"]
