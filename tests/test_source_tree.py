"""The source tree never hides an installed module nor loads one of its files twice, whatever is
on ``sys.path`` (rendiff/_source_tree.py, docs/design-notes.md "One name per module").

Every check runs a fresh interpreter with the repository root as its working directory and first
on ``sys.path``, as ``python -c``, ``python -m pytest`` or a notebook opened there would have it.
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: The folders that are rendiff subpackages (package-dir in pyproject.toml).
OUR_PACKAGES = ("engine", "kernels", "scenes", "conditioners")


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def _top_level_names() -> dict[str, Path]:
    """Every name the repository root (and tests/, on pytest's pythonpath) offers as a top-level
    module: folders (packages with __init__.py, or namespace portions) and .py files."""
    names: dict[str, Path] = {}
    for folder in (ROOT, ROOT / "tests"):
        for entry in folder.iterdir():
            stem = entry.stem if entry.suffix == ".py" else entry.name
            if entry.name.startswith(".") or not stem.isidentifier():
                continue
            if entry.is_dir() or entry.suffix == ".py":
                names.setdefault(stem, entry)
    return names


def _in_tree(path: str) -> bool:
    """Whether a file or folder is part of the source tree (not of a venv kept inside it)."""
    if not path:
        return False
    resolved = Path(path).resolve()
    return any(resolved.is_relative_to(entry) for entry in _top_level_names().values())


def _installed_top_level() -> dict[str, list[str]]:
    """Top-level module names of the installed distributions, rendiff's own left out."""
    found = {}
    for name, dists in importlib.metadata.packages_distributions().items():
        others = [d for d in dists if d.lower() != "rendiff"]
        if others:
            found[name] = others
    return found


def test_no_folder_of_ours_shadows_an_installed_distribution():
    clashes = sorted(set(_top_level_names()) & set(_installed_top_level()))
    code = ("import importlib, json, sys\nout = {}\n"
            f"for name in {clashes!r}:\n"
            "    m = importlib.import_module(name)\n"
            "    out[name] = [getattr(m, '__file__', None) or '', *getattr(m, '__path__', [])]\n"
            "print(json.dumps(out))")
    result = _python(code)
    assert result.returncode == 0, result.stderr[-2000:]
    for name, paths in json.loads(result.stdout.splitlines()[-1]).items():
        inside = [p for p in paths if _in_tree(p)]
        assert not inside, f"{name}: the source tree's {inside} hides the installed distribution"


@pytest.mark.parametrize("name", OUR_PACKAGES)
def test_an_installed_module_of_the_same_name_wins(name, tmp_path):
    """A stand-in distribution placed right after the root on sys.path is what `import NAME`
    gives."""
    (tmp_path / name).mkdir()
    (tmp_path / name / "__init__.py").write_text("WHO = 'installed'\n")
    result = _python(f"import sys; sys.path.insert(1, {str(tmp_path)!r}); import {name}; "
                     f"import rendiff.{name} as ours; print({name}.WHO, {name}.__file__, "
                     "ours.__name__)")
    assert result.returncode == 0, result.stderr[-2000:]
    who, path, ours = result.stdout.split()
    assert who == "installed" and Path(path).parent == tmp_path / name
    assert ours == f"rendiff.{name}"


def test_transformers_and_diffusers_import_from_the_root():
    result = _python("import rendiff; from diffusers import AutoencoderKL; "
                     "import transformers.modeling_utils; import kernels; print(kernels.__file__)")
    assert result.returncode == 0, result.stderr[-2000:]
    assert not _in_tree(result.stdout.strip())


@pytest.mark.parametrize("name", OUR_PACKAGES)
def test_each_package_folder_steps_aside(name):
    init = (ROOT / name / "__init__.py").read_text()
    assert "claim(globals())" in init, f"{name}/__init__.py does not call claim(globals()) first"
    if name in _installed_top_level():
        return  # handed over: checked by test_no_folder_of_ours_shadows_an_installed_distribution
    result = _python(f"import {name}")
    assert result.returncode != 0
    assert f"ModuleNotFoundError: No module named '{name}'" in result.stderr


def test_no_file_is_loaded_as_two_modules():
    """Import every rendiff module, then every bare-name spelling of the same files, and check
    that no file ends up behind two entries of sys.modules (two `Layer` classes)."""
    code = f"""
import importlib, json, pkgutil, sys
import rendiff
for info in pkgutil.walk_packages(rendiff.__path__, "rendiff."):
    importlib.import_module(info.name)
for bare in {OUR_PACKAGES!r}:
    package = importlib.import_module("rendiff." + bare)
    for info in pkgutil.iter_modules(package.__path__):
        try:
            importlib.import_module(bare + "." + info.name)
        except ImportError:
            pass
files = {{}}
for name, module in list(sys.modules.items()):
    path = getattr(module, "__file__", None)
    if path:
        files.setdefault(str(__import__("pathlib").Path(path).resolve()), []).append(name)
print(json.dumps({{p: n for p, n in files.items() if len(n) > 1}}))
import engine.layers
"""
    result = _python(code)
    assert "No module named 'engine'" in result.stderr, result.stderr[-2000:]
    doubled = {p: n for p, n in json.loads(result.stdout.splitlines()[-1]).items() if _in_tree(p)}
    assert not doubled, f"files loaded as several modules: {doubled}"


def test_rendiff_submodules_are_the_tree_files_once():
    result = _python("import rendiff.engine.layers as a, rendiff.engine as e; "
                     "print(a.Layer is e.Layer, a.__file__)")
    assert result.returncode == 0, result.stderr[-2000:]
    same, path = result.stdout.split()
    assert same == "True" and Path(path) == ROOT / "engine" / "layers.py"
