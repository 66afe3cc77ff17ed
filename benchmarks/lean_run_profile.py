"""Where a `portaclass train` run's time outside the epochs goes: the recipe
of lean_run.py, once, under `python -X importtime`, with the runner's steps
timed by wrapping them (the run itself is the real CLI code path:
`portaclass.cli.main(["train", ...])`).

    python benchmarks/lean_run_profile.py
    python benchmarks/lean_run_profile.py --block jax,tensorflow   # as if keras never imported them

Prints the phases (seconds, share of the time outside the epochs), the
import time per top-level package (exclusive: a package's own modules,
not what they import) with who imported jax and tensorflow, and one JSON
line with everything. `-X importtime` itself adds a little to the imports.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

from lean_run import machine, photos_folder, run_child, versions

PHASE_ORDER = (
    "interpreter start-up and exit",
    "import portaclass.cli (typer, rich)",
    "CLI: import the runner, parse options",
    "option checks (models registry)",
    "dataset: scan + bad-file pre-pass",
    "import keras + torch (first use)",
    "model build (resnet18, seeded init)",
    "run folder: splits, config.json, env.json",
    "pipelines",
    "compile",
    "fit: set-up and callbacks outside the epochs",
    "checkpoint saves",
    "final model save (model.keras)",
    "final evaluation (held-out split)",
    "report.html",
    "other (in run_training)",
)
PACKAGES_OF_INTEREST = ("keras", "torch", "jax", "jaxlib", "tensorflow", "numpy", "scipy", "PIL",
                        "matplotlib", "rich", "typer", "click", "portaclass", "h5py", "ml_dtypes")


# -- the instrumented child ------------------------------------------------------


def peak_rss_mb() -> float:
    """This process's peak RSS so far (VmHWM), MB."""
    with open("/proc/self/status") as f:
        line = next((line for line in f if line.startswith("VmHWM:")), "VmHWM: 0 kB")
    return int(line.split()[1]) / 1024


class PhaseTimer:
    """Wall time per label, accumulated over the calls of wrapped functions."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: Counter = Counter()
        self.peaks: list[tuple[str, float]] = []  # (label, peak RSS so far in MB) after each call

    def add(self, label: str, seconds: float) -> None:
        self.seconds[label] += seconds
        self.calls[label] += 1
        self.peaks.append((label, peak_rss_mb()))

    def wrap(self, owner, attr: str, label, *, static: bool = False) -> None:
        """Replace ``owner.attr`` by a timed version; ``label`` is a string or
        a function of the call's arguments."""
        original = getattr(owner, attr)

        @functools.wraps(original)
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.add(label(*args, **kwargs) if callable(label) else label, time.perf_counter() - start)

        setattr(owner, attr, staticmethod(timed) if static else timed)


def instrument(timer: PhaseTimer) -> None:
    """Time the runner's steps; modules behind lazy handles are wrapped as they load."""
    from portaclass import _lazy
    from portaclass.run import Run
    from portaclass.train import options, runner, session

    timer.wrap(runner, "run_training", "run_training")
    timer.wrap(options.TrainOptions, "check", "option checks (models registry)")
    timer.wrap(session.TrainingSession, "load_data", "dataset: scan + bad-file pre-pass")
    timer.wrap(session.TrainingSession, "build_model", "model build (resnet18, seeded init)")
    timer.wrap(session, "_score", "final evaluation (held-out split)")
    timer.wrap(session.TrainingSession, "_write_report", "report.html")
    timer.wrap(Run, "create", "run folder: splits, config.json, env.json", static=True)
    for method in ("write_dataset_files", "write_config", "write_env"):
        timer.wrap(Run, method, "run folder: splits, config.json, env.json")

    original_load = _lazy.LazyModule._load

    def load(self):
        if self._module is not None:
            return self._module
        start = time.perf_counter()
        module = original_load(self)
        label = "import keras + torch (first use)" if self._name in ("keras", "portaclass.backend") \
            else f"import {self._name}"
        timer.add(label, time.perf_counter() - start)
        after_load(self._name, timer)
        return module

    _lazy.LazyModule._load = load


def after_load(name: str, timer: PhaseTimer) -> None:
    if name == "portaclass.backend":
        from portaclass.train import checkpoint

        def save_label(model, filepath, *args, **kwargs):
            return "checkpoint saves" if Path(filepath).parent.name == "checkpoints" \
                else "final model save (model.keras)"

        timer.wrap(checkpoint, "write_archive", save_label)
    elif name == "portaclass.data.pipeline":
        import portaclass.data.pipeline as pipeline

        timer.wrap(pipeline, "make_pipeline", "pipelines")
    elif name == "portaclass.train.fit":
        import portaclass.train.fit as fit

        timer.wrap(fit, "compile_classifier", "compile")
        timer.wrap(fit, "fit_classifier", "fit_classifier")
        timer.wrap(fit, "build_before_fit", "build metrics before fit")
        on_epoch_end = fit.EpochHistoryCSV.on_epoch_end

        def mark_epoch_end(self, epoch, logs=None):  # a peak mark only: epochs are timed by history.csv
            on_epoch_end(self, epoch, logs)
            timer.peaks.append((f"epoch {epoch + 1} (training + validation)", peak_rss_mb()))

        fit.EpochHistoryCSV.on_epoch_end = mark_epoch_end


def child(args) -> None:
    """Run the CLI in this process, instrumented; print the phases as JSON."""
    start = time.perf_counter()
    for name in filter(None, args.block.split(",")):
        sys.modules[name] = None  # `import name` now raises ImportError
    timer = PhaseTimer()
    from portaclass import cli

    timer.add("import portaclass.cli (typer, rich)", time.perf_counter() - start)
    instrument(timer)
    cli_start = time.perf_counter()
    code = cli.main(["train", "--data", args.data, "--model", "resnet18", "--image-size", str(args.image_size),
                     "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
                     "--augment", args.augment, "--out", args.out, "--backend", "torch", "--quiet"])
    if code:
        raise SystemExit(code)
    timer.add("cli.main", time.perf_counter() - cli_start)
    loaded = [m for m in ("keras", "torch", "jax", "tensorflow", "matplotlib") if sys.modules.get(m)]
    print(json.dumps({"seconds": timer.seconds, "calls": timer.calls, "in_process_s": time.perf_counter() - start,
                      "modules_loaded": loaded, "peaks_mb": timer.peaks}))


# -- the parent: run the child, read its phases and the import times ---------------


def import_times(stderr: str) -> tuple[dict[str, float], dict[str, str]]:
    """From ``-X importtime`` lines: exclusive seconds per top-level package,
    and for each package the module whose import first pulled it in."""
    own: dict[str, float] = defaultdict(float)
    first_importer: dict[str, str] = {}
    rows = []
    for line in stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)", line)
        if match:
            rows.append((int(match[1]), len(match[3]) // 2, match[4]))
    # importtime prints a module after the modules it imported: walking the
    # lines backwards, a module's importer is the nearest shallower line seen
    parents, stack = [None] * len(rows), []
    for i in range(len(rows) - 1, -1, -1):
        depth = rows[i][1]
        while stack and rows[stack[-1]][1] >= depth:
            stack.pop()
        parents[i] = rows[stack[-1]][2] if stack else "<main>"
        stack.append(i)
    for (self_us, _, name), parent in zip(rows, parents):
        package = name.split(".")[0]
        own[package] += self_us / 1e6
        if parent.split(".")[0] != package:
            first_importer.setdefault(package, parent)
    return dict(own), first_importer


def history_epochs(run_dir: Path) -> list[float]:
    import csv

    with (run_dir / "history.csv").open(newline="") as f:
        return [float(row["epoch_seconds"]) for row in csv.DictReader(f)]


def phases_table(phases: dict[str, float], wall: float, epochs: list[float], in_process: float) -> dict:
    seconds = dict(phases)
    cli_total = seconds.pop("cli.main")
    run_total = seconds.pop("run_training")
    inside = sum(epochs)
    seconds["interpreter start-up and exit"] = wall - in_process
    seconds["CLI: import the runner, parse options"] = cli_total - run_total
    fit = seconds.pop("fit_classifier")
    seconds["fit: set-up and callbacks outside the epochs"] = fit - inside - seconds.get("checkpoint saves", 0)
    inner = [k for k in seconds if k not in ("interpreter start-up and exit", "CLI: import the runner, parse options",
                                              "import portaclass.cli (typer, rich)",
                                              "fit: set-up and callbacks outside the epochs")]
    # checkpoint saves sit inside fit_classifier, the rest directly in run_training
    direct = sum(seconds[k] for k in inner if k != "checkpoint saves")
    seconds["other (in run_training)"] = run_total - fit - direct
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-images", type=int, default=244)
    parser.add_argument("--val-images", type=int, default=153)
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--augment", choices=("none", "light"), default="none")
    parser.add_argument("--block", default="", help="comma-separated modules made unimportable in the run")
    parser.add_argument("--cache-dir", type=Path,
                        default=Path(os.path.expanduser("~/.cache/portaclass/bench-lean")))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    data = photos_folder(args)
    scratch = Path(tempfile.mkdtemp(prefix="lean-profile-", dir=args.cache_dir))
    out = scratch / "run"
    env = {k: v for k, v in os.environ.items() if k != "PORTACLASS_BACKEND"}
    env.update(KERAS_BACKEND="torch", TF_CPP_MIN_LOG_LEVEL="3", PORTACLASS_CACHE_DIR=str(scratch / "scan-cache"))
    command = [sys.executable, "-X", "importtime", __file__, "--child", "--data", str(data), "--out", str(out),
               "--epochs", str(args.epochs), "--image-size", str(args.image_size),
               "--batch-size", str(args.batch_size), "--augment", args.augment, "--block", args.block]
    try:
        result, wall, peak = run_child(command, env)
        report = json.loads(result.stdout.strip().splitlines()[-1])
        epochs = history_epochs(out)
        sizes = {p.relative_to(out).as_posix(): p.stat().st_size for p in out.rglob("*.keras")}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    seconds = phases_table(report["seconds"], wall, epochs, report["in_process_s"])
    outside = wall - sum(epochs)
    own, importer = import_times(result.stderr)

    print(f"portaclass train, resnet18 {args.image_size} px, {args.epochs} epochs, torch backend"
          f"{', blocked: ' + args.block if args.block else ''}; {machine()}; {versions()}.")
    print(f"wall {wall:.1f} s, inside epochs {sum(epochs):.1f} s, outside {outside:.1f} s, "
          f"peak RSS {peak / 1e9:.2f} GB; frameworks loaded: {', '.join(report['modules_loaded'])}\n")
    print("| phase outside the epochs | s | share |\n| --- | ---: | ---: |")
    for name in PHASE_ORDER:
        if name in seconds:
            calls = report["calls"].get(name, 1)
            label = f"{name} ({calls}x)" if calls > 1 else name
            print(f"| {label} | {seconds[name]:.2f} | {seconds[name] / outside:.0%} |")
    for name in sorted(set(seconds) - set(PHASE_ORDER)):
        print(f"| {name} | {seconds[name]:.2f} | {seconds[name] / outside:.0%} |")
    print(f"| **total outside the epochs** | **{outside:.2f}** | |")
    later = statistics.median(epochs[1:]) if len(epochs) > 1 else epochs[0]
    print(f"\nInside the epochs: {', '.join(f'{s:.1f}' for s in epochs)} s; the first epoch's extra "
          f"(first-step warm-up) {epochs[0] - later:.2f} s.")
    print("\n| package (own modules) | import s | first imported by |\n| --- | ---: | --- |")
    for package in sorted(own, key=own.get, reverse=True):
        if package in PACKAGES_OF_INTEREST or own[package] > 0.1:
            print(f"| {package} | {own[package]:.2f} | {importer.get(package, '')} |")
    print(f"| all imports | {sum(own.values()):.2f} | |")
    print("\n| peak RSS after (in call order; rises only) | MB | + MB |\n| --- | ---: | ---: |")
    previous = 0.0
    for label, peak_mb in report["peaks_mb"]:
        if peak_mb - previous >= 20:
            print(f"| {label} | {peak_mb:.0f} | {peak_mb - previous:.0f} |")
            previous = peak_mb
    print(f"\nmodel files: {', '.join(f'{k} {v / 1e6:.0f} MB' for k, v in sizes.items())}")
    print(json.dumps({"wall_s": round(wall, 2), "outside_epochs_s": round(outside, 2), "epochs_s": epochs,
                      "peak_rss_gb": round(peak / 1e9, 3), "phases_s": {k: round(v, 3) for k, v in seconds.items()},
                      "imports_s": {k: round(v, 3) for k, v in own.items() if v > 0.01},
                      "block": args.block, "model_files_bytes": sizes}))


if __name__ == "__main__":
    main()
