"""The command line: one-line errors with exit code 2, help, devices."""

from __future__ import annotations

import pytest

from tests.helpers import run_cli


def test_unknown_backend_is_one_line_and_exit_code_2():
    result = run_cli(["quickstart", "--backend", "nope"])
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "nope" in lines[0]
    assert "Traceback" not in result.stderr


def test_debug_shows_the_traceback():
    result = run_cli(["quickstart", "--backend", "nope", "--debug"])
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "BackendError" in result.stderr


def test_bad_epochs_names_the_option(tmp_path, backend_name):
    result = run_cli(["quickstart", "--epochs", "0", "--out", str(tmp_path / "run")], backend_name)
    assert result.returncode == 2
    assert "--epochs" in result.stderr.strip().splitlines()[-1]


def test_python_dash_m_shows_the_commands():
    result = run_cli(["--help"])
    assert result.returncode == 0
    for command in ("quickstart", "train", "preview", "models", "devices"):
        assert command in result.stdout


@pytest.mark.parametrize("env_var", ["PORTACLASS_BACKEND", "KERAS_BACKEND"])
def test_devices_lists_the_cpu_on_the_backend_from_the_environment(backend_name, env_var):
    result = run_cli(["devices"], backend_name, **{env_var: backend_name})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{backend_name}\tcpu:0")


def test_preview_writes_a_png_grid(tmp_path, backend_name):
    from PIL import Image

    out = tmp_path / "grid.png"
    result = run_cli(["preview", "--data", "shapes", "--augment", "strong", "--count", "4",
                      "--image-size", "32", "--out", str(out)], backend_name)
    assert result.returncode == 0, result.stderr[-2000:]
    with Image.open(out) as image:
        assert image.format == "PNG" and min(image.size) >= 100


def test_preview_with_unknown_preset_is_one_line(tmp_path, backend_name):
    result = run_cli(["preview", "--data", "shapes", "--augment", "wild", "--out",
                      str(tmp_path / "g.png")], backend_name)
    assert result.returncode == 2
    assert "wild" in result.stderr.strip().splitlines()[-1]
