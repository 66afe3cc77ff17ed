"""PyTorch: ``torch.nn.parallel.DistributedDataParallel``, one process per
device (``launch.py`` starts them, or ``torchrun`` does).

A Keras model on the torch backend is a ``torch.nn.Module`` whose variables
are its parameters, so DDP wraps it as it is: the training step runs the
forward pass through the wrapper, and DDP's hooks all-reduce the gradients
during ``backward``. Keras' own step calls the model directly, so the step
is replaced on the model object (not its class: the saved file stays a
plain Keras model). What DDP leaves per process is evened out here:

* metrics: every process counts its own share, so the totals behind each
  reported metric are summed over processes first (one small all-reduce
  per step) and every process logs, stops early and checkpoints on the same
  global figures;
* BatchNorm's moving statistics (parameters without gradients, which DDP
  does not touch): averaged before each validation and checkpoint.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import types

import keras
import torch
import torch.distributed as dist

from portaclass.train.distributed import (
    DistributedError,
    Hosts,
    Topology,
    differing,
    fingerprint,
    state_variables,
)

ENGINE = "torch DistributedDataParallel"


def start(devices, hosts: Hosts | None, timeout: float) -> Topology:
    """Join the process group this process was launched into."""
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    gpu = torch.cuda.is_available()
    if gpu:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        try:
            dist.init_process_group("nccl" if gpu else "gloo", timeout=datetime.timedelta(seconds=timeout))
        except Exception as error:  # torch raises DistStoreError/RuntimeError for a missing peer
            raise DistributedError(f"rank {rank} of {world}: the other processes did not join within "
                                   f"{timeout:g} s ({str(error).splitlines()[0][:160]})") from None
    backend = dist.get_backend()
    return Topology(replicas=world, processes=world, process_index=rank,
                    device_kind="gpu" if gpu else "cpu", engine=f"{ENGINE}, {backend}")


def scope():
    return contextlib.nullcontext()


def prepare(model) -> None:
    """Wrap ``model`` (compiled) in DDP and route its steps through it.
    Called after every compile: DDP registers its hooks on the parameters
    that need gradients when it is made, and phase 2 unfreezes some."""
    device = [torch.cuda.current_device()] if torch.cuda.is_available() else None
    wrapper = torch.nn.parallel.DistributedDataParallel(model, device_ids=device)
    model.train_step = types.MethodType(_step_through(wrapper), model)
    if "get_metrics_result" not in vars(model):
        model.get_metrics_result = types.MethodType(_global_metrics(type(model).get_metrics_result), model)


def _step_through(wrapper):
    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        self.zero_grad()
        y_pred = wrapper(x, training=True)
        loss = self._compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
        self._loss_tracker.update_state(loss, sample_weight=x.shape[0])
        if self.optimizer is not None:
            loss = self.optimizer.scale_loss(loss)
        if self.trainable_weights:
            loss.backward()  # DDP's hooks average the gradients over the processes here
            weights = self.trainable_weights[:]
            with torch.no_grad():
                self.optimizer.apply([w.value.grad for w in weights], weights)
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    return train_step


def _global_metrics(local_result):
    """``get_metrics_result`` computed from the metric totals of all
    processes (Keras' metrics keep sums and counts, so summing them is exact)."""

    def get_metrics_result(self):
        variables = self.metrics_variables
        if not variables:
            return local_result(self)
        mine = [v.value.detach().clone() for v in variables]
        for variable, total in zip(variables, _summed(mine)):
            variable.assign(total)
        try:
            return local_result(self)
        finally:
            for variable, value in zip(variables, mine):
                variable.assign(value)

    return get_metrics_result


def _summed(tensors: list) -> list:
    """Each tensor summed over the processes, in one all-reduce."""
    flat = torch.cat([t.detach().reshape(-1).to(torch.float64) for t in tensors])
    dist.all_reduce(flat)
    out, offset = [], 0
    for tensor in tensors:
        out.append(flat[offset:offset + tensor.numel()].reshape(tensor.shape).to(tensor.dtype))
        offset += tensor.numel()
    return out


def average_statistics(model) -> None:
    """Non-trainable float variables (BatchNorm's moving statistics) take
    the mean over the processes."""
    statistics = [v for v in model.non_trainable_variables if v.dtype.startswith("float")]
    if not statistics:
        return
    world = dist.get_world_size()
    with torch.no_grad():
        for variable, total in zip(statistics, _summed([v.value for v in statistics])):
            variable.assign(total / world)


def unsynced_variables(model) -> list[str]:
    variables = state_variables(model)
    prints = [fingerprint(keras.ops.convert_to_numpy(v.value)) for v in variables]
    every = [None] * dist.get_world_size()
    dist.all_gather_object(every, prints)
    return differing(variables, every)


def finish(clean: bool = False) -> None:
    """Leave the process group; after a clean run, together (a process that
    tears its connections down while a peer still reads from them aborts
    the peer's exit: "terminate called without an active exception")."""
    if dist.is_initialized():
        if clean:
            dist.barrier()
        dist.destroy_process_group()
