"""Shared test plumbing: the backend under test and GPU skipping. Helpers for
running code under another backend live in tests/helpers.py."""

from __future__ import annotations

import os

import pytest

import portaclass

portaclass.use_backend(os.environ.get("KERAS_BACKEND") or None)


def pytest_collection_modifyitems(config, items):
    gpu_items = [item for item in items if "gpu" in item.keywords]
    if not gpu_items:
        return
    from portaclass import backend

    if not backend.has_gpu():
        skip = pytest.mark.skip(reason=f"no GPU visible to the {backend.NAME} backend")
        for item in gpu_items:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def backend_name() -> str:
    return portaclass.active_backend()


