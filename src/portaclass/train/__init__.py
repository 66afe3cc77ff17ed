"""Training: options, the runner wiring data, models and fitting into a run
folder, checkpoints and resume, callbacks, and the quickstart.

The package is callable, so notebooks train without shelling out::

    import portaclass
    result = portaclass.train(data="shapes", model="simple_cnn", epochs=5)
    result.accuracy, result.run_dir

(``portaclass.train`` is this package; calling it runs ``run_training`` with
``TrainOptions(data=..., model=..., **options)``.)
"""

from __future__ import annotations

from portaclass._lazy import make_module_callable


def train(data: str, model: str = "simple_cnn", *, log=print, **options):
    """Train ``model`` on ``data``; ``options`` are ``TrainOptions``'
    fields (the ``portaclass train`` flags: ``epochs=5``,
    ``learning_rate=3e-4``, ``augment="light"``...). Returns a
    ``TrainResult`` (``run_dir``, ``backend``, ``metrics``, ``accuracy``)."""
    # imported on call: the CLI imports this package (for its options) and
    # must not wait for the runner's imports on `--help`
    from portaclass.train.options import TrainOptions, check_option_names
    from portaclass.train.runner import run_training

    check_option_names(options, where="portaclass.train()")
    return run_training(TrainOptions(data=data, model=model, **options), log=log)


make_module_callable(__name__, train)
