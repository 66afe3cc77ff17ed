"""``--config FILE``: TOML with the flags' names; flags override the file;
unknown keys and bad files are one line naming them."""

from __future__ import annotations

import pytest

from portaclass.errors import UsageError
from portaclass.train.config_file import read_config_file


def write(tmp_path, text):
    path = tmp_path / "train.toml"
    path.write_text(text)
    return path


def test_keys_are_the_flags_names_with_or_without_dashes(tmp_path):
    path = write(tmp_path, 'data = "shapes"\nbatch-size = 64\nlr = 0.01\nfine_tune_epochs = 2\n'
                           'schedule = "step"\nstep-size = 3\nnesterov = true\n')
    assert read_config_file(path) == {"data": "shapes", "batch_size": 64, "learning_rate": 0.01,
                                      "fine_tune_epochs": 2, "schedule": "step", "step_size": 3,
                                      "nesterov": True}


def test_an_unknown_key_names_the_closest_valid_one(tmp_path):
    with pytest.raises(UsageError, match=r"unknown option 'batchsize'.*did you mean 'batch[-_]size'"):
        read_config_file(write(tmp_path, "batchsize = 64\n"))
    with pytest.raises(UsageError, match="unknown option 'zzz'$"):
        read_config_file(write(tmp_path, "zzz = 1\n"))


def test_a_file_that_is_not_toml_is_one_line_naming_it(tmp_path):
    path = write(tmp_path, "epochs = = 3\n")
    with pytest.raises(UsageError, match="train.toml is not valid TOML") as info:
        read_config_file(path)
    assert "\n" not in str(info.value)
    with pytest.raises(UsageError, match="nope.toml"):
        read_config_file(tmp_path / "nope.toml")
    with pytest.raises(UsageError, match="is a table"):
        read_config_file(write(tmp_path, "[optimizer]\nname = 'sgd'\n"))


def test_flags_override_the_file_and_unset_options_keep_their_defaults(tmp_path, monkeypatch):
    import portaclass.train.runner as runner
    from portaclass.cli import main

    seen = {}

    def capture(options, log=print, **kwargs):
        seen["options"] = options
        return runner.TrainResult(tmp_path, "none", {"accuracy": None, "seconds": 0.0})

    monkeypatch.setattr(runner, "run_training", capture)
    path = write(tmp_path, 'data = "shapes"\nepochs = 4\nlr = 0.01\noptimizer = "sgd"\n')
    assert main(["train", "--config", str(path), "--epochs", "2", "--quiet"]) == 0
    options = seen["options"]
    assert options.data == "shapes" and options.optimizer == "sgd" and options.learning_rate == 0.01
    assert options.epochs == 2  # the flag wins
    assert options.batch_size == 32 and options.schedule == "constant"  # TrainOptions' defaults
