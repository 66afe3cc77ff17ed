"""`portaclass train` end to end: a real folder salted with bad files trains
to the end, the run directory records what was skipped, and bad input is a
one-line error with exit code 2."""

from __future__ import annotations

import csv
import json

import pytest

from portaclass.run import Run
from tests.helpers import run_cli, saved_model_accuracy

BAD_FILES = {
    "circle/truncated.jpg": "truncated",
    "circle/empty.png": "zero bytes",
    "square/notes.jpg": "text",
    "square/bomb.png": "bomb",
}


@pytest.fixture(scope="module")
def salted_folder(tmp_path_factory):
    """The shapes dataset as PNG class folders, plus one bad file of each kind."""
    from PIL import Image

    from portaclass.data import write_shapes

    root = tmp_path_factory.mktemp("salted") / "images"
    write_shapes(root, n_per_class=24, image_size=32, seed=3)
    good = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png"))
    jpeg = root / "circle" / "truncated.jpg"
    Image.new("RGB", (64, 64), (200, 30, 30)).save(jpeg, quality=90)
    jpeg.write_bytes(jpeg.read_bytes()[: jpeg.stat().st_size // 3])
    (root / "circle" / "empty.png").write_bytes(b"")
    (root / "square" / "notes.jpg").write_text("not an image\n")
    Image.new("L", (5000, 5000)).save(root / "square" / "bomb.png")  # 25 Mpx
    (root / "square" / ".hidden.png").write_bytes(b"junk")  # ignored silently
    (root / "square" / "readme.txt").write_text("ignored silently")
    return root, good


@pytest.fixture(scope="module")
def salted_run(salted_folder, tmp_path_factory, backend_name):
    root, _ = salted_folder
    out = tmp_path_factory.mktemp("run") / "salted"
    result = run_cli(
        ["train", "--data", str(root), "--image-size", "32", "--epochs", "2", "--batch-size", "16",
         "--augment", "strong", "--max-image-pixels", "4000000", "--out", str(out), "--quiet",
         "--no-report"],
        backend_name,
        XDG_CACHE_HOME=str(tmp_path_factory.mktemp("cache")),
    )
    return result, out


def test_salted_folder_trains_to_the_end(salted_run, backend_name):
    result, out = salted_run
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["backend"] == backend_name
    assert metrics["skipped_files"] == len(BAD_FILES)
    with (out / "history.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    # strong augmentation trains on MixUp/CutMix soft labels; accuracy is still
    # reported, and it is what the saved model scores on the held-out files
    assert all(0.0 <= float(r["val_accuracy"]) <= 1.0 for r in rows)
    assert metrics["scored_on"] == "test" and metrics["images"] == len(Run.open(out).split())
    assert metrics["accuracy"] == pytest.approx(saved_model_accuracy(out), abs=1e-6)
    assert (out / "model.keras").is_file() and (out / "checkpoints" / "last.keras").is_file()


def test_every_bad_file_is_in_skipped_csv_and_every_good_one_is_used(salted_run, salted_folder):
    _, out = salted_run
    _, good = salted_folder
    with (out / "skipped.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["path"] for r in rows) == sorted(BAD_FILES)
    assert all(r["reason"] for r in rows)
    used = []
    for split_file in sorted((out / "splits").glob("*.csv")):
        with split_file.open() as f:
            used += [r["path"] for r in csv.DictReader(f)]
    assert sorted(used) == good


def test_empty_class_folder_is_one_line_naming_it(tmp_path, backend_name):
    from PIL import Image

    for name in ("cats", "dogs"):
        (tmp_path / "data" / name).mkdir(parents=True)
    for i in range(4):
        Image.new("RGB", (16, 16)).save(tmp_path / "data" / "cats" / f"{i}.png")
    result = run_cli(["train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run")],
                     backend_name)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "dogs" in lines[0]


@pytest.mark.parametrize(
    "args,named",
    [
        (["--data", "/no/such/folder"], "/no/such/folder"),
        (["--data", "shapes", "--model", "no_such_net"], "no_such_net"),
        (["--data", "shapes", "--augment", "wild"], "wild"),
        (["--data", "shapes", "--epochs", "0"], "--epochs"),
    ],
)
def test_bad_options_are_one_line_naming_the_value(args, named, tmp_path, backend_name):
    result = run_cli(["train", *args, "--out", str(tmp_path / "run")], backend_name)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0], result.stderr



@pytest.mark.one_backend  # two-phase training itself: tests/train/test_transfer_run.py, every backend
def test_backbone_from_an_earlier_run_trains_two_phases(salted_run, tmp_path, backend_name):
    _, earlier = salted_run
    out = tmp_path / "transfer"
    result = run_cli(["train", "--data", "digits", "--backbone", str(earlier / "model.keras"),
                      "--freeze-base", "--epochs", "1", "--fine-tune-epochs", "1",
                      "--fine-tune-lr", "1e-4", "--base-batchnorm", "adapt", "--out", str(out),
                      "--quiet", "--no-report"], backend_name)
    assert result.returncode == 0, result.stderr[-3000:]
    with (out / "history.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(int(r["epoch"]), int(float(r["phase"]))) for r in rows] == [(1, 1), (2, 2)]
    run = Run.open(out)
    # The backbone's input decides size and channels; digits are converted to match.
    assert run.input_shape == (32, 32, 3) and len(run.class_names) == 10
    assert run.options["backbone"] == str(earlier / "model.keras") and run.options["model"] is None
    assert run.preprocessing == Run.open(earlier).preprocessing
