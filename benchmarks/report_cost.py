"""Seconds of ``write_report`` on copies of one finished run, in fresh
processes, for one or more source trees side by side (A B A B ...): what a
change to the report costs or saves.

    python benchmarks/report_cost.py RUN_DIR --src before=/tmp/before/src --src after=src --rounds 3

A tree is a ``src`` folder (a ``git worktree`` of another commit, say);
without ``--src`` the installed portaclass is timed alone. The framework is
imported before the clock starts, as at the end of a training run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from portaclass.backend_process import interleaved_rounds


def measure(run_dir: Path) -> dict:
    import portaclass.report.html as html
    from portaclass import backend  # noqa: F401  (the framework, imported before the clock)

    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "run"
        shutil.copytree(run_dir, copy)
        start = time.perf_counter()
        html.write_report(copy)
        return {"seconds": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--src", action="append", default=[], help="NAME=PATH to a src folder")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.run_dir)))
        return
    sides = dict(item.split("=", 1) for item in args.src) or {"installed": None}
    jobs = {name: (["--measure"], args.backend, {"PYTHONPATH": str(Path(src).resolve())} if src else {})
            for name, src in sides.items()}
    results = interleaved_rounds(__file__, [str(args.run_dir.resolve())], jobs, args.rounds)
    seconds = {name: [row["seconds"] for row in rows] for name, rows in results.items()}
    first_name = next(iter(seconds))
    first = statistics.median(seconds[first_name])
    print(f"\n| | rounds (s) | median s | / {first_name} |\n| --- | --- | ---: | ---: |")
    for name, values in seconds.items():
        median = statistics.median(values)
        print(f"| {name} | {', '.join(f'{v:.2f}' for v in values)} | {median:.2f} | {median / first:.2f}x |")


if __name__ == "__main__":
    main()
