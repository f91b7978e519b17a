"""Machine description written into every benchmark's JSON (the figures mean little without it),
and the switch between rendiff's CPU kernels that several benchmarks time side by side."""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from pathlib import Path

import torch


def machine_info(**extra: object) -> dict[str, object]:
    """Platform, CPU model and count, torch version and threads, load average, plus ``extra``
    (library versions a benchmark compares against)."""
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average": list(os.getloadavg()),
        "torch": torch.__version__,
        **extra,
    }


def with_cpu_kernels(kind: str, fn: Callable[[], object]) -> object:
    """``fn()`` with ``RENDIFF_CPU_KERNELS=kind`` (``warp``: the compiled CPU kernels, ``torch``:
    the torch references), the variable removed again afterwards."""
    os.environ["RENDIFF_CPU_KERNELS"] = kind
    try:
        return fn()
    finally:
        os.environ.pop("RENDIFF_CPU_KERNELS")
