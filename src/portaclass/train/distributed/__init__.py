"""Data-parallel training on each backend's own engine (``--devices``,
``--coordinator``).

One interface, one module per engine, as ``portaclass.backend`` does it:

* JAX: ``keras.distribution.DataParallel`` over a device mesh; several
  hosts join with ``jax.distributed.initialize`` (``_jax.py``);
* TensorFlow: ``tf.distribute.MirroredStrategy`` over this host's devices,
  ``MultiWorkerMirroredStrategy`` when ``TF_CONFIG`` names several workers
  (``_tensorflow.py``);
* PyTorch: ``DistributedDataParallel``, one process per device, started by
  torch's elastic launcher (what ``torchrun`` runs) with gloo on CPU and
  NCCL on GPU (``_torch.py``, ``launch.py``).

``Topology`` says how a run is spread: replicas (devices) in all, processes,
and which process this is. Everything the run writes is written by process
0 (the chief); the others write the same files into a scratch folder they
delete, so every process runs the very same steps, collectives included.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import zlib
from dataclasses import dataclass

import numpy as np

from portaclass import checks, config
from portaclass.errors import PortaclassError, UsageError

SCALE_LR = ("linear",)


class DistributedError(PortaclassError):
    """A peer never arrived or died: exit code 1, the last checkpoint kept."""

    exit_code = 1


@dataclass(frozen=True)
class Topology:
    """How one run is spread over devices and processes."""

    replicas: int = 1
    processes: int = 1
    process_index: int = 0
    device_kind: str = "cpu"
    engine: str = ""
    # True where the engine hands each process its share of the global batch
    # itself (tf.distribute over several workers): every process reads whole batches
    engine_shards: bool = False

    @property
    def chief(self) -> bool:
        return self.process_index == 0

    @property
    def shard(self) -> tuple[int, int, int]:
        """(process index, processes, replicas) for ``data.pipeline.Shard``."""
        if self.engine_shards:
            return 0, 1, self.replicas
        return self.process_index, self.processes, self.replicas

    @property
    def parallel(self) -> bool:
        return self.replicas > 1

    def describe(self, batch_size: int) -> str:
        where = (f"{self.processes} processes" if self.processes > 1 else "one process")
        return (f"data parallel: {self.replicas} {self.device_kind} replicas ({self.engine}, {where}); "
                f"global batch {batch_size} = {batch_size // self.replicas} per replica")


@dataclass(frozen=True)
class Hosts:
    """Where the processes of a run over several hosts meet (JAX, PyTorch):
    ``--coordinator HOST:PORT`` of process 0, the number of processes and
    this one's index, from the options or ``PORTACLASS_COORDINATOR``,
    ``PORTACLASS_NUM_PROCESSES``, ``PORTACLASS_PROCESS_ID``."""

    coordinator: str
    num_processes: int
    process_id: int
    timeout: float

    @property
    def address(self) -> tuple[str, int]:
        host, _, port = self.coordinator.rpartition(":")
        return host.strip("[]"), int(port)


def parse_devices(value) -> int | str | None:
    """``--devices``: a count of 1 or more, or ``all``; None when not given."""
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.strip().lower() == "all":
        return "all"
    try:
        count = int(str(value).strip())
    except ValueError:
        raise UsageError.for_option("devices", f"must be a number of devices or all; received {value!r}") from None
    checks.at_least("devices", count, 1)
    return count


def hosts_of(options) -> Hosts | None:
    """The multi-host settings of ``options`` (TrainOptions), with the
    environment filling in what they leave out; None for a one-host run.
    Raises UsageError for a malformed or incomplete set."""
    coordinator = options.coordinator or os.environ.get("PORTACLASS_COORDINATOR") or None
    count = options.num_processes if options.num_processes is not None else _env_int("PORTACLASS_NUM_PROCESSES")
    index = options.process_id if options.process_id is not None else _env_int("PORTACLASS_PROCESS_ID")
    if coordinator is None and count is None and index is None:
        return None
    if coordinator is None or count is None or index is None:
        missing = [name for name, value in (("coordinator", coordinator), ("num_processes", count),
                                            ("process_id", index)) if value is None]
        raise UsageError.for_option(missing[0], "is needed too: a run over several hosts takes "
                                    "coordinator, num_processes and process_id (or their PORTACLASS_ variables)")
    host, _, port = coordinator.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError.for_option("coordinator", f"must be HOST:PORT (process 0's address); received {coordinator!r}")
    checks.at_least("num_processes", count, 1)
    if not 0 <= index < count:
        raise UsageError.for_option("process_id", f"must be 0 to {count - 1} for {count} processes; received {index}")
    return Hosts(coordinator, count, index, float(options.peer_timeout))


def _env_int(name: str) -> int | None:
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    if not value.lstrip("-").isdigit():
        raise UsageError(f"{name}={value!r}: must be a whole number")
    return int(value)


def check_options(options) -> None:
    """What can be checked before the framework loads (``TrainOptions.check``;
    ``devices`` is parsed when the options are made)."""
    if options.scale_lr is not None:
        checks.choice("scale_lr", options.scale_lr, SCALE_LR)
    checks.positive("peer_timeout", options.peer_timeout)
    hosts = hosts_of(options)
    if (options.devices not in (None, 1) or hosts) and options.runs_lr_find:
        raise UsageError.for_option("lr_find", "runs on one device: find the rate with a one-device run "
                                    "(--lr-find), then train on several with --lr")


def engine():
    """The engine module of the active backend (imports the framework)."""
    return importlib.import_module(f"portaclass.train.distributed._{config.active_backend()}")


def start(options, log) -> Topology:
    """Join the run's processes and choose its devices; a one-device run
    gets ``Topology()``. Call before anything builds a model."""
    devices, hosts = options.devices, hosts_of(options)
    if devices in (None, 1) and hosts is None and not engine_launched():
        return Topology()
    if config.active_backend() == "torch" and not engine_launched():
        return Topology()  # --devices all on one visible device: no workers were started
    topology = engine().start(devices or "all" if hosts else devices or 1, hosts, options.peer_timeout)
    if topology.chief and topology.parallel:
        log(topology.describe(options.batch_size))
    return topology


def engine_launched() -> bool:
    """True in a process that is one of several by the engine's own
    settings: started by torch's launcher (``portaclass`` or ``torchrun``),
    or a TensorFlow worker of a ``TF_CONFIG`` cluster."""
    backend = config.active_backend()
    if backend == "torch":
        return "TORCHELASTIC_RUN_ID" in os.environ
    return backend == "tensorflow" and bool(os.environ.get("TF_CONFIG"))


def state_variables(model) -> list:
    """What replicas must agree on: the model's variables and the optimizer's."""
    extra = list(model.optimizer.variables) if model.optimizer is not None else []
    return list(model.variables) + extra


def fingerprint(array) -> int:
    """A CRC32 of an array's bytes: replicas are compared bit for bit."""
    return zlib.crc32(np.ascontiguousarray(array).tobytes())


def differing(variables: list, fingerprints) -> list[str]:
    """Paths of ``variables`` whose fingerprints differ between the rows of
    ``fingerprints`` (one row per replica or process)."""
    rows = [list(row) for row in fingerprints]
    return [v.path for i, v in enumerate(variables) if len({row[i] for row in rows}) > 1]


def check_batch(batch_size: int, topology: Topology) -> None:
    if batch_size % topology.replicas:
        raise UsageError.for_option("batch_size", f"{batch_size} does not split over {topology.replicas} "
                                    f"replicas: use a multiple of {topology.replicas} (the batch is global)")


def scope(topology: Topology):
    """Where the model is built and compiled (TensorFlow's strategy scope)."""
    return engine().scope() if topology.parallel else contextlib.nullcontext()
