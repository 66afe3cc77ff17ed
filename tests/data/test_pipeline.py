"""The PyDataset pipeline: batch shapes, dtypes and layout, per-epoch
shuffling, normalisation, resilience to files that break mid-training,
augmentation presets, batches that depend on (seed, epoch, index) only (not
on worker threads or the process), replaying an epoch, and no TensorFlow
import under torch or JAX."""

from __future__ import annotations

import numpy as np
import pytest

from portaclass.data import (
    append_decode_failures,
    from_arrays,
    from_directory,
    make_pipeline,
    write_run_files,
)
from portaclass.errors import UsageError
from portaclass.models import Preprocessing
from tests.helpers import on_each_backend, run_python_json

AUGMENTING = ("light", "standard", "strong")


@pytest.fixture
def folder_dataset(shapes_dir, tmp_path):
    return from_directory(shapes_dir, val_split=0.2, test_split=0, cache_dir=tmp_path / "c")


def test_file_batches_have_shape_dtype_and_labels(folder_dataset):
    pipeline = make_pipeline(folder_dataset.train, 7, image_size=24)
    assert len(pipeline) == 5  # 32 images / 7 per batch, rounded up
    x, y = pipeline[0]
    assert x.shape == (7, 24, 24, 3) and x.dtype == np.float32
    assert y.dtype == np.int32 and set(y) <= {0, 1, 2, 3}
    assert 0.0 <= x.min() and x.max() <= 1.0  # default scaling to [0, 1]
    assert pipeline[len(pipeline) - 1][0].shape[0] == 32 - 4 * 7
    seen = np.concatenate([pipeline[i][1] for i in range(len(pipeline))])
    assert sorted(seen.tolist()) == sorted(folder_dataset.train.labels.tolist())


def test_channels_first_grayscale_and_model_normalisation(folder_dataset):
    prep = Preprocessing(scale=1 / 127.5, offset=-1.0, mean=(0.5,), std=(2.0,))
    x, _ = make_pipeline(folder_dataset.train, 4, preprocessing=prep, image_size=(20, 28), channels=1, channels_first=True)[0]
    assert x.shape == (4, 1, 20, 28)
    assert x.min() >= (-1 - 0.5) / 2 - 1e-6 and x.max() <= (1 - 0.5) / 2 + 1e-6


def test_shuffle_is_seeded_and_changes_each_epoch(folder_dataset):
    def labels_of_epoch(pipeline):
        return np.concatenate([pipeline[i][1] for i in range(len(pipeline))])

    a = make_pipeline(folder_dataset.train, 8, image_size=16, seed=1)
    b = make_pipeline(folder_dataset.train, 8, image_size=16, seed=1)
    first = labels_of_epoch(a)
    assert np.array_equal(first, labels_of_epoch(b))
    a.on_epoch_end()
    b.on_epoch_end()
    second = labels_of_epoch(a)
    assert np.array_equal(second, labels_of_epoch(b))
    assert not np.array_equal(first, second)
    fixed = make_pipeline(folder_dataset.train, 8, image_size=16, shuffle=False)
    assert np.array_equal(labels_of_epoch(fixed), folder_dataset.train.labels)


def test_file_broken_after_the_scan_is_substituted_and_recorded(folder_dataset, tmp_path):
    broken = folder_dataset.train.paths[0]
    broken.write_bytes(b"")  # the file changes after the pre-pass
    pipeline = make_pipeline(folder_dataset.train, 32, image_size=16, shuffle=False)
    x, y = pipeline[0]
    assert x.shape == (32, 16, 16, 3) and len(y) == 32
    assert len(pipeline.decode_failures) == 1
    rel, reason = pipeline.decode_failures[0]
    assert rel == broken.relative_to(folder_dataset.root).as_posix() and "empty" in reason
    (tmp_path / "run").mkdir()
    write_run_files(folder_dataset, tmp_path / "run")
    assert append_decode_failures(tmp_path / "run", pipeline.decode_failures) == 1
    assert append_decode_failures(tmp_path / "run", pipeline.decode_failures) == 0  # once each
    lines = (tmp_path / "run" / "skipped.csv").read_text().splitlines()
    assert lines[0] == "path,reason" and lines[1].startswith(f"{rel},failed during training: empty")


def test_arrays_go_through_the_same_pipeline():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (30, 12, 12, 1), np.uint8)
    y = np.repeat([0, 1, 2], 10)
    dataset = from_arrays(x, y, ["a", "b", "c"], val_split=0.2, test_split=0.1, seed=0)
    assert (len(dataset.train), len(dataset.val), len(dataset.test)) == (21, 6, 3)
    batch, labels = make_pipeline(dataset.train, 5, image_size=24, channels=3, shuffle=False)[0]
    assert batch.shape == (5, 24, 24, 3)
    assert np.array_equal(labels, dataset.train.labels[:5])
    same_size, _ = make_pipeline(dataset.train, 5, image_size=12, channels=1, shuffle=False)[0]
    np.testing.assert_allclose(same_size, dataset.train.images[:5] / 255.0, atol=1e-6)
    with pytest.raises(UsageError, match="uint8"):
        from_arrays(x.astype(np.float32), y, ["a", "b", "c"])


def test_strong_preset_yields_soft_labels_and_validation_can_match(folder_dataset):
    classes = len(folder_dataset.class_names)
    train = make_pipeline(folder_dataset.train, 8, image_size=24, augment="strong", seed=1)
    x, y = train[0]
    assert train.soft_labels and x.shape == (8, 24, 24, 3) and 0 <= x.min() and x.max() <= 1
    assert y.shape == (8, classes) and y.dtype == np.float32
    np.testing.assert_allclose(y.sum(axis=1), 1.0, atol=1e-5)
    val = make_pipeline(folder_dataset.val, 8, image_size=24, one_hot=True, shuffle=False)
    _, y_val = val[0]
    expected = np.eye(classes)[folder_dataset.val.labels[: len(y_val)]]
    np.testing.assert_array_equal(y_val, expected)


def test_augmented_pipeline_on_grayscale(folder_dataset):
    for preset in ("standard", "strong"):
        pipeline = make_pipeline(folder_dataset.train, 4, image_size=32, channels=1, augment=preset)
        x, _ = pipeline[0]
        assert x.shape == (4, 32, 32, 1) and 0 <= x.min() and x.max() <= 1
        assert pipeline.soft_labels is (preset == "strong")


def test_unknown_preset_and_resize_are_usage_errors(folder_dataset):
    with pytest.raises(UsageError, match="'heavy'"):
        make_pipeline(folder_dataset.train, 4, image_size=32, augment="heavy")
    with pytest.raises(UsageError, match="'stretch'"):
        make_pipeline(folder_dataset.train, 4, image_size=32, resize="stretch")


def test_pipeline_trains_a_keras_model(folder_dataset):
    import keras

    pipeline = make_pipeline(folder_dataset.train, 8, image_size=16, augment="light")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Flatten(), keras.layers.Dense(4)])
    model.compile(keras.optimizers.Adam(0.01),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    history = model.fit(pipeline, epochs=6, verbose=0).history
    # 32 images and 768 weights per class: a model fed real batches memorises them
    assert len(history["loss"]) == 6 and history["loss"][-1] < 0.7 * history["loss"][0]
    assert pipeline.epoch >= 5  # Keras called on_epoch_end: every epoch was reshuffled


def batches_of_epoch(split, preset, seed, epoch, shuffle=False):
    pipeline = make_pipeline(split, 8, image_size=16, augment=preset, seed=seed, shuffle=shuffle, workers=1)
    pipeline.set_epoch(epoch)
    return [pipeline[i] for i in range(len(pipeline))]


@pytest.mark.parametrize("preset", AUGMENTING)
def test_augmentation_is_drawn_anew_each_epoch_and_for_each_seed(folder_dataset, preset):
    """Same order every epoch (no shuffling): only the draws can differ."""
    first = batches_of_epoch(folder_dataset.train, preset, seed=0, epoch=0)
    again = batches_of_epoch(folder_dataset.train, preset, seed=0, epoch=0)
    next_epoch = batches_of_epoch(folder_dataset.train, preset, seed=0, epoch=1)
    other_seed = batches_of_epoch(folder_dataset.train, preset, seed=1, epoch=0)
    for (x, y), (x_again, y_again), (x_next, _), (x_other, _) in zip(first, again, next_epoch, other_seed):
        np.testing.assert_array_equal(x, x_again)
        np.testing.assert_array_equal(y, y_again)
        assert not np.array_equal(x, x_next) and not np.array_equal(x, x_other)


def test_set_epoch_replays_exactly_the_batches_of_that_epoch(folder_dataset):
    walked = make_pipeline(folder_dataset.train, 8, image_size=16, augment="strong", seed=4)
    walked.on_epoch_end()
    walked.on_epoch_end()
    jumped = make_pipeline(folder_dataset.train, 8, image_size=16, augment="strong", seed=4)
    jumped.set_epoch(2)
    assert walked.epoch == jumped.epoch == 2
    for i in range(len(walked)):
        for ours, theirs in zip(walked[i], jumped[i]):
            np.testing.assert_array_equal(ours, theirs)
    jumped.set_epoch(0)
    fresh = make_pipeline(folder_dataset.train, 8, image_size=16, augment="strong", seed=4)
    np.testing.assert_array_equal(jumped[1][0], fresh[1][0])
    assert not np.array_equal(jumped[1][0], walked[1][0])
    with pytest.raises(UsageError, match="epoch"):
        jumped.set_epoch(-1)


def test_pipeline_crops_each_image_of_a_batch_at_its_own_offset():
    rows, cols = np.mgrid[0:18, 0:18]
    coordinates = np.stack([rows, cols, np.zeros_like(rows)], axis=-1).astype(np.uint8)
    dataset = from_arrays(np.repeat(coordinates[None], 32, axis=0), np.arange(32) % 2, ["a", "b"],
                          val_split=0, test_split=0)
    x, _ = make_pipeline(dataset.train, 32, image_size=16, augment="light", seed=0)[0]
    pixels = np.rint(x * 255)
    tops, lefts = pixels[:, 0, :, 0].min(axis=1), pixels[:, 0, :, 1].min(axis=1)
    # offsets 0..2 each way (16 of 18), drawn per image, not one for the batch
    assert set(tops) == {0, 1, 2} and set(lefts) == {0, 1, 2}


def epoch_through_keras(pipeline, epochs=2):
    """Each epoch's batches as ``model.fit`` reads a PyDataset: Keras'
    adapter, worker threads when ``workers > 1``, ``on_epoch_end`` between."""
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    adapter = PyDatasetAdapter(pipeline, shuffle=False)
    seen = []
    for _ in range(epochs):
        seen.append([(np.asarray(x), np.asarray(y)) for x, y in adapter.get_numpy_iterator()])
        adapter.on_epoch_end()
    return seen


def test_worker_threads_change_no_batch(folder_dataset):
    def run(workers):
        pipeline = make_pipeline(folder_dataset.train, 8, image_size=16, augment="strong", seed=5,
                                 workers=workers)
        return epoch_through_keras(pipeline)

    for epoch_one, epoch_three in zip(run(1), run(3)):
        for (x1, y1), (x3, y3) in zip(epoch_one, epoch_three):
            np.testing.assert_array_equal(x1, x3)
            np.testing.assert_array_equal(y1, y3)


REPLAY = """
import hashlib, json
from portaclass.data import from_directory, make_pipeline
from tests.data.test_pipeline import epoch_through_keras

dataset = from_directory({root!r}, val_split=0, test_split=0, cache_dir={cache!r})
hashes = {{}}
for preset in {presets!r}:
    pipeline = make_pipeline(dataset.train, 8, image_size=16, augment=preset, seed=0, workers={workers})
    hashes[preset] = [[hashlib.sha256(x.tobytes() + y.tobytes()).hexdigest() for x, y in epoch]
                      for epoch in epoch_through_keras(pipeline)]
print(json.dumps(hashes))
"""


@pytest.mark.cross
def test_batches_are_bit_identical_across_processes_worker_counts_and_backends(shapes_dir, tmp_path):
    """Pixels and labels of every batch of two epochs, hashed in fresh
    processes: on each backend one reads with 1 worker (the main thread),
    one with 2 worker threads. No framework touches a batch, so all agree."""
    def replay(backend, workers):
        code = REPLAY.format(root=str(shapes_dir), cache=str(tmp_path / f"cache-{backend}-{workers}"),
                             presets=AUGMENTING, workers=workers)
        return run_python_json(code, backend, timeout=300)

    runs = on_each_backend(lambda backend: [replay(backend, workers) for workers in (1, 2)])
    for backend, (one_worker, two_workers) in runs.items():
        assert one_worker == two_workers, backend
    assert runs["tensorflow"][0] == runs["torch"][0] == runs["jax"][0]
    for preset, (epoch_0, epoch_1) in runs["torch"][0].items():
        assert len(epoch_0) == 5 and len(set(epoch_0)) == 5
        assert not set(epoch_0) & set(epoch_1), preset  # a new epoch draws anew


def test_shards_of_a_data_parallel_run_read_each_image_once_and_add_up_to_the_global_batch():
    from portaclass.data.dataset import Split
    from portaclass.data.pipeline import Shard

    images = np.arange(13 * 4 * 4 * 3, dtype=np.uint8).reshape(13, 4, 4, 3)
    split = Split(name="train", labels=np.arange(13) % 2, class_names=["a", "b"], images=images)
    whole = make_pipeline(split, 6, image_size=4, shuffle=True, seed=5)
    parts = [make_pipeline(split, 6, image_size=4, shuffle=True, seed=5, shard=Shard(k, 2, 2)) for k in (0, 1)]
    for epoch in (0, 1):
        for p in [whole, *parts]:
            p.set_epoch(epoch)
        seen = []
        for i in range(len(whole)):
            x, y = whole[i]
            (x0, y0), (x1, y1) = parts[0][i], parts[1][i]
            assert len(x0) == len(x1)  # replicas step together
            if len(x) % 2 == 0:  # a full or even batch: the parts are the global batch, in order
                np.testing.assert_array_equal(np.concatenate([x0, x1]), x)
                np.testing.assert_array_equal(np.concatenate([y0, y1]), y)
            seen += [bytes(image) for image in np.concatenate([x0, x1])]
        # 13 images, batches of 6: the last batch of one image is filled up with itself
        assert len(seen) == 14 and len(set(seen)) == 13


def test_a_shard_pads_an_uneven_batch_with_its_own_first_ids():
    from portaclass.data.pipeline import Shard

    ids = np.array([7, 8, 9])
    assert Shard(0, 1, 4).part(ids).tolist() == [7, 8, 9, 7]  # one process, 4 replicas
    assert [Shard(k, 2, 2).part(ids).tolist() for k in (0, 1)] == [[7, 8], [9, 7]]
    assert Shard().part(ids).tolist() == [7, 8, 9]
