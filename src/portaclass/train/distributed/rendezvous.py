"""A bounded roll call before ``jax.distributed.initialize``.

JAX's coordination service ends the process with a C++ check failure (and
a page of stack trace) when a peer never registers, after its own timeout.
So the processes first meet here, over plain TCP on the coordinator's own
port before the engine takes it: process 0 waits for every other one to
report, then tells them all to go; a process that is missing by
``timeout`` is named in a one-line error and nothing has started yet.
(TensorFlow's MultiWorkerMirroredStrategy waits for missing workers without
a bound: it meets here too, at worker 0's address.)
"""

from __future__ import annotations

import socket
import time

from portaclass.train.distributed import DistributedError, Hosts

_GO = b"go\n"


def roll_call(hosts: Hosts) -> None:
    """Return once all ``hosts.num_processes`` processes are here; raise
    DistributedError naming who is missing after ``hosts.timeout`` seconds."""
    if hosts.num_processes == 1:
        return
    host, port = hosts.address
    deadline = time.monotonic() + hosts.timeout
    if hosts.process_id == 0:
        _host_roll_call(port, hosts, deadline)
    else:
        _answer_roll_call(host, port, hosts, deadline)


def _host_roll_call(port: int, hosts: Hosts, deadline: float) -> None:
    joined: dict[int, socket.socket] = {}
    with socket.create_server(("", port), reuse_port=False) as server:
        while len(joined) < hosts.num_processes - 1:
            server.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                peer, _ = server.accept()
            except TimeoutError:
                missing = sorted(set(range(1, hosts.num_processes)) - set(joined))
                who = f"process{'es' if len(missing) > 1 else ''} {', '.join(map(str, missing))}"
                raise DistributedError(
                    f"process 0: {who} of {hosts.num_processes} did not "
                    f"join at port {port} within {hosts.timeout:g} s (--peer-timeout)") from None
            peer.settimeout(5)
            try:
                joined[int(peer.makefile().readline().strip())] = peer
            except (ValueError, OSError):
                peer.close()  # not one of ours (a port scan): keep listening
        for peer in joined.values():
            with peer:
                peer.sendall(_GO)


def _answer_roll_call(host: str, port: int, hosts: Hosts, deadline: float) -> None:
    while True:
        try:
            with socket.create_connection((host, port), timeout=max(0.01, deadline - time.monotonic())) as link:
                link.sendall(f"{hosts.process_id}\n".encode())
                link.settimeout(max(0.01, deadline - time.monotonic()))
                if link.makefile("rb").readline() == _GO:
                    return
        except (ConnectionRefusedError, TimeoutError, OSError):
            pass
        if time.monotonic() >= deadline:
            raise DistributedError(
                f"process {hosts.process_id}: process 0 did not call the roll at {host}:{port} within "
                f"{hosts.timeout:g} s (--peer-timeout; is its address right, and is it running?)")
        time.sleep(0.2)
