"""TensorFlow: ``tf.distribute.MirroredStrategy``; several hosts:
``MultiWorkerMirroredStrategy``, which reads the cluster from ``TF_CONFIG``.

The model is built and compiled inside the strategy's scope, so every
variable is a ``MirroredVariable`` with one copy per device; Keras' trainer
splits each batch over the replicas and all-reduces the gradients. Over
several workers every worker reads the whole global batch and tf.distribute
hands each replica its share (auto-sharding by data), as one device would
read it: 1.5e-7 from a one-device run (docs/distributed.md).

BatchNorm's moving statistics are per replica in tf.distribute (each copy
sees its own share of the batch); ``average_statistics`` makes them one
value again before each validation and checkpoint.
"""

from __future__ import annotations

import json
import os
import types

import tensorflow as tf

# The backend module splits the CPU into PORTACLASS_CPU_DEVICES logical
# devices at import, which TensorFlow takes only before its runtime starts:
# it must come before the device queries below.
import portaclass.backend  # noqa: F401
from portaclass.errors import UsageError
from portaclass.train.distributed import Hosts, Topology, differing, fingerprint, state_variables
from portaclass.train.distributed.rendezvous import roll_call
from portaclass.train.distributed.visible import too_many

ENGINE = "tf.distribute.MirroredStrategy"
_strategy = None


def cluster_hosts(timeout: float) -> Hosts | None:
    """The workers ``TF_CONFIG`` names, as ``Hosts`` (worker 0, or the chief,
    at the front), or None for a one-host run."""
    try:
        config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    except json.JSONDecodeError as error:
        raise UsageError(f"TF_CONFIG is not valid JSON ({error})") from None
    cluster, task = config.get("cluster", {}), config.get("task", {})
    addresses = list(cluster.get("chief", [])) + list(cluster.get("worker", []))
    if len(addresses) < 2:
        return None
    index = int(task.get("index", 0))
    if task.get("type") == "worker":
        index += len(cluster.get("chief", []))
    elif task.get("type") != "chief":
        raise UsageError(f"TF_CONFIG: task type {task.get('type')!r}: portaclass runs chief and worker tasks")
    return Hosts(addresses[0], len(addresses), index, timeout)


def start(devices, hosts: Hosts | None, timeout: float) -> Topology:
    global _strategy
    if hosts is not None:
        raise UsageError.for_option("coordinator", "is for JAX and torch: TensorFlow's workers meet as "
                                    "TF_CONFIG says (portaclass train --distributed-help --backend tensorflow)")
    cluster = cluster_hosts(timeout)
    if cluster is not None:
        # A missing worker would leave the strategy waiting without a bound;
        # the roll call at worker 0's address names it. Before the strategy
        # starts the runtime, as it requires.
        roll_call(cluster)
        _strategy = tf.distribute.MultiWorkerMirroredStrategy()
        kind = "gpu" if tf.config.list_logical_devices("GPU") else "cpu"
        return Topology(replicas=_strategy.num_replicas_in_sync, processes=cluster.num_processes,
                        process_index=cluster.process_id, device_kind=kind,
                        engine="tf.distribute.MultiWorkerMirroredStrategy", engine_shards=True)
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
    if isinstance(_strategy, tf.distribute.MultiWorkerMirroredStrategy):
        # Keras 3.15 reduces each step's logs across workers with a mean along
        # axis 0, which scalars lack ("Invalid reduction dimension 0",
        # tensorflow/tensorflow#72388): the steps return them as 1-vectors.
        for name in ("train_step", "test_step"):
            setattr(model, name, types.MethodType(_vector_logs(getattr(type(model), name)), model))


def _vector_logs(step):
    def step_with_vector_logs(self, data):
        return {name: tf.reshape(value, [1]) for name, value in step(self, data).items()}

    return step_with_vector_logs


def _replica_statistics(model) -> list:
    return [v for v in model.non_trainable_variables
            if isinstance(v.value, tf.distribute.DistributedValues) and v.dtype.startswith("float")]


_graphs: dict = {}


def _per_replica(key, fn, *args):
    """``fn(*args)`` on every replica, as one graph per ``key`` (tf.distribute
    warns that eager collectives are slow, and tf.function that retracing is)."""
    if key not in _graphs:
        _graphs[key] = tf.function(lambda *inputs: _strategy.run(fn, args=inputs))
    return _graphs[key](*args)


def average_statistics(model) -> None:
    """Each non-trainable float variable (BatchNorm's moving mean and
    variance) takes the mean of its replicas' values, on every worker."""
    statistics = _replica_statistics(model)
    if not statistics:
        return
    # keyed by the variables: a frozen base's BatchNorm scale and offset are
    # among them in phase 1 and not in phase 2
    key = ("statistics",) + tuple(id(v) for v in statistics)
    copies = _per_replica(key, lambda: [tf.identity(v.value) for v in statistics])
    for variable, value in zip(statistics, copies):
        variable.value.assign(_strategy.reduce("MEAN", value, axis=None))


def unsynced_variables(model) -> list[str]:
    """Variables whose copies differ, on this worker's devices or between
    workers (a CRC32 per variable, gathered over the replicas)."""
    variables = state_variables(model)
    # each variable's copies on this worker, then one row per replica of the cluster
    local = [[fingerprint(copy.numpy()) for copy in _copies(v.value)] for v in variables]
    out = {v.path for v, prints in zip(variables, local) if len(set(prints)) > 1}
    mine = tf.constant([[row[0] for row in local]], dtype=tf.int64)
    out.update(differing(variables, _strategy.gather(_per_replica("fingerprints", tf.identity, mine),
                                                     axis=0).numpy().tolist()))
    return sorted(out)


def _copies(value) -> tuple:
    return value.values if isinstance(value, tf.distribute.DistributedValues) else (value,)


def finish(clean: bool = False) -> None:
    global _strategy
    _strategy = None
    _graphs.clear()
