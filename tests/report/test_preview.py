"""Preview titles: a class name, or the two classes a MixUp/CutMix image blends."""

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
