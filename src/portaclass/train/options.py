"""``TrainOptions``: every option of a training run, stated once.

Each field carries its default and its help text; the CLI builds
``portaclass train``'s flags from these fields (``cli_options``), so a default
is never repeated elsewhere. ``check`` validates everything that can be
validated before keras (and the framework) loads.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

from portaclass import checks
from portaclass.data.constants import BUILTINS, PRESET_DESCRIPTIONS, PRESETS, RESIZE_MODES
from portaclass.errors import UsageError
from portaclass.models.constants import BATCHNORM_MODES

SCHEDULES = ("constant", "cosine")


def option(default=MISSING, help: str = "", *, flag: str | None = None, cli: bool = True):
    """A dataclass field documented for both the library and the CLI;
    ``flag`` overrides the default ``--field-name``; ``cli=False`` keeps a
    field out of ``portaclass train``'s flags."""
    return field(default=default, metadata={"help": help, "flag": flag, "cli": cli})


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
    epochs: int = option(10, "Training epochs (phase 1 for transfer runs).")
    learning_rate: float = option(1e-3, "Learning rate (Adam).", flag="--lr")
    schedule: str = option("constant", "Learning-rate schedule: constant, or cosine (decay to zero "
                           "over the phase).")
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
    freeze_base: bool = option(False, "Train only the new head on a frozen base.")
    fine_tune_epochs: int = option(0, "Epochs of a second phase with the base unfrozen.")
    unfreeze: str = option("all", "What phase 2 unfreezes: all, top:K or from:LAYER_NAME.")
    fine_tune_lr: float = option(1e-5, "Learning rate of phase 2.")
    base_batchnorm: str = option(
        "frozen", "Base BatchNorm in transfer runs: frozen (inference mode, the Keras guide's rule "
        "for ImageNet bases) or adapt (re-estimated on your data in phase 2).")
    out: str | None = option(None, "Run folder (default: runs/<model>-<data>-<timestamp>).")
    quiet: bool = option(False, "Print only the final line.", cli=False)

    @property
    def transfer(self) -> bool:
        return bool(self.backbone or self.freeze_base or self.fine_tune_epochs)

    def check(self) -> None:
        """Every option, before keras loads or any file is written: one
        UsageError naming the first bad one."""
        for name in ("epochs", "batch_size"):
            checks.at_least(name, getattr(self, name), 1)
        checks.at_least("fine_tune_epochs", self.fine_tune_epochs, 0)
        if self.image_size is not None:
            checks.at_least("image_size", self.image_size, 8)
        if self.max_image_pixels is not None:
            checks.at_least("max_image_pixels", self.max_image_pixels, 1)
        checks.channels("channels", self.channels)
        checks.positive("learning_rate", self.learning_rate)
        checks.positive("fine_tune_lr", self.fine_tune_lr)
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
        checks.choice("schedule", self.schedule, SCHEDULES)
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
        if self.data not in BUILTINS and not Path(self.data).expanduser().exists():
            raise UsageError.for_option("data", f"{self.data}: no such folder or file "
                                        f"(or use a built-in: {', '.join(BUILTINS)})")

    def resolved(self, *, image_size: int, channels: int, dropout: float | None, out: Path) -> dict:
        """The options as they ran, for config.json: sizes and dropout as
        built, the run folder, and None for options that did not apply."""
        values = {k: v for k, v in asdict(self).items() if k != "quiet"}
        values.update(image_size=image_size, channels=channels, dropout=dropout, out=str(out))
        if not self.transfer:
            for name in ("unfreeze", "fine_tune_lr", "base_batchnorm"):
                values[name] = None
        elif not self.fine_tune_epochs:
            values.update(unfreeze=None, fine_tune_lr=None)
        if self.backbone:
            values["model"] = None
        return values


def cli_fields() -> list:
    """The dataclass fields ``portaclass train`` offers as flags, in order."""
    return [f for f in fields(TrainOptions) if f.metadata.get("cli", True)]


def flag_of(name: str) -> str:
    """The CLI flag of a TrainOptions field (``learning_rate`` -> ``--lr``)."""
    for f in fields(TrainOptions):
        if f.name == name:
            return f.metadata.get("flag") or "--" + name.replace("_", "-")
    return "--" + name.replace("_", "-")
