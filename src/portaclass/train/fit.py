"""Compile and fit a classifier into a run directory."""

from __future__ import annotations

from pathlib import Path

from portaclass.train.callbacks import EpochHistoryCSV, RichProgress


def compile_classifier(model, learning_rate: float = 1e-3, decay_steps: int | None = None,
                       soft_labels: bool = False) -> None:
    """Adam + cross-entropy + accuracy; with ``decay_steps`` the learning rate
    follows a cosine decay to zero over that many steps, which steadies the
    final epochs of short runs.

    Labels are class indices, or with ``soft_labels`` one-hot rows (MixUp and
    CutMix blend them); accuracy is then against the dominant class. The
    metric is named ``accuracy`` either way, so history.csv keeps its columns.
    """
    import keras

    if decay_steps:
        learning_rate = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps)
    if soft_labels:
        loss = keras.losses.CategoricalCrossentropy()
        accuracy = keras.metrics.CategoricalAccuracy(name="accuracy")
    else:
        loss = keras.losses.SparseCategoricalCrossentropy()
        accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss, metrics=[accuracy])


def fit_classifier(
    model,
    train,
    validation,
    run_dir: Path,
    epochs: int,
    batch_size: int = 32,
    quiet: bool = False,
    initial_epoch: int = 0,
    history_extra: dict | None = None,
    steps_per_epoch: int | None = None,
):
    """``model.fit`` with the run directory's history.csv, a checkpoint after
    every epoch (``checkpoints/last.keras``) and, unless quiet, progress bars.

    ``train``/``validation`` are ``(x, y)`` array pairs or Keras-iterable
    datasets. The model must be compiled.
    """
    import keras

    run_dir = Path(run_dir)
    (run_dir / "checkpoints").mkdir(exist_ok=True)
    if isinstance(train, tuple):
        x, y = train
        fit_args = {"x": x, "y": y, "batch_size": batch_size, "shuffle": True}
        steps_per_epoch = steps_per_epoch or -(-len(x) // batch_size)
    else:
        fit_args = {"x": train}
        steps_per_epoch = steps_per_epoch or _len_or_none(train)
    callbacks = [
        EpochHistoryCSV(run_dir / "history.csv", extra=history_extra),
        keras.callbacks.ModelCheckpoint(run_dir / "checkpoints" / "last.keras"),
    ]
    if not quiet:
        callbacks.append(RichProgress(initial_epoch + epochs, steps_per_epoch))
    return model.fit(
        **fit_args,
        validation_data=validation,
        epochs=initial_epoch + epochs,
        initial_epoch=initial_epoch,
        callbacks=callbacks,
        verbose=0,
    )


def _len_or_none(data):
    try:
        return len(data)
    except TypeError:
        return None
