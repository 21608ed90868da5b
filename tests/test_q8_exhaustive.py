"""Every float32 through the 8-bit encoder: tests/c/q8_exhaustive.c gives each of the
2^32 bit patterns to the AVX2 lattice (and to the AVX-512 VBMI byte tables where the
CPU has them), under both maps and both roundings, and checks every code against the
scalar table search of src_c/formats.h (which the other tests check against a
brute-force search over the map), and the lattice's count of every magnitude against
the table search's. The driver compiles here in about a second, with the kernels'
flags from setup.py, and runs on every core (OpenMP).
"""

from __future__ import annotations

import ast
import os
import platform
import subprocess
import sysconfig
from pathlib import Path

import pytest
from test_golden import map_bytes

from fastadam import _ext

ROOT = Path(__file__).resolve().parent.parent


def _setup_list(name: str) -> list[str]:
    """A list literal of setup.py, by name (as tests/c/build reads them)."""
    for node in ast.parse((ROOT / "setup.py").read_text()).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == name:
            return list(ast.literal_eval(node.value))
    raise LookupError(name)


def _compile(cc: list[str], flags: list[str], out: Path) -> subprocess.CompletedProcess:
    sources = [ROOT / "tests" / "c" / "q8_exhaustive.c", ROOT / "src_c" / "qmap.c"]
    command = [*cc, *flags, f"-I{ROOT / 'src_c'}", *map(str, sources), "-o", str(out)]
    return subprocess.run(command, capture_output=True, text=True)


@pytest.fixture(scope="module")
def driver(tmp_path_factory) -> Path:
    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("the lattice encoder is x86-64's (AVX2)")
    if _ext.simd_level() not in ("avx2", "avx512"):
        pytest.skip(f"this CPU runs {_ext.simd_level()}, not AVX2")
    cc = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()
    out = tmp_path_factory.mktemp("q8") / "q8_exhaustive"
    flags = [*_setup_list("KERNEL_FLAGS"), "-Wpedantic", "-Werror", "-mavx2"]
    done = _compile(cc, [*flags, *_setup_list("GATHERS"), "-fopenmp"], out)
    if done.returncode != 0:  # a compiler without OpenMP or gather tuning: one thread
        done = _compile(cc, flags, out)
    assert done.returncode == 0, done.stderr
    return out


def test_every_float_gets_the_code_of_the_table_search(driver, tmp_path):
    maps = tmp_path / "maps"
    maps.write_bytes(map_bytes())
    done = subprocess.run([str(driver), str(maps)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) >= 4, done.stdout  # two maps, two roundings, an encoder or two
    assert all(" 0 wrong " in line for line in lines), done.stdout
