"""The fuzz targets (tests/fuzz/targets.py) replayed on their committed inputs.

tests/fuzz/corpus/TARGET/ holds the seeds of each target and, named ``finding-*``,
every input on which the fuzzer found something (the regression tests of the
findings that have no hand-written test in test_fuzz_findings.py). Each input runs
through its target's oracle plainly, without atheris: no undocumented exception,
nothing changed after an exception, one step equal to the float64 twin.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import require_module

FUZZ = Path(__file__).resolve().parent / "fuzz"
INPUTS = sorted((FUZZ / "corpus").glob("*/*"))


@pytest.fixture(scope="module")
def targets():
    """tests/fuzz/targets.py; skips without atheris, fails then if FASTADAM_REQUIRE_FUZZ=1."""
    require_module("atheris", "FASTADAM_REQUIRE_FUZZ")
    sys.path.insert(0, str(FUZZ))
    try:
        import targets
    finally:
        sys.path.remove(str(FUZZ))
    return targets


def test_every_target_has_inputs(targets):
    assert {path.parent.name for path in INPUTS} == set(targets.TARGETS)


@pytest.mark.parametrize("path", INPUTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_replay(targets, path, request):
    if path.parent.name == "torch":
        request.getfixturevalue("torch")  # skipped with its reason where torch is missing
    targets.TARGETS[path.parent.name](path.read_bytes())


def test_oracle_measures_l2_state_against_the_decay_terms(targets):
    """Where grad and L2 decay nearly cancel, the float32 rounding of the two terms is
    no finding, but an exp_avg off by a fraction of the terms' size still is."""
    import numpy as np
    from oracle import Finding, assert_twin

    import fastadam.functional as F

    rng = np.random.default_rng(0)
    param = rng.uniform(1.0, 2.0, 1000).astype(np.float32)
    # grad = -1.003 wd p: the effective gradient is 3e-3 of its terms (and far above eps)
    grad = (-0.1 * 1.003 * param).astype(np.float32)
    hp = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.1}
    exp_avg, exp_avg_sq = np.zeros_like(param), np.zeros_like(param)
    before = {"param": param.astype(np.float64), "grad": grad.astype(np.float64), "step": 0}
    before |= {"exp_avg": exp_avg.astype(np.float64), "exp_avg_sq": exp_avg_sq.astype(np.float64)}
    F.adam(param, grad, exp_avg, exp_avg_sq, step=1, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
           weight_decay=0.1)  # fmt: skip
    after = {"param": param, "exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}
    assert_twin("adam", hp, before, after)
    wrong = exp_avg.copy()
    wrong[7] += 1e-4 * 0.1 * float(np.max(np.abs(grad)) * 2)  # 1e-4 of (1 - beta1) x terms
    with pytest.raises(Finding, match="adam exp_avg: relative error"):
        assert_twin("adam", hp, before, after | {"exp_avg": wrong})


def test_oracle_compares_a_float32_scalar_state_at_float32(targets):
    """torch.optim's NAdam mu_product is a float32 tensor: it underflows to 0 where the
    float64 twin's is 1e-300, which is no finding; a wrong one still is."""
    import numpy as np
    from oracle import Finding, assert_twin

    hp = {"lr": 1e-3, "betas": (1e-300, 0.999), "eps": 1e-8, "momentum_decay": 0.004}
    param = np.linspace(-1.0, 1.0, 8)
    grad = np.full(8, 0.5)
    before = {"param": param, "grad": grad, "step": 0, "mu_product": 1.0}
    before |= {"exp_avg": np.zeros(8), "exp_avg_sq": np.zeros(8)}
    import twin

    state = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in before.items()}
    del state["param"], state["grad"]
    ref = param.copy()
    twin.nadam(ref, grad, state, **hp)
    assert 0 < state["mu_product"] < 1e-290
    after = {"param": ref.astype(np.float32), "mu_product": 0.0}
    after |= {k: state[k].astype(np.float32) for k in ("exp_avg", "exp_avg_sq")}
    tol = twin.TOLERANCE[np.dtype(np.float32)]
    assert_twin("nadam", hp, before, after, tol, scalar_dtype=np.float32)
    with pytest.raises(Finding, match="nadam mu_product"):
        assert_twin("nadam", hp, before, after, tol)  # held in float64, 0.0 is wrong
    with pytest.raises(Finding, match="nadam mu_product"):
        assert_twin(
            "nadam", hp, before, after | {"mu_product": 1e-30}, tol, scalar_dtype=np.float32
        )


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
def test_torch_reload_skips_a_state_dict_torch_made_uncopyable(targets, torch):
    """torch.optim's load_state_dict turns an np.matrix state entry into
    np.matrix(<generator>), which deepcopy cannot copy (fastadam.torch.SGD loads as
    torch.optim.SGD does): the torch target's reload leaves such a state dict alone
    instead of failing. (fastadam.torch's Adam and AdamW check each entry first.)"""
    import copy

    import numpy as np
    from oracle import Source

    import fastadam.torch

    for optimizer_class in (torch.optim.SGD, fastadam.torch.SGD):  # torch.optim's loading
        param = torch.nn.Parameter(torch.zeros(3))
        opt = optimizer_class([param], lr=0.1, momentum=0.9)
        group = {k: v for k, v in opt.param_groups[0].items() if k != "params"}
        entry = {"momentum_buffer": np.matrix(1.0)}
        opt.load_state_dict({"state": {0: entry}, "param_groups": [{**group, "params": [0]}]})
        with pytest.raises(TypeError, match="generator"):
            copy.deepcopy(opt.state_dict())
        session = targets.TorchSession(Source(b""), torch, opt, "sgd", [param])
        session.reload()  # returns without loading anything
        assert isinstance(opt.state[param]["momentum_buffer"], np.matrix)
