"""Run the fuzz targets of tests/fuzz/targets.py with atheris (coverage-guided libFuzzer).

    python tests/fuzz/run.py --seconds 60            # every target, 60 s in all
    python tests/fuzz/run.py --seconds 600 --targets checkpoint,torch
    python tests/fuzz/run.py --reproduce TARGET FILE # run one saved input, plainly

Each target runs in a process of its own for its share of the seconds, starting
from the committed seeds (tests/fuzz/corpus/TARGET/) and a scratch corpus (the
inputs it finds new coverage with; --workdir keeps them). Coverage is Python's:
atheris instruments the fastadam modules that are plain Python at import
(functional, checkpoint, torch, distributed, and in a sanitizer build, where
Cython compiles nothing, the policy modules too). The C kernels and the Cython
boundary have no coverage counters (setup.py builds them with gcc, and libFuzzer
reads clang's -fsanitize=fuzzer-no-link counters only); they are still checked,
by the oracle and, in .ci/sanitize, by AddressSanitizer and UBSan.

A finding is a crash, a hang (--timeout seconds for one input), a sanitizer
report, or an input the oracle rejects (tests/fuzz/oracle.py). The run exits 1
on any, printing the input's file and the command that reproduces it.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
TARGETS = ("functional", "optimizer", "checkpoint", "torch", "distributed")
STARTUP = 120.0  # seconds a target's process may take beyond its share (imports, ASan)


def _paths() -> None:
    sys.path[:0] = [str(HERE), str(HERE.parent)]


def worker(target: str, libfuzzer_args: list[str]) -> None:
    """Fuzz ``target`` in this process (libFuzzer's arguments after ``--``)."""
    import atheris

    _paths()
    with atheris.instrument_imports(include=["fastadam"]):
        import fastadam
        import fastadam.checkpoint
        import fastadam.distributed
        import fastadam.functional

        if target == "torch":
            import fastadam.torch
    del fastadam
    with atheris.instrument_imports(include=["targets", "oracle"]):
        import targets  # their branches tell which operations an input reached

    atheris.Setup([sys.argv[0], *libfuzzer_args], targets.TARGETS[target])
    atheris.Fuzz()


def reproduce(target: str, files: list[str]) -> None:
    """Run saved inputs through ``target`` without the fuzzer: a finding raises here."""
    _paths()
    import targets

    for name in files:
        print(f"{target}: {name}", flush=True)
        targets.TARGETS[target](Path(name).read_bytes())
    print("no finding")


def make_corpus() -> None:
    """Write the seed inputs of tests/fuzz/corpus/: fixed bytes for the targets that
    read values from them, and real checkpoints (raw and framed) for "checkpoint"."""
    import random

    _paths()
    import targets

    rng = random.Random(0)
    plain = [bytes(64), bytes(range(256)), *(rng.randbytes(512) for _ in range(3))]
    seeds: dict[str, list[bytes]] = {name: plain for name in TARGETS}
    seeds["checkpoint"] = []
    for i, make in enumerate(targets.checkpoint_optimizers()):
        data = targets.checkpoint_bytes(make)
        header, payload = targets.unframe(data)
        seeds["checkpoint"] += [
            bytes([i]) + data,
            bytes([0x80 | i]) + len(header).to_bytes(2, "little") + header + payload,
        ]
    for name, inputs in seeds.items():
        (CORPUS / name).mkdir(parents=True, exist_ok=True)
        for i, data in enumerate(inputs):
            (CORPUS / name / f"seed-{i}").write_bytes(data)


def _stat(log: str, name: str) -> int:
    found = re.findall(rf"stat::{name}:\s+(\d+)", log)
    return int(found[-1]) if found else 0


def fuzz(names: list[str], seconds: float, timeout: int, workdir: Path) -> int:
    share = max(1, int(seconds / len(names)))
    findings = 0
    print(
        f"fuzzing {', '.join(names)} for {share} s each (timeout {timeout} s per input)", flush=True
    )
    for name in names:
        corpus = workdir / "corpus" / name
        artifacts = workdir / "artifacts"
        corpus.mkdir(parents=True, exist_ok=True)
        artifacts.mkdir(parents=True, exist_ok=True)
        seeds = CORPUS / name
        args = [
            f"-max_total_time={share}",
            f"-timeout={timeout}",
            "-rss_limit_mb=0",
            "-malloc_limit_mb=0",
            "-print_final_stats=1",
            f"-artifact_prefix={artifacts}/{name}-",
            str(corpus),
            *([str(seeds)] if seeds.is_dir() else []),
        ]
        log_path = workdir / f"{name}.log"
        started, cpu = time.monotonic(), os.times()
        with open(log_path, "w") as log:
            try:
                done = subprocess.run(
                    [sys.executable, __file__, "--worker", name, "--", *args],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=share + STARTUP,
                    check=False,
                )
                code: int | str = done.returncode
            except subprocess.TimeoutExpired:
                code = "timed out"
        wall = time.monotonic() - started
        after = os.times()
        used = after.children_user + after.children_system - cpu.children_user - cpu.children_system
        text = log_path.read_text(errors="replace")
        runs = _stat(text, "number_of_executed_units")
        print(
            f"{name:12s} {runs:9d} inputs {wall:7.1f} s wall {used:7.1f} s CPU "
            f"{len(list(corpus.iterdir())):5d} in corpus  exit {code}",
            flush=True,
        )
        if code != 0:
            findings += 1
            found = re.findall(r"(?:Test unit written to|saved to) (\S+)", text)
            print(f"== FINDING in {name} (log {log_path}):")
            print("\n".join(text.splitlines()[-60:]))
            for path in found:
                data = base64.b64encode(Path(path).read_bytes()).decode()
                print(f"input (base64): {data}")
                print(f"reproduce: python {__file__} --reproduce {name} {path}")
    print(f"{findings} finding(s)")
    return 1 if findings else 0


def main() -> int:
    if "--worker" in sys.argv:
        i = sys.argv.index("--worker")
        rest = sys.argv[i + 2 :]
        worker(sys.argv[i + 1], rest[1:] if rest[:1] == ["--"] else rest)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="in all, split among targets")
    parser.add_argument("--targets", default=",".join(TARGETS), help="comma-separated")
    parser.add_argument("--timeout", type=int, default=30, help="seconds for one input")
    parser.add_argument("--workdir", type=Path, help="keep logs, corpus and findings here")
    parser.add_argument("--reproduce", nargs="+", metavar=("TARGET", "FILE"))
    parser.add_argument("--make-corpus", action="store_true", help="rewrite the seed corpus")
    options = parser.parse_args()
    if options.make_corpus:
        make_corpus()
        return 0
    if options.reproduce:
        reproduce(options.reproduce[0], options.reproduce[1:])
        return 0
    names = [n for n in options.targets.split(",") if n]
    unknown = set(names) - set(TARGETS)
    if unknown:
        parser.error(f"unknown targets {sorted(unknown)}; known: {', '.join(TARGETS)}")
    if options.workdir:
        options.workdir.mkdir(parents=True, exist_ok=True)
        return fuzz(names, options.seconds, options.timeout, options.workdir)
    with tempfile.TemporaryDirectory(prefix="fastadam-fuzz-") as workdir:
        status = fuzz(names, options.seconds, options.timeout, Path(workdir))
        if status:  # keep the findings for the reproducer
            kept = Path(tempfile.mkdtemp(prefix="fastadam-fuzz-findings-"))
            os.rename(Path(workdir) / "artifacts", kept / "artifacts")
            print(f"findings kept in {kept}/artifacts (the paths above moved there)")
        return status


if __name__ == "__main__":
    sys.exit(main())
