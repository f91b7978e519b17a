"""Same scene and seed give identical layers; the examples run small as smoke tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import rendiff

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["falling_objects", "walking_human", "dynamic_gaussians"])
def test_same_scene_and_seed_identical_layers(name):
    scene = rendiff.builtin_scene(name, seed=2).model_copy(update={"frames": 4, "size": (40, 32)})
    a = rendiff.render(rendiff.simulate(scene, progress=False), progress=False)
    b = rendiff.render(rendiff.simulate(scene, progress=False), progress=False)
    assert a.equal(b)


def test_different_seed_changes_falling_objects():
    s1 = rendiff.builtin_scene("falling_objects", seed=1)
    s2 = rendiff.builtin_scene("falling_objects", seed=2)
    assert s1.entities[1].pose != s2.entities[1].pose


def test_example_script_runs(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "script_scene.py"), "-o",
                        str(tmp_path / "o"), "--frames", "4", "--size", "40x32"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "o" / "metadata.json").exists()
