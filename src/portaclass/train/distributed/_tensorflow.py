"""TensorFlow: ``tf.distribute.MirroredStrategy``.

The model is built and compiled inside the strategy's scope, so every
variable is a ``MirroredVariable`` with one copy per device; Keras' trainer
splits each batch over the replicas and all-reduces the gradients.

Several hosts (``MultiWorkerMirroredStrategy``, ``TF_CONFIG``) are refused:
Keras 3.15's TensorFlow trainer reduces each step's scalar logs across
workers along axis 0 and fails (tensorflow/tensorflow#72388, measured here
with two workers over 127.0.0.1).

BatchNorm's moving statistics are per replica in tf.distribute (each copy
sees its own share of the batch); ``average_statistics`` makes them one
value again before each validation and checkpoint.
"""

from __future__ import annotations

import json
import os
import zlib

import numpy as np
import tensorflow as tf

# The backend module splits the CPU into PORTACLASS_CPU_DEVICES logical
# devices at import, which TensorFlow takes only before its runtime starts:
# it must come before the device queries below.
import portaclass.backend  # noqa: F401
from portaclass.errors import UsageError
from portaclass.train.distributed import Hosts, Topology
from portaclass.train.distributed.visible import too_many

ENGINE = "tf.distribute.MirroredStrategy"
_strategy = None


def _cluster_workers() -> int:
    try:
        cluster = json.loads(os.environ.get("TF_CONFIG") or "{}").get("cluster", {})
    except json.JSONDecodeError as error:
        raise UsageError(f"TF_CONFIG is not valid JSON ({error})") from None
    return len(cluster.get("worker", [])) + len(cluster.get("chief", []))


def start(devices, hosts: Hosts | None) -> Topology:
    global _strategy
    workers = _cluster_workers()
    if hosts is not None or workers > 1:
        where = f"TF_CONFIG names {workers} workers" if workers > 1 else "--coordinator is given"
        raise UsageError(
            f"{where}, but TensorFlow trains on one host only: Keras 3's fit fails under "
            "MultiWorkerMirroredStrategy (its scalar logs are reduced along an axis they do not have, "
            "tensorflow/tensorflow#72388); train over several hosts with --backend jax or torch "
            "(portaclass train --distributed-help)")
    gpus = tf.config.list_logical_devices("GPU")
    local = gpus or tf.config.list_logical_devices("CPU")
    kind = "gpu" if gpus else "cpu"
    count = len(local) if devices == "all" else devices
    if count > len(local):
        raise too_many(count, [f"{kind}:{i}" for i in range(len(local))])
    _strategy = tf.distribute.MirroredStrategy([device.name for device in local[:count]])
    return Topology(replicas=count, device_kind=kind, engine=ENGINE)


def scope():
    return _strategy.scope()


def prepare(model) -> None:
    """Keep Keras from building the compiled model off the training data.

    A model made in a strategy's scope remembers the strategy, and then
    ``fit`` first pulls a batch from the distributed PyDataset to build
    itself and resets the iterator: measured with Keras 3.15, the first
    step then trains on other images than batch 0 (weights 1e-2 apart from
    the same step on one device, 1e-7 with this). Forgotten here, the
    strategy still comes from the scope ``fit`` runs in (Keras asks
    ``tf.distribute.get_strategy()``), and ``build_before_fit`` has built
    the model from batch 0 already."""
    model._distribute_strategy = None


def _replica_statistics(model) -> list:
    return [v for v in model.non_trainable_variables
            if isinstance(v.value, tf.distribute.DistributedValues) and v.dtype.startswith("float")]


def average_statistics(model) -> None:
    """Each non-trainable float variable (BatchNorm's moving mean and
    variance) takes the mean of its replicas' values."""
    for variable in _replica_statistics(model):
        copies = variable.value.values
        mean = tf.add_n([tf.identity(c) for c in copies]) / len(copies)
        variable.value.assign(mean)


def unsynced_variables(model) -> list[str]:
    out = []
    extra = list(model.optimizer.variables) if model.optimizer is not None else []
    for variable in list(model.variables) + extra:
        value = variable.value
        copies = value.values if isinstance(value, tf.distribute.DistributedValues) else (value,)
        prints = {zlib.crc32(np.ascontiguousarray(c.numpy()).tobytes()) for c in copies}
        if len(prints) > 1:
            out.append(variable.path)
    return out


def finish(clean: bool = False) -> None:
    global _strategy
    _strategy = None
