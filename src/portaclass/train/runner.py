"""``portaclass train``: dataset -> model -> one or two training phases -> run
folder. The one place that wires data, models and fitting together."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from portaclass import layout
from portaclass._lazy import LazyModule, backend
from portaclass.data.augment import mixes_labels
from portaclass.data.constants import BUILTINS
from portaclass.data.loading import load_dataset
from portaclass.data.run_files import append_decode_failures
from portaclass.errors import RunError, UsageError
from portaclass.models import Preprocessing, build_transfer_model, create_model, get_spec, unfreeze
from portaclass.models.builder import head_dropout
from portaclass.run import Run, check_run_dir_free
from portaclass.train.options import TrainOptions

# These modules subclass Keras classes, so importing them loads keras and the
# framework: they are reached through lazy handles, once the options are checked.
pipeline_module = LazyModule("portaclass.data.pipeline")
fit_module = LazyModule("portaclass.train.fit")


@dataclass
class TrainResult:
    run_dir: Path
    backend: str
    metrics: dict

    @property
    def accuracy(self) -> float | None:
        return self.metrics.get("accuracy")

    @property
    def seconds(self) -> float:
        return self.metrics["seconds"]


def run_training(options: TrainOptions, log=print, *, command: str = "train") -> TrainResult:
    """Train as ``options`` say; everything lands in the run folder.

    Everything that can be wrong with the options or the data is found before
    keras (and the framework) is imported, and nothing is written until the
    model is built, so bad input leaves no half-made run folder behind.
    """
    options.check()
    start = time.perf_counter()
    preprocessing, size, channels = _input_spec(options)
    if options.out:
        check_run_dir_free(Path(options.out))
    limit = {"max_pixels": options.max_image_pixels} if options.max_image_pixels else {}
    dataset = load_dataset(options.data, size, channels=channels, val_split=options.val_split,
                           test_split=options.test_split, seed=options.seed, **limit)
    log(dataset.summary())

    backend.seed_everything(options.seed)
    model, base = _build_model(options, len(dataset.class_names), (size, size, channels))
    held_out = next((name for name in ("test", "val") if getattr(dataset, name) is not None), None)
    prefix = f"{options.model}-{_dataset_label(options.data)}" if command == "train" else command
    run = Run.create(options.out, prefix=prefix)
    run.write_dataset_files(dataset)
    run.write_config(
        command=command,
        options=options.resolved(image_size=size, channels=channels, dropout=head_dropout(model),
                                 out=run.path),
        data={"name": dataset.name, "root": str(dataset.root) if dataset.root else None,
              "class_names": dataset.class_names, "held_out": held_out,
              "counts": {name: len(split) for name, split in dataset.splits().items()}},
        model={"name": options.model if not options.backbone else None, "backbone": options.backbone,
               "input_shape": [size, size, channels], "preprocessing": preprocessing.to_dict(),
               "head_dropout": head_dropout(model), "parameters": int(model.count_params())},
    )
    run.write_env()

    channels_first = layout.data_format() == layout.CHANNELS_FIRST
    # MixUp/CutMix train on soft labels: every split of the run then yields
    # one-hot labels, since one compiled loss scores training and validation.
    soft_labels = mixes_labels(options.augment)

    def pipeline(split, train: bool):
        return pipeline_module.make_pipeline(split, options.batch_size, preprocessing=preprocessing, image_size=size,
                             channels=channels, augment=options.augment if train else "none",
                             shuffle=train, seed=options.seed, resize=options.resize,
                             channels_first=channels_first, one_hot=soft_labels, **limit)

    train_data = pipeline(dataset.train, True)
    val_data = pipeline(dataset.val, False) if dataset.val is not None else None

    phases = [(options.epochs, options.learning_rate)]
    if options.fine_tune_epochs:
        phases.append((options.fine_tune_epochs, options.fine_tune_lr))
    done, history = 0, None
    for phase, (epochs, learning_rate) in enumerate(phases, start=1):
        if phase == 2:  # trainable flags change, so the model is compiled again
            unfreeze(base, options.unfreeze, batchnorm=options.base_batchnorm)
        rate = fit_module.learning_rate_schedule(learning_rate, options.schedule, epochs * len(train_data))
        fit_module.compile_classifier(model, rate, soft_labels=soft_labels)
        history = fit_module.fit_classifier(model, train_data, val_data, run=run, epochs=epochs,
                                 initial_epoch=done, quiet=options.quiet,
                                 history_extra={"phase": phase})
        done += epochs
    model.save(run.model_path)

    metrics = _score(model, dataset, held_out, history, pipeline)
    # Files that broke after the pre-pass (changed on disk mid-run) were
    # replaced in their batch; they join skipped.csv now.
    failures = train_data.decode_failures + (val_data.decode_failures if val_data else [])
    late = append_decode_failures(run.path, failures)
    metrics.update({"backend": backend.NAME, "skipped_files": len(dataset.skipped) + late,
                    "seconds": round(time.perf_counter() - start, 2)})
    run.write_metrics(metrics)
    return TrainResult(run.path, backend.NAME, metrics)


def _dataset_label(data: str) -> str:
    if data in BUILTINS:
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


def _build_model(options: TrainOptions, num_classes: int, input_shape):
    """(model, base): base is the frozen backbone of a transfer run, else None."""
    if options.transfer:
        return build_transfer_model(
            options.backbone or options.model, num_classes, input_shape,
            weights=options.weights, dropout=options.dropout, seed=options.seed,
            batchnorm=options.base_batchnorm,
        )
    model = create_model(options.model, num_classes, input_shape, weights=options.weights,
                         seed=options.seed, dropout=options.dropout)
    return model, None


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
