"""Backend choice: precedence, validation, and no framework on import."""

from __future__ import annotations

import json

import pytest

from portaclass import config
from portaclass.errors import BackendError
from tests.helpers import BACKENDS, run_python


@pytest.fixture
def clean_env(monkeypatch):
    """No backend variables set, and keras treated as not yet imported."""
    monkeypatch.delenv("PORTACLASS_BACKEND", raising=False)
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    monkeypatch.setattr(config, "_loaded_keras_backend", lambda: None)
    return monkeypatch


def test_explicit_choice_beats_both_environment_variables(clean_env):
    clean_env.setenv("PORTACLASS_BACKEND", "jax")
    clean_env.setenv("KERAS_BACKEND", "tensorflow")
    assert config.requested_backend("torch") == "torch"


def test_portaclass_backend_beats_keras_backend(clean_env):
    clean_env.setenv("PORTACLASS_BACKEND", "jax")
    clean_env.setenv("KERAS_BACKEND", "tensorflow")
    assert config.requested_backend(None) == "jax"


def test_keras_backend_used_when_nothing_else_is_set(clean_env):
    clean_env.setenv("KERAS_BACKEND", "tensorflow")
    assert config.requested_backend(None) == "tensorflow"
    assert config.requested_backend("auto") == "tensorflow"


def test_unknown_backend_names_the_value_and_its_source(clean_env):
    with pytest.raises(BackendError, match=r"'nope'.*--backend"):
        config.requested_backend("nope")
    clean_env.setenv("PORTACLASS_BACKEND", "numpyy")
    with pytest.raises(BackendError, match="PORTACLASS_BACKEND"):
        config.requested_backend(None)


def test_switching_after_keras_is_loaded_says_how_to_fix(backend_name):
    import keras  # noqa: F401  (loaded with the backend under test)

    other = next(b for b in BACKENDS if b != backend_name)
    with pytest.raises(BackendError) as info:
        config.use_backend(other)
    message = str(info.value)
    assert backend_name in message and other in message and "KERAS_BACKEND" in message
    assert config.use_backend(backend_name) == backend_name


def test_backend_not_installed_says_what_to_install(clean_env, monkeypatch):
    monkeypatch.setattr(config, "is_installed", lambda name: name != "jax")
    with pytest.raises(BackendError, match=r"pip install 'portaclass\[jax\]'"):
        config.use_backend("jax")


@pytest.mark.parametrize("backend", BACKENDS)
def test_auto_prefers_torch_then_jax_then_tensorflow(clean_env, monkeypatch, backend):
    # Only ``backend`` "installed": auto must fall back to it.
    monkeypatch.setattr(config, "is_installed", lambda name: name == backend)
    assert config.requested_backend("auto") == backend


def test_import_and_help_load_no_framework(backend_name):
    result = run_python(
        """
        import json, sys
        import portaclass
        from typer.testing import CliRunner
        from portaclass.cli import app
        out = CliRunner().invoke(app, ["--help"])
        assert out.exit_code == 0, out.output
        assert "quickstart" in out.output
        print(json.dumps(sorted(m for m in ("keras", "tensorflow", "torch", "jax") if m in sys.modules)))
        """,
        backend_name,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
