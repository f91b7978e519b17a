"""Kernels: each op has a Triton kernel, a torch reference beside it, and one public wrapper
that dispatches by device (see the module docstrings)."""

__all__: list[str] = []
