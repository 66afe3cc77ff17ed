"""The quickstart: ``train`` with fixed options, a small CNN on scikit-learn's
digits. Its run folder is like any other run's (``run.Run``)."""

from __future__ import annotations

from portaclass.train.options import TrainOptions
from portaclass.train.runner import TrainResult, run_training

# The split is fixed by the seed, so every backend is scored on the same images.
QUICKSTART = dict(data="digits", model="simple_cnn", image_size=32, channels=1, batch_size=32,
                  learning_rate=2e-3, schedule="cosine", val_split=0.2, test_split=0.0, seed=0)
QUICKSTART_EPOCHS = 12


def quickstart_options(*, epochs: int = QUICKSTART_EPOCHS, out: str | None = None,
                       quiet: bool = False) -> TrainOptions:
    """``simple_cnn`` on digits upscaled to 32x32 (seeded stratified 80/20
    split), Adam at 2e-3 with a cosine decay, scored on the held-out 20%."""
    return TrainOptions(**QUICKSTART, epochs=epochs, out=out, quiet=quiet)


def run_quickstart(*, epochs: int = QUICKSTART_EPOCHS, out: str | None = None,
                   quiet: bool = False, log=print) -> TrainResult:
    options = quickstart_options(epochs=epochs, out=out, quiet=quiet)
    return run_training(options, log=(lambda _line: None) if quiet else log, command="quickstart")
