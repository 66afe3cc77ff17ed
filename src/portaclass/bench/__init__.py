"""Benchmarks' shared parts: the plain PyTorch reference (``native_torch``)
that portaclass runs are measured against. Importing it loads no framework."""
