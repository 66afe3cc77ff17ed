"""``portaclass serve``: check, bind, load, warm up, then hand the socket to
uvicorn.

The port is bound (not yet listening) before the model loads, so a port in
use is reported at once; the socket listens only once the model has loaded
and run every batch shape, so no client ever reaches a half-started server or
pays for a compile. SIGTERM and Ctrl-C stop uvicorn gracefully: no new
connections, requests in flight answered, the batcher drained; SIGTERM then
exits 0 (uvicorn re-raises the signal it caught, which would otherwise kill
the process with -15).

``--workers N`` runs N uvicorn worker processes on the same socket, each
loading its own copy of the model (``app_from_environment``); /metrics then
counts per worker.
"""

from __future__ import annotations

import errno
import gc
import json
import os
import signal
import socket
import sys
import time
from contextlib import contextmanager

from portaclass.errors import UsageError
from portaclass.serve.options import ServeOptions

OPTIONS_VARIABLE = "PORTACLASS_SERVE_OPTIONS"
GRACEFUL_SHUTDOWN_S = 30
LISTEN_BACKLOG = 2048
SERVER_MODULES = ("fastapi", "uvicorn", "prometheus_client", "python_multipart")


def serve(options: ServeOptions, *, log=print) -> None:
    """Serve ``options.source`` until SIGTERM or Ctrl-C (KeyboardInterrupt)."""
    _check_installed()
    import uvicorn

    sock = bind_socket(options.host, options.port)
    try:
        if options.workers == 1:
            app, served = _loaded_app(options, log)
            # Listening before the address is printed: a client that reads the line and
            # connects at once was refused while uvicorn was still starting (seen in CI).
            sock.listen(LISTEN_BACKLOG)
            _announce(options, sock, served.runtime, log)
            config = uvicorn.Config(app, log_level="warning", lifespan="on",
                                    timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S)
            with _sigterm_ends_cleanly():
                uvicorn.Server(config).run(sockets=[sock])
        else:
            _check_before_workers(options)
            # The workers are spawned: they inherit KERAS_BACKEND (config.use_backend set it)
            # and the socket, by descriptor (uvicorn's public way to serve a socket made here).
            os.environ[OPTIONS_VARIABLE] = json.dumps(options.to_dict())
            # Listening now: connections wait in the backlog until a worker has loaded the model.
            sock.listen(LISTEN_BACKLOG)
            _announce(options, sock, f"{options.workers} workers; requests wait until one has loaded", log)
            with _sigterm_ends_cleanly():
                uvicorn.run("portaclass.serve.server:app_from_environment", factory=True, fd=sock.fileno(),
                            workers=options.workers, log_level="warning", lifespan="on",
                            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S)
    finally:
        sock.close()


def _check_installed() -> None:
    import importlib.util

    missing = [module for module in SERVER_MODULES if importlib.util.find_spec(module) is None]
    if missing:
        raise UsageError(f"serve needs {', '.join(missing)}: pip install 'portaclass[serve]'")


def app_from_environment():
    """The application of one ``--workers`` process (uvicorn's factory)."""
    options = ServeOptions(**json.loads(os.environ[OPTIONS_VARIABLE]))
    app, _ = _loaded_app(options, lambda line: print(f"[worker {os.getpid()}] {line}", file=sys.stderr, flush=True))
    return app


def bind_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (host, port), not yet listening; a UsageError
    naming the port or host when that is impossible."""
    try:
        family, kind, proto = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][:3]
    except socket.gaierror as error:
        raise UsageError.for_option("host", f"{host!r} cannot be resolved: {error.strerror}") from None
    # proto=IPPROTO_TCP matters: asyncio turns Nagle's algorithm off only on sockets that say
    # so, and with it on every small response waited ~40 ms for a delayed ACK (measured).
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restart right after a stop
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        reason = "is in use by another process" if error.errno == errno.EADDRINUSE else f"cannot be bound: {error.strerror}"
        raise UsageError.for_option("port", f"{port} on {host} {reason}") from None
    sock.set_inheritable(True)  # --workers: the worker processes serve on it
    return sock


def _loaded_app(options: ServeOptions, log):
    from portaclass.serve.app import create_app
    from portaclass.serve.served_model import load_served_model

    started = time.perf_counter()
    served = load_served_model(options, log)
    shapes = served.warm_up()
    # The frameworks leave millions of long-lived objects; a full collection
    # walking them stalled every request in flight for ~350 ms, once per few
    # thousand requests (p99 4x the median at 32 clients). Frozen objects are
    # never walked again; what requests allocate is still collected.
    gc.collect()
    gc.freeze()
    log(f"loaded {served.classifier.source} on {served.runtime} and ran batch shapes "
        f"{', '.join(map(str, shapes))} in {time.perf_counter() - started:.1f} s")
    return create_app(served, options), served


def _check_before_workers(options: ServeOptions) -> None:
    """What the parent can check without loading the model the workers load."""
    from pathlib import Path

    from portaclass.export.exported import is_exported_file, load_exported
    from portaclass.export.run_export import source_model_file
    from portaclass.model_files import check_keras_archive

    source = Path(options.source).expanduser()
    if is_exported_file(source):
        load_exported(source)
    else:
        check_keras_archive(source_model_file(source), unsafe=options.unsafe)


def _announce(options: ServeOptions, sock: socket.socket, runtime: str, log) -> None:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    log(f"serving {options.model_name} ({runtime}) at http://{shown}:{port}/v1/models/{options.model_name} "
        f"(max batch {options.max_batch}, max wait {options.max_wait_ms:g} ms); SIGTERM or Ctrl-C stops")


@contextmanager
def _sigterm_ends_cleanly():
    """While uvicorn runs, a SIGTERM it re-raises after its graceful stop
    lands here instead of killing the process."""
    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
