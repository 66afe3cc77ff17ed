"""Seeded, stratified splits of a labelled index."""

from __future__ import annotations

import numpy as np

from portaclass.errors import DataError


def split_stratified(labels, fractions: dict[str, float], seed: int) -> dict[str, np.ndarray]:
    """Split indices ``0..len(labels)-1`` into named parts, class by class.

    ``fractions`` maps split names to shares; the first name takes what the
    others leave (e.g. ``{"train": 0, "val": 0.2}``). Within each class the
    indices are shuffled from ``seed``; every split keeps the class balance.
    Returned index arrays are sorted, so the result does not depend on the
    order classes are visited in.
    """
    labels = np.asarray(labels)
    names = list(fractions)
    rest, others = names[0], names[1:]
    if any(not 0 <= fractions[n] < 1 for n in others) or sum(fractions[n] for n in others) >= 1:
        raise DataError(f"split fractions must be in [0, 1) and sum to less than 1: {fractions}")
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        rng.shuffle(idx)
        start = 0
        for name in others:
            count = int(round(len(idx) * fractions[name]))
            parts[name].append(idx[start : start + count])
            start += count
        parts[rest].append(idx[start:])
    return {n: np.sort(np.concatenate(p)) if p else np.array([], int) for n, p in parts.items()}
