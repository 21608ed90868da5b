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
