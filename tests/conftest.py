"""Shared test helpers: optional dependencies that CI can make mandatory.

Tests that need torch take the session fixture ``torch`` (the imported module)::

    def test_something(torch):
        ...

Without torch such a test is skipped, unless the environment variable
``FASTADAM_REQUIRE_TORCH`` is set to ``1`` (CI sets it): then a missing torch
fails the test instead (reported as an error in the fixture's setup), so a
broken CI image cannot turn the torch suites into silent skips.

``require_module(name, env_var)`` is the same rule for any optional module;
call it from a test body or from another fixture.
"""

from __future__ import annotations

import importlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

REQUIRE_TORCH_ENV = "FASTADAM_REQUIRE_TORCH"


def required(env_var: str) -> bool:
    """Whether ``env_var`` asks for a hard requirement: set to anything but ``""``,
    ``0``, ``false`` or ``no``."""
    return os.environ.get(env_var, "").strip().lower() not in {"", "0", "false", "no"}


def require_module(name: str, env_var: str) -> ModuleType:
    """Import ``name``; if that fails, skip the test, or fail it when ``env_var`` is set."""
    try:
        return importlib.import_module(name)
    except ImportError as error:
        if required(env_var):
            pytest.fail(f"{name} is required ({env_var} is set) but failed to import: {error}")
        pytest.skip(f"{name} is not installed ({error}); set {env_var}=1 to make this a failure")


@pytest.fixture(scope="session")
def torch() -> ModuleType:
    """The torch module; skips without torch, fails then if FASTADAM_REQUIRE_TORCH=1."""
    return require_module("torch", REQUIRE_TORCH_ENV)


def run_ranks(script: str, world_size: int, output: Path, timeout: float = 120) -> None:
    """Run ``script RANK WORLD_SIZE PORT OUTPUT`` as ``world_size`` processes that meet
    on a free port of 127.0.0.1, within ``timeout`` seconds for all; fail with their
    output unless every one exits 0."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    ranks = [
        subprocess.Popen(
            [sys.executable, script, str(rank), str(world_size), str(port), str(output)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        for rank in range(world_size)
    ]
    logs = []
    deadline = time.monotonic() + timeout
    try:
        for process in ranks:
            logs.append(process.communicate(timeout=max(1.0, deadline - time.monotonic()))[0])
    finally:
        for process in ranks:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert [process.returncode for process in ranks] == [0] * world_size, "\n".join(logs)
