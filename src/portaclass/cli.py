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
