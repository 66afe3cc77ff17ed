"""Seconds of ``write_report`` on copies of one finished run, in fresh
processes, for one or more source trees side by side (A B A B ...): what a
change to the report costs or saves.

    python benchmarks/report_cost.py RUN_DIR --src before=/tmp/before/src --src after=src --rounds 3

A tree is a ``src`` folder (a ``git worktree`` of another commit, say);
without ``--src`` the installed portaclass is timed alone.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import time, sys
import portaclass.report.html as html
from portaclass import backend  # the framework imported before the clock starts
start = time.perf_counter()
html.write_report(sys.argv[1])
print(time.perf_counter() - start)
"""


def time_once(run_dir: Path, src: str | None, backend: str) -> float:
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "run"
        shutil.copytree(run_dir, copy)
        env = dict(os.environ, KERAS_BACKEND=backend, PYTHONDONTWRITEBYTECODE="1")
        if src:
            env["PYTHONPATH"] = str(Path(src).resolve())
        done = subprocess.run([sys.executable, "-c", CHILD, str(copy)], env=env, capture_output=True,
                              text=True, check=True)
        return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--src", action="append", default=[], help="NAME=PATH to a src folder")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backend", default="torch")
    args = parser.parse_args()
    sides = dict(item.split("=", 1) for item in args.src) or {"installed": None}
    seconds = {name: [] for name in sides}
    for round_index in range(args.rounds):
        for name, src in sides.items():
            seconds[name].append(time_once(args.run_dir, src, args.backend))
            print(f"round {round_index + 1}: {name}: {seconds[name][-1]:.2f} s", flush=True)
    first = statistics.median(next(iter(seconds.values())))
    print(f"\n| | rounds (s) | median s | / {next(iter(sides))} |\n| --- | --- | ---: | ---: |")
    for name, values in seconds.items():
        median = statistics.median(values)
        print(f"| {name} | {', '.join(f'{v:.2f}' for v in values)} | {median:.2f} | {median / first:.2f}x |")


if __name__ == "__main__":
    main()
