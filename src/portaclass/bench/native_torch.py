"""The plain PyTorch reference: what a user would write by hand instead of
portaclass, for benchmarks and cross-framework comparisons.

* ``build_resnet18``: a hand-written ResNet-18 with the architecture of
  portaclass' ``resnet18`` (models/resnet.py): torchvision's layout, bias-free
  convs with BatchNorm (eps 1e-5, momentum 0.1 = Keras' 0.9), PyTorch
  padding, the CIFAR stem (3x3 conv) for inputs up to 64 px and the ImageNet
  stem (7x7/2 conv + 3x3/2 max-pool) above, global average pooling and a
  Linear head. ``copy_keras_weights`` loads a portaclass resnet18's weights
  into it, so the two can be compared output for output.
* ``image_folder`` + ``make_loader``: an ImageFolder ``Dataset`` decoded with
  Pillow the way portaclass' pipeline does it (JPEG draft mode, bilinear
  resize, ImageNet mean/std), with the ``light`` preset's augmentation
  (random crop of a 12.5% larger resize + horizontal flip) or none, under a
  ``torch.utils.data.DataLoader``.
* ``train_step`` / ``train_epoch`` / ``evaluate``: cross-entropy, the usual
  loops (Adam in ``train_folder``; bench's rows use SGD with momentum).
* ``train_folder``: the whole "plain PyTorch script" of PyTorch's
  transfer-learning tutorial on a ``train/`` + ``val/`` folder: build, train
  with validation every epoch, checkpoint weights and optimizer after every
  epoch, save the final weights. ``python -m portaclass.bench.native_torch
  --data DIR`` runs it and prints one JSON line.

torch is imported inside functions only (DESIGN rule 1): importing this
module loads no framework.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import time
from pathlib import Path

import numpy as np

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # models/constants.py's, for inputs in [0, 1]
IMAGENET_STD = (0.229, 0.224, 0.225)
CROP_MARGIN = 1.125  # the light preset decodes this much larger, then random-crops
AUGMENTS = ("none", "light")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
STAGES = (2, 2, 2, 2)  # ResNet-18's basic blocks per stage


# -- the model ------------------------------------------------------------------


@functools.cache
def _modules():
    """The nn.Module classes, defined on first use so that importing this
    module does not import torch."""
    import torch
    from torch import nn

    class ConvBN(nn.Sequential):
        """Conv (PyTorch padding ``kernel // 2``, no bias) -> BatchNorm [-> ReLU]."""

        def __init__(self, cin: int, cout: int, kernel: int, stride: int, relu: bool = True):
            layers = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False),
                      nn.BatchNorm2d(cout, eps=1e-5, momentum=0.1)]
            if relu:
                layers.append(nn.ReLU(inplace=True))
            super().__init__(*layers)

    class BasicBlock(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int):
            super().__init__()
            self.conv1 = ConvBN(cin, cout, 3, stride)
            self.conv2 = ConvBN(cout, cout, 3, 1, relu=False)
            self.down = ConvBN(cin, cout, 1, stride, relu=False) if stride != 1 or cin != cout else None

        def forward(self, x):
            shortcut = x if self.down is None else self.down(x)
            return torch.relu(self.conv2(self.conv1(x)) + shortcut)

    class ResNet(nn.Module):
        def __init__(self, num_classes: int, stem: str, width: int, stages=STAGES):
            super().__init__()
            if stem == "imagenet":
                self.stem = nn.Sequential(ConvBN(3, width, 7, 2), nn.MaxPool2d(3, 2, 1))
            else:
                self.stem = nn.Sequential(ConvBN(3, width, 3, 1))
            blocks, cin = [], width
            for stage, count in enumerate(stages):
                cout = width * 2**stage
                for block in range(count):
                    blocks.append(BasicBlock(cin, cout, 2 if stage > 0 and block == 0 else 1))
                    cin = cout
            self.blocks = nn.Sequential(*blocks)
            self.head = nn.Linear(cin, num_classes)

        def forward(self, x):
            x = self.blocks(self.stem(x))
            return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))  # logits

    return ConvBN, ResNet


def resolve_stem(stem: str, image_size: int) -> str:
    """portaclass' rule: "auto" is the CIFAR stem up to 64 px, else ImageNet's."""
    if stem not in ("auto", "imagenet", "cifar"):
        raise ValueError(f"stem must be auto, imagenet or cifar; received {stem!r}")
    if stem == "auto":
        return "cifar" if image_size <= 64 else "imagenet"
    return stem


def build_resnet18(num_classes: int, image_size: int, *, stem: str = "auto", width: int = 64,
                   seed: int = 0):
    """ResNet-18 as portaclass builds it, in plain PyTorch (NCHW, logits out).

    Initialised like portaclass' (and torchvision's): convs He-normal over
    fan-out, BatchNorm scale 1 and shift 0, the Linear layer Glorot-uniform
    with zero bias (Keras' Dense default). Same distributions, not the same
    numbers: use ``copy_keras_weights`` for those.
    """
    import torch
    from torch import nn

    torch.manual_seed(seed)
    conv_bn, resnet = _modules()
    model = resnet(num_classes, resolve_stem(stem, image_size), width)
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            nn.init.zeros_(module.bias)
    return model


def _keras_layer_order() -> list[str]:
    """portaclass' layer names (models/resnet.py) in the order of the torch
    model's ConvBN modules."""
    names = ["stem"]
    for stage, count in enumerate(STAGES, start=1):
        for block in range(1, count + 1):
            prefix = f"stage{stage}_block{block}"
            names += [f"{prefix}_1", f"{prefix}_2"]
            if block == 1 and stage > 1:
                names.append(f"{prefix}_down")
    return names


def copy_keras_weights(model, keras_model) -> None:
    """Load a portaclass ``resnet18`` classifier's weights (a Keras model on
    any backend, channels_last) into ``build_resnet18``'s model, by layer name.

    Duck-typed (``get_layer(name).get_weights()``): no keras import here.
    """
    import torch

    conv_bn, _ = _modules()
    units = [m for m in model.modules() if isinstance(m, conv_bn)]
    names = _keras_layer_order()
    if len(units) != len(names):
        raise ValueError(f"expected {len(names)} conv/BN units, found {len(units)}")
    with torch.no_grad():
        for unit, name in zip(units, names):
            (kernel,) = keras_model.get_layer(f"{name}_conv").get_weights()
            gamma, beta, mean, var = keras_model.get_layer(f"{name}_bn").get_weights()
            conv, bn = unit[0], unit[1]
            conv.weight.copy_(torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))))
            for target, value in ((bn.weight, gamma), (bn.bias, beta), (bn.running_mean, mean),
                                  (bn.running_var, var)):
                target.copy_(torch.from_numpy(np.asarray(value)))
        kernel, bias = keras_model.get_layer("predictions").get_weights()
        model.head.weight.copy_(torch.from_numpy(np.ascontiguousarray(kernel.T)))
        model.head.bias.copy_(torch.from_numpy(np.asarray(bias)))


# -- the data -------------------------------------------------------------------


def image_folder(folder) -> tuple[list[Path], list[int], list[str]]:
    """``(paths, labels, class_names)`` of an ImageFolder directory: class
    folders sorted by name (Keras' and torchvision's order), files sorted."""
    folder = Path(folder)
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    paths, labels = [], []
    for label, name in enumerate(classes):
        for path in sorted((folder / name).rglob("*")):
            if path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith("."):
                paths.append(path)
                labels.append(label)
    if not paths:
        raise ValueError(f"no images in class folders under {folder}")
    return paths, labels, classes


def decode(path: Path, size: int) -> np.ndarray:
    """RGB uint8 (size, size, 3): JPEG draft mode (libjpeg decodes at 1/2,
    1/4 or 1/8 scale, never below ``size``), then a bilinear resize; what
    portaclass' decoder does for a plain resize."""
    from PIL import Image

    with Image.open(path) as image:
        if image.format == "JPEG":
            image.draft(None, (size, size))
        image = image.convert("RGB").resize((size, size), Image.BILINEAR)
        return np.asarray(image, dtype=np.uint8)


class FolderImages:
    """A map-style dataset (what ``DataLoader`` takes) of decoded, optionally
    augmented, normalised CHW float32 images and integer labels. A plain
    class, not a ``torch.utils.data.Dataset`` subclass, so this module loads
    without torch and instances pickle under any start method."""

    def __init__(self, paths, labels, image_size: int, augment: str = "none", seed: int = 0):
        if augment not in AUGMENTS:
            raise ValueError(f"augment must be one of {', '.join(AUGMENTS)}; received {augment!r}")
        self.paths, self.labels = list(paths), list(labels)
        self.size, self.augment, self.seed = image_size, augment, seed
        self.decode_size = round(image_size * CROP_MARGIN) if augment == "light" else image_size
        self.epoch = 0  # train_epoch bumps it, so each epoch draws new crops
        self.mean = np.asarray(IMAGENET_MEAN, np.float32) * 255
        self.std = np.asarray(IMAGENET_STD, np.float32) * 255

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        image = decode(self.paths[index], self.decode_size)
        if self.augment == "light":
            rng = np.random.default_rng([self.seed, self.epoch, index])
            top, left = rng.integers(0, self.decode_size - self.size + 1, 2)
            image = image[top:top + self.size, left:left + self.size]
            if rng.random() < 0.5:
                image = image[:, ::-1]
        x = (image.astype(np.float32) - self.mean) / self.std
        return np.ascontiguousarray(x.transpose(2, 0, 1)), self.labels[index]


def make_loader(paths, labels, *, image_size: int, batch_size: int = 32, augment: str = "none",
                shuffle: bool = False, seed: int = 0, workers: int | None = None):
    """A ``DataLoader`` over the images: ``workers`` processes (default one
    per core, as portaclass uses one decoding thread per core)."""
    import torch

    dataset = FolderImages(paths, labels, image_size, augment, seed)
    generator = torch.Generator().manual_seed(seed)
    workers = (os.cpu_count() or 1) if workers is None else workers
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle,
                                       num_workers=workers, generator=generator)


# -- the loops ------------------------------------------------------------------


def train_step(model, x, y, optimizer) -> tuple[float, int]:
    """One optimizer step on a batch; its loss and the number of right
    answers (reading them back waits for the step, on a GPU too)."""
    import torch

    optimizer.zero_grad(set_to_none=True)
    logits = model(x)
    loss = torch.nn.functional.cross_entropy(logits, y)
    loss.backward()
    optimizer.step()
    return loss.item(), int((logits.argmax(1) == y).sum())


def train_epoch(model, loader, optimizer) -> dict:
    """One pass over ``loader``; mean loss and accuracy of the batches."""
    model.train()
    total_loss = correct = seen = 0
    for x, y in loader:
        loss, right = train_step(model, x, y, optimizer)
        total_loss += loss * len(y)
        correct += right
        seen += len(y)
    if hasattr(loader.dataset, "epoch"):
        loader.dataset.epoch += 1
    return {"loss": total_loss / seen, "accuracy": correct / seen}


def evaluate(model, loader) -> dict:
    """Mean loss and accuracy over ``loader`` in inference mode."""
    import torch

    model.eval()
    total_loss = correct = seen = 0
    with torch.inference_mode():
        for x, y in loader:
            logits = model(x)
            total_loss += float(torch.nn.functional.cross_entropy(logits, y, reduction="sum"))
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
    return {"loss": total_loss / seen, "accuracy": correct / seen}


def train_folder(data, *, image_size: int = 96, epochs: int = 15, batch_size: int = 32,
                 learning_rate: float = 1e-3, augment: str = "none", seed: int = 0,
                 out=None, workers: int | None = None, log=print) -> dict:
    """The plain script: ResNet-18 on ``data/train``, validated on
    ``data/val`` after every epoch.

    Args:
        data: a folder with ``train/`` and ``val/`` class folders (the
            layout of the tutorial's ants/bees photos).
        image_size: square input size.
        epochs: training epochs.
        batch_size: images per batch.
        learning_rate: Adam's.
        augment: "none" or "light" (training images only).
        seed: seeds the weights and the shuffling.
        out: folder for ``checkpoint.pt`` (weights + optimizer, after every
            epoch, like portaclass' checkpoints/last.keras) and ``model.pt``
            (final weights); nothing is saved when None.
        workers: DataLoader processes (default one per core).
        log: called with one line per epoch.

    Returns:
        ``{"epoch_seconds": [...], "inside_epochs_s", "val_accuracy", "val_loss"}``;
        an epoch's seconds cover training and validation, not the checkpoint.
    """
    import torch

    root = Path(data)
    train_paths, train_labels, classes = image_folder(root / "train")
    val_paths, val_labels, _ = image_folder(root / "val")
    model = build_resnet18(len(classes), image_size, seed=seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    common = {"image_size": image_size, "batch_size": batch_size, "seed": seed, "workers": workers}
    train_loader = make_loader(train_paths, train_labels, augment=augment, shuffle=True, **common)
    val_loader = make_loader(val_paths, val_labels, **common)
    out = Path(out) if out is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    seconds, results = [], {}
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        train = train_epoch(model, train_loader, optimizer)
        results = evaluate(model, val_loader)
        seconds.append(time.perf_counter() - start)
        log(f"epoch {epoch}/{epochs}: loss {train['loss']:.4f} accuracy {train['accuracy']:.4f} "
            f"val_loss {results['loss']:.4f} val_accuracy {results['accuracy']:.4f} ({seconds[-1]:.1f} s)")
        if out is not None:
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch},
                       out / "checkpoint.pt")
    if out is not None:
        torch.save(model.state_dict(), out / "model.pt")
    return {"epoch_seconds": [round(s, 3) for s in seconds], "inside_epochs_s": round(sum(seconds), 3),
            "val_accuracy": results.get("accuracy", math.nan), "val_loss": results.get("loss", math.nan)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="The plain PyTorch ResNet-18 script (one JSON line out).")
    parser.add_argument("--data", required=True, help="folder with train/ and val/ class folders")
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--augment", choices=AUGMENTS, default="none")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--out", default=None)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    result = train_folder(args.data, image_size=args.image_size, epochs=args.epochs,
                          batch_size=args.batch_size, learning_rate=args.lr, augment=args.augment,
                          seed=args.seed, out=args.out, workers=args.workers,
                          log=(lambda line: None) if args.quiet else print)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
