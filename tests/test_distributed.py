"""fastadam.distributed on MPI: 2 (and 3) local processes under mpirun match one process.

Skipped without mpi4py or mpirun, unless FASTADAM_REQUIRE_MPI=1 (CI sets it).
"""

import itertools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import require_module, required

import fastadam
from fastadam.distributed import SHARD_ALIGNMENT, shard_bounds

WORKER = Path(__file__).with_name("mpi_train.py")
REQUIRE_MPI_ENV = "FASTADAM_REQUIRE_MPI"
N = 1000  # not a multiple of 64 * ranks: the last shard is short
MPI_ENV = {  # Open MPI as root, more ranks than cores, no ptrace-based copies in containers
    "OMPI_ALLOW_RUN_AS_ROOT": "1",
    "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
    "OMPI_MCA_rmaps_base_oversubscribe": "1",
    "OMPI_MCA_btl_vader_single_copy_mechanism": "none",
}


@pytest.fixture(scope="module")
def mpirun():
    require_module("mpi4py", REQUIRE_MPI_ENV)
    path = shutil.which("mpirun")
    if path is None:
        if required(REQUIRE_MPI_ENV):
            pytest.fail(f"mpirun is required ({REQUIRE_MPI_ENV} is set) but not on PATH")
        pytest.skip("mpirun is not installed")
    return path


def launch(mpirun, ranks, *args, timeout=120, check=True):
    env = dict(os.environ, **MPI_ENV)
    cmd = [mpirun, "-n", str(ranks), sys.executable, str(WORKER), *map(str, args)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def reference(optimizer, dtype, steps, ranks, resume_from=None):
    """One process stepping on the averaged gradient, summed in rank order."""
    sys.path.insert(0, str(WORKER.parent))
    try:
        import mpi_train
    finally:
        sys.path.pop(0)
    params = mpi_train.initial_params(N, np.dtype(dtype))
    opt = getattr(fastadam, optimizer)([params], **mpi_train.HYPER[optimizer])
    for step in range(1, steps + 1):
        total = mpi_train.grad(step, 0, N, np.dtype(dtype))
        for rank in range(1, ranks):
            total = total + mpi_train.grad(step, rank, N, np.dtype(dtype))
        opt.step([total / np.asarray(ranks, dtype)])
    return params, opt.state_dict()["state"][0]


def assert_matches(out, params, state, exact=True):
    saved = np.load(out)
    compare = np.testing.assert_array_equal if exact else _close
    compare(saved["params"], params)
    for key, value in state.items():
        compare(saved[key], np.asarray(value))


def _close(a, b):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("optimizer", ["Adam", "AdamW", "SGD"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_two_ranks_match_one_process_bitwise(mpirun, tmp_path, optimizer, dtype):
    out = tmp_path / "out.npz"
    launch(mpirun, 2, optimizer, dtype, N, 20, out)
    assert_matches(out, *reference(optimizer, dtype, 20, ranks=2))


def test_three_ranks_match_within_rounding(mpirun, tmp_path):
    out = tmp_path / "out.npz"
    launch(mpirun, 3, "Adam", "float64", N, 20, out)
    assert_matches(out, *reference("Adam", "float64", 20, ranks=3), exact=False)


def test_checkpoint_reloads_onto_another_world_size(mpirun, tmp_path):
    """Save at step 10 with 2 ranks; resume with 2, with 3 and with 1 rank."""
    ckpt, whole = tmp_path / "ckpt.npz", tmp_path / "whole.npz"
    launch(mpirun, 2, "Adam", "float32", N, 20, whole, "--save-at", 10, ckpt)
    params, state = reference("Adam", "float32", 20, ranks=2)
    assert_matches(whole, params, state)
    again = tmp_path / "again.npz"
    launch(mpirun, 2, "Adam", "float32", N, 20, again, "--resume", ckpt)
    assert_matches(again, params, state)
    single = tmp_path / "single.npz"
    launch(mpirun, 1, "Adam", "float32", N, 10, single, "--resume", ckpt)  # nothing left to do
    assert_matches(single, *reference("Adam", "float32", 10, ranks=2))
    three = tmp_path / "three.npz"
    launch(mpirun, 3, "Adam", "float32", N, 20, three, "--resume", ckpt)
    saved = np.load(three)
    assert saved["step"] == 20
    assert np.all(np.isfinite(saved["params"]))


def test_a_bad_grad_on_one_rank_raises_on_every_rank(mpirun, tmp_path):
    """No rank is left waiting in a collective: both raise, before any update."""
    done = launch(mpirun, 2, "Adam", "float32", N, 3, tmp_path / "x.npz", "--bad-rank", 1,
                  timeout=60, check=False)  # fmt: skip
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "grad has dtype float16" in output
    assert "the grad of another rank was rejected" in output


def test_shard_bounds_cover_the_vector_in_aligned_pieces():
    for n in (0, 1, 63, 64, 1000, 4097):
        for world in (1, 2, 3, 8):
            bounds = [shard_bounds(n, world, r) for r in range(world)]
            assert bounds[0][0] == 0
            assert bounds[-1][1] == n
            for (lo, hi), (next_lo, _) in itertools.pairwise(bounds):
                assert hi == next_lo
                assert lo % SHARD_ALIGNMENT == 0 or lo == n  # empty shards sit at the end
