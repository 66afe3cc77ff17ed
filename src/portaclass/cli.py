"""The ``portaclass`` command line: thin Typer commands over library calls.

Nothing here imports a framework at module level, so ``portaclass --help``
stays fast; each command picks the backend first, then imports what it needs.
"""

from __future__ import annotations

import functools
import os
import sys
from typing import Annotated

import typer

from portaclass.errors import PortaclassError

app = typer.Typer(
    name="portaclass",
    help="Train, evaluate, export and benchmark image classifiers on TensorFlow, PyTorch or JAX.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

BackendOption = Annotated[
    str,
    typer.Option(
        "--backend",
        help="Keras backend: auto, tensorflow, torch or jax "
        "(default: PORTACLASS_BACKEND, then KERAS_BACKEND, then the first installed).",
        show_default=False,
    ),
]
DebugOption = Annotated[
    bool, typer.Option("--debug", help="Show the full traceback on errors.")
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="Print only the final line.")]


def handle_errors(command):
    """Report PortaclassErrors as one line on stderr with exit code 2."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        debug = kwargs.get("debug") or os.environ.get("PORTACLASS_DEBUG") == "1"
        try:
            return command(*args, **kwargs)
        except PortaclassError as error:
            if debug:
                raise
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(error.exit_code) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None

    return wrapper


def choose_backend(name: str | None) -> str:
    from portaclass import config

    return config.use_backend(None if name in (None, "") else name)


@app.command()
@handle_errors
def quickstart(
    backend: BackendOption = "",
    out: Annotated[
        str | None, typer.Option(help="Run directory (default: runs/quickstart-<timestamp>).")
    ] = None,
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 12,
    quiet: QuietOption = False,
    debug: DebugOption = False,
):
    """Train a small CNN on the built-in handwritten digits and print its held-out accuracy."""
    choose_backend(backend)
    from portaclass.train.quickstart import run_quickstart

    result = run_quickstart(out=out, epochs=epochs, quiet=quiet)
    typer.echo(
        f"{result.backend}: held-out accuracy {result.accuracy:.2%} in {result.seconds:.1f} s "
        f"-> {result.run_dir}"
    )


@app.command()
@handle_errors
def train(
    data: Annotated[str, typer.Option(help="A folder of class folders, digits, shapes, cifar10, or a CIFAR-10 archive.")],
    model: Annotated[str, typer.Option(help="Model name (see `portaclass models`).")] = "simple_cnn",
    image_size: Annotated[
        int | None, typer.Option(help="Square input size in pixels (default: the model's).")
    ] = None,
    channels: Annotated[int, typer.Option(help="Image channels: 3 (RGB) or 1 (grayscale).")] = 3,
    batch_size: Annotated[int, typer.Option(help="Images per batch.")] = 32,
    epochs: Annotated[int, typer.Option(help="Training epochs (phase 1 for transfer runs).")] = 10,
    lr: Annotated[float, typer.Option(help="Learning rate (Adam).")] = 1e-3,
    augment: Annotated[str, typer.Option(help="Augmentation preset: none, light, standard, strong.")] = "none",
    resize: Annotated[str, typer.Option(help="Resize mode: plain, crop (to aspect) or pad (to aspect).")] = "plain",
    val_split: Annotated[float, typer.Option(help="Share of each class held out for validation.")] = 0.2,
    test_split: Annotated[float, typer.Option(help="Share of each class held out for the final test.")] = 0.1,
    seed: Annotated[int, typer.Option(help="Seed for splits, shuffling, augmentation and initial weights.")] = 0,
    max_image_pixels: Annotated[
        int | None, typer.Option(help="Skip images with more pixels than this (decompression bombs; default ~89 Mpx).")
    ] = None,
    weights: Annotated[
        str | None, typer.Option(help="Pretrained weights: imagenet, or a local .h5/.weights.h5/.keras file.")
    ] = None,
    backbone: Annotated[
        str | None, typer.Option(help="Transfer from an earlier run's model.keras (any backend).")
    ] = None,
    freeze_base: Annotated[bool, typer.Option(help="Train only the new head on a frozen base.")] = False,
    fine_tune_epochs: Annotated[int, typer.Option(help="Epochs of a second phase with the base unfrozen.")] = 0,
    unfreeze: Annotated[str, typer.Option(help="What phase 2 unfreezes: all, top:K or from:LAYER_NAME.")] = "all",
    fine_tune_lr: Annotated[float, typer.Option(help="Learning rate of phase 2.")] = 1e-5,
    base_batchnorm: Annotated[
        str,
        typer.Option(help="Base BatchNorm in transfer runs: frozen (inference mode, the Keras guide's "
                     "rule for ImageNet bases) or adapt (re-estimated on your data in phase 2)."),
    ] = "frozen",
    out: Annotated[str | None, typer.Option(help="Run directory (default: runs/<model>-<data>-<timestamp>).")] = None,
    backend: BackendOption = "",
    quiet: QuietOption = False,
    debug: DebugOption = False,
):
    """Train a classifier on a folder of images or a built-in dataset."""
    choose_backend(backend)
    from portaclass.train.runner import TrainOptions, run_training

    options = TrainOptions(
        data=data, model=model, image_size=image_size, channels=channels, batch_size=batch_size,
        epochs=epochs, learning_rate=lr, augment=augment, resize=resize, val_split=val_split,
        test_split=test_split, seed=seed, max_image_pixels=max_image_pixels, out=out, quiet=quiet, weights=weights, backbone=backbone,
        freeze_base=freeze_base, fine_tune_epochs=fine_tune_epochs, unfreeze=unfreeze,
        fine_tune_lr=fine_tune_lr, base_batchnorm=base_batchnorm,
    )
    result = run_training(options, log=(lambda _line: None) if quiet else typer.echo)
    accuracy = result.metrics.get("accuracy")
    scored = f"{result.metrics['scored_on']} accuracy {accuracy:.2%}" if accuracy is not None else "no held-out split"
    typer.echo(f"{result.backend}: {scored} in {result.metrics['seconds']:.1f} s -> {result.run_dir}")


@app.command()
@handle_errors
def preview(
    data: Annotated[str, typer.Option(help="A folder of class folders, digits, shapes or cifar10.")],
    augment: Annotated[str, typer.Option(help="Augmentation preset: none, light, standard, strong.")] = "standard",
    out: Annotated[str, typer.Option(help="PNG file to write.")] = "grid.png",
    count: Annotated[int, typer.Option(help="Number of samples in the grid.")] = 16,
    image_size: Annotated[int, typer.Option(help="Square size the samples are resized to.")] = 128,
    seed: Annotated[int, typer.Option(help="Seed for sampling and augmentation.")] = 0,
    backend: BackendOption = "",
    debug: DebugOption = False,
):
    """Write a grid of augmented samples titled with their class names."""
    choose_backend(backend)
    from portaclass.report.preview import write_preview

    path = write_preview(data, out=out, augment=augment, n=count, image_size=image_size, seed=seed)
    typer.echo(f"wrote {path}")


@app.command("models")
@handle_errors
def models_command(debug: DebugOption = False):
    """List the registered models and their default input sizes."""
    from portaclass.models import get_spec, list_models

    for name in list_models():
        spec = get_spec(name)
        h, w = spec.preprocessing.input_size
        pretrained = spec.pretrained or "-"
        typer.echo(f"{name}\t{h}x{w}\t{pretrained}\t{spec.description}")


@app.command()
@handle_errors
def devices(backend: BackendOption = "", debug: DebugOption = False):
    """List the devices the chosen backend can use."""
    choose_backend(backend)
    from portaclass import backend as be

    for device in be.list_devices():
        memory = f"{device.memory_bytes / 2**30:.1f} GiB" if device.memory_bytes else "-"
        typer.echo(f"{be.NAME}\t{device.spec}\t{device.name}\t{memory}")


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point."""
    try:
        app(args=argv, prog_name="portaclass")
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
