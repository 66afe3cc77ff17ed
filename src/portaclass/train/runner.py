"""``portaclass train``: dataset -> model -> one or two training phases -> run
directory. The one place that wires data, models and fitting together."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

from portaclass.data.loading import BUILTINS
from portaclass.errors import UsageError
from portaclass.models.transfer import BATCHNORM_MODES


@dataclass
class TrainOptions:
    data: str
    model: str = "simple_cnn"
    image_size: int | None = None  # default: the model's declared input size
    channels: int = 3
    batch_size: int = 32
    epochs: int = 10
    learning_rate: float = 1e-3
    augment: str = "none"
    resize: str = "plain"
    val_split: float = 0.2
    test_split: float = 0.1
    seed: int = 0
    max_image_pixels: int | None = None  # decompression-bomb limit; None: Pillow's default
    out: str | None = None
    quiet: bool = False
    # transfer learning
    weights: str | None = None  # None, "imagenet" or a local weights/.keras file
    backbone: str | None = None  # a .keras model from an earlier run, any backend
    freeze_base: bool = False
    fine_tune_epochs: int = 0
    unfreeze: str = "all"
    fine_tune_lr: float = 1e-5
    base_batchnorm: str = "frozen"  # or "adapt": see models.transfer.build_transfer_model
    dropout: float = 0.2

    @property
    def transfer(self) -> bool:
        return bool(self.backbone or self.freeze_base or self.fine_tune_epochs)

    def check(self) -> None:
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.fine_tune_epochs < 0:
            raise UsageError(f"--fine-tune-epochs must be 0 or more, got {self.fine_tune_epochs}")
        if self.image_size is not None and self.image_size < 8:
            raise UsageError(f"--image-size must be at least 8, got {self.image_size}")
        if self.max_image_pixels is not None and self.max_image_pixels < 1:
            raise UsageError(f"--max-image-pixels must be positive, got {self.max_image_pixels}")
        if self.channels not in (1, 3):
            raise UsageError(f"--channels must be 1 or 3, got {self.channels}")
        for name in ("learning_rate", "fine_tune_lr"):
            if getattr(self, name) <= 0:
                raise UsageError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if self.backbone and not Path(self.backbone).is_file():
            raise UsageError(f"--backbone {self.backbone}: no such model file")
        if self.data not in BUILTINS and not Path(self.data).expanduser().exists():
            raise UsageError(f"--data {self.data}: no such folder or file "
                             "(or use a built-in: digits, shapes, cifar10)")
        # Fail on names before any data is scanned or model built.
        from portaclass.data.augment import PRESETS
        from portaclass.models import get_spec

        if self.augment not in PRESETS:
            raise UsageError(f"unknown --augment preset {self.augment!r}; choose one of {', '.join(PRESETS)}")
        if not self.backbone:
            get_spec(self.model)
        if self.base_batchnorm not in BATCHNORM_MODES:
            raise UsageError(f"unknown --base-batchnorm {self.base_batchnorm!r}; "
                             f"choose {' or '.join(BATCHNORM_MODES)}")


@dataclass
class TrainResult:
    run_dir: Path
    backend: str
    metrics: dict
    summary: str


def _dataset_label(data: str) -> str:
    if data in BUILTINS:
        return data
    return Path(data).name or "data"


def _preprocessing_for(options: TrainOptions):
    """(preprocessing, image size, channels) for the run: the model's declared
    preprocessing, or, for a backbone from an earlier run, what that run used."""
    from portaclass.models import Preprocessing, get_spec

    if not options.backbone:
        prep = get_spec(options.model).preprocessing
        return prep, options.image_size or prep.input_size[0], options.channels
    from portaclass.train.run_dir import read_run_config

    saved = read_run_config(Path(options.backbone).parent)
    prep = Preprocessing.from_dict(saved.get("preprocessing") or {})
    size = saved.get("image_size") or options.image_size or prep.input_size[0]
    if options.image_size and options.image_size != size:
        raise UsageError(f"--image-size {options.image_size} differs from the backbone's input size {size}")
    return prep, size, saved.get("channels") or options.channels


def run_training(options: TrainOptions, log=print) -> TrainResult:
    """Train as ``options`` say; everything lands in the run directory."""
    from portaclass.data import load_dataset
    from portaclass.train.run_dir import check_run_dir_free, create_run_dir, write_json

    # Everything that can be wrong with the options or the data is found
    # before keras (and the framework) is imported or a run folder is made.
    options.check()
    start = time.perf_counter()
    preprocessing, size, channels = _preprocessing_for(options)
    if options.out:
        check_run_dir_free(Path(options.out))
    limit = {"max_pixels": options.max_image_pixels} if options.max_image_pixels else {}
    dataset = load_dataset(options.data, size, channels, options.val_split,
                           options.test_split, options.seed, **limit)
    log(dataset.summary())

    from portaclass import backend, layout
    from portaclass.data import append_decode_failures, make_pipeline
    from portaclass.data.augment import mixes_labels
    from portaclass.train.fit import compile_classifier, fit_classifier
    from portaclass.train.run_dir import environment_info

    run_dir = create_run_dir(options.out, f"{options.model}-{_dataset_label(options.data)}")
    backend.seed_everything(options.seed)
    dataset.write_run_files(run_dir)
    write_json(run_dir / "config.json", {
        "command": "train", **asdict(options), "image_size": size, "channels": channels,
        "class_names": dataset.class_names, "preprocessing": preprocessing.to_dict(),
    })
    write_json(run_dir / "env.json", environment_info())

    input_shape = (size, size, channels)
    num_classes = len(dataset.class_names)
    model, base = _build_model(options, num_classes, input_shape)
    channels_first = layout.data_format() == layout.CHANNELS_FIRST
    # MixUp/CutMix train on soft labels: every split of the run then yields
    # one-hot labels, since one compiled loss scores training and validation.
    soft_labels = mixes_labels(options.augment)

    def pipeline(split, train: bool):
        return make_pipeline(split, options.batch_size, preprocessing, size, channels,
                             augment=options.augment if train else "none", shuffle=train,
                             seed=options.seed, resize=options.resize, channels_first=channels_first,
                             one_hot=soft_labels, **limit)

    train_data = pipeline(dataset.train, True)
    val_split = dataset.val if dataset.val is not None and len(dataset.val) else None
    val_data = pipeline(val_split, False) if val_split is not None else None

    compile_classifier(model, options.learning_rate, soft_labels=soft_labels)
    fit_classifier(model, train_data, val_data, run_dir, options.epochs, quiet=options.quiet,
                   history_extra={"phase": 1})
    if options.fine_tune_epochs:
        from portaclass.models.transfer import unfreeze

        unfreeze(base, options.unfreeze, batchnorm=options.base_batchnorm)
        # recompile: trainable flags changed
        compile_classifier(model, options.fine_tune_lr, soft_labels=soft_labels)
        fit_classifier(model, train_data, val_data, run_dir, options.fine_tune_epochs,
                       quiet=options.quiet, initial_epoch=options.epochs, history_extra={"phase": 2})
    model.save(run_dir / "model.keras")

    metrics = _score(model, dataset, pipeline)
    # Files that broke after the pre-pass (changed on disk mid-run) were
    # replaced in their batch; they join skipped.csv now.
    failures = train_data.decode_failures + (val_data.decode_failures if val_data else [])
    late = append_decode_failures(run_dir, failures)
    metrics.update({"backend": backend.NAME, "skipped_files": len(dataset.skipped) + late,
                    "seconds": round(time.perf_counter() - start, 2)})
    write_json(run_dir / "metrics.json", metrics)
    return TrainResult(run_dir, backend.NAME, metrics, dataset.summary())


def _build_model(options: TrainOptions, num_classes: int, input_shape):
    """(model, base) — base is the frozen backbone for transfer runs, else None."""
    from portaclass.models import create_model

    if options.transfer:
        from portaclass.models.transfer import build_transfer_model

        return build_transfer_model(
            options.backbone or options.model, num_classes, input_shape,
            weights=options.weights, dropout=options.dropout, seed=options.seed,
            batchnorm=options.base_batchnorm,
        )
    model = create_model(options.model, num_classes, input_shape, weights=options.weights,
                         seed=options.seed)
    return model, None


def _score(model, dataset, pipeline) -> dict:
    """Accuracy and loss on the held-out test split (else validation)."""
    for name in ("test", "val"):
        split = getattr(dataset, name)
        if split is not None and len(split):
            results = model.evaluate(pipeline(split, False), verbose=0, return_dict=True)
            return {"accuracy": float(results["accuracy"]), "loss": float(results["loss"]),
                    "scored_on": name, "images": len(split)}
    return {"accuracy": None, "scored_on": None, "images": 0}
