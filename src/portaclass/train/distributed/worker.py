"""``python -m portaclass.train.distributed.worker PAYLOAD.json``: one worker
process of a PyTorch run on several devices, as torch's launcher starts it.

A command rather than a function: the workers are plain subprocesses, so a
user's script that calls ``portaclass.train(devices=2)`` is not imported
again in each of them (multiprocessing's spawn would).
"""

from __future__ import annotations

import json
import os
import sys


def main(payload_path: str) -> None:
    with open(payload_path) as handle:
        payload = json.load(handle)
    from portaclass.train.runner import worker_main

    result = worker_main(payload)
    if result is not None and payload.get("result_path"):
        with open(payload["result_path"], "w") as handle:
            json.dump(result, handle)
    sys.stdout.flush()
    sys.stderr.flush()
    # Gloo's and the rendezvous store's C++ threads can abort the interpreter's
    # teardown once the peers are gone ("terminate called without an active
    # exception", seen 1 run in 3 over loopback); the work is done and saved.
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1])
