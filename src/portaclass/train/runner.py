"""``portaclass train``: a fresh run (``run_training``) or ``--resume``
(``resume_training``), on one device or several; both hand the work to a
``TrainingSession`` (``session.py``), which wires data, models and fitting
together.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import fields, replace
from pathlib import Path

from portaclass import config
from portaclass._lazy import LazyModule, backend
from portaclass.data.constants import BUILTINS
from portaclass.errors import PortaclassError, RunError, UsageError
from portaclass.models import Preprocessing, get_spec
from portaclass.run import Run, check_run_dir_free, default_run_path
from portaclass.train import distributed
from portaclass.train.distributed import Topology
from portaclass.train.options import HOST_OPTIONS, TrainOptions
from portaclass.train.precision import dtype_policy, resolve_precision
from portaclass.train.session import (
    TrainingSession,
    TrainResult,
    checkpoint_module,
)

launch_module = LazyModule("portaclass.train.distributed.launch")


def run_training(options: TrainOptions, log=print, *, command: str = "train") -> TrainResult:
    """Train as ``options`` say; everything lands in the run folder.

    Everything that can be wrong with the options or the data is found before
    keras (and the framework) is imported, and nothing is written until the
    model is built, so bad input leaves no half-made run folder behind.
    A PyTorch run on several devices starts one worker process per device
    here and returns rank 0's result (``train.distributed.launch``).
    """
    options.check()
    workers = launch_module.workers_to_start(options)
    if workers:
        prefix = f"{options.model}-{_dataset_label(options.data)}" if command == "train" else command
        out = Path(options.out) if options.out else default_run_path(prefix)
        check_run_dir_free(out)
        return _run_in_workers({"kind": "train", "command": command,
                                "options": {**vars(replace(options, out=str(out)))}}, options, workers, log)
    start = time.perf_counter()
    preprocessing, size, channels = _input_spec(options)
    topology = distributed.start(options, log)
    if not topology.chief:  # the chief speaks and writes for the run
        log, options = _silent, replace(options, quiet=True)
    elif options.out:
        check_run_dir_free(Path(options.out))
    distributed.check_batch(options.batch_size, topology)
    session = TrainingSession(options, log, preprocessing, size, channels, start, topology=topology)
    try:
        if config.backend_choice:
            log(config.backend_choice)
        session.load_data()
        if options.deterministic:  # before anything asks the framework for a device
            backend.enable_determinism(log)
        precision = resolve_precision(options.precision, log)
        with dtype_policy(precision), distributed.scope(topology):
            session.build_model()
            prefix = f"{options.model}-{_dataset_label(options.data)}" if command == "train" else command
            session.run = (Run.create(options.out, prefix=prefix) if topology.chief
                           else Run.create(Path(tempfile.mkdtemp(prefix="portaclass-replica-")) / "run"))
            session.run.write_dataset_files(session.dataset)
            session.make_pipelines()
            try:
                learning_rate = session.find_learning_rate() if options.runs_lr_find else options.learning_rate
            except PortaclassError:  # the range test found no rate: nothing trained, no half-made run left
                shutil.rmtree(session.run.path, ignore_errors=True)
                raise
            learning_rate = _scaled_learning_rate(learning_rate, options, topology, log)
            session.write_config(command, precision=precision, precision_requested=options.precision,
                                 learning_rate=learning_rate)
            session.run.write_env()
            return session.train_and_finish(learning_rate)
    finally:
        session.close()


def _scaled_learning_rate(rate: float, options: TrainOptions, topology: Topology, log) -> float:
    if not topology.parallel:
        return rate
    if options.scale_lr == "linear":
        log(f"learning rate {rate * topology.replicas:.3g} = {rate:.3g} x {topology.replicas} replicas "
            "(--scale-lr linear)")
        return rate * topology.replicas
    log(f"learning rate {rate:.3g} as given, not rescaled for {topology.replicas} replicas "
        "(--scale-lr linear multiplies it by their number)")
    return rate


def _silent(_line: str) -> None:
    pass


def _run_in_workers(payload: dict, options: TrainOptions, workers: int, log) -> TrainResult:
    """The run as PyTorch worker processes (``train.distributed.launch``);
    rank 0's result, or an empty one on a host without rank 0."""
    result = launch_module.run_in_workers(payload, options, workers, log,
                                          command_line=config.command_line_process,
                                          backend_choice=config.backend_choice)
    if result is None:
        return TrainResult(Path(payload.get("run_dir") or payload["options"]["out"]), "torch", {}, chief=False)
    return TrainResult(Path(result["run_dir"]), result["backend"], result["metrics"])


def resume_training(run_dir, *, given: dict | None = None, quiet: bool = False, log=print) -> TrainResult:
    """Continue the unfinished run in ``run_dir`` from its last complete
    epoch, with the options in its config.json. ``given`` are options the
    caller named too: any that differ from the run's are one error naming them
    (the device count and where this host sits may change)."""
    start = time.perf_counter()
    run = Run.open(run_dir)
    if run.finished:
        raise UsageError.for_option("resume", f"{run.path} has finished (metrics.json and model.keras "
                                    "are written); start a new run instead")
    given = dict(given or {})
    placement = {name: given.pop(name) for name in ("devices",) + HOST_OPTIONS if name in given}
    options = replace(_options_of(run, quiet), **placement)
    _check_no_contradiction(run, options, given)
    options.check()
    workers = launch_module.workers_to_start(options)
    if workers:
        return _run_in_workers({"kind": "resume", "run_dir": str(run.path), "quiet": quiet,
                                "given": {**given, **placement}}, options, workers, log)
    topology = distributed.start(options, log)
    if not topology.chief:  # reads the chief's checkpoint, writes into a copy of the run
        log, options = _silent, replace(options, quiet=True)
    distributed.check_batch(options.batch_size, topology)
    if options.deterministic:
        backend.enable_determinism(log)
    checkpoint = run.checkpoints / "last.keras"
    if topology.chief:
        checkpoint_module.remove_partial_writes(run.checkpoints)
    state = checkpoint_module.read_state(checkpoint) if checkpoint.is_file() else None
    preprocessing, (size, _, channels) = run.preprocessing, run.input_shape
    session = TrainingSession(options, log, preprocessing, size, channels, start,
                              run=run if topology.chief else _replica_copy(run), topology=topology)
    try:
        session.load_data(from_run=True)
        run.check_same_data(session.dataset)
        with dtype_policy(run.config["options"].get("precision", "float32")), distributed.scope(topology):
            session.build_model()
            session.make_pipelines()
            epochs_done = state["epoch"] if state else 0
            session.run.truncate_history(epochs_done)
            ran_on = run.options.get("devices") or 1
            moved = f", now on {topology.replicas} devices (was {ran_on})" if topology.replicas != ran_on else ""
            log(f"resuming {run.path} after epoch {epochs_done} (phase {state['phase'] if state else 1}){moved}")
            session.resumed_from = epochs_done
            return session.train_and_finish(run.options["learning_rate"],
                                            checkpoint=checkpoint if state else None, state=state)
    finally:
        session.close()


def _replica_copy(run: Run) -> Run:
    """A scratch copy of ``run`` without its model files, for a process
    other than the chief to write into."""
    scratch = Path(tempfile.mkdtemp(prefix="portaclass-replica-")) / "run"
    shutil.copytree(run.path, scratch, ignore=shutil.ignore_patterns("*.keras", "*.keras.*", "tensorboard"))
    return Run.open(scratch)


def _options_of(run: Run, quiet: bool) -> TrainOptions:
    """The TrainOptions a run ran with, from its config.json (the recorded
    epochs are derived when the run had a step budget)."""
    known = {f.name for f in fields(TrainOptions)}
    values = {k: v for k, v in run.options.items() if k in known and v is not None}
    if values.get("steps") is not None:
        values.pop("epochs", None)
    values.update(out=str(run.path), quiet=quiet, lr_find=False)
    return TrainOptions(**values)


def _check_no_contradiction(run: Run, options: TrainOptions, given: dict) -> None:
    """UsageError naming the options in ``given`` that differ from the run's."""
    normalised = dict(given)
    if "learning_rate" in normalised:  # "1e-3" from the command line is 0.001
        normalised["learning_rate"] = TrainOptions(data="-", learning_rate=given["learning_rate"]).learning_rate
    if "data" in normalised and Path(str(normalised["data"])).expanduser().exists():
        normalised["data"] = str(Path(str(normalised["data"])).expanduser().resolve())  # as config.json has it
    clashes = [name for name, value in normalised.items()
               if name not in ("quiet", "out", "lr_find") and run.options.get(name) != value
               and getattr(options, name, None) != value]
    if given.get("out") is not None:
        clashes.insert(0, "out")
    if clashes:
        names = ", ".join(f"`{name}`" for name in clashes)
        raise UsageError.for_option(clashes[0], f"differs from the run being resumed ({run.path}): "
                                    f"{names} must stay as the run had them")


def _dataset_label(data: str) -> str:
    if data in BUILTINS and not Path(data).expanduser().is_dir():
        return data
    return Path(data).name or "data"


def _input_spec(options: TrainOptions) -> tuple[Preprocessing, int, int]:
    """(preprocessing, image size, channels) for the run: the model's declared
    preprocessing, or, for a backbone from an earlier run, what that run used."""
    if not options.backbone:
        prep = get_spec(options.model).preprocessing
        return prep, options.image_size or prep.input_size[0], options.channels
    try:
        earlier = Run.open(Path(options.backbone).parent)
    except RunError:  # a model file outside a run folder: the defaults
        return Preprocessing(), options.image_size or 32, options.channels
    size, _, channels = earlier.input_shape
    if options.image_size and options.image_size != size:
        raise UsageError.for_option("image_size", f"{options.image_size} differs from the backbone's "
                                    f"input size {size}")
    return earlier.preprocessing, size, channels
