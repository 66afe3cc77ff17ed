"""Names and values several data modules share, kept in a module that
imports nothing: the CLI can list choices without loading NumPy or Pillow."""

# Built-in datasets ``load_dataset`` knows by name.
BUILTINS = ("digits", "shapes", "cifar10")
RESIZE_MODES = ("plain", "crop", "pad")

# What each augmentation preset does to a training image (the README's
# table and ``train --help`` read this). Every draw is per image, from
# (seed, epoch, image index); MixUp/CutMix per batch (data/augment.py).
PRESET_DESCRIPTIONS = {
    "none": "resize only",
    "light": "random crop (of a 12.5% larger resize) + horizontal flip, per image",
    "standard": "light + rotation (up to 18 degrees) + contrast (x0.8-1.2) + brightness "
                "(up to 15% of the range), per image",
    "strong": "random resized crop (35-100% of the area) + flip + RandAugment "
              "(2 of 14 ops, magnitude 0.5), per image, + MixUp or CutMix per batch",
}
PRESETS = tuple(PRESET_DESCRIPTIONS)
