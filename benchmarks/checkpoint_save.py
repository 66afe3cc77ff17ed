"""What one epoch's checkpoint costs: a ResNet-18 with Adam's moments (the
134 MB `checkpoints/last.keras` of the lean-run recipe) saved the three ways
portaclass has written it, side by side in one process:

* keras walk, new file: Keras' save (its walk over layers and optimizer, one
  HDF5 dataset per variable, with its skip-set cache missing as it does in
  keras 3.15) into a new temporary file renamed over the old checkpoint:
  every save before this benchmark's commit;
* layout, new file: the values written into the first save's layout
  (`train/archive_layout.py`), still into a new file;
* layout, spare file: the same written over the spare file the save before
  replaced (`write_keras_atomic(..., reuse_space=True)`): what a run does.

The ways take turns (A B C A B C ...), each save `--gap` seconds after the
last (an epoch's training lies between two checkpoints: the disk writes
back meanwhile); medians over the rounds.

    python benchmarks/checkpoint_save.py --rounds 8
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

WAYS = ("keras walk, new file", "layout, new file", "layout, spare file")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--gap", type=float, default=1.0, help="seconds between two saves")
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--dir", type=Path, default=None,
                        help="where the checkpoints go (default: a temporary folder beside the runs)")
    return parser.parse_args(argv)


def trained_model(image_size: int):
    import keras
    import numpy as np

    import portaclass.backend  # noqa: F401 - portaclass' torch routes, as in a run
    from portaclass.models.builder import create_model

    model = create_model("resnet18", 2, (image_size, image_size, 3), seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    x = np.random.default_rng(0).random((8, image_size, image_size, 3), dtype=np.float32)
    model.train_on_batch(x, np.arange(8) % 2)  # Adam's moments exist
    return model


class AsBefore:
    """A save as before the layout: no layout used or learned, and Keras'
    attribute skip-sets looked up where keras 3.15 misses them."""

    def __init__(self, model):
        from portaclass.train import archive_layout

        self.model, self.layouts = model, archive_layout
        self.kept = archive_layout.layout_for(model)

    def __enter__(self):
        from keras.src.backend.common import global_state

        self.layouts.forget_all()
        self.learn = self.layouts.ArchiveLayout.learn
        self.layouts.ArchiveLayout.learn = classmethod(lambda cls, *args: None)
        for kind in ("Operation", "Layer", "Functional", "Sequential", "Metric", "Optimizer", "Loss"):
            global_state.set_global_attribute(f"saving_attr_skiplist_{kind}", None)

    def __exit__(self, *exc):
        self.layouts.ArchiveLayout.learn = self.learn
        self.layouts.remember(self.model, self.kept)


def main(argv=None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import contextlib

    from portaclass.train.checkpoint import remove_spares, write_keras_atomic

    model = trained_model(args.image_size)
    folder = Path(tempfile.mkdtemp(prefix="checkpoint-save-", dir=args.dir))
    seconds: dict[str, list[float]] = {way: [] for way in WAYS}
    try:
        for way in WAYS:  # each way's own file, first saved once (the first save is always Keras')
            (folder / way.replace(" ", "-").replace(",", "")).mkdir()
        write_keras_atomic(model, folder / "warm-up.keras")  # learns the layout
        for _ in range(args.rounds):
            for way in WAYS:
                path = folder / way.replace(" ", "-").replace(",", "") / "last.keras"
                time.sleep(args.gap)
                with AsBefore(model) if way.startswith("keras") else contextlib.nullcontext():
                    start = time.perf_counter()
                    write_keras_atomic(model, path, extra={"epoch": 1},
                                       reuse_space=way.endswith("spare file"))
                    seconds[way].append(time.perf_counter() - start)
        remove_spares(folder / "layout-spare-file")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    base = statistics.median(seconds[WAYS[0]])
    print(f"ResNet-18 at {args.image_size} px with Adam's moments, {args.rounds} rounds, "
          f"{args.gap} s apart\n")
    print("| way | median s | min s | max s | / keras walk |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for way, values in seconds.items():
        median = statistics.median(values)
        print(f"| {way} | {median:.3f} | {min(values):.3f} | {max(values):.3f} | {median / base:.2f}x |")
    print(json.dumps({way: [round(v, 4) for v in values] for way, values in seconds.items()}))


if __name__ == "__main__":
    main()
