"""``portaclass train --distributed-help``: the launch lines of a data-parallel
run for one backend, on one host and on several (docs/distributed.md has
the why)."""

from __future__ import annotations

_ONE_HOST = "portaclass train --backend {backend} --data DATA --devices all        # or --devices N"

_LINES = {
    "jax": """\
# one host: keras.distribution.DataParallel over its devices
{one_host}
# several hosts: the same command on each, with its own --process-id
# (jax.distributed.initialize; process 0 writes the run, every host uses all its devices)
portaclass train --backend jax --data DATA --coordinator HOST0:29400 --num-processes 2 --process-id 0
portaclass train --backend jax --data DATA --coordinator HOST0:29400 --num-processes 2 --process-id 1
# the same from the environment: PORTACLASS_COORDINATOR, PORTACLASS_NUM_PROCESSES, PORTACLASS_PROCESS_ID""",
    "torch": """\
# one host: DistributedDataParallel, one worker process per device (gloo on CPU, NCCL on GPU)
{one_host}
# several hosts: the same command on each, with its own --process-id (a static
# rendezvous at HOST0's port, as torchrun's --node-rank; process 0's rank 0 writes the run)
portaclass train --backend torch --data DATA --devices 8 --coordinator HOST0:29500 --num-processes 2 --process-id 0
portaclass train --backend torch --data DATA --devices 8 --coordinator HOST0:29500 --num-processes 2 --process-id 1
# or torchrun itself, on each host (K = 0, 1; the host with rank 0 writes the run)
torchrun --nnodes 2 --nproc-per-node 8 --node-rank K --master-addr HOST0 --master-port 29500 \\
    -m portaclass train --backend torch --data DATA""",
    "tensorflow": """\
# one host: tf.distribute.MirroredStrategy over its devices
{one_host}
# several hosts: MultiWorkerMirroredStrategy reads TF_CONFIG; set it on each host with its
# own index (worker 0 writes the run), then run the same command everywhere
export TF_CONFIG='{{"cluster": {{"worker": ["HOST0:12345", "HOST1:12345"]}}, "task": {{"type": "worker", "index": 0}}}}'
portaclass train --backend tensorflow --data DATA""",
}

_COMMON = """\
# --batch-size is the global batch, split over the devices; the learning rate is not
# rescaled unless --scale-lr linear. Without GPUs, PORTACLASS_CPU_DEVICES=2 splits the CPU
# into 2 virtual devices to try a distributed run. --peer-timeout bounds the wait for peers."""


def launch_lines(backend: str) -> str:
    """The launch lines for ``backend`` (tensorflow, torch or jax)."""
    body = _LINES[backend].format(one_host=_ONE_HOST.format(backend=backend))
    return f"{body}\n{_COMMON}"
