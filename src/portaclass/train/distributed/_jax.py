"""JAX: ``keras.distribution.DataParallel``.

Variables are replicated over a one-axis device mesh and every batch is
sharded along it, so XLA runs one program over the global batch: the
gradient all-reduce, and BatchNorm's batch statistics, are over all
replicas, as on one device. Several hosts join with
``jax.distributed.initialize``; each process then feeds its own part of every
batch (``auto_shard_dataset=False``: the pipeline shards itself).
"""

from __future__ import annotations

import contextlib

import jax
import keras
import numpy as np

from portaclass.errors import UsageError
from portaclass.train.distributed import Hosts, Topology, differing, fingerprint, state_variables
from portaclass.train.distributed.rendezvous import roll_call
from portaclass.train.distributed.visible import too_many

ENGINE = "keras.distribution.DataParallel"


def start(devices, hosts: Hosts | None, timeout: float) -> Topology:
    if hosts is not None:
        _join(hosts)
    local = jax.local_devices()
    count = len(local) if devices == "all" else devices
    if count > len(local):
        raise too_many(count, [f"{d.platform}:{d.id}" for d in local])
    if hosts is not None and count != len(local):
        raise UsageError.for_option("devices", "a run over several hosts uses every device of each host; "
                                    "limit them with CUDA_VISIBLE_DEVICES instead")
    mesh_devices = jax.devices() if hosts is not None else local[:count]
    distribution = keras.distribution.DataParallel(
        devices=[f"{d.platform}:{d.id}" for d in mesh_devices])
    distribution.auto_shard_dataset = False
    keras.distribution.set_distribution(distribution)
    kind = "gpu" if local[0].platform in ("gpu", "cuda", "rocm") else local[0].platform
    return Topology(replicas=len(mesh_devices), processes=jax.process_count(),
                    process_index=jax.process_index(), device_kind=kind, engine=ENGINE)


def _join(hosts: Hosts) -> None:
    roll_call(hosts)  # a missing peer is a clear error here, not an abort inside JAX
    try:
        jax.distributed.initialize(hosts.coordinator, num_processes=hosts.num_processes,
                                   process_id=hosts.process_id,
                                   initialization_timeout=max(1, int(hosts.timeout)))
    except Exception as error:  # jaxlib raises XlaRuntimeError/RuntimeError for a missing peer
        from portaclass.train.distributed import DistributedError

        raise DistributedError(
            f"process {hosts.process_id} of {hosts.num_processes}: the other processes did not join at "
            f"{hosts.coordinator} within {hosts.timeout:g} s ({str(error).splitlines()[0][:160]})") from None


def scope():
    return contextlib.nullcontext()  # the distribution is global once set


def prepare(model) -> None:
    """Nothing to wrap: the distribution placed the variables."""


def average_statistics(model) -> None:
    """BatchNorm's statistics are global already (one program over the mesh)."""


def unsynced_variables(model) -> list[str]:
    """Variables whose replicas differ, on this host or between hosts."""
    variables = state_variables(model)
    # each variable's copies on this host, then one row per host
    local = [[fingerprint(np.asarray(shard.data)) for shard in v.value.addressable_shards] for v in variables]
    out = {v.path for v, prints in zip(variables, local) if len(set(prints)) > 1}
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        mine = np.asarray([row[0] for row in local], dtype=np.int64)
        out.update(differing(variables, np.asarray(multihost_utils.process_allgather(mine)).tolist()))
    return sorted(out)


def finish(clean: bool = False) -> None:
    keras.distribution.set_distribution(None)
