"""How the backends' processes of one parity run wait for each other: each
leaves a small JSON file in the run's folder when it has done a phase
(``<phase>-<backend>.json``), or ``failed-<backend>.json`` when it cannot
go on (written by the process itself, or by the runner when the process
died), and the others poll for them. One process per backend then does all
its work (measuring, and loading the other backends' files) with its
framework loaded and its compiled programs cached once.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

POLL_S = 0.1


def _write(path: Path, content: dict) -> None:
    """Write ``path`` whole or not at all (a reader never sees half a file)."""
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(content))
    os.replace(partial, path)


def signal_done(folder: Path, phase: str, backend: str, info: dict | None = None) -> None:
    """``backend`` has done ``phase``; ``info`` goes to whoever waits for it."""
    _write(Path(folder) / f"{phase}-{backend}.json", {"info": info or {}})


def has_done(folder: Path, phase: str, backend: str) -> bool:
    return (Path(folder) / f"{phase}-{backend}.json").exists()


def signal_failed(folder: Path, backend: str, reason: str) -> None:
    """``backend`` stops here: nobody should wait for its later phases."""
    path = Path(folder) / f"failed-{backend}.json"
    if not path.exists():
        _write(path, {"reason": reason})


def wait_for(folder: Path, phase: str, backends, timeout_s: float) -> dict:
    """``{backend: its info}`` once each of ``backends`` has done ``phase``,
    or ``{"failed": reason}`` for one that failed; TimeoutError after ``timeout_s``."""
    folder, pending, found = Path(folder), list(backends), {}
    deadline = time.monotonic() + timeout_s
    while pending:
        for backend in list(pending):
            done, failed = folder / f"{phase}-{backend}.json", folder / f"failed-{backend}.json"
            if done.exists():
                found[backend] = json.loads(done.read_text())["info"]
            elif failed.exists():
                found[backend] = {"failed": json.loads(failed.read_text())["reason"]}
            else:
                continue
            pending.remove(backend)
        if pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {timeout_s:.0f} s for {', '.join(pending)} to finish {phase}")
            time.sleep(POLL_S)
    return found
