"""Preview: titles (a class name, or the two classes a MixUp/CutMix image
blends), and samples that are exactly what training gets."""

from __future__ import annotations

import numpy as np

from portaclass.report.preview import label_title

NAMES = ["cat", "dog", "fox"]


def test_integer_label_is_its_class_name():
    assert label_title(np.int32(1), NAMES) == "dog"


def test_soft_label_names_both_classes_largest_share_first():
    assert label_title(np.array([0.3, 0.0, 0.7]), NAMES) == "fox 70% + cat 30%"


def test_one_hot_row_is_just_the_class():
    assert label_title(np.array([0.0, 1.0, 0.0]), NAMES) == "dog"


def test_preview_shows_the_images_training_gets_in_that_epoch():
    """The same order, per-image draws and MixUp/CutMix partners as a
    training pipeline with the same seed and batch size (which reads with
    worker threads)."""
    from portaclass.data import from_arrays, make_pipeline
    from portaclass.report.preview import sample_batch

    images = np.random.default_rng(0).integers(0, 255, (20, 20, 20, 3)).astype(np.uint8)
    dataset = from_arrays(images, np.arange(20) % 3, NAMES, val_split=0, test_split=0)
    shown, labels = sample_batch(dataset, 10, 16, "strong", seed=3, channels=3, epoch=1, batch_size=8)
    training = make_pipeline(dataset.train, 8, image_size=16, augment="strong", seed=3, workers=2)
    training.on_epoch_end()  # Keras' call after epoch 0
    x = np.concatenate([training[0][0], training[1][0]])[:10]
    y = np.concatenate([training[0][1], training[1][1]])[:10]
    np.testing.assert_array_equal(shown, x)
    np.testing.assert_array_equal(labels, y)
    epoch_0, _ = sample_batch(dataset, 10, 16, "strong", seed=3, channels=3, batch_size=8)
    assert not np.array_equal(epoch_0, shown)


def test_a_preview_without_mixing_shows_the_first_images_of_the_training_batch():
    from portaclass.data import from_arrays, make_pipeline
    from portaclass.report.preview import sample_batch

    images = np.random.default_rng(1).integers(0, 255, (20, 20, 20, 3)).astype(np.uint8)
    dataset = from_arrays(images, np.arange(20) % 3, NAMES, val_split=0, test_split=0)
    shown, labels = sample_batch(dataset, 5, 16, "standard", seed=4, channels=3, batch_size=8)
    training = make_pipeline(dataset.train, 8, image_size=16, augment="standard", seed=4, workers=2)
    np.testing.assert_array_equal(shown, np.clip(training[0][0][:5], 0.0, 1.0))
    np.testing.assert_array_equal(labels, training[0][1][:5])
