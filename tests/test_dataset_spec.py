"""Data-set specs and the clip sampler: distributions draw what they say, bad specs fail with one
line naming the file and field, specs round-trip, clips are reproducible from (spec, index)
alone, and every drawn scene is a valid scene with its objects apart and in view."""

from __future__ import annotations

import copy
import json
import math
import os
import pickle
import random
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

import rendiff
from rendiff.dataset.sample import ClipDraw, clip_seed, sample_clip
from rendiff.dataset.spec import (
    Choice,
    Const,
    DatasetSpec,
    DatasetSpecError,
    LogUniform,
    Normal,
    RandInt,
    Uniform,
    dataset_spec_from_dict,
    load_dataset_spec,
    save_dataset_spec,
)
from rendiff.engine.camera_paths import camera_frames
from rendiff.scenes import SceneError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*_dataset.yaml"))
N = 2000


def _write(tmp_path: Path, data, name: str = "spec.yaml") -> Path:
    p = tmp_path / name
    p.write_text(json.dumps(data) if name.endswith(".json") else yaml.safe_dump(data))
    return p


def _draws(dist, n: int = N, seed: int = 0) -> list:
    rng = random.Random(seed)
    return [dist.sample(rng) for _ in range(n)]


# --------------------------------------------------------------------------------------------
# Seeds and determinism


def test_clip_seed_is_stable_and_distinct():
    # computed once from the definition (BLAKE2b of "master/index") and frozen here
    assert clip_seed(0, 0) == 346979335522331409
    assert clip_seed(2024, 7) == 3219136917142755579
    assert clip_seed(2**63 - 1, 123456) == 8058111767498125606
    seeds = [clip_seed(3, i) for i in range(10_000)]
    assert len(set(seeds)) == 10_000
    assert all(0 <= s < 2**63 for s in seeds)
    assert max(seeds) > 2**62  # uses the whole 63-bit range
    assert clip_seed(4, 0) != clip_seed(3, 0)
    with pytest.raises(ValueError, match="clip index"):
        clip_seed(0, -1)
    with pytest.raises(ValueError, match="master seed"):
        clip_seed(-5, 0)


def test_same_index_same_scene_different_index_different_scene():
    spec = load_dataset_spec(ROOT / "examples" / "mixed_dataset.yaml")
    a, b = sample_clip(spec, 5), sample_clip(spec, 5)
    assert isinstance(a, ClipDraw) and a.index == 5 and a.seed == clip_seed(spec.seed, 5)
    assert a.scene.model_dump() == b.scene.model_dump() and a.params == b.params
    assert a.scene.seed == a.seed
    dumps = [sample_clip(spec, i).scene.model_dump(mode="json") for i in range(10)]
    for i in range(10):
        dumps[i].pop("name"), dumps[i].pop("seed"), dumps[i].pop("description")
    assert all(dumps[i] != dumps[j] for i in range(10) for j in range(i))


def test_same_scene_in_another_process(tmp_path):
    spec_path = ROOT / "examples" / "mixed_dataset.yaml"
    code = ("import sys, yaml; from rendiff.dataset.spec import load_dataset_spec;"
            "from rendiff.dataset.sample import sample_clip;"
            "d = sample_clip(load_dataset_spec(sys.argv[1]), 3);"
            "print(yaml.safe_dump(d.scene.model_dump(mode='json')))")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code, str(spec_path)], env=env, check=True,
                         capture_output=True, text=True).stdout
    here = yaml.safe_dump(sample_clip(load_dataset_spec(spec_path), 3).scene.model_dump(
        mode="json"))
    assert out.strip() == here.strip()


def test_each_parameter_has_its_own_stream():
    """Changing one distribution changes that parameter only."""
    a = dataset_spec_from_dict({"generator": "falling_objects"})
    b = dataset_spec_from_dict({"generator": "falling_objects",
                                "lights": {"intensity": {"uniform": [2.0, 3.0]}},
                                "objects": {"count": 9}})
    pa, pb = sample_clip(a, 4).params, sample_clip(b, 4).params
    changed = {k for k in pa if k in pb and pa[k] != pb[k]}
    assert changed == {"objects.count", "lights.0.intensity"} | {
        k for k in changed if k.startswith("objects.") and k.endswith(".z")}
    assert 2.0 <= pb["lights.0.intensity"] <= 3.0 and pb["objects.count"] == 9
    assert all(pa[k] == pb[k] for k in pa if k.startswith("objects.0.") and not k.endswith(".z"))


# --------------------------------------------------------------------------------------------
# Distributions


def _field(section: str, name: str, value):
    return getattr(getattr(dataset_spec_from_dict({section: {name: value}}), section), name)


def test_uniform_support_and_moments():
    d = _field("materials", "density", {"uniform": [200, 500]})
    assert d == Uniform(200.0, 500.0)
    x = _draws(d)
    assert all(200 <= v <= 500 for v in x)
    sd = 300 / math.sqrt(12)
    assert abs(statistics.fmean(x) - 350) < 4 * sd / math.sqrt(N)
    assert abs(statistics.pstdev(x) - sd) < 0.05 * sd
    assert min(x) < 205 and max(x) > 495


def test_randint_is_inclusive_and_even():
    d = _field("objects", "count", {"randint": [1, 4]})
    assert d == RandInt(1, 4)
    x = _draws(d)
    assert set(x) == {1, 2, 3, 4}
    for k in (1, 2, 3, 4):
        assert abs(x.count(k) / N - 0.25) < 0.04
    assert all(isinstance(v, int) for v in x)


def test_choice_respects_weights():
    d = _field("objects", "type", {"choice": ["sphere", "box", "capsule"], "weights": [1, 3, 0]})
    assert d == Choice(("sphere", "box", "capsule"), (1.0, 3.0, 0.0))
    x = _draws(d)
    assert abs(x.count("box") / N - 0.75) < 0.03
    assert "capsule" not in x
    u = _draws(_field("objects", "type", {"choice": ["sphere", "box"]}))
    assert abs(u.count("sphere") / N - 0.5) < 0.035


def test_normal_is_truncated_to_its_bounds():
    d = _field("objects", "tilt_deg", {"normal": {"mean": 0, "std": 1, "min": -0.5, "max": 2}})
    assert d == Normal(0.0, 1.0, -0.5, 2.0)
    x = _draws(d)
    assert all(-0.5 < v < 2.0 for v in x)
    # mean of a normal truncated to [a, b]: mu + sigma (phi(a) - phi(b)) / (Phi(b) - Phi(a))
    nd = statistics.NormalDist()
    expected = (nd.pdf(-0.5) - nd.pdf(2.0)) / (nd.cdf(2.0) - nd.cdf(-0.5))
    assert abs(statistics.fmean(x) - expected) < 0.05
    # a normal without min/max is truncated to the field's own bounds (friction >= 0)
    f = _field("materials", "friction", {"normal": {"mean": 0.1, "std": 0.5}})
    assert f == Normal(0.1, 0.5, 0.0, None)
    assert all(v > 0 for v in _draws(f))
    # an unbounded normal keeps its moments
    g = _draws(_field("objects", "tilt_deg", {"normal": {"mean": 30, "std": 10}}))
    assert abs(statistics.fmean(g) - 30) < 4 * 10 / math.sqrt(N)
    assert abs(statistics.pstdev(g) - 10) < 0.6


def test_loguniform_and_constants():
    d = _field("materials", "density", {"loguniform": [10, 1000]})
    assert d == LogUniform(10.0, 1000.0)
    x = _draws(d)
    assert all(10 <= v <= 1000 for v in x)
    logs = [math.log10(v) for v in x]
    assert abs(statistics.fmean(logs) - 2.0) < 0.05
    assert abs(sum(v < 100 for v in x) / N - 0.5) < 0.04
    c = _field("materials", "friction", 1)
    assert c == Const(1.0) and set(_draws(c, 10)) == {1.0}
    assert _field("lights", "shadows", False) == Const(False)
    assert _field("lights", "color", [1, 0.5, 0]) == Const((1.0, 0.5, 0.0))


# --------------------------------------------------------------------------------------------
# Invalid specs


GOOD = {"name": "t", "generator": "falling_objects"}

BAD = [
    ({"frames": "many"}, "spec.yaml: frames: input should be a valid integer"),
    ({"materials": {"friction": "slippery"}},
     "spec.yaml: materials.friction: expected a number, got 'slippery'"),
    ({"materials": {"friction": -0.1}},
     "spec.yaml: materials.friction: must be >= 0.0 (got -0.1)"),
    ({"materials": {"friction": {"uniform": [-0.2, 0.5]}}},
     "spec.yaml: materials.friction.uniform[0]: must be >= 0.0 (got -0.2)"),
    ({"materials": {"restitution": {"uniform": [0.9, 0.3]}}},
     "spec.yaml: materials.restitution.uniform: lo (0.9) must be <= hi (0.3)"),
    ({"objects": {"count": {"randint": [5, 2]}}},
     "spec.yaml: objects.count.randint: lo (5) must be <= hi (2)"),
    ({"objects": {"count": {"uniform": [1, 4]}}},
     "spec.yaml: objects.count.uniform: not available for an integer field"),
    ({"objects": {"type": {"choice": ["sphere", "box"], "weights": [1]}}},
     "spec.yaml: objects.type.weights: 1 weights for 2 choices"),
    ({"objects": {"type": {"choice": ["sphere", "box"], "weights": [1, -1]}}},
     "spec.yaml: objects.type.weights: must be >= 0 and not all zero (got [1, -1])"),
    ({"objects": {"type": {"choice": ["sphere", "box"], "wieghts": [1, 1]}}},
     "spec.yaml: objects.type.wieghts: unknown field (did you mean 'weights'?)"),
    ({"objects": {"type": {"choice": ["sphere", "cube"]}}},
     "spec.yaml: objects.type.choice[1]: must be one of ['sphere', 'box', 'capsule', "
     "'cylinder'] (got 'cube')"),
    ({"objects": {"type": ["sphere", "box"]}},
     "spec.yaml: objects.type: expected a string, got the list ['sphere', 'box'] "
     "(for a random pick write {choice: [...]})"),
    ({"sead": 3}, "spec.yaml: sead: unknown field (did you mean 'seed'?)"),
    ({"materials": {"fricton": 0.5}},
     "spec.yaml: materials.fricton: unknown field (did you mean 'friction'?)"),
    ({"camera": {"fov_deg": {"normal": {"mean": 40, "sdt": 5}}}},
     "spec.yaml: camera.fov_deg.normal.sdt: unknown field (did you mean 'std'?)"),
    ({"camera": {"fov_deg": {"normal": {"mean": 40, "std": -5}}}},
     "spec.yaml: camera.fov_deg.normal.std: must be >= 0 (got -5.0)"),
    ({"materials": {"density": {"loguniform": [0, 10]}}},
     "spec.yaml: materials.density.loguniform[0]: must be > 0 (got 0.0)"),
    ({"generator": "falling"},
     "spec.yaml: generator: must be one of ['falling_objects', 'walking_human', "
     "'dynamic_gaussians', 'robot_arm'] (got 'falling') (did you mean 'falling_objects'?)"),
    ({"gaussians": {"shape": "torus", "radius": {"uniform": [0.1, 0.4]}}},
     "spec.yaml: gaussians.radius: a torus needs radius > 0.15 (its tube radius)"),
    ({"generator": None, "base": "nowhere.yaml"},
     "spec.yaml: base: file not found: 'nowhere.yaml' (looked for "),
    ({"randomize": ["lights"]}, "spec.yaml: randomize: only used with 'base'"),
]


@pytest.mark.parametrize("change, message", BAD, ids=[m.split(": ")[1] + str(i)
                                                      for i, (_, m) in enumerate(BAD)])
def test_bad_spec_gives_one_line_error(tmp_path, change, message):
    data = {**copy.deepcopy(GOOD), **change}
    if data.get("generator", 0) is None:
        data.pop("generator")
    with pytest.raises(DatasetSpecError) as info:
        load_dataset_spec(_write(tmp_path, data))
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(message), text
    assert isinstance(info.value, SceneError)


def test_bad_files(tmp_path):
    with pytest.raises(DatasetSpecError, match=r"^missing\.yaml: file not found"):
        load_dataset_spec(tmp_path / "missing.yaml")
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n")
    with pytest.raises(DatasetSpecError, match=r"^broken\.yaml: line 2: invalid YAML"):
        load_dataset_spec(tmp_path / "broken.yaml")
    (tmp_path / "empty.yaml").write_text("")
    with pytest.raises(DatasetSpecError, match=r"^empty\.yaml: the file is empty"):
        load_dataset_spec(tmp_path / "empty.yaml")


# --------------------------------------------------------------------------------------------
# Round trip and examples


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_round_trip(tmp_path, suffix):
    spec = load_dataset_spec(ROOT / "examples" / "falling_objects_dataset.yaml")
    assert spec.objects.count == RandInt(3, 10)
    p = save_dataset_spec(spec, tmp_path / f"s{suffix}")
    back = load_dataset_spec(p)
    assert back == spec
    p2 = save_dataset_spec(back, tmp_path / f"t{suffix}")
    assert p.read_bytes() == p2.read_bytes()
    assert [sample_clip(back, i).params for i in range(3)] == [
        sample_clip(spec, i).params for i in range(3)]
    assert pickle.loads(pickle.dumps(spec)) == spec  # specs travel to worker processes
    schema = DatasetSpec.model_json_schema()["$defs"]["MaterialsSpec"]["properties"]
    assert schema["friction"]["anyOf"][0] == {"type": "number"}
    # the almost-empty spec gets every default written out, and reads back the same
    empty = dataset_spec_from_dict({})
    assert dataset_spec_from_dict(yaml.safe_load(empty.to_yaml())) == empty
    assert empty.kinds == ("falling_objects", "walking_human", "dynamic_gaussians")


def _bound_radius(g) -> float:
    if g.type == "sphere":
        return g.radius
    if g.type == "box":
        return 0.5 * math.dist(g.size, (0, 0, 0))
    if g.type == "capsule":
        return g.radius + g.length / 2
    return math.hypot(g.radius, g.height / 2)


def _check_clip(draw: ClipDraw, spec: DatasetSpec) -> None:
    scene = rendiff.Scene.model_validate(draw.scene.model_dump())
    assert scene.frames == spec.frames and scene.size == spec.size and scene.fps == spec.fps
    assert all(isinstance(v, float | int | str | bool) for v in draw.params.values())
    ents = [e for e in scene.entities if e.dynamic]
    # rigid bodies above the ground and apart at the start (the robot family's objects rest
    # on the ground in upright poses: their lowest point, not their bounding sphere, is at 0)
    resting = draw.params["generator"] == "robot_arm"
    for i, a in enumerate(ents):
        ra = _bound_radius(a.geometry)
        if resting:
            assert a.pose.position[2] > 0
        else:
            assert a.pose.position[2] - ra > 0
        for b in ents[:i]:
            assert math.dist(a.pose.position, b.pose.position) > ra + _bound_radius(b.geometry)
    # the action is in view: where bodies come to rest, the person, the cloud
    kind = draw.params["generator"]
    if kind == "falling_objects":
        points = [(e.pose.position[0], e.pose.position[1], 0.0) for e in ents]
    elif kind == "walking_human":
        person = scene.entity("person")
        start = person.animation.path[0] if person.animation.path else (0.0, 0.0)
        points = [(start[0], start[1], 0.9)]
    elif kind == "robot_arm":  # the arm's base and the objects it pushes
        points = [scene.entity("arm").pose.position] + [e.pose.position for e in ents]
    else:
        points = [scene.entity("blob").pose.position]
    if not points:
        return
    times = torch.arange(scene.frames) / scene.fps
    positions = {e.name: torch.tensor([points[0]] * scene.frames) for e in scene.entities}
    cams = camera_frames(scene.camera, *scene.size, times, positions)
    assert (cams.centers[:, 2] > 0).all()
    pts = torch.tensor(points, dtype=torch.float32).expand(scene.frames, -1, -1)
    uv, z = cams.project(pts)
    assert (z > 0).all()
    assert ((uv >= 0) & (uv <= torch.tensor(scene.size))).all(), (kind, draw.params)


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_examples_sample_valid_scenes(path):
    assert len(EXAMPLES) >= 3
    spec = load_dataset_spec(path)
    assert spec.frames == 24 and spec.size == (256, 256)
    kinds = set()
    for i in range(20):
        draw = sample_clip(spec, i)
        _check_clip(draw, spec)
        kinds.add(draw.params["generator"])
    assert kinds == set(spec.kinds)


def test_default_spec_samples_valid_scenes():
    spec = dataset_spec_from_dict({"seed": 99})
    for i in range(30):
        _check_clip(sample_clip(spec, i), spec)


# --------------------------------------------------------------------------------------------
# Base scenes


def test_base_scene(tmp_path):
    shutil.copy(ROOT / "examples" / "bouncing.yaml", tmp_path / "bouncing.yaml")
    p = _write(tmp_path, {"name": "bounce", "seed": 1, "frames": 12, "size": [64, 48],
                          "base": "bouncing.yaml"})
    spec = load_dataset_spec(p)
    assert spec.base == str((tmp_path / "bouncing.yaml").resolve())
    assert load_dataset_spec(save_dataset_spec(spec, tmp_path / "again.yaml")) == spec
    base = rendiff.load_scene(tmp_path / "bouncing.yaml")
    draw = sample_clip(spec, 0)
    scene = rendiff.Scene.model_validate(draw.scene.model_dump())
    assert [e.name for e in scene.entities] == [e.name for e in base.entities]
    assert scene.frames == 12 and scene.size == (64, 48) and scene.seed == draw.seed
    assert draw.params["generator"] == "base"
    ball, ball0 = scene.entity("ball"), base.entity("ball")
    assert ball.pose == ball0.pose and ball.geometry == ball0.geometry and ball.dynamic
    assert ball.appearance.color != ball0.appearance.color
    assert draw.params["entities.ball.friction"] == ball.material.friction
    assert scene.lights != base.lights and scene.camera != base.camera
    # the pillar is static: it keeps its density
    assert scene.entity("pillar").material.density == base.entity("pillar").material.density

    only_lights = dataset_spec_from_dict({"base": str(tmp_path / "bouncing.yaml"),
                                          "randomize": ["lights"]})
    s = sample_clip(only_lights, 2).scene
    assert s.entities == base.entities and s.camera == base.camera
    assert s.physics == base.physics and s.lights != base.lights

    with pytest.raises(DatasetSpecError, match=r"^spec\.yaml: objects: not used with 'base'"):
        load_dataset_spec(_write(tmp_path, {"base": "bouncing.yaml", "objects": {"count": 2}}))
    with pytest.raises(DatasetSpecError, match=r"^spec\.yaml: generator: give either"):
        load_dataset_spec(_write(tmp_path, {"base": "bouncing.yaml",
                                            "generator": "walking_human"}))


# --------------------------------------------------------------------------------------------
# One tiny end-to-end check


def test_sampled_scene_simulates_and_renders():
    spec = dataset_spec_from_dict({"seed": 3, "generator": "falling_objects", "frames": 8,
                                   "size": [32, 32], "objects": {"count": 3}})
    draw = sample_clip(spec, 0)
    traj = rendiff.simulate(draw.scene, progress=False)
    layers = rendiff.render(traj, layers=["rgb", "instance"], progress=False)
    assert layers["rgb"].shape == (8, 32, 32, 3)
    seen = set(layers["instance"].unique().tolist())
    assert len(seen - {0, 1}) >= 1  # at least one object (ids 2..4; 1 is the ground) in view


def test_robot_arm_family_draws_varied_simulatable_scenes():
    """The robotics family: the shipped arm plus objects, drawn per clip; the arm is driven and
    its joints come out on the trajectory."""
    import rendiff
    from rendiff.scenes.spec import Robot

    spec = load_dataset_spec(ROOT / "examples" / "robot_arm_dataset.yaml").model_copy(
        update={"frames": 4, "size": (32, 32)})
    draws = [sample_clip(spec, i) for i in range(3)]
    assert all(d.params["generator"] == "robot_arm" for d in draws)
    for d in draws:
        robots = [e for e in d.scene.entities if isinstance(e.geometry, Robot)]
        assert len(robots) == 1 and robots[0].animation is not None
    placements = {tuple(e.pose.position) for d in draws for e in d.scene.entities
                  if e.label == "box"}
    assert len(placements) == 3  # objects are placed anew per clip
    traj = rendiff.simulate(draws[0].scene, progress=False)
    (robot,) = traj.robots
    assert robot.q.shape == (4, 4) and robot.joint_names[0] == "base_yaw"
