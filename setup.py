"""Build the fastadam extension: C kernels (src_c/) behind a Cython boundary.

Environment switches (all optional):
  FASTADAM_NATIVE=1      tune for this machine (-march=native, one level: no run-time
                         dispatch); off by default so a wheel runs on any CPU of its
                         architecture (the kernels pick AVX-512 / AVX2 / baseline, or
                         SVE / NEON, at run time anyway)
  FASTADAM_NO_OPENMP=1   build without OpenMP (fastadam then runs one thread)
  FASTADAM_SANITIZE=1    build with -fsanitize=address,undefined for testing
  FASTADAM_WERROR=1      compile the kernels with -Wpedantic -Werror (CI)
"""

import glob
import hashlib
import os
import platform
import subprocess
import sys
import sysconfig
import tempfile
from concurrent.futures import ThreadPoolExecutor

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

# Every level of the kernels (kernels*.c: src_c/compat.h says which this build has),
# the dispatch between them and the threads.
KERNEL_SOURCES = sorted(glob.glob("src_c/*.c"))

# Value-safe flags only: -fno-math-errno lets sqrt vectorise, -fno-trapping-math
# lets selects vectorise, and -ffp-contract=off keeps vector body and scalar
# tail (and every instruction set) computing the same bits.
KERNEL_FLAGS = [
    "-std=c11",
    "-O3",
    "-fno-math-errno",
    "-fno-trapping-math",
    "-ffp-contract=off",
    "-Wall",
    "-Wextra",
]


def _flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


OPENMP_PROBE = "#include <omp.h>\nint main(void) { return omp_get_max_threads() < 1; }\n"


def _compiler_accepts(flags: list[str], source: str = OPENMP_PROBE) -> bool:
    """Whether the C compiler can build and link a small program (default: OpenMP) with flags."""
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "probe.c")
        with open(path, "w") as f:
            f.write(source)
        cmd = [*cc.split(), path, "-o", os.path.join(tmp, "probe"), *flags]
        return subprocess.run(cmd, capture_output=True).returncode == 0


kernel_args = list(KERNEL_FLAGS)
if _flag("FASTADAM_WERROR"):
    kernel_args += ["-Wpedantic", "-Werror"]
# GCC's generic tuning avoids vector gathers; the 8-bit formats' table lookups need them
# (4 to 6 times faster than scalar lookups on AVX2 and AVX-512 machines).
GATHERS = ["-mtune-ctrl=use_gather_2parts,use_gather_4parts,use_gather"]
if platform.machine().lower() in ("x86_64", "amd64") and _compiler_accepts(
    GATHERS, "int main(void) { return 0; }\n"
):
    kernel_args += GATHERS
link_args: list[str] = []
if _flag("FASTADAM_NATIVE"):
    kernel_args += ["-march=native", "-DFA_NO_DISPATCH"]
if not _flag("FASTADAM_NO_OPENMP") and _compiler_accepts(["-fopenmp"]):
    kernel_args.append("-fopenmp")
    link_args.append("-fopenmp")
else:
    print("fastadam: building without OpenMP (one thread)", file=sys.stderr)
sanitize = []
if _flag("FASTADAM_SANITIZE"):
    sanitize = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-g"]


class BuildExt(build_ext):
    """Compile the C kernels with their own flags, then the Cython module; the
    extensions build side by side, one per CPU (as ``build_ext --parallel``)."""

    def finalize_options(self) -> None:
        super().finalize_options()
        if self.parallel is None:
            self.parallel = os.cpu_count() or 1

    def build_extension(self, ext: Extension) -> None:
        if ext.name != "fastadam._ext":
            if self.compiler.compiler_type == "msvc":
                ext.extra_compile_args = ["/O2", "/fp:precise"]
            super().build_extension(ext)
            return
        flags = kernel_args + sanitize
        if self.compiler.compiler_type == "msvc":  # untested here: MSVC's spelling, one thread
            flags = ["/O2", "/fp:precise"]
        # One folder per set of flags, so that objects are reused only with their own flags.
        tag = hashlib.sha256(" ".join([*flags, os.environ.get("CC", "")]).encode()).hexdigest()
        output = os.path.join(self.build_temp, f"kernels-{tag[:12]}")
        objects = self.compiler.object_filenames(KERNEL_SOURCES, output_dir=output)
        if self.force or not _up_to_date(objects):
            # The sources side by side: each level (kernels*.c) takes a good part of the build.
            os.makedirs(os.path.dirname(objects[0]), exist_ok=True)
            with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
                compiled = pool.map(
                    lambda source: self.compiler.compile(
                        [source], output_dir=output, include_dirs=["src_c"], extra_postargs=flags
                    ),
                    KERNEL_SOURCES,
                )
                objects = [path for paths in compiled for path in paths]
        ext.extra_objects = objects
        super().build_extension(ext)


def _up_to_date(objects: list[str]) -> bool:
    """Whether the kernel objects are newer than every C source and header (rebuilds in
    place recompile the kernels only when they changed, as make would)."""
    sources = [os.path.join("src_c", name) for name in os.listdir("src_c")]
    newest = max(os.path.getmtime(path) for path in [*sources, __file__])
    return all(os.path.exists(o) and os.path.getmtime(o) > newest for o in objects)


extension = Extension(
    "fastadam._ext",
    sources=["fastadam/_ext.pyx"],
    include_dirs=["src_c", numpy.get_include()],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    extra_compile_args=["-O2", *sanitize],
    extra_link_args=link_args + sanitize,
)

# The per-call path (hyperparameter checks, step planner, functional API, NumPy
# classes) is plain Python modules; compiled, the fixed cost of a functional call is
# about half what it is interpreted. They work uncompiled too, and so
# they stay under the sanitizers, which are there for the kernels and the boundary:
# compiling Cython's C for them with -fsanitize took most of a sanitized build.
# Their arithmetic (the coefficients of a step, in C doubles where typed) is Python's:
# each operation rounded on its own, never contracted into a fused multiply-add.
PYTHON_FLAGS = ["-O2", "-ffp-contract=off"]
compiled_python = [
    Extension(f"fastadam.{name}", [f"fastadam/{name}.py"], extra_compile_args=PYTHON_FLAGS)
    for name in (
        "_validate",
        "_algorithms",
        "_formats",
        "_table",
        "_plan",
        "functional",
        "optimizers",
    )
    if not sanitize
]

setup(
    cmdclass={"build_ext": BuildExt},
    ext_modules=cythonize(
        [extension, *compiled_python],
        nthreads=os.cpu_count() or 1,
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
            "annotation_typing": False,
        },
    ),
)
