"""``TrainOptions``: every option of a training run, stated once.

Each field carries its default and its help text; the CLI builds
``portaclass train``'s flags from these fields (``cli_fields``), a ``--config``
file uses the same names, and config.json records them as they ran. ``check``
validates everything that can be validated before keras (and the framework)
loads.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

from portaclass import checks
from portaclass.data.constants import BUILTINS, PRESET_DESCRIPTIONS, PRESETS, RESIZE_MODES
from portaclass.errors import UsageError
from portaclass.models.constants import BATCHNORM_MODES

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "step", "cosine", "onecycle")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
CLASS_WEIGHTS = ("balanced",)
DEFAULT_EPOCHS = 10
# Where this host sits in a run over several: not the run's, so config.json
# does not keep them and --resume may change them.
HOST_OPTIONS = ("coordinator", "num_processes", "process_id", "peer_timeout")
# Schedules that can warm up (Keras' CosineDecay carries the warm-up); StepLR
# has none in PyTorch either (it takes SequentialLR there).
WARMUP_SCHEDULES = ("constant", "cosine", "onecycle")


def option(default=MISSING, help: str = "", *, flag: str | None = None, cli: bool = True,
           cli_type: type | None = None):
    """A dataclass field documented for both the library and the CLI;
    ``flag`` overrides the default ``--field-name``; ``cli=False`` keeps a
    field out of ``portaclass train``'s flags; ``cli_type`` is the type the
    CLI parses (``--lr`` takes a number or ``auto``)."""
    return field(default=default,
                 metadata={"help": help, "flag": flag, "cli": cli, "cli_type": cli_type})


def _preset_help() -> str:
    return "Augmentation preset: " + "; ".join(f"{k}: {v}" for k, v in PRESET_DESCRIPTIONS.items()) + "."


@dataclass
class TrainOptions:
    """The options of one training run (``portaclass train``; the fields'
    help texts are the CLI's)."""

    data: str = option(help="A folder of class folders, digits, shapes, cifar10, or a CIFAR-10 archive.")
    model: str = option("simple_cnn", "Model name (see `portaclass models`).")
    image_size: int | None = option(None, "Square input size in pixels (default: the model's).")
    channels: int = option(3, "Image channels: 3 (RGB) or 1 (grayscale).")
    batch_size: int = option(32, "Images per batch.")
    epochs: int | None = option(
        None, f"Training epochs (phase 1 of transfer runs; default {DEFAULT_EPOCHS}, or what --steps needs).")
    steps: int | None = option(
        None, "Training budget in optimizer steps instead of epochs (phase 1); the last epoch stops "
        "at exactly this many steps.")
    learning_rate: float | str = option(
        1e-3, "Learning rate, or auto: run the learning-rate range test (--lr-find) and train with "
        "its suggestion.",
        flag="--lr", cli_type=str)
    optimizer: str = option("adam", "Optimizer: adam, adamw or sgd (with --momentum, --nesterov).")
    momentum: float = option(0.9, "Momentum of sgd.")
    nesterov: bool = option(False, "Nesterov momentum for sgd.")
    weight_decay: float | None = option(
        None, "Decoupled weight decay (Keras applies it the AdamW way for every optimizer; default: "
        "none, 0.004 for adamw).")
    schedule: str = option(
        "constant", "Learning-rate schedule: constant; step (x --gamma every --step-size epochs, "
        "PyTorch's StepLR); cosine (decay to zero over the phase); onecycle (warm up to --lr over "
        "30% of the steps, or --warmup-epochs, then cosine down to lr/25e4).")
    warmup_epochs: float = option(0.0, "Linear warm-up from 0 to --lr over this many epochs "
                                  "(constant, cosine, onecycle).")
    step_size: int | None = option(None, "Epochs between learning-rate drops (--schedule step).")
    gamma: float = option(0.1, "Factor of each drop (--schedule step).")
    label_smoothing: float = option(0.0, "Label smoothing of the cross-entropy (0 to 1).")
    clip_norm: float | None = option(None, "Clip the global gradient norm to this value.")
    class_weight: str | None = option(
        None, "balanced: weigh each class by n / (classes x its training count).")
    early_stopping: int | None = option(
        None, "Stop when val_loss has not improved for this many epochs.")
    lr_find: bool = option(
        False, "Run a learning-rate range test first (lr_find.png, lr_find.json in the run); with "
        "--lr auto, train with its suggestion.")
    precision: str = option(
        "float32", "float32, mixed_float16 or mixed_bfloat16 (Keras dtype policies; float16 with "
        "loss scaling). A device that can't run a precision well falls back to float32, saying so.")
    deterministic: bool = option(
        False, "Also set each backend's determinism switches and read data on one thread: "
        "bit-identical runs for one seed, slower.")
    tensorboard: bool = option(False, "Write TensorBoard event files under RUN/tensorboard.")
    report: bool = option(True, "Write RUN/report.html at the end: curves, held-out evaluation, "
                          "top losses, Grad-CAM, augmentation, skipped files.")
    augment: str = option("none", _preset_help())
    resize: str = option("plain", "Resize mode: plain, crop (to aspect) or pad (to aspect).")
    val_split: float = option(0.2, "Share of each class held out for validation.")
    test_split: float = option(0.1, "Share of each class held out for the final test.")
    seed: int = option(0, "Seed for splits, shuffling, augmentation and initial weights.")
    max_image_pixels: int | None = option(
        None, "Skip images with more pixels than this (decompression bombs; default ~89 Mpx).")
    dropout: float | None = option(
        None, "Dropout before the classifier layer (default: the model's own; 0.2 for transfer heads).")
    # transfer learning
    weights: str | None = option(None, "Pretrained weights: imagenet, or a local .h5/.weights.h5/.keras file.")
    backbone: str | None = option(None, "Transfer from an earlier run's model.keras (any backend).")
    unsafe: bool = option(False, "Load --backbone without the safety checks (Lambda layers, legacy "
                          ".h5): only files you trust.")
    freeze_base: bool = option(False, "Train only the new head on a frozen base.")
    fine_tune_epochs: int = option(0, "Epochs of a second phase with the base unfrozen.")
    unfreeze: str = option("all", "What phase 2 unfreezes: all, top:K or from:LAYER_NAME.")
    fine_tune_lr: float = option(1e-5, "Learning rate of phase 2.")
    base_batchnorm: str = option(
        "frozen", "Base BatchNorm in transfer runs: frozen (inference mode, the Keras guide's rule "
        "for ImageNet bases) or adapt (re-estimated on your data in phase 2).")
    out: str | None = option(None, "Run folder (default: runs/<model>-<data>-<timestamp>).")
    # data parallel (train/distributed)
    devices: int | str | None = option(
        None, "Train data-parallel on N devices of this host, or all: JAX keras.distribution, "
        "TensorFlow MirroredStrategy, PyTorch DDP (one process each). --batch-size is the global "
        "batch, split over them. Default: one device.", cli_type=str)
    scale_lr: str | None = option(
        None, "linear: multiply --lr by the number of devices (the global batch grows with them); "
        "default: the rate as given.")
    coordinator: str | None = option(
        None, "HOST:PORT of process 0 for a run over several hosts (JAX, PyTorch; see "
        "--distributed-help); or PORTACLASS_COORDINATOR.")
    num_processes: int | None = option(None, "Processes (hosts) of a run over several hosts; or "
                                       "PORTACLASS_NUM_PROCESSES.")
    process_id: int | None = option(None, "This host's index, 0 to num-processes - 1 (0 writes the run); "
                                    "or PORTACLASS_PROCESS_ID.")
    peer_timeout: float = option(300.0, "Seconds to wait for the other processes of a distributed run to "
                                 "join before giving up.")
    quiet: bool = option(False, "Print only the final line.", cli=False)

    def __post_init__(self):
        from portaclass.train.distributed import parse_devices

        self.devices = parse_devices(self.devices)
        # ``--lr`` arrives as text from the CLI and config files: a number or "auto"
        if isinstance(self.learning_rate, str) and self.learning_rate != "auto":
            try:
                self.learning_rate = float(self.learning_rate)
            except ValueError:
                raise UsageError.for_option(
                    "learning_rate", f"must be a number or auto; received {self.learning_rate!r}") from None

    @property
    def transfer(self) -> bool:
        return bool(self.backbone or self.freeze_base or self.fine_tune_epochs)

    @property
    def runs_lr_find(self) -> bool:
        return self.lr_find or self.learning_rate == "auto"

    @property
    def mixes_or_smooths_labels(self) -> bool:
        """Whether training labels are one-hot rows (MixUp/CutMix, label smoothing)."""
        return self.augment == "strong" or self.label_smoothing > 0

    def epochs_for(self, steps_per_epoch: int) -> int:
        """Phase-1 epochs: ``epochs``, or enough to hold ``steps``."""
        if self.steps is not None:
            return math.ceil(self.steps / steps_per_epoch)
        return self.epochs if self.epochs is not None else DEFAULT_EPOCHS

    def workload(self) -> dict | None:
        """What ``--backend auto`` looks up in ``portaclass bench``'s results:
        the registry model, image size and batch size (None for a backbone
        from an earlier run's file)."""
        from portaclass.models import list_models
        from portaclass.models.registry import get_spec

        model = self.backbone or self.model
        if model not in list_models():
            return None
        size = self.image_size or get_spec(model).preprocessing.input_size[0]
        return {"model": model, "image_size": size, "batch_size": self.batch_size}

    def check(self) -> None:
        """Every option, before keras loads or any file is written: one
        UsageError naming the first bad one."""
        for name in ("batch_size",):
            checks.at_least(name, getattr(self, name), 1)
        for name in ("epochs", "steps", "step_size", "early_stopping"):
            if getattr(self, name) is not None:
                checks.at_least(name, getattr(self, name), 1)
        if self.epochs is not None and self.steps is not None:
            raise UsageError.for_option("steps", "and epochs both given: the budget is one or the other")
        checks.at_least("fine_tune_epochs", self.fine_tune_epochs, 0)
        if self.image_size is not None:
            checks.at_least("image_size", self.image_size, 8)
        if self.max_image_pixels is not None:
            checks.at_least("max_image_pixels", self.max_image_pixels, 1)
        checks.channels("channels", self.channels)
        if self.learning_rate != "auto":
            checks.positive("learning_rate", self.learning_rate)
        checks.positive("fine_tune_lr", self.fine_tune_lr)
        checks.choice("optimizer", self.optimizer, OPTIMIZERS)
        checks.fraction("momentum", self.momentum)
        if self.weight_decay is not None:
            checks.at_least("weight_decay", self.weight_decay, 0)
        checks.choice("schedule", self.schedule, SCHEDULES)
        checks.at_least("warmup_epochs", self.warmup_epochs, 0)
        if self.warmup_epochs and self.schedule not in WARMUP_SCHEDULES:
            raise UsageError.for_option("warmup_epochs", f"applies to the {', '.join(WARMUP_SCHEDULES)} "
                                        f"schedules, not {self.schedule}")
        if self.schedule == "step" and self.step_size is None:
            raise UsageError.for_option("schedule", "step needs step_size (epochs between drops)")
        checks.positive("gamma", self.gamma)
        checks.fraction("label_smoothing", self.label_smoothing)
        if self.clip_norm is not None:
            checks.positive("clip_norm", self.clip_norm)
        if self.class_weight is not None:
            checks.choice("class_weight", self.class_weight, CLASS_WEIGHTS)
        if self.early_stopping is not None and self.val_split == 0:
            raise UsageError.for_option("early_stopping", "watches val_loss: it needs val_split above 0")
        checks.choice("precision", self.precision, PRECISIONS)
        checks.fraction("val_split", self.val_split)
        checks.fraction("test_split", self.test_split)
        if self.val_split + self.test_split >= 1:
            raise UsageError.for_option("val_split", f"plus test_split must be below 1; received "
                                        f"{self.val_split} + {self.test_split}")
        checks.seed("seed", self.seed)
        if self.dropout is not None:
            checks.fraction("dropout", self.dropout)
        checks.choice("augment", self.augment, PRESETS)
        checks.choice("resize", self.resize, RESIZE_MODES)
        checks.choice("base_batchnorm", self.base_batchnorm, BATCHNORM_MODES)
        # Here, not at the top: the CLI imports this module to build its
        # flags, and the models package loads NumPy (~0.15 s on `--help`).
        from portaclass.models import get_spec
        from portaclass.models.transfer import parse_unfreeze

        parse_unfreeze(self.unfreeze)
        if self.backbone:
            checks.existing_file("backbone", self.backbone)
        else:
            get_spec(self.model)
        if self.tensorboard:
            from portaclass.config import is_installed

            if not is_installed("tensorflow"):
                raise UsageError.for_option(
                    "tensorboard", "needs TensorFlow's summary writer: pip install 'portaclass[tensorflow]'")
        from portaclass.train.distributed import check_options as check_distributed

        check_distributed(self)
        if self.data not in BUILTINS and not Path(self.data).expanduser().exists():
            raise UsageError.for_option("data", f"{self.data}: no such folder or file "
                                        f"(or use a built-in: {', '.join(BUILTINS)})")

    def resolved(self, **ran) -> dict:
        """The options as they ran, for config.json: ``ran`` holds what was
        decided at run time (sizes, head dropout, epochs, learning rate,
        precision, run folder); options that did not apply are None."""
        values = {k: v for k, v in asdict(self).items() if k not in ("quiet",) + HOST_OPTIONS}
        data = Path(self.data).expanduser()
        if data.exists():  # a folder or archive, where it is: report, preview and resume read it from anywhere
            values["data"] = str(data.resolve())
        values.update(ran)
        if not self.transfer:
            for name in ("unfreeze", "fine_tune_lr", "base_batchnorm"):
                values[name] = None
        elif not self.fine_tune_epochs:
            values.update(unfreeze=None, fine_tune_lr=None)
        if self.backbone:
            values["model"] = None
        if self.optimizer != "sgd":
            values.update(momentum=None, nesterov=None)
        if self.schedule != "step":
            values.update(step_size=None, gamma=None)
        return values


def option_names() -> list[str]:
    """Every field a config file or ``portaclass.train(**options)`` may set."""
    return [f.name for f in fields(TrainOptions)]


def check_option_names(names, *, where: str, aliases: dict[str, str] | None = None) -> None:
    """UsageError for the first of ``names`` that is not an option, naming
    the closest one (``epoch`` -> did you mean 'epochs'?)."""
    valid = aliases or {name: name for name in option_names()}
    for name in names:
        if name not in valid:
            close = difflib.get_close_matches(name, list(valid), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise UsageError.for_option("config" if aliases else name,
                                        f"{where}: unknown option {name!r}{hint}")


def cli_fields() -> list:
    """The dataclass fields ``portaclass train`` offers as flags, in order."""
    return [f for f in fields(TrainOptions) if f.metadata.get("cli", True)]


def flag_of(name: str) -> str:
    """The CLI flag of a TrainOptions field (``learning_rate`` -> ``--lr``)."""
    for f in fields(TrainOptions):
        if f.name == name:
            return f.metadata.get("flag") or "--" + name.replace("_", "-")
    return "--" + name.replace("_", "-")
