"""Compile and fit a classifier into a run folder."""

from __future__ import annotations

from portaclass._lazy import keras
from portaclass.train.callbacks import EpochHistoryCSV, RichProgress


def learning_rate_schedule(learning_rate: float, schedule: str = "constant",
                           total_steps: int | None = None):
    """The optimizer's learning rate: a float (``constant``), or a Keras
    ``CosineDecay`` to zero over ``total_steps`` (``cosine``), which steadies
    the final epochs of short runs."""
    if schedule == "cosine" and total_steps:
        return keras.optimizers.schedules.CosineDecay(learning_rate, total_steps)
    return learning_rate


def compile_classifier(model, learning_rate=1e-3, *, soft_labels: bool = False) -> None:
    """Adam + cross-entropy + accuracy. ``learning_rate`` is a float or a
    Keras schedule (``learning_rate_schedule``).

    Labels are class indices, or with ``soft_labels`` one-hot rows (MixUp and
    CutMix blend them); accuracy is then against the dominant class. The
    metric is named ``accuracy`` either way, so history.csv keeps its columns.
    """
    if soft_labels:
        loss = keras.losses.CategoricalCrossentropy()
        accuracy = keras.metrics.CategoricalAccuracy(name="accuracy")
    else:
        loss = keras.losses.SparseCategoricalCrossentropy()
        accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss, metrics=[accuracy])


def fit_classifier(model, train, validation, *, run, epochs: int, initial_epoch: int = 0,
                   quiet: bool = False, history_extra: dict | None = None):
    """``model.fit`` into ``run`` (a ``run.Run``): history.csv, a checkpoint
    after every epoch (``checkpoints/last.keras``) and, unless quiet, progress bars.

    Args:
        model: a compiled Keras model.
        train: a Keras-iterable dataset (``data.make_pipeline``).
        validation: the same for validation, or None.
        run: the run folder to write into.
        epochs: epochs to train in this call.
        initial_epoch: epochs already done (a second phase continues the count).
        quiet: no progress bars.
        history_extra: columns written on every history row (``phase``).

    Returns:
        Keras' ``History``.
    """
    callbacks = [
        EpochHistoryCSV(run, extra=history_extra),
        keras.callbacks.ModelCheckpoint(run.checkpoints / "last.keras"),
    ]
    if not quiet:
        callbacks.append(RichProgress(initial_epoch + epochs, _len_or_none(train)))
    return model.fit(
        train,
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
