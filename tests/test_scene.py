"""The scene schema: valid files load, each class of invalid file fails with a one-line error
naming the file and field, and load/save round-trips exactly."""

from __future__ import annotations

import json

import pytest
import yaml

import rendiff
from rendiff.scenes import builtin_scene, load_scene, save_scene, scene_to_dict
from rendiff.scenes.builtin import BUILTIN_SCENES


def _write(tmp_path, data, name="scene.yaml"):
    p = tmp_path / name
    if name.endswith(".json"):
        p.write_text(json.dumps(data))
    else:
        p.write_text(yaml.safe_dump(data))
    return p


@pytest.mark.parametrize("name", sorted(BUILTIN_SCENES))
@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_round_trip_exact(tmp_path, name, suffix):
    scene = builtin_scene(name, seed=3)
    p = save_scene(scene, tmp_path / f"s{suffix}")
    back = load_scene(p)
    assert back == scene
    # and the file itself is stable: saving the loaded scene writes the same bytes
    p2 = save_scene(back, tmp_path / f"t{suffix}")
    assert p.read_bytes() == p2.read_bytes()


def test_round_trip_floats_exact(tmp_path):
    scene = rendiff.Scene(name="floats", fps=23.976023976023978)
    scene.add(rendiff.Sphere(radius=0.1 + 0.2), rendiff.Pose(position=(1 / 3, 2 / 7, 1e-9)))
    assert load_scene(save_scene(scene, tmp_path / "f.yaml")) == scene


def test_minimal_file_gets_defaults(tmp_path):
    p = _write(tmp_path, {"name": "tiny", "entities": [
        {"name": "ball", "geometry": {"type": "sphere", "radius": 0.2}, "dynamic": True}]})
    scene = load_scene(p)
    assert scene.frames == 32 and scene.size == (128, 128)
    assert scene.entities[0].material.friction == 0.5


BAD = [
    # (mutation, expected message fragment)
    (lambda d: d["entities"][2]["material"].__setitem__("friction", -1),
     "scene.yaml: entities[2].material.friction: must be >= 0"),
    (lambda d: d["entities"][1]["material"].__setitem__("fricton", 1),
     "scene.yaml: entities[1].material.fricton: unknown field (did you mean 'friction'?)"),
    (lambda d: d.__setitem__("frames", "many"), "scene.yaml: frames: input should be a valid "),
    (lambda d: d["entities"][1]["geometry"].__setitem__("type", "sphre"),
     "scene.yaml: entities[1].geometry: unknown type 'sphre'"),
    (lambda d: d["entities"][1].pop("name"), "scene.yaml: entities[1].name: required field"),
    (lambda d: d["entities"].append({"name": "m", "geometry": {"type": "mesh",
                                                                "path": "missing.obj"}}),
     "scene.yaml: entities[7].geometry.path: file not found: 'missing.obj'"),
    (lambda d: d["lights"][1].__setitem__("intensty", 2),
     "scene.yaml: lights[1].intensty: unknown field (did you mean 'intensity'?)"),
    (lambda d: d["camera"].__setitem__("path", {"type": "follow", "entity": "nobody"}),
     "scene.yaml: camera.path.entity: no entity named 'nobody'"),
    (lambda d: d["entities"][1].__setitem__("dynamic", "sometimes"),
     "scene.yaml: entities[1].dynamic: input should be a valid boolean"),
    (lambda d: d.__setitem__("size", [64]), "scene.yaml: size[1]: required field"),
    (lambda d: d["entities"][2].__setitem__("name", d["entities"][1]["name"]),
     "scene.yaml: entities[2].name: duplicate entity name"),
    (lambda d: d["camera"].update(near=5.0, far=1.0),
     "scene.yaml: camera: far (1.0) must be greater than near (5.0)"),
]


@pytest.mark.parametrize("mutate,expected", BAD)
def test_invalid_files_one_line_error(tmp_path, mutate, expected):
    data = scene_to_dict(builtin_scene("falling_objects"))
    mutate(data)
    p = _write(tmp_path, data)
    with pytest.raises(rendiff.SceneError) as err:
        load_scene(p)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(expected), msg


def test_json_error_names_file_and_line(tmp_path):
    p = tmp_path / "broken.json"
    p.write_text('{"name": "x",\n "frames": }')
    with pytest.raises(rendiff.SceneError, match=r"^broken.json: line 2: invalid JSON"):
        load_scene(p)


def test_yaml_error_names_file_and_line(tmp_path):
    p = tmp_path / "broken.yaml"
    p.write_text("name: x\nentities: [\n  - a: b\n")
    with pytest.raises(rendiff.SceneError, match=r"^broken.yaml: line \d+: invalid YAML"):
        load_scene(p)


def test_top_level_must_be_mapping(tmp_path):
    p = tmp_path / "list.yaml"
    p.write_text("- 1\n- 2\n")
    with pytest.raises(rendiff.SceneError, match="top level must be a mapping"):
        load_scene(p)


def test_asset_paths_resolve_relative_to_the_file(tmp_path):
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "tri.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    p = _write(tmp_path, {"entities": [{"name": "tri", "geometry": {
        "type": "mesh", "path": "assets/tri.obj"}}]})
    scene = load_scene(p)
    assert scene.entities[0].geometry.path == str((tmp_path / "assets" / "tri.obj").resolve())


def test_builder_api_separates_geometry_material_appearance():
    scene = rendiff.Scene(name="api")
    e = scene.add(rendiff.Box(size=(1, 2, 3)), rendiff.Pose(position=(0, 0, 1)),
                  rendiff.Material(friction=0.9), rendiff.Appearance(color=(1, 0, 0)),
                  dynamic=True)
    assert e.name == "box_0" and e.material.friction == 0.9 and e.appearance.color == (1, 0, 0)
    with pytest.raises(ValueError, match="friction"):
        rendiff.Material(friction=-0.1)
    with pytest.raises(ValueError, match="cannot be a rigid physics body"):
        scene.add(rendiff.Human(), dynamic=True)


def test_pose_from_euler_matches_rotation_about_z():
    import math

    p = rendiff.Pose.from_euler(rpy_deg=(0, 0, 90))
    w, x, y, z = p.rotation
    assert w == pytest.approx(math.cos(math.pi / 4)) and z == pytest.approx(math.sin(math.pi / 4))
    assert x == pytest.approx(0) and y == pytest.approx(0)


def test_everything_a_scene_file_can_say_a_script_can_say_from_import_rendiff():
    """Every model class a scene file's fields reach (entities, geometries, animations, lights,
    camera paths, options) is exported by `rendiff` itself, under its own name."""
    import typing

    from pydantic import BaseModel

    import rendiff
    from rendiff.scenes.spec import Scene

    seen: set[type] = set()

    def walk(tp) -> None:
        if typing.get_origin(tp) is not None:
            for arg in typing.get_args(tp):
                walk(arg)
        elif isinstance(tp, type) and issubclass(tp, BaseModel) and tp not in seen:
            seen.add(tp)
            for f in tp.model_fields.values():
                walk(f.annotation)

    walk(Scene)
    assert len(seen) > 30
    missing = sorted(c.__name__ for c in seen if c.__name__ not in rendiff.__all__)
    assert not missing, f"not in rendiff.__all__: {missing}"
    assert all(getattr(rendiff, c.__name__) is c for c in seen)
    assert set(rendiff.__all__) <= set(dir(rendiff))


def test_deformation_from_a_file_keeps_no_procedural_settings(tmp_path):
    """With `path`, the procedural default is dropped (it would be saved, though ignored);
    asking for both is an error."""
    import numpy as np

    from rendiff.scenes.spec import Deformation

    path = tmp_path / "coeffs.npz"
    np.savez(path, a=np.zeros(1))
    ctx = {"check_assets": False}
    d = Deformation.model_validate({"path": str(path)}, context=ctx)
    assert d.procedural is None and d.model_dump()["procedural"] is None
    assert Deformation.model_validate(d.model_dump(), context=ctx) == d
    with pytest.raises(ValueError, match="give either 'path'"):
        Deformation.model_validate({"path": str(path), "procedural": "twist"}, context=ctx)
