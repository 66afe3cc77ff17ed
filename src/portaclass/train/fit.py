"""Compile a classifier and fit one training phase into a run folder."""

from __future__ import annotations

import numpy as np

from portaclass._lazy import keras
from portaclass.train.callbacks import (
    AverageReplicaStatistics,
    EpochHistoryCSV,
    PipelineFollowsEpoch,
    ResumableEarlyStopping,
    RichProgress,
    RunCheckpoints,
    StepBudget,
    StopOnInterrupt,
    StopOnNonFiniteLoss,
)
from portaclass.train.optim import classification_loss


def compile_classifier(model, optimizer, *, one_hot: bool = False,
                       label_smoothing: float = 0.0) -> None:
    """``optimizer`` + cross-entropy + accuracy. Labels are class indices,
    or with ``one_hot`` one-hot rows (MixUp/CutMix, label smoothing); the
    metric is named ``accuracy`` either way. Under a ``mixed_float16``
    policy Keras wraps the optimizer in a ``LossScaleOptimizer``."""
    loss, accuracy = classification_loss(one_hot=one_hot, label_smoothing=label_smoothing)
    model.compile(optimizer=optimizer, loss=loss, metrics=[accuracy])


def fit_classifier(model, train, validation, *, run, state: dict, epochs: int,
                   initial_epoch: int = 0, quiet: bool = False, history_extra: dict | None = None,
                   step_budget: int | None = None, early_stopping: int | None = None,
                   class_weight: dict | None = None, tensorboard: bool = False,
                   replica_statistics=None, validation_outputs=None):
    """``model.fit`` of one phase into ``run`` (a ``run.Run``).

    Every epoch appends its row to history.csv, then writes
    ``checkpoints/last.keras`` (and ``best.keras`` on a better
    ``val_accuracy``) atomically with the resumable ``state``. A NaN or
    infinite loss raises ``TrainingDiverged``; Ctrl-C raises
    ``TrainingInterrupted`` at the end of the step in progress.

    Args:
        model: a compiled Keras model.
        train: a Keras-iterable dataset (``data.make_pipeline``).
        validation: the same for validation, or None.
        run: the run folder to write into.
        state: the run's resumable state, updated in place every epoch.
        epochs: the epoch number this phase ends at (counting all phases).
        initial_epoch: epochs already done (a second phase, or a resume).
        quiet: no progress bars.
        history_extra: columns written on every history row (``phase``).
        step_budget: stop after this many steps of this call (``--steps``).
        early_stopping: patience on ``val_loss``, or None.
        class_weight: ``{class index: weight}`` for the loss, or None.
        tensorboard: also write TensorBoard event files under RUN/tensorboard.
        replica_statistics: in a data-parallel run, ``f(model)`` making the
            replicas' BatchNorm statistics one value, called before each
            validation and checkpoint.
        validation_outputs: a ``LastValidationOutputs`` to keep the model's
            outputs of the last validation pass in (torch), or None.

    Returns:
        Keras' ``History``.
    """
    stopper = None
    if early_stopping is not None:
        stopper = ResumableEarlyStopping(early_stopping, counters=state.get("early_stopping"))
    interrupt = StopOnInterrupt()
    callbacks = [interrupt, PipelineFollowsEpoch(train), StopOnNonFiniteLoss()]
    if replica_statistics is not None:
        callbacks.append(AverageReplicaStatistics(replica_statistics))
    callbacks.append(EpochHistoryCSV(run, extra=history_extra))
    if stopper is not None:
        callbacks.append(stopper)  # before the checkpoint, which records its counters
    callbacks.append(RunCheckpoints(run, state, early_stopping=stopper))
    if step_budget is not None:
        callbacks.append(StepBudget(step_budget))
    if validation_outputs is not None:
        callbacks.append(validation_outputs)
    if tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(run.path / "tensorboard"),
                                                     write_graph=False))
    build_before_fit(model, train)
    progress = None
    if not quiet:
        progress = RichProgress(epochs, _len_or_none(train))
        callbacks.append(progress)
    try:
        # shuffle=False: the pipeline shuffles itself from (seed, epoch); Keras'
        # own shuffle reorders a PyDataset's batches with Python's global
        # random state, which a resumed run could not reproduce.
        return model.fit(train, validation_data=validation, epochs=epochs,
                         initial_epoch=initial_epoch, callbacks=callbacks, verbose=0,
                         class_weight=class_weight, shuffle=False)
    finally:
        interrupt.restore_handler()
        if validation_outputs is not None:
            validation_outputs.detach()
        if progress is not None:
            progress.close()


def build_before_fit(model, train) -> None:
    """Build the compiled loss, metrics and optimizer from one batch read
    directly (``train[0]``).

    Left to ``fit``, Keras builds them from a batch of the PyDataset's worker
    queue; stopping that queue afterwards keeps every batch the workers had
    prefetched in the old order, and the first epoch starts with them, as
    many as thread timing allowed: same seed, different run. Built here,
    ``fit`` skips that step and no worker starts early.
    """
    batch = train[0]
    if _functional_and_built(model) and isinstance(batch, tuple) and len(batch) == 2:
        # From the model's symbolic outputs: Keras' own way runs the loss and
        # metrics on torch's "meta" device, whose first use imports TorchDynamo
        # (0.85 s and 72 MB of a torch run that never compiles).
        labels = keras.KerasTensor(np.shape(batch[1]), _dtype_name(batch[1]))
        for compiled in (model._compile_loss, model._compile_metrics):
            if compiled is not None and not compiled.built:
                compiled.build(labels, model.outputs[0])
        model._post_build()  # as _symbolic_build ends (torch re-tracks the variables)
    else:
        model._symbolic_build(data_batch=batch)
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)


def _functional_and_built(model) -> bool:
    return (len(getattr(model, "outputs", None) or ()) == 1
            and all(layer.built for layer in model._flatten_layers()))


def _dtype_name(values) -> str:
    return keras.backend.standardize_dtype(getattr(values, "dtype", None) or np.asarray(values).dtype)


def _len_or_none(data):
    try:
        return len(data)
    except TypeError:
        return None
