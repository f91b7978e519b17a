"""Keeps the source tree's top-level folders from posing as top-level modules.

``engine/``, ``kernels/``, ``scenes/`` and ``conditioners/`` are the packages ``rendiff.engine``,
``rendiff.kernels``, ... (``package-dir`` in pyproject.toml). Wherever the repository root is on
``sys.path`` (``python -m pytest``, ``python -c``, a shell or notebook opened there) Python also
sees them as top-level packages ``engine``, ``kernels``, ... Left alone, that hides installed
distributions of the same name (Hugging Face's ``kernels``, which transformers imports) and loads
our files a second time as other modules (two ``Layer`` classes).

Each folder's ``__init__`` therefore starts with ``claim(globals())``. Under its ``rendiff.``
name it does nothing. Under its bare name it steps aside: when an installed module of that name
exists outside the repository root, that module is loaded and takes the name; otherwise the
import fails with ``ModuleNotFoundError``, as if the folder were not there. See
docs/design-notes.md ("One name per module").
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
from typing import Any

__all__ = ["claim"]


def _same_dir(entry: str, root: str) -> bool:
    try:
        return os.path.samefile(entry or os.curdir, root)
    except OSError:
        return False


def claim(namespace: dict[str, Any]) -> None:
    """Called first thing in each folder's ``__init__`` with its ``globals()``.

    Under the folder's ``rendiff.`` name this returns at once. Under a bare name it loads the
    installed module of that name from ``sys.path`` without the repository root and puts it in
    ``sys.modules``, so that the ``import`` statement hands it over (the rest of the folder's
    ``__init__`` then runs against the ``rendiff.`` subpackages, loading nothing twice); with no
    such module it raises ``ModuleNotFoundError``.
    """
    name = namespace["__name__"]
    if name.startswith("rendiff."):
        return
    root = os.path.dirname(os.path.dirname(os.path.abspath(namespace["__file__"])))
    path = [p for p in sys.path if isinstance(p, str) and not _same_dir(p, root)]
    spec = importlib.machinery.PathFinder.find_spec(name, path)
    if spec is None:
        raise ModuleNotFoundError(
            f"No module named {name!r} (the {name}/ folder of rendiff's source tree is imported "
            f"as 'rendiff.{name}')", name=name)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    if spec.loader is not None:
        spec.loader.exec_module(module)
    # The rest of the folder's __init__ still runs: its relative imports go to rendiff.<name>.
    namespace["__package__"] = f"rendiff.{name}"
