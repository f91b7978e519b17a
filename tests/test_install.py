"""rendiff as a user installs it: from the lock file, as a built wheel used from another folder,
and quiet when asked (tools/setup.sh, tools/requirements.lock, README "Quick start")."""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "tools" / "requirements.lock"


def _lock() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep and version, f"{LOCK.name}: not an exact pin: {line!r}"
            pins[canonicalize_name(name)] = version
    return pins


def _needed(dist: str = "rendiff", extras: tuple[str, ...] = ("test",)) -> set[str]:
    """rendiff's requirements (with its test extras), transitively, for this interpreter."""
    seen: set[str] = set()
    todo = [(dist, extras)]
    while todo:
        name, extra = todo.pop()
        for text in importlib.metadata.requires(name) or []:
            req = Requirement(text)
            envs = [{"extra": e} for e in extra] or [{"extra": ""}]
            if req.marker and not any(req.marker.evaluate(env) for env in envs):
                continue
            key = canonicalize_name(req.name)
            if key not in seen:
                seen.add(key)
                todo.append((req.name, tuple(req.extras)))
    return seen


def test_lock_pins_every_dependency_at_the_installed_version():
    pins, needed = _lock(), _needed()
    assert "torch" in needed and pins.get("torch") == "2.13.0"
    missing = sorted(needed - set(pins))
    assert not missing, f"not in {LOCK.name} (run 'make lock'): {missing}"
    drift = {}
    for name in needed:
        installed = Version(importlib.metadata.version(name)).public
        if installed != Version(pins[name]).public:
            drift[name] = (installed, pins[name])
    assert not drift, f"installed != {LOCK.name} (installed, locked): {drift}"
    assert not [p for p in pins if p.startswith("nvidia-")], "a CUDA build crept into the lock"


def test_setup_installs_from_the_lock():
    setup = (ROOT / "tools" / "setup.sh").read_text()
    assert re.search(r"install -q -c tools/requirements\.lock -e", setup)
    assert "-nt tools/requirements.lock" in setup  # a changed lock re-installs


# Runs every built-in scene, from a folder that is not the source tree, and checks that every
# rendiff module came from the installed wheel (argv[1]: its folder).
_SMOKE = textwrap.dedent("""
    import sys, rendiff
    from pathlib import Path
    from rendiff.scenes.builtin import BUILTIN_SCENES
    from rendiff.scenes.io import scene_from_dict, scene_to_dict
    for name in sorted(BUILTIN_SCENES):
        data = scene_to_dict(rendiff.builtin_scene(name))
        data.update(frames=2, size=(32, 32))
        layers = rendiff.render(rendiff.simulate(scene_from_dict(data), progress=False),
                                progress=False)
        assert layers.size == (32, 32), name
        print("scene ok", name)
    installed = Path(sys.argv[1]).resolve()
    ours = [m for n, m in sys.modules.items() if n == "rendiff" or n.startswith("rendiff.")]
    assert len(ours) > 30, len(ours)  # the scenes, the engine, the kernels
    for module in ours:
        assert Path(module.__file__).resolve().is_relative_to(installed), module.__file__
    print("all from", installed)
""")


_NOT_SOURCE = {".git", "__pycache__", ".pytest_cache", ".ruff_cache", "rendiff.egg-info"}
_NOT_SOURCE_AT_ROOT = {".venv", ".venv-lock", "build", "dist", "out", "runs", "data"}


@pytest.mark.timeout(900)
def test_built_wheel_runs_every_scene_from_another_folder(tmp_path):
    """`pip wheel .` installed into a new venv (dependencies from this one, rendiff from the
    wheel alone) runs every built-in scene and `rendiff run falling_objects`."""
    dist, venv, work = tmp_path / "dist", tmp_path / "venv", tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}

    def run(*cmd, cwd=work):
        result = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True,
                                text=True, timeout=600)
        assert result.returncode == 0, f"{cmd}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
        return result.stdout

    src = tmp_path / "src"  # a copy: setuptools writes build/ into the folder it builds
    shutil.copytree(ROOT, src, ignore=lambda d, names: [
        n for n in names if n in _NOT_SOURCE or (Path(d) == ROOT and n in _NOT_SOURCE_AT_ROOT)])
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
        "-w", dist, src)
    wheels = list(dist.glob("rendiff-*.whl"))
    assert len(wheels) == 1
    run(sys.executable, "-m", "venv", venv)
    py = venv / "bin" / "python"
    site = run(py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip()
    # this venv's packages are the dependencies; their .pth files (our editable install's among
    # them) are not processed, so rendiff can only come from the wheel
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run(py, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheels[0])
    installed = Path(site).resolve() / "rendiff"
    out = run(py, "-c", _SMOKE, installed)
    assert f"all from {installed}" in out and out.count("scene ok") == 6
    run(venv / "bin" / "rendiff", "run", "falling_objects", "-o", work / "out", "--frames", "4",
        "--size", "32x32", "--quiet")
    assert (work / "out" / "generated.mp4").is_file()
    assert (work / "out" / "contact_sheet.png").is_file()


@pytest.mark.parametrize("scene", ["falling_objects", "walking_human"])
def test_quiet_prints_nothing(tmp_path, scene):
    """`--quiet` on a machine without a GPU: no progress, no Warp notice, no stand-in body
    notice (walking_human), nothing but errors."""
    rendiff = Path(sys.executable).parent / "rendiff"
    result = subprocess.run([rendiff, "render", scene, "-o", tmp_path / "out", "--frames", "2",
                             "--size", "32x32", "--quiet"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""
