"""``TrainingSession``: one run's data, model, pipelines and training
phases, built identically for a fresh run and a resumed one (``runner.py``
decides which), and the result a run returns.

The dataset, the model and the pipelines are rebuilt from the same options
and seed either way, so a resumed run trains on exactly what the
uninterrupted run would have; the checkpoint then supplies weights,
optimizer state (the schedule's position comes with its iteration count),
random seed states and counters.
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from portaclass import layout
from portaclass._lazy import LazyModule, backend
from portaclass.data.loading import load_dataset
from portaclass.data.run_files import append_decode_failures
from portaclass.errors import PortaclassError
from portaclass.models import Preprocessing, build_transfer_model, create_model, unfreeze
from portaclass.models.builder import head_dropout
from portaclass.run import Run
from portaclass.train import distributed
from portaclass.train.distributed import Topology
from portaclass.train.options import TrainOptions

# These modules subclass Keras classes, so importing them loads keras and the
# framework: they are reached through lazy handles, once the options are checked.
pipeline_module = LazyModule("portaclass.data.pipeline")
fit_module = LazyModule("portaclass.train.fit")
callbacks_module = LazyModule("portaclass.train.callbacks")
checkpoint_module = LazyModule("portaclass.train.checkpoint")
optim_module = LazyModule("portaclass.train.optim")
lr_find_module = LazyModule("portaclass.train.lr_find")


class TrainingFailed(PortaclassError):
    """The loss diverged: exit code 1, the last good checkpoint kept."""

    exit_code = 1


class TrainingStopped(PortaclassError):
    """Ctrl-C: exit code 130, the last complete epoch kept for --resume."""

    exit_code = 130


@dataclass
class TrainResult:
    run_dir: Path
    backend: str
    metrics: dict
    # False in the processes of a distributed run other than process 0,
    # which writes the run (run_dir is then process 0's --out, if known)
    chief: bool = True

    @property
    def accuracy(self) -> float | None:
        return self.metrics.get("accuracy")

    @property
    def seconds(self) -> float:
        return self.metrics["seconds"]


@dataclass
class TrainingSession:
    """One run's data, model and pipelines, built identically for a fresh
    run and a resumed one."""

    options: TrainOptions
    log: object
    preprocessing: Preprocessing
    size: int
    channels: int
    start: float
    run: Run | None = None
    dataset: object = None
    model: object = None
    base: object = None
    train_data: object = None
    val_data: object = None
    resumed_from: int | None = None
    limit: dict = field(default_factory=dict)
    topology: Topology = field(default_factory=Topology)
    closed: bool = False
    validation_outputs: object = None  # callbacks.LastValidationOutputs, for the report (torch)

    def close(self, clean: bool = False) -> None:
        """Leave the distributed run (``clean``: all processes together, at
        the end of a run); a process other than the chief drops its scratch
        copy of the run folder."""
        if not self.topology.parallel or self.closed:
            return
        self.closed = True
        distributed.engine().finish(clean)
        if not self.topology.chief and self.run is not None:
            shutil.rmtree(self.run.path.parent, ignore_errors=True)

    def load_data(self, *, from_run: bool = False) -> None:
        """``from_run``: ``options.data`` is a resumed run's recorded data (see load_dataset)."""
        options = self.options
        self.limit = {"max_pixels": options.max_image_pixels} if options.max_image_pixels else {}
        self.dataset = load_dataset(options.data, self.size, channels=self.channels,
                                    val_split=options.val_split, test_split=options.test_split,
                                    seed=options.seed, from_run=from_run, **self.limit)
        self.log(self.dataset.summary())

    def build_model(self) -> None:
        options = self.options
        backend.seed_everything(options.seed, deterministic=options.deterministic)
        shape = (self.size, self.size, self.channels)
        num_classes = len(self.dataset.class_names)
        if options.transfer:
            self.model, self.base = build_transfer_model(
                options.backbone or options.model, num_classes, shape, weights=options.weights,
                dropout=options.dropout, seed=options.seed, batchnorm=options.base_batchnorm,
                unsafe=options.unsafe)
        else:
            self.model = create_model(options.model, num_classes, shape, weights=options.weights,
                                      seed=options.seed, dropout=options.dropout)

    def pipeline(self, split, train: bool):
        options = self.options
        return pipeline_module.make_pipeline(
            split, options.batch_size, preprocessing=self.preprocessing, image_size=self.size,
            channels=self.channels, augment=options.augment if train else "none", shuffle=train,
            seed=options.seed, resize=options.resize,
            channels_first=layout.data_format() == layout.CHANNELS_FIRST,
            # MixUp/CutMix and label smoothing train on one-hot rows: every
            # split yields them, since one compiled loss scores all splits.
            one_hot=options.mixes_or_smooths_labels,
            # one decoding thread: batches in the same order every run
            workers=1 if options.deterministic else None,
            shard=pipeline_module.Shard(*self.topology.shard),
            **self.limit)

    def make_pipelines(self) -> None:
        self.train_data = self.pipeline(self.dataset.train, True)
        self.val_data = self.pipeline(self.dataset.val, False) if self.dataset.val is not None else None

    @property
    def held_out(self) -> str | None:
        return next((name for name in ("test", "val") if getattr(self.dataset, name) is not None), None)

    def compile(self, learning_rate, plan=None) -> None:
        """Compile with the run's optimizer; ``plan`` (a PhasePlan) turns the
        learning rate into the run's schedule."""
        options = self.options
        rate = learning_rate
        if plan is not None:
            rate = optim_module.learning_rate_schedule(options.schedule, plan, step_size=options.step_size,
                                                       gamma=options.gamma)
        optimizer = optim_module.make_optimizer(options.optimizer, rate, momentum=options.momentum,
                                                nesterov=options.nesterov,
                                                weight_decay=options.weight_decay,
                                                clip_norm=options.clip_norm)
        fit_module.compile_classifier(self.model, optimizer, one_hot=options.mixes_or_smooths_labels,
                                      label_smoothing=options.label_smoothing)
        if self.topology.parallel:
            distributed.engine().prepare(self.model)

    def find_learning_rate(self) -> float:
        """The range test (``train.lr_find``); its plot and numbers go into the
        run. Returns the learning rate to train with."""
        result = lr_find_module.find_learning_rate(self.model, self.pipeline(self.dataset.train, True),
                                    compile_model=lambda model, lr: self.compile(lr))
        result.write(self.run.path)
        self.log(f"lr-find: suggested learning rate {result.suggestion:.3g} (lr_find.png)")
        return result.suggestion if self.options.learning_rate == "auto" else self.options.learning_rate

    def write_config(self, command: str, **ran) -> None:
        options, dataset, model = self.options, self.dataset, self.model
        self.run.write_config(
            command=command,
            options=options.resolved(image_size=self.size, channels=self.channels,
                                     dropout=head_dropout(model), out=str(self.run.path),
                                     epochs=options.epochs_for(len(self.train_data)),
                                     devices=self.topology.replicas, **ran),
            data={"name": dataset.name, "root": str(dataset.root) if dataset.root else None,
                  "class_names": dataset.class_names, "held_out": self.held_out,
                  "counts": {name: len(split) for name, split in dataset.splits().items()}},
            model={"name": options.model if not options.backbone else None,
                   "backbone": options.backbone,
                   "input_shape": [self.size, self.size, self.channels],
                   "preprocessing": self.preprocessing.to_dict(),
                   "head_dropout": head_dropout(model), "parameters": int(model.count_params())},
        )

    def phase_plans(self, learning_rate: float) -> list:
        options, per_epoch = self.options, len(self.train_data)
        epochs = options.epochs_for(per_epoch)
        plans = [optim_module.PhasePlan(
            learning_rate=learning_rate, steps_per_epoch=per_epoch, epochs=epochs,
            total_steps=options.steps or epochs * per_epoch,
            warmup_steps=int(round(options.warmup_epochs * per_epoch)))]
        if options.fine_tune_epochs:
            plans.append(optim_module.PhasePlan(
                learning_rate=options.fine_tune_lr, steps_per_epoch=per_epoch,
                epochs=options.fine_tune_epochs, total_steps=options.fine_tune_epochs * per_epoch))
        return plans

    def train_and_finish(self, learning_rate: float, *, checkpoint: Path | None = None,
                         state: dict | None = None) -> TrainResult:
        options = self.options
        state = dict(state or {"phase": 1, "epoch": 0})
        class_weight = None
        if options.class_weight == "balanced":
            class_weight = optim_module.balanced_class_weights(self.dataset.train.labels,
                                                               len(self.dataset.class_names))
        history, phase_end, fits = None, 0, []
        if (options.report and self.held_out == "val" and backend.NAME == "torch"
                and not self.topology.parallel):
            self.validation_outputs = callbacks_module.LastValidationOutputs()
        try:
            for phase, plan in enumerate(self.phase_plans(learning_rate), start=1):
                phase_start, phase_end = phase_end, phase_end + plan.epochs
                if phase < state["phase"]:
                    continue
                if phase == 2:  # trainable flags change, so the model is compiled again
                    unfreeze(self.base, options.unfreeze, batchnorm=options.base_batchnorm)
                self.compile(plan.learning_rate, plan)
                if checkpoint is not None and phase == state["phase"]:
                    fit_module.build_before_fit(self.model, self.train_data)
                    checkpoint_module.load_checkpoint(self.model, checkpoint)
                    if state.get("stopped_early"):
                        continue  # early stopping had ended this phase
                initial = max(phase_start, state["epoch"] if phase == state["phase"] else phase_start)
                state.update(phase=phase, stopped_early=False)
                budget = None
                if phase == 1 and options.steps is not None:
                    budget = options.steps - (initial - phase_start) * plan.steps_per_epoch
                fit_started = time.perf_counter()
                history = fit_module.fit_classifier(
                    self.model, self.train_data, self.val_data, run=self.run, state=state,
                    epochs=phase_end, initial_epoch=initial, quiet=options.quiet,
                    history_extra={"phase": phase}, step_budget=budget,
                    early_stopping=options.early_stopping, class_weight=class_weight,
                    tensorboard=options.tensorboard, validation_outputs=self.validation_outputs,
                    replica_statistics=(distributed.engine().average_statistics
                                        if self.topology.parallel else None))
                fits.append(time.perf_counter() - fit_started)
        except callbacks_module.TrainingDiverged as diverged:
            raise TrainingFailed(
                f"loss became {diverged.loss} at epoch {diverged.epoch}, step {diverged.step} "
                f"(learning rate {diverged.learning_rate:.3g}: too high? try --lr-find); "
                f"{self._kept(state)}") from None
        except callbacks_module.TrainingInterrupted as interrupted:
            step = f", step {interrupted.step}" if interrupted.step else ""
            raise TrainingStopped(f"interrupted at epoch {interrupted.epoch}{step}; "
                                  f"{self._kept(state)}") from None
        finally:  # the checkpoints' spare files are for the next epoch: there is none
            checkpoint_module.remove_spares(self.run.checkpoints)
        return self._finish(history, fits)

    def _kept(self, state: dict) -> str:
        if not state.get("epoch"):
            return f"no epoch was complete; to start again: portaclass train --resume {self.run.path}"
        return (f"the checkpoint of epoch {state['epoch']} is kept: "
                f"portaclass train --resume {self.run.path}")

    def _finish(self, history, fits: list[float]) -> TrainResult:
        run = self.run
        checkpoint_module.save_inference_model(self.model, run.model_path, info=run.model_info())
        metrics = _score(self.model, self.dataset, self.held_out, history, self.pipeline)
        # Files that broke after the pre-pass (changed on disk mid-run) were
        # replaced in their batch; they join skipped.csv now.
        failures = self.train_data.decode_failures + (self.val_data.decode_failures if self.val_data else [])
        late = append_decode_failures(run.path, failures)
        seconds = time.perf_counter() - self.start
        in_epochs = sum(float(r.get("epoch_seconds") or 0) for r in run.history()[self.resumed_from or 0:])
        metrics.update({
            "backend": backend.NAME, "skipped_files": len(self.dataset.skipped) + late,
            "seconds": round(seconds, 2), "seconds_in_epochs": round(in_epochs, 2),
            "seconds_outside_epochs": round(seconds - in_epochs, 2),
            "peak_rss_bytes": backend.peak_memory("cpu"),
        })
        if backend.has_gpu():
            metrics["peak_gpu_bytes"] = backend.peak_memory("gpu")
        if self.resumed_from is not None:
            metrics["resumed_after_epoch"] = self.resumed_from
        if self.topology.parallel:
            metrics.update(self._replica_report())
        run.write_metrics(metrics)
        if self.topology.parallel:
            self.close(clean=True)  # the report reads model.keras on one device, in the chief alone
        if self.options.report and self.topology.chief:
            self._write_report(metrics, in_memory=not self.topology.parallel)
        return TrainResult(run.path, backend.NAME, metrics, chief=self.topology.chief)

    def _replica_report(self) -> dict:
        """The replicas' weights and optimizer state compared, bit for bit
        (a collective: every process calls it)."""
        unsynced = distributed.engine().unsynced_variables(self.model)
        if unsynced:
            self.log(f"warning: the replicas ended with different values of {len(unsynced)} variables "
                     f"(first: {unsynced[0]}); model.keras holds process 0's")
        return {"replicas": self.topology.replicas, "processes": self.topology.processes,
                "replicas_in_sync": not unsynced, "unsynced_variables": unsynced[:20]}

    def _write_report(self, metrics: dict, *, in_memory: bool = True) -> None:
        """report.html with the model still in memory (or, after a
        distributed run, read back from model.keras). A report that fails
        costs the run nothing: it is finished, and `portaclass report`
        rebuilds the page."""
        from portaclass.inference import classifier_of_run
        from portaclass.report.html import write_report

        start = time.perf_counter()
        try:
            classifier = classifier_of_run(self.run, self.model) if in_memory else None
            path = write_report(self.run.path, classifier=classifier,
                                held_out_outputs=self._last_validation_outputs() if in_memory else None)
        except Exception as error:  # the trained run must survive a plotting bug
            first = (str(error).strip().splitlines() or [type(error).__name__])[0]
            warn = _to_stderr if self.options.quiet else self.log  # a missing page is never silent
            warn(f"warning: report.html could not be written ({first}); "
                 f"try: portaclass report {self.run.path} --debug")
            return
        metrics["report_seconds"] = round(time.perf_counter() - start, 2)
        self.run.write_metrics(metrics)
        self.log(f"report: {path}")

    def _last_validation_outputs(self):
        """The final weights' outputs over the validation split, when the
        last validation pass saw every image of it as it is on disk."""
        kept = self.validation_outputs
        if kept is None or kept.outputs is None or self.val_data.decode_failures:
            return None
        return kept.outputs if len(kept.outputs) == len(self.dataset.val) else None


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _score(model, dataset, held_out: str | None, history, pipeline) -> dict:
    """Accuracy and loss on the held-out split. When that is the validation
    split, the last epoch already scored it with the final weights: its
    result is reused rather than computed again."""
    if held_out is None:
        return {"accuracy": None, "loss": None, "scored_on": None, "images": 0}
    split = getattr(dataset, held_out)
    logs = history.history if history is not None else {}
    if held_out == "val" and logs.get("val_accuracy"):
        results = {"accuracy": logs["val_accuracy"][-1], "loss": logs["val_loss"][-1]}
    else:
        results = model.evaluate(pipeline(split, False), verbose=0, return_dict=True)
    return {"accuracy": float(results["accuracy"]), "loss": float(results["loss"]),
            "scored_on": held_out, "images": len(split)}
