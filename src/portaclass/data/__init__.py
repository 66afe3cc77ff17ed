"""Data: folder index + split, decoding, the input pipeline, augmentation and
built-in datasets.

Names are resolved lazily (PEP 562): ``import portaclass.data`` loads no
framework; ``make_pipeline`` imports keras (never TensorFlow under torch/JAX).
"""

from __future__ import annotations

from portaclass._lazy import lazy_getattr

_LAZY = {
    "Dataset": "portaclass.data.dataset",
    "Split": "portaclass.data.dataset",
    "load_dataset": "portaclass.data.loading",
    "from_arrays": "portaclass.data.loading",
    "from_directory": "portaclass.data.folder",
    "make_pipeline": "portaclass.data.pipeline",
    "ImagePipeline": "portaclass.data.pipeline",
    "Augmenter": "portaclass.data.augment",
    "augment_batch": "portaclass.data.augment",
    "PRESETS": "portaclass.data.augment",
    "decode_image": "portaclass.data.decode",
    "check_image": "portaclass.data.decode",
    "DecodeError": "portaclass.data.decode",
    "IMAGE_EXTENSIONS": "portaclass.data.decode",
    "find_bad_files": "portaclass.data.validate",
    "make_shapes": "portaclass.data.shapes",
    "write_shapes": "portaclass.data.shapes",
    "read_cifar10": "portaclass.data.cifar",
    "write_run_files": "portaclass.data.run_files",
    "append_decode_failures": "portaclass.data.run_files",
    "read_split_list": "portaclass.data.run_files",
    "read_class_names": "portaclass.data.run_files",
    "load_split_files": "portaclass.data.run_files",
}


__getattr__ = lazy_getattr('portaclass.data', _LAZY, globals())


__all__ = sorted(_LAZY)
