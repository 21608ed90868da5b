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
