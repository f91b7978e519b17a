"""Bad input never becomes a traceback, a silent NaN or a hang: seeded mutations of every
built-in scene and example (misspelt and unknown keys, wrong types, NaN/inf/huge/zero/negative
numbers, empty lists, duplicate names, missing and garbage asset files) through `rendiff
validate`, and a sample of the ones it accepts through `rendiff render` at a tiny size.

Every outcome must be one of: accepted (exit 0; a render then writes only finite layers), or
refused with one line naming the file (exit 2). Exit 1 (a failure while running) is allowed only
for a render, with one line naming the stage, never a library's bare message.
"""

from __future__ import annotations

import copy
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from rendiff.cli import main

ROOT = Path(__file__).resolve().parents[1]
SCENES = ["falling_objects", "walking_human", "dynamic_gaussians", "robot_arm", "gaussian_avatar",
          "cloth_and_jelly"]
EXAMPLES = ["bouncing.yaml", "lights_and_textures.yaml", "gaussian_avatar.yaml"]
CASES_PER_SOURCE = 45
RENDERS = 14
RENDER_TIMEOUT_S = 120


def _source(name: str) -> dict:
    from rendiff.scenes import builtin_scene, load_scene
    from rendiff.scenes.io import scene_to_dict

    if name.endswith(".yaml"):
        return scene_to_dict(load_scene(ROOT / "examples" / name))
    return scene_to_dict(builtin_scene(name))


def _nodes(node, path=()):
    """(path, parent, key) of every value below ``node``."""
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in list(items):
        yield path + (key,), node, key
        if isinstance(value, dict | list):
            yield from _nodes(value, path + (key,))


def _mutate(data: dict, rng: random.Random, assets: Path) -> str:
    """Applies one careless-user mutation in place; returns what it did."""
    nodes = list(_nodes(data))
    path, parent, key = rng.choice(nodes)
    value = parent[key]
    kind = rng.choice(["misspelt key", "unknown key", "wrong type", "number", "number",
                       "empty list", "duplicate name", "missing asset", "garbage asset"])
    if kind == "misspelt key" and isinstance(key, str) and len(key) > 2:
        i = rng.randrange(len(key))
        parent[key[:i] + key[i + 1:]] = parent.pop(key)
    elif kind == "unknown key" and isinstance(parent, dict):
        parent["colour_of_" + str(key)] = 1
    elif kind == "wrong type":
        parent[key] = rng.choice(["abc", [1, 2], {"a": 1}, 3, None, True])
    elif kind == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        parent[key] = rng.choice([float("nan"), float("inf"), 1e300, -1e300, 0, -1, 1e9, 1e-300])
    elif kind == "empty list" and isinstance(value, list):
        parent[key] = []
    elif kind == "duplicate name" and len(data.get("entities", [])) > 1:
        data["entities"][1]["name"] = data["entities"][0]["name"]
    elif kind in ("missing asset", "garbage asset"):
        # an asset-holding field: geometry paths, textures, motions, body models
        spots = [(p, n, k) for p, n, k in nodes if k in ("path", "texture", "body_model", "urdf",
                                                         "mjcf", "file") and isinstance(p, tuple)]
        if not spots:
            return _mutate(data, rng, assets)
        _, parent, key = rng.choice(spots)
        suffix = Path(str(parent[key] or "x.png")).suffix or ".png"
        target = assets / f"asset_{rng.randrange(10**6)}{suffix}"
        if kind == "garbage asset":
            target.write_bytes(bytes(rng.randrange(256) for _ in range(300)))
        parent[key] = str(target)
    else:
        return _mutate(data, rng, assets)
    return f"{kind} at {'.'.join(map(str, path))}"


def _cases() -> list[tuple[str, int]]:
    return [(source, k) for source in SCENES + EXAMPLES for k in range(CASES_PER_SOURCE)]


@pytest.fixture(scope="module")
def mutated(tmp_path_factory) -> list[tuple[str, Path, int, str]]:
    """Every mutated file with its validate exit code and stderr: (what, path, code, err)."""
    import contextlib
    import io

    folder = tmp_path_factory.mktemp("fuzz")
    results = []
    for source, k in _cases():
        rng = random.Random(f"{source}/{k}")
        data = copy.deepcopy(_source(source))
        what = f"{source} #{k}: {_mutate(data, rng, folder)}"
        path = folder / f"{source.replace('.', '_')}_{k}.yaml"  # examples share stems
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = main(["validate", str(path)])
            except SystemExit as e:  # argparse
                code = e.code
        results.append((what, path, code, err.getvalue()))
    return results


def test_validate_answers_every_mutation_cleanly(mutated):
    bad = []
    for what, path, code, err in mutated:
        lines = err.strip().splitlines()
        if code == 0 and not lines:
            continue
        ok = (code == 2 and len(lines) == 1 and lines[0].startswith(f"rendiff: error: {path.name}")
              and len(lines[0]) < 500)
        if not ok:
            bad.append(f"{what}: exit {code}: {err.strip()[:300]}")
    assert not bad, f"{len(bad)} of {len(mutated)} mutations answered badly:\n" + "\n".join(bad)


def test_accepted_mutations_render_finite_or_fail_cleanly(mutated, tmp_path):
    accepted = [(what, path) for what, path, code, _ in mutated if code == 0]
    # every accepted garbage asset file (what validation could miss), then a seeded sample
    sample = [a for a in accepted if "garbage asset" in a[0]]
    rest = [a for a in accepted if a not in sample]
    sample += random.Random(0).sample(rest, max(0, min(RENDERS - len(sample), len(rest))))
    rendiff_cli = Path(sys.executable).parent / "rendiff"
    bad = []
    for k, (what, path) in enumerate(sample):
        out = tmp_path / f"out{k}"
        t0 = time.perf_counter()
        try:
            result = subprocess.run([rendiff_cli, "render", path, "-o", out, "--frames", "2",
                                     "--size", "32x32", "--quiet"], capture_output=True,
                                    text=True, timeout=RENDER_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            bad.append(f"{what}: still running after {RENDER_TIMEOUT_S} s")
            continue
        lines = result.stderr.strip().splitlines()
        if result.returncode == 0:
            with np.load(out / "layers.npz") as z:
                for name in z.files:
                    a = z[name]
                    if a.dtype.kind == "f" and name != "depth" and not np.isfinite(a).all():
                        bad.append(f"{what}: wrote non-finite {name}")
        elif result.returncode not in (1, 2) or len(lines) != 1 or "Traceback" in result.stderr:
            bad.append(f"{what}: exit {result.returncode} after {time.perf_counter() - t0:.0f} "
                       f"s: {result.stderr.strip()[-300:]}")
    assert not bad, "\n".join(bad)
