"""The command line: one-line errors with exit code 2, help, devices."""

from __future__ import annotations

import json

import pytest

from tests.helpers import run_cli, run_python


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


# Which variable wins is decided before any backend loads: one backend checks PORTACLASS_BACKEND.
@pytest.mark.parametrize("env_var", [pytest.param("PORTACLASS_BACKEND", marks=pytest.mark.one_backend),
                                     "KERAS_BACKEND"])
def test_devices_lists_the_cpu_on_the_backend_from_the_environment(backend_name, env_var):
    result = run_cli(["devices"], backend_name, **{env_var: backend_name})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{backend_name}\tcpu:0")


@pytest.mark.one_backend  # the augmentation itself: tests/data/test_augment.py, every backend
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


MISUSES = [
    (["--seed", "-5"], "--seed"),
    (["--unfreeze", "bogus", "--fine-tune-epochs", "1"], "--unfreeze"),
    (["--lr", "0"], "--lr"),
    (["--val-split", "1.5"], "--val-split"),
    (["--dropout", "2"], "--dropout"),
    (["--base-batchnorm", "sometimes"], "--base-batchnorm"),
    (["--schedule", "zigzag"], "--schedule"),
    (["--channels", "2"], "--channels"),
    (["--model", "resnet99"], "--model"),
]


def test_train_misuse_is_one_line_naming_the_flag_before_any_framework_loads(tmp_path, backend_name):
    """Each misuse in-process, in one fresh interpreter: exit code 2, one
    line naming the flag, no run folder, and no framework imported."""
    cases = [(["train", "--data", "digits", *args, "--out", str(tmp_path / f"run{i}")], flag)
             for i, (args, flag) in enumerate(MISUSES)]
    result = run_python(
        f"""
        import contextlib, io, json, sys
        from portaclass.cli import main
        out = []
        for argv, flag in {cases!r}:
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                code = main(argv)
            out.append([code, err.getvalue(), flag])
        loaded = [m for m in ("keras", "tensorflow", "torch", "jax") if m in sys.modules]
        print(json.dumps({{"results": out, "loaded": loaded}}))
        """,
        backend_name,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    for code, stderr, flag in report["results"]:
        lines = stderr.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith(f"error: {flag} "), stderr
    assert report["loaded"] == []
    assert not any(tmp_path.iterdir())  # no run folder was made


def test_train_help_states_each_default_once_and_describes_the_presets():
    from portaclass.data.constants import PRESET_DESCRIPTIONS

    result = run_cli(["train", "--help"], COLUMNS="200")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.replace("│", " ").split())  # unwrap Rich's help panel
    for description in PRESET_DESCRIPTIONS.values():
        assert " ".join(description.split()) in text
    assert "--dropout" in text and "--lr" in text and "--schedule" in text
    assert "[default: 0.001]" in text  # the learning rate's default, from TrainOptions
