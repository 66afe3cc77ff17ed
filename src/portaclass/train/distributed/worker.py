"""``python -m portaclass.train.distributed.worker PAYLOAD.json``: one worker
process of a PyTorch run on several devices, as torch's launcher starts it
(``launch.py``).

A command rather than a function: the workers are plain subprocesses, so a
user's script that calls ``portaclass.train(devices=2)`` is not imported
again in each of them (multiprocessing's spawn would).
"""

from __future__ import annotations

import json
import os
import sys


def _silent(_line: str) -> None:
    pass


def run_worker(payload: dict) -> dict | None:
    """Train (or resume) as the launching command would; rank 0's result
    (None on the other ranks). On failure, exit with the command's error
    code, so the launcher stops the other workers."""
    from portaclass import config

    if payload.get("command_line"):
        config.start_command_line_process()
    config.use_backend("torch", reason=payload.get("backend_choice"))
    from portaclass.errors import PortaclassError, UsageError
    from portaclass.train.distributed.launch import report_worker_error
    from portaclass.train.options import TrainOptions
    from portaclass.train.runner import resume_training, run_training
    from portaclass.train.session import TrainingFailed, TrainingStopped

    chief = os.environ.get("RANK", "0") == "0"
    quiet = payload["options"]["quiet"] if payload["kind"] == "train" else payload["quiet"]
    log = print if chief and not quiet else _silent
    try:
        if payload["kind"] == "train":
            result = run_training(TrainOptions(**payload["options"]), log=log, command=payload["command"])
        else:
            result = resume_training(payload["run_dir"], given=payload["given"], quiet=payload["quiet"], log=log)
    except PortaclassError as error:
        # every rank meets a bad option, a diverged loss or Ctrl-C alike: rank 0 says it once
        if chief or not isinstance(error, (UsageError, TrainingFailed, TrainingStopped)):
            from portaclass.cli import cli_flag

            message = error.with_flags(cli_flag) if isinstance(error, UsageError) else str(error)
            where = "" if chief else f" (rank {os.environ.get('RANK')})"
            print(f"error{where}: {message}", file=sys.stderr, flush=True)
        _leave(error.exit_code)
    except Exception as error:  # a peer lost mid-collective (gloo), or a bug: named, one line
        if os.environ.get("PORTACLASS_DEBUG") == "1":
            raise
        report_worker_error(error)
        _leave(1)
    if not chief:
        return None
    return {"run_dir": str(result.run_dir), "backend": result.backend, "metrics": result.metrics}


def _leave(code: int) -> None:
    """Exit now. Gloo's and the rendezvous store's C++ threads can abort the
    interpreter's teardown once the peers are gone ("terminate called
    without an active exception", seen 1 run in 3 over loopback); whatever
    the run had to keep is written by then."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(payload_path: str) -> None:
    with open(payload_path) as handle:
        payload = json.load(handle)
    result = run_worker(payload)
    if result is not None and payload.get("result_path"):
        with open(payload["result_path"], "w") as handle:
            json.dump(result, handle)
    _leave(0)


if __name__ == "__main__":
    main(sys.argv[1])
