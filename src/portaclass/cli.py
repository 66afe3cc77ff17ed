"""The ``portaclass`` command line: thin Typer commands over library calls.

``portaclass train``'s flags are built from ``TrainOptions``' fields (their
defaults and help texts), so no default is stated twice. Library modules are
imported inside the commands: they load NumPy and Pillow (never a framework:
keras is behind ``portaclass._lazy``), which ``portaclass --help`` need not wait for.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
import sys
import typing
from typing import Annotated

import typer

from portaclass import config
from portaclass._lazy import backend as active_backend
from portaclass.errors import PortaclassError, UsageError
from portaclass.train.options import TrainOptions, cli_fields, flag_of

app = typer.Typer(
    name="portaclass",
    help="Train image classifiers on TensorFlow, PyTorch or JAX with one code path; "
    "evaluate, predict with, explain, export and serve them; preview augmentation, list models and devices.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

BackendOption = Annotated[
    str,
    typer.Option(
        "--backend",
        help="Keras backend: auto, tensorflow, torch or jax (default: PORTACLASS_BACKEND, then "
        "KERAS_BACKEND, then auto: for train, the fastest `portaclass bench` measured here for the "
        "model and size, else the first installed).",
        show_default=False,
    ),
]
DebugOption = Annotated[
    bool, typer.Option("--debug", help="Show the full traceback on errors.")
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="Print only the final line.")]


def handle_errors(command):
    """Report PortaclassErrors as one line on stderr with exit code 2; a bad
    option value names the flag (``--lr``) where the library names the
    argument (``learning_rate``)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        debug = kwargs.get("debug") or os.environ.get("PORTACLASS_DEBUG") == "1"
        try:
            return command(*args, **kwargs)
        except PortaclassError as error:
            if debug:
                raise
            message = str(error)
            if not message:  # a worker process reported it already
                raise typer.Exit(error.exit_code) from None
            if isinstance(error, UsageError):
                message = error.with_flags(cli_flag)
            typer.echo(f"error: {message}", err=True)
            raise typer.Exit(error.exit_code) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None

    return wrapper


# Library arguments whose flag is not their name (TrainOptions' fields are
# looked up by ``flag_of``): ``class`` is a Python keyword.
OTHER_FLAGS = {"class_name": "--class"}


def cli_flag(name: str) -> str:
    """The flag of a library argument named in a UsageError."""
    return OTHER_FLAGS.get(name) or flag_of(name)


def options_from(option_fields, *common: inspect.Parameter):
    """Give a ``**kwargs`` command the flags of dataclass ``option_fields``
    (type, default and help from each field) plus ``common`` parameters:
    Typer reads the signature this sets (Lightning builds its CLI from
    signatures the same way). A field without a default becomes an optional
    flag here, so that ``--config`` or ``--resume`` can supply it."""

    def decorate(command):
        hints = typing.get_type_hints(TrainOptions)
        parameters = []
        for f in option_fields:
            names = [f.metadata["flag"]] if f.metadata.get("flag") else []
            required = f.default is dataclasses.MISSING
            kind = f.metadata.get("cli_type") or hints[f.name]
            annotation = Annotated[kind | None if required else kind,
                                   typer.Option(*names, help=f.metadata["help"],
                                                show_default=not required)]
            parameters.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY,
                                                default=None if required else f.default,
                                                annotation=annotation))
        command.__signature__ = inspect.Signature([*parameters, *common])
        return command

    return decorate


def _common(name: str, annotation, default=inspect.Parameter.empty) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=annotation)


def given_on_command_line(ctx: typer.Context, values: dict) -> dict:
    """The subset of ``values`` the user typed (not defaults). Compared by
    name: Typer bundles its own click, whose enum is not a public import."""
    return {name: value for name, value in values.items()
            if getattr(ctx.get_parameter_source(name), "name", None) == "COMMANDLINE"}


def choose_backend(name: str | None, workload: dict | None = None) -> str:
    """The backend for this command. When the choice is left to "auto" and
    ``workload`` names the model, image size and batch size, the fastest
    backend ``portaclass bench`` measured for them on this machine wins."""
    name = None if name in (None, "") else name
    if workload and config.auto_requested(name):
        from portaclass.bench.cache import fastest_backend

        chosen = fastest_backend(**workload)
        if chosen is not None:
            return config.use_backend(chosen.backend, reason=f"backend auto: {chosen.backend}, {chosen.reason}")
        backend = config.use_backend(name)
        config.backend_choice += (f" (no portaclass bench result for {workload['model']} at "
                                  f"{workload['image_size']} px on this machine)")
        return backend
    return config.use_backend(name)


@app.command()
@handle_errors
def quickstart(
    backend: BackendOption = "",
    out: Annotated[
        str | None, typer.Option(help="Run folder (default: runs/quickstart-<timestamp>).")
    ] = None,
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 12,
    quiet: QuietOption = False,
    debug: DebugOption = False,
):
    """Train a small CNN on the built-in handwritten digits and print its held-out accuracy."""
    choose_backend(backend)
    from portaclass.train.quickstart import run_quickstart

    result = run_quickstart(epochs=epochs, out=out, quiet=quiet, log=typer.echo)
    typer.echo(f"{result.backend}: held-out accuracy {result.accuracy:.2%} in {result.seconds:.1f} s "
               f"-> {result.run_dir}")


ResumeOption = Annotated[
    str | None, typer.Option(help="Continue the unfinished run in this folder from its last "
                             "complete epoch, with its own options.", show_default=False)]
DistributedHelpOption = Annotated[bool, typer.Option(
    "--distributed-help", help="Print the launch lines of a run on several devices or hosts for the "
    "backend, and exit.")]
ConfigOption = Annotated[
    str | None, typer.Option(help="A TOML file of options (keys as the flags: batch-size = 64, "
                             "lr = 0.01); flags on the command line override it.", show_default=False)]


@app.command()
@handle_errors
@options_from(cli_fields(), _common("ctx", typer.Context), _common("resume", ResumeOption, None),
              _common("config", ConfigOption, None), _common("backend", BackendOption, ""),
              _common("quiet", QuietOption, False), _common("debug", DebugOption, False),
              _common("distributed_help", DistributedHelpOption, False))
def train(*, ctx: typer.Context, resume: str | None = None, config: str | None = None,
          backend: str = "", quiet: bool = False, debug: bool = False, distributed_help: bool = False,
          **options):
    """Train a classifier on a folder of images or a built-in dataset (or resume a run)."""
    if distributed_help:
        from portaclass import config as config_module
        from portaclass.train.distributed.help import launch_lines

        typer.echo(launch_lines(config_module.requested_backend(backend or None)))
        return
    given = given_on_command_line(ctx, options)
    if resume and config:
        raise UsageError.for_option("config", "cannot be combined with resume (a run keeps its options)")
    log = (lambda _line: None) if quiet else typer.echo
    if resume:
        choose_backend(backend)
        from portaclass.train.runner import resume_training

        result = resume_training(resume, given=given, quiet=quiet, log=log)
    else:
        from portaclass.train.config_file import read_config_file

        values = {**(read_config_file(config) if config else {}), **given}
        if values.get("data") is None:
            raise UsageError.for_option("data", "is required (a folder, digits, shapes or cifar10), "
                                        "on the command line or in --config")
        train_options = TrainOptions(**values, quiet=quiet)
        choose_backend(backend, train_options.workload())
        from portaclass.train.runner import run_training

        result = run_training(train_options, log=log)
    if not result.chief:
        typer.echo(f"{result.backend}: this process's part is done; process 0 writes the run")
        return
    accuracy = result.accuracy
    scored = (f"{result.metrics['scored_on']} accuracy {accuracy:.2%}" if accuracy is not None
              else "no held-out split")
    typer.echo(f"{result.backend}: {scored} in {result.seconds:.1f} s -> {result.run_dir}")


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

    path = write_preview(data, out=out, augment=augment, count=count, image_size=image_size, seed=seed)
    typer.echo(f"wrote {path}")


UnsafeOption = Annotated[bool, typer.Option(
    "--unsafe", help="Load model files without the safety checks (Lambda layers, legacy .h5): "
    "only files you trust.")]
DeviceOption = Annotated[
    str | None, typer.Option(help="cpu, gpu or gpu:N (default: the backend's choice).", show_default=False)]
BatchSizeOption = Annotated[int | None, typer.Option(
    help="Images per forward pass (default: the library's).", show_default=False)]
TtaOption = Annotated[bool, typer.Option("--tta", help="Test-time augmentation: average over "
                                         "the image, its mirror and shifted windows.")]


def _given(**values) -> dict:
    """The options the user set (not None): the library states the defaults."""
    return {name: value for name, value in values.items() if value is not None}


def _progress_bar(description: str):
    """A transient Rich bar on stderr and the ``progress(done, total)``
    callback that drives it (stdout stays clean for --json / --format)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn(description), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=Console(stderr=True), transient=True)
    task = bar.add_task(description, total=None)
    return bar, lambda done, total: bar.update(task, completed=done, total=total)


@app.command()
@handle_errors
def evaluate(
    source: Annotated[str, typer.Argument(help="A run folder or a .keras model file.")],
    data: Annotated[str | None, typer.Option(
        help="train, val or test (a split of the run), or a folder of class folders "
        "(default: the run's held-out split).", show_default=False)] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the results as JSON only.")] = False,
    tta: TtaOption = False,
    out: Annotated[str | None, typer.Option(
        help="Folder for evaluation.json and confusion_matrix.png (default: the run).",
        show_default=False)] = None,
    device: DeviceOption = None,
    batch_size: BatchSizeOption = None,
    unsafe: UnsafeOption = False,
    backend: BackendOption = "",
    debug: DebugOption = False,
):
    """Accuracy, per-class precision/recall/F1, confusion matrix and calibration of a trained model."""
    choose_backend(backend)
    from portaclass.evaluate import evaluate as run_evaluation
    from portaclass.report.tables import evaluation_table

    bar, progress = _progress_bar("evaluating")
    with bar:
        result = run_evaluation(source, data, tta=tta, out=out, device=device, progress=progress,
                                unsafe=unsafe, **_given(batch_size=batch_size))
    if json_output:
        import json

        typer.echo(json.dumps(result.to_dict(), indent=1))
        return
    evaluation_table(result)


@app.command()
@handle_errors
def predict(
    model: Annotated[str, typer.Argument(help="A run folder, a .keras model file, or a file "
                                               "`portaclass export` wrote (.onnx, .pt2, ...).")],
    images: Annotated[list[str], typer.Argument(help="Image files or folders (searched recursively).")],
    device: DeviceOption = None,
    top_k: Annotated[int, typer.Option("--top-k", help="Classes to show per image.")] = 3,
    output_format: Annotated[str, typer.Option("--format", help="table, json or csv.")] = "table",
    batch_size: BatchSizeOption = None,
    tta: TtaOption = False,
    unsafe: UnsafeOption = False,
    backend: BackendOption = "",
    debug: DebugOption = False,
):
    """Predict the classes of images; an unreadable image is an error row (exit code 1 at the end)."""
    from portaclass.checks import choice

    choice("format", output_format, ("table", "json", "csv"))
    choose_backend(backend)
    from portaclass.predict import format_predictions
    from portaclass.predict import predict as run_prediction
    from portaclass.report.tables import prediction_table

    bar, progress = _progress_bar("predicting")
    with bar:
        results = run_prediction(model, images, device=device, top_k=top_k, tta=tta, progress=progress,
                                 log=lambda line: typer.echo(line, err=True), unsafe=unsafe,
                                 **_given(batch_size=batch_size))
    if output_format == "table":
        prediction_table(results)
    else:
        typer.echo(format_predictions(results, output_format), nl=False)
    failed = sum(1 for r in results if r.error)
    if failed:
        typer.echo(f"error: {failed} of {len(results)} images could not be read (see the error "
                   f"{'column' if output_format != 'json' else 'fields'})", err=True)
        raise typer.Exit(1)


@app.command()
@handle_errors
def report(
    run_dir: Annotated[str, typer.Argument(help="A run folder.")],
    out: Annotated[str | None, typer.Option(help="Where to write the page (default: RUN/report.html).",
                                            show_default=False)] = None,
    backend: BackendOption = "",
    debug: DebugOption = False,
):
    """(Re)build a run's self-contained report.html: curves, evaluation, top losses, Grad-CAM, config."""
    choose_backend(backend)
    from portaclass.report.html import write_report

    typer.echo(f"wrote {write_report(run_dir, out=out)}")


@app.command()
@handle_errors
def explain(
    model: Annotated[str, typer.Argument(help="A run folder or a .keras model file.")],
    images: Annotated[list[str], typer.Argument(help="Image files or folders (searched recursively).")],
    out: Annotated[str, typer.Option(help="Folder for the heatmap PNGs (<image>_gradcam.png).")],
    class_name: Annotated[str | None, typer.Option(
        "--class", help="The class to explain (default: each image's predicted class).",
        show_default=False)] = None,
    layer: Annotated[str | None, typer.Option(
        help="The layer whose feature map to use (default: the last one before the head's pooling).",
        show_default=False)] = None,
    device: DeviceOption = None,
    backend: BackendOption = "",
    debug: DebugOption = False,
):
    """Grad-CAM heatmaps over the images: where the model found the evidence for a class."""
    choose_backend(backend)
    from portaclass.report.gradcam import explain_images

    bar, progress = _progress_bar("explaining")
    with bar:
        results = explain_images(model, images, out=out, class_name=class_name, layer=layer,
                                 device=device, progress=progress)
    for result in results:
        if result.error:
            typer.echo(f"{result.name}\terror: {result.error}")
        else:
            typer.echo(f"{result.name}\t{result.class_name} {result.probability:.1%} "
                       f"(predicted {result.predicted})\t{result.path}")
    failed = sum(1 for r in results if r.error)
    if failed:
        typer.echo(f"error: {failed} of {len(results)} images could not be read", err=True)
        raise typer.Exit(1)


@app.command("export")
@handle_errors
def export_command(
    source: Annotated[str | None, typer.Argument(
        help="A run folder or a .keras model file.", show_default=False)] = None,
    format: Annotated[str, typer.Option(
        "--format", "-f", help="keras, onnx, savedmodel, torch, openvino or litert.")] = "onnx",
    out: Annotated[str | None, typer.Option(
        help="File (a folder for savedmodel) to write (default: RUN/export/model.<suffix>, "
        "or beside the .keras file).", show_default=False)] = None,
    opset: Annotated[int | None, typer.Option(help="ONNX opset (default: the exporter's).",
                                              show_default=False)] = None,
    include_preprocessing: Annotated[bool, typer.Option(
        "--include-preprocessing", help="Put the model's pixel scaling inside the exported graph "
        "(input: RGB pixels in [0, 255]); otherwise <out>.json documents it.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out.")] = False,
    verify_only: Annotated[str | None, typer.Option(
        "--verify-only", help="Only check this exported file against --reference.",
        show_default=False)] = None,
    reference: Annotated[str | None, typer.Option(
        help="The run folder or .keras file --verify-only compares with.", show_default=False)] = None,
    unsafe: UnsafeOption = False,
    backend: BackendOption = "",
    quiet: QuietOption = False,
    debug: DebugOption = False,
):
    """Export a model to a deployment format and check it in that format's own runtime."""
    choose_backend(backend)
    from portaclass.export import export_model, verify_export

    log = (lambda _line: None) if quiet else (lambda line: typer.echo(line, err=True))
    if verify_only:
        if not reference:
            raise UsageError("--verify-only needs --reference (the run or .keras file it came from)")
        verification = verify_export(verify_only, reference, unsafe=unsafe)
        typer.echo(f"{verify_only}: {verification.summary()}")
        if not verification.passed:
            typer.echo(f"error: {verify_only} disagrees with {reference}", err=True)
            raise typer.Exit(1)
        return
    if source is None:
        raise UsageError("name the run folder or .keras file to export (or use --verify-only FILE)")
    result = export_model(source, format, out, opset=opset, include_preprocessing=include_preprocessing,
                          unsafe=unsafe, overwrite=overwrite, log=log)
    typer.echo(f"wrote {result.path} ({result.format}, written on {result.written_by}; "
               f"{result.verification.summary()}); how to feed it: {result.sidecar}")


def _bench_defaults() -> dict:
    """BenchOptions' defaults, shown by --help (stated once, in the library)."""
    from portaclass.bench.options import BenchOptions

    return {f.name: f.default for f in dataclasses.fields(BenchOptions)}


BENCH = _bench_defaults()


@app.command()
@handle_errors
def bench(
    backends: Annotated[str, typer.Option(help="Keras backends to measure, comma-separated.")] = ",".join(BENCH["backends"]),
    model: Annotated[str, typer.Option(help="Registry model (see `portaclass models`).")] = BENCH["model"],
    image_size: Annotated[int, typer.Option(help="Square input size in pixels.")] = BENCH["image_size"],
    batch_sizes: Annotated[str, typer.Option(help="Batch sizes, comma-separated: one row each.")] = ",".join(map(str, BENCH["batch_sizes"])),
    steps: Annotated[int, typer.Option(help="Timed training steps and predict calls per measurement "
                                             "(after the first, compiling one); the median counts.")] = BENCH["steps"],
    rounds: Annotated[int, typer.Option(help="Measurements per row, interleaved A B C A B C.")] = BENCH["rounds"],
    out: Annotated[str | None, typer.Option(help="Folder for bench.json and bench.png "
                                                 "(default: bench-MODEL-SIZE).", show_default=False)] = None,
    real_data: Annotated[str | None, typer.Option(help="A folder of class folders: train through the real "
                                                       "pipeline (decode + augment) instead of one synthetic "
                                                       "batch.", show_default=False)] = None,
    native: Annotated[bool, typer.Option(help="Add the hand-written PyTorch rows (plain and "
                                              "channels_last) where the model has a twin.")] = BENCH["native"],
    onnx: Annotated[bool, typer.Option(help="Add an ONNX Runtime predict row (the model exported "
                                            "to ONNX).")] = BENCH["onnx"],
    device: DeviceOption = None,
    seed: Annotated[int, typer.Option(help="Seeds the weights and the synthetic batch.")] = BENCH["seed"],
    cache: Annotated[bool, typer.Option(help="Remember the result on this machine for "
                                             "--backend auto.")] = BENCH["cache"],
    json_output: Annotated[bool, typer.Option("--json", help="Print bench.json instead of the table.")] = False,
    debug: DebugOption = False,
):
    """Measure training and predict speed and memory of one model on each backend, beside native PyTorch."""
    from portaclass.bench.options import BenchOptions, parse_list
    from portaclass.bench.runner import run_bench

    options = BenchOptions(backends=parse_list("backends", backends), model=model, image_size=image_size,
                           batch_sizes=parse_list("batch_sizes", batch_sizes, int), steps=steps, rounds=rounds,
                           out=out, real_data=real_data, native=native, onnx=onnx, device=device, seed=seed,
                           cache=cache)
    report = run_bench(options, log=lambda line: typer.echo(line, err=True))
    if json_output:
        import json

        typer.echo(json.dumps(report.as_json(), indent=1))
    else:
        from portaclass.bench.output import print_table

        print_table(report)
    typer.echo(f"wrote {options.out_dir / 'bench.json'} and bench.png", err=True)


def _serve_defaults() -> dict:
    """ServeOptions' defaults, shown by --help (stated once, in the library)."""
    from portaclass.serve.options import ServeOptions

    return {f.name: f.default for f in dataclasses.fields(ServeOptions)}


SERVE = _serve_defaults()


@app.command()
@handle_errors
def serve(
    source: Annotated[str, typer.Argument(help="A run folder, a .keras model file, or an .onnx file "
                                                "`portaclass export` wrote.")],
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0: every interface).")] = SERVE["host"],
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free port, printed).")] = SERVE["port"],
    runtime: Annotated[str, typer.Option(help="keras (the chosen backend) or onnx (ONNX Runtime; "
                                              "a run is exported to ONNX first).")] = SERVE["runtime"],
    device: DeviceOption = None,
    max_batch: Annotated[int, typer.Option(help="Most images per model call.")] = SERVE["max_batch"],
    max_wait_ms: Annotated[float, typer.Option(
        help="How long a request waits for others to share its model call.")] = SERVE["max_wait_ms"],
    workers: Annotated[int, typer.Option(help="Server processes, each with its own copy of the "
                                              "model.")] = SERVE["workers"],
    name: Annotated[str | None, typer.Option(help="The model's name in the URLs (default: the run "
                                                  "folder's name, else the file's stem).",
                                             show_default=False)] = None,
    max_body_mb: Annotated[float, typer.Option(help="Largest request body accepted, in MB.")] = SERVE["max_body_mb"],
    top_k: Annotated[int, typer.Option("--top-k", help="Classes per image for :classify and :upload "
                                                       "(a request may ask ?top_k=N).")] = SERVE["top_k"],
    unsafe: UnsafeOption = False,
    backend: BackendOption = "",
    debug: DebugOption = False,
):
    """Serve a model over HTTP: TensorFlow Serving's REST API, multipart uploads, /metrics."""
    from portaclass.serve import ServeOptions
    from portaclass.serve import serve as run_server

    options = ServeOptions(source, host=host, port=port, runtime=runtime, device=device, max_batch=max_batch,
                           max_wait_ms=max_wait_ms, workers=workers, name=name, max_body_mb=max_body_mb,
                           top_k=top_k, unsafe=unsafe)
    choose_backend(backend)
    run_server(options, log=lambda line: typer.echo(line, err=True))


def _parity_backends() -> str:
    """parity's default backends, as --help shows them (stated once, in the library)."""
    from portaclass.parity import DEFAULT_BACKENDS

    return ",".join(DEFAULT_BACKENDS)


@app.command()
@handle_errors
def parity(
    model: Annotated[str, typer.Option(help="A registered model (see `portaclass models`).")],
    backends: Annotated[str, typer.Option(
        help="Comma-separated backends to compare; the first is the reference.")] = _parity_backends(),
    image_size: Annotated[int | None, typer.Option(
        help="Square input size (default: the model's own; at least its minimum).", show_default=False)] = None,
    batch_size: Annotated[int | None, typer.Option(
        help="Images in the fixed batch (default: the library's).", show_default=False)] = None,
    seed: Annotated[int | None, typer.Option(
        help="Seed of the initial weights and the batch (default: the library's).", show_default=False)] = None,
    perturb: Annotated[str | None, typer.Option(
        help="Self-check, BACKEND:LAYER: change LAYER's weights by 1e-3 on BACKEND only; the report "
        "must name LAYER.", show_default=False)] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON document instead of the tables.")] = False,
    debug: DebugOption = False,
):
    """Compare a model's logits, loss, gradients and one SGD step across backends, and run each
    backend's saved model on the others; exit code 1 when they disagree beyond tolerance."""
    from portaclass.parity import parse_perturb, print_report, run_parity

    report = run_parity(model, backends=backends, perturb=parse_perturb(perturb),
                        log=lambda line: typer.echo(f"parity: {line}", err=True),
                        **_given(image_size=image_size, batch_size=batch_size, seed=seed))
    if json_output:
        import json

        typer.echo(json.dumps(report.to_dict(), indent=1))
    else:
        print_report(report)
    if not report.passed:
        typer.echo(f"error: {model} disagrees across backends: {report.problems()[0]}", err=True)
        raise typer.Exit(1)


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
    for device in active_backend.list_devices():
        memory = f"{device.memory_bytes / 2**30:.1f} GiB" if device.memory_bytes else "-"
        typer.echo(f"{active_backend.NAME}\t{device.spec}\t{device.name}\t{memory}")


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point."""
    config.start_command_line_process()
    try:
        app(args=argv, prog_name="portaclass")
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
