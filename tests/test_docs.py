"""Every example in a public docstring runs and prints what it shows.

The modules of the per-call path are compiled by Cython, where doctest's
finder sees no functions; the docstrings are collected here by hand instead:
those of each module, of its ``__all__`` and of the public methods of its
classes, each run in its module's namespace.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
from collections.abc import Iterator

import pytest

MODULES = [
    "fastadam",
    "fastadam.functional",
    "fastadam.optimizers",
    "fastadam._formats",
    "fastadam.checkpoint",
    "fastadam.bench",
    "fastadam.demo",
]
TORCH_MODULES = ["fastadam.torch"]


def _documented(module_name: str) -> Iterator[tuple[str, str, dict]]:
    """(name, docstring, namespace) of the module and each public object holding an example."""
    module = importlib.import_module(module_name)
    namespace = vars(module)
    objects = {module_name: module}
    for name in getattr(module, "__all__", []):
        obj = getattr(module, name)
        objects[f"{module_name}.{name}"] = obj
        if inspect.isclass(obj):
            for attr, member in vars(obj).items():
                if not attr.startswith("_") or attr == "__init__":
                    objects[f"{module_name}.{name}.{attr}"] = member
    for name, obj in objects.items():
        doc = getattr(obj, "__doc__", None)
        if isinstance(doc, str) and ">>>" in doc:
            yield name, doc, namespace


def _examples(modules: list[str]) -> list[tuple[str, str, dict]]:
    found = {}
    for module in modules:
        for name, doc, namespace in _documented(module):
            found.setdefault(doc, (name, doc, namespace))  # re-exports appear once
    return sorted(found.values(), key=lambda item: item[0])


def _run(name: str, doc: str, namespace: dict) -> None:
    test = doctest.DocTestParser().get_doctest(doc, dict(namespace), name, None, 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    failures: list[str] = []
    runner.run(test, out=failures.append)
    assert runner.failures == 0, "".join(failures)


@pytest.mark.parametrize(
    ("name", "doc", "namespace"),
    [pytest.param(*example, id=example[0]) for example in _examples(MODULES)],
)
def test_docstring_example(name: str, doc: str, namespace: dict) -> None:
    _run(name, doc, namespace)


def test_examples_were_found() -> None:
    names = {name for name, _, _ in _examples(MODULES)}
    assert {"fastadam.functional.adam", "fastadam.Adam", "fastadam._formats.dynamic_map"} <= names


def test_torch_docstring_examples(torch: object) -> None:
    examples = _examples(TORCH_MODULES)
    assert examples, "fastadam.torch has no docstring examples"
    for name, doc, namespace in examples:
        _run(name, doc, namespace)
