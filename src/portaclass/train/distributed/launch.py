"""Starting the processes of a PyTorch data-parallel run.

``portaclass train --devices N`` (torch) starts N worker processes with
torch's elastic launcher, the engine behind ``torchrun``, and waits for
them. Each worker runs the same training call with the same options; torch
gives each its rank, and rank 0 writes the run folder. On several hosts
each host runs the same command with ``--coordinator`` (process 0's
address, a static rendezvous) and its own ``--process-id``. A worker that
dies ends the others (the launcher stops them) and the command with an
error naming its rank; the run keeps its last checkpoint.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
import tempfile
import time
import uuid

from portaclass import config
from portaclass.errors import PortaclassError
from portaclass.train.distributed import (
    DistributedError,
    Hosts,
    Topology,
    check_batch,
    engine_launched,
    hosts_of,
)
from portaclass.train.distributed.visible import too_many


class WorkersInterrupted(PortaclassError):
    """Ctrl-C during a run of several workers: exit code 130, as on one device."""

    exit_code = 130


def workers_to_start(options) -> int:
    """How many worker processes the process the user started must launch
    instead of training: 0 unless the run is PyTorch on several devices (or
    hosts) and no launcher started this process."""
    if config.active_backend() != "torch" or engine_launched():
        return 0
    hosts = hosts_of(options)
    processes = process_count(options.devices, hosts)
    return processes if hosts is not None or processes > 1 else 0


def run_in_workers(payload: dict, options, processes: int, log, *, command_line: bool,
                   backend_choice: str | None):
    """Start this host's ``processes`` workers for ``payload`` (a run or a
    resume, see ``worker.py``) and wait for them; rank 0's result or None."""
    hosts = hosts_of(options)
    world = processes * (hosts.num_processes if hosts else 1)
    check_batch(options.batch_size, Topology(replicas=world))
    log(f"starting {processes} torch worker processes" + (f" on host {hosts.process_id} of "
                                                           f"{hosts.num_processes}" if hosts else ""))
    payload = {**payload, "command_line": command_line, "backend_choice": backend_choice}
    run_dir = payload.get("run_dir") or payload["options"]["out"]
    return launch(payload, processes=processes, hosts=hosts, timeout=options.peer_timeout, run_dir=run_dir)


def process_count(devices, hosts: Hosts | None) -> int:
    """Processes to start on this host: one per device asked for (a host of
    a run over several uses all of its devices unless told otherwise, as on JAX)."""
    if devices in (None, 1) and hosts is None:
        return 1  # known without importing torch, which a one-device run imports later
    import torch

    if torch.cuda.is_available():
        visible = [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    else:
        visible = [f"cpu:{i}" for i in range(config.cpu_devices())]
    count = len(visible) if devices == "all" or (devices is None and hosts) else devices or 1
    if count > len(visible):
        raise too_many(count, visible)
    return count


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch(payload: dict, *, processes: int, hosts: Hosts | None, timeout: float, run_dir: str):
    """Run ``processes`` workers on this host (and as many on each other
    host), each training as ``payload`` says (``worker.py``), and return
    what rank 0 returned (None when this host has no rank 0)."""
    from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs, Std
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    nodes = hosts.num_processes if hosts else 1
    endpoint = hosts.coordinator if hosts else f"127.0.0.1:{_free_port()}"
    launch_config = LaunchConfig(
        min_nodes=nodes, max_nodes=nodes, nproc_per_node=processes,
        # every host's launcher must name the same run to meet at the endpoint
        run_id=f"portaclass-{endpoint}" if hosts else f"portaclass-{uuid.uuid4().hex[:8]}",
        rdzv_backend="static", rdzv_endpoint=endpoint,
        rdzv_configs={"rank": hosts.process_id if hosts else 0, "timeout": int(timeout)},
        max_restarts=0, monitor_interval=0.2,
        logs_specs=DefaultLogsSpecs(redirects=Std.NONE, tee=Std.NONE))
    # Each worker's torch would use every core: N workers on the same cores
    # oversubscribe them (3x slower epochs measured with 2 CPU workers on 2
    # cores, docs/benchmarks.md). torchrun sets 1; a share of the cores keeps
    # one worker per host as fast as a plain run. The user's setting wins.
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // processes)))
    # The launcher logs each failure with a traceback and each signal it
    # forwards (its module loggers carry their own WARNING level): _failure
    # and WorkersInterrupted say it in one line.
    for name in list(logging.Logger.manager.loggerDict):
        if name.startswith(("torch.distributed.elastic", "torch.multiprocessing", "torch.distributed.launcher")):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    with tempfile.TemporaryDirectory(prefix="portaclass-launch-") as scratch:
        payload = {**payload, "result_path": os.path.join(scratch, "result.json")}
        payload_path = os.path.join(scratch, "payload.json")
        with open(payload_path, "w") as handle:
            json.dump(payload, handle)
        try:
            elastic_launch(launch_config, sys.executable)("-m", "portaclass.train.distributed.worker",
                                                          payload_path)
        except ChildFailedError as failed:
            raise _failure(failed, run_dir) from None
        except SignalException as stopped:  # Ctrl-C reaches the launcher (the workers have sessions of their own)
            raise WorkersInterrupted(
                f"interrupted ({signal.Signals(stopped.sigval).name}); the launcher stopped the workers. "
                f"The run keeps its last complete checkpoint: portaclass train --resume {run_dir}") from None
        except PortaclassError:
            raise
        except Exception as error:  # the rendezvous: peers that never came
            if "timed out" in str(error).lower() or "timeout" in type(error).__name__.lower():
                raise DistributedError(f"the other hosts did not join at {endpoint} within {timeout:g} s "
                                       "(--peer-timeout)") from None
            raise
        if not os.path.exists(payload["result_path"]):
            return None
        with open(payload["result_path"]) as handle:
            return json.load(handle)


# what gloo and the TCP store say when the process at the other end is gone
_LOST_PEER = ("connection reset by peer", "connection closed by peer", "broken pipe", "connection refused",
              "socket timeout", "timed out")


def report_worker_error(error: Exception) -> None:
    """One line on stderr for an unexpected error in a worker. When a peer
    was lost (killed, crashed), wait a moment first: on this host the
    launcher then sees the dead worker before this one and names it."""
    text = (str(error).strip().splitlines() or [type(error).__name__])[0]
    rank = os.environ.get("RANK", "?")
    if any(sign in text.lower() for sign in _LOST_PEER):
        time.sleep(3)  # the launcher stops this process first if the dead worker was local
        message = ("lost contact with another worker process (it stopped, was killed or its host is "
                   f"unreachable: {text[:160]})")
    else:
        message = f"{type(error).__name__}: {text[:300]}"
    print(f"error (rank {rank}): {message}; the run keeps its last complete checkpoint "
          "(portaclass train --resume RUN_DIR)", file=sys.stderr, flush=True)


def _failure(failed, run_dir: str) -> PortaclassError:
    """The error of a run whose worker failed: a worker that ended with a
    portaclass exit code already said why (rank 0 printed it); one killed
    or crashed is named."""
    # the launcher ends the surviving workers with SIGTERM: the cause is the
    # first failure that was not one of those
    rank, failure = min(failed.failures.items(),
                        key=lambda item: (item[1].exitcode == -signal.SIGTERM, item[1].timestamp, item[0]))
    code = failure.exitcode
    if code in (1, 2, 130):
        error = PortaclassError("")  # an empty message: the CLI exits with the code, saying nothing more
        error.exit_code = code
        return error
    how = f"was killed ({signal.Signals(-code).name})" if code < 0 else f"exited with code {code}"
    return DistributedError(f"worker rank {rank} {how}; the other workers were stopped. "
                            "The run keeps its last complete checkpoint: resume it with "
                            f"portaclass train --resume {run_dir}")
