"""Files shipped inside the package (``rendiff/data/``), found through ``importlib.resources``
so that they resolve the same in a source checkout, an editable install and a wheel."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

__all__ = ["shipped_path"]


def shipped_path(*parts: str) -> Path:
    """The path of ``rendiff/data/<parts...>`` as installed, e.g. ``shipped_path("robots")``.

    rendiff is installed as plain files (its Warp kernels and model folders need real paths),
    so the resource is always a filesystem path."""
    resource = files("rendiff").joinpath("data", *parts)
    if not isinstance(resource, Path):  # pragma: no cover - a zipped install
        raise RuntimeError(f"rendiff's shipped data is not on the file system ({resource}); "
                           "install rendiff as files (pip install, not a zip)")
    return resource
