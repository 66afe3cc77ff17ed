"""The validation pre-pass: find every file that will not decode, before
epoch 1, on all cores, remembering results by (path, size, mtime) so a second
run over the same folder starts fast."""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from portaclass import config
from portaclass.data import decode
from portaclass.data.decode import DEFAULT_MAX_PIXELS

CACHE_VERSION = 1


def cache_file(root: Path, cache_dir: Path, max_pixels: int) -> Path:
    # One file per data folder and pixel limit: a different limit changes verdicts.
    key = hashlib.sha1(f"{root.resolve()}|{max_pixels}".encode()).hexdigest()[:16]
    return cache_dir / f"scan-{key}.json"


def _load_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if data.get("version") != CACHE_VERSION:
        return {}
    return data.get("files", {})


def _save_cache(path: Path, entries: dict) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps({"version": CACHE_VERSION, "files": entries}))
        os.replace(tmp, path)  # atomic, so a concurrent run never reads half a file
    except OSError:
        pass  # the cache only saves time; an unwritable cache dir is not an error


def _signature(path: Path) -> list[int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return [stat.st_size, stat.st_mtime_ns]


def find_bad_files(
    root: Path,
    paths: list[Path],
    cache_dir: str | os.PathLike | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    workers: int | None = None,
) -> dict[Path, str]:
    """``{path: reason}`` for each file in ``paths`` that does not decode.

    Files whose (size, mtime) match the cache are not opened again. Pillow
    releases the GIL while decoding, so threads use all cores.
    """
    cache_path = cache_file(root, Path(cache_dir) if cache_dir else config.cache_dir(), max_pixels)
    cached = _load_cache(cache_path)
    entries: dict[str, dict] = {}
    bad: dict[Path, str] = {}
    to_check: list[tuple[Path, list[int]]] = []
    for path in paths:
        signature = _signature(path)
        if signature is None:
            bad[path] = "file disappeared during the scan"
            continue
        key = str(path.resolve())
        hit = cached.get(key)
        if hit is not None and hit["sig"] == signature:
            entries[key] = hit
            if hit["reason"]:
                bad[path] = hit["reason"]
        else:
            to_check.append((path, signature))
    if to_check:
        workers = workers or os.cpu_count() or 1
        with ThreadPoolExecutor(max_workers=workers) as pool:
            reasons = list(pool.map(lambda p: decode.check_image(p, max_pixels), [p for p, _ in to_check]))
        for (path, signature), reason in zip(to_check, reasons):
            entries[str(path.resolve())] = {"sig": signature, "reason": reason}
            if reason:
                bad[path] = reason
    if to_check or len(entries) != len(cached):
        _save_cache(cache_path, {**cached, **entries})
    return bad
