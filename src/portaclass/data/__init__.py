"""Data: built-in datasets, splits, decoding and the input pipeline."""
