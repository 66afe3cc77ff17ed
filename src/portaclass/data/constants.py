"""Names and values several data modules share, kept in a module that
imports nothing: augment.py and randaugment.py need not import each other,
and the CLI can list choices without loading NumPy or Pillow."""

# Built-in datasets ``load_dataset`` knows by name.
BUILTINS = ("digits", "shapes", "cifar10")
RESIZE_MODES = ("plain", "crop", "pad")

# What each augmentation preset does to a training image (the README's
# table and ``train --help`` read this).
PRESET_DESCRIPTIONS = {
    "none": "resize only",
    "light": "random crop (of a 12.5% larger resize) + horizontal flip",
    "standard": "light + rotation (up to 18 degrees) + contrast + brightness",
    "strong": "random resized crop (35-100% of the area) + flip + RandAugment "
              "(2 of 14 ops per image) + MixUp or CutMix per batch",
}
PRESETS = tuple(PRESET_DESCRIPTIONS)

# Images are augmented before normalisation, in uint8 range.
VALUE_RANGE = (0, 255)
# Fill mode for rotation/zoom/shear/translation: on the torch backend Keras'
# affine transform takes ~20 s per 32 images at 252 px with "reflect" (the
# default) or "nearest", ~0.4 s with "constant". Black corners at small
# angles are harmless.
FILL_MODE = "constant"
