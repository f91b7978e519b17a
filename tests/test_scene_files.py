"""Scene files are data: hostile or careless files (alias bombs, odd encodings, deep nesting,
duplicate keys, huge files) end in one short line naming the file, exit code 2, quickly
(scenes/io.py parse_data_text; the trust model in docs/design-notes.md)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

import rendiff
from rendiff.cli import main
from rendiff.scenes.io import MAX_FILE_BYTES


def _bomb(levels: int, under: str) -> str:
    """The classic YAML alias bomb: each level a list of nine aliases of the one before."""
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for k in range(1, levels):
        lines.append(f"l{k}: &l{k} [" + ", ".join([f"*l{k - 1}"] * 9) + "]")
    lines.append(f"{under}: *l{levels - 1}")
    return "\n".join(lines) + "\n"


CASES = {
    # name: (file name, bytes, words the one-line error must hold)
    "alias bomb, nine levels under name": (
        "bomb9.yaml", _bomb(9, "name").encode(), "aliases are expanded"),
    "alias bomb, six levels under name": (
        "bomb6.yaml", _bomb(6, "name").encode(), "aliases are expanded"),
    "alias bomb, five levels under entities": (
        "bomb5.yaml", _bomb(5, "entities").encode(), "entities"),
    "binary file": ("binary.yaml", bytes(range(256)) * 8, "not a text file"),
    "Latin-1 file": ("latin1.yaml", "name: café\nframes: 4\n".encode("latin-1"),
                     "line 1: not UTF-8 text"),
    "UTF-16 file": ("utf16.yaml", "name: x\n".encode("utf-16"), "UTF-16 text; save it as UTF-8"),
    "deeply nested YAML": ("deep.yaml", ("name: " + "[" * 5000 + "]" * 5000).encode(),
                           "nested more than 64 levels deep"),
    "deeply nested JSON": ("deep.json", ('{"name": ' + "[" * 5000 + "]" * 5000 + "}").encode(),
                           "nested more than 64 levels deep"),
    "duplicate YAML key": ("dup.yaml", b"name: a\nframes: 4\nname: b\n",
                           "line 3: invalid YAML: duplicate key 'name' (first written on line 1"),
    "duplicate JSON key": ("dup.json", b'{"name": "a", "name": "b"}',
                           "invalid JSON: duplicate key 'name'"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_scene_file_is_one_short_line(case, tmp_path, capsys):
    name, data, words = CASES[case]
    path = tmp_path / name
    path.write_bytes(data)
    t0 = time.perf_counter()
    assert main(["validate", str(path)]) == 2
    elapsed = time.perf_counter() - t0
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err[:2000]
    assert lines[0].startswith(f"rendiff: error: {name}: ") and words in lines[0], lines[0]
    assert len(lines[0]) < 500
    assert elapsed < 20, f"{elapsed:.1f} s"


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path, capsys):
    path = tmp_path / "huge.yaml"
    entity = b"  - {name: b, geometry: {type: sphere, radius: 0.1}}\n"
    with open(path, "wb") as f:
        f.write(b"name: huge\nentities:\n")
        f.write(entity * (MAX_FILE_BYTES // len(entity) + 1))
    t0 = time.perf_counter()
    assert main(["validate", str(path)]) == 2
    assert time.perf_counter() - t0 < 5
    assert "huge.yaml: the file is 10.0 MB; scene files are limited to 10 MB" in \
        capsys.readouterr().err


def test_merge_keys_are_not_duplicates(tmp_path):
    """YAML merge keys (<<) legitimately repeat keys of the merged mapping."""
    from rendiff.scenes.io import parse_data_text

    data = parse_data_text(b"base: &b {a: 1, c: 3}\nx:\n  <<: *b\n  a: 2\n", "yaml", "m.yaml")
    assert data["x"] == {"a": 2, "c": 3}


def test_setup_file_is_parsed_as_strictly(tmp_path):
    from rendiff.conditioners.pretrained import ModelError, load_spec

    path = tmp_path / "rendiff_pretrained.yaml"
    path.write_text("base: a\nbase: b\n")
    with pytest.raises(ModelError, match=r"rendiff_pretrained.yaml: line 2: invalid YAML: "
                                         r"duplicate key 'base'"):
        load_spec(path)
    path.write_bytes(_bomb(9, "base").encode())
    with pytest.raises(ModelError, match="aliases are expanded"):
        load_spec(path)


def test_spec_files_share_the_parser(tmp_path, capsys):
    path = tmp_path / "spec.yaml"
    path.write_bytes(b"name: s\nseed: 1\nseed: 2\ngenerator: falling_objects\n")
    assert main(["dataset", str(path), "-o", str(tmp_path / "out"), "--clips", "1"]) == 2
    assert "spec.yaml: line 3: invalid YAML: duplicate key 'seed'" in capsys.readouterr().err
    assert not Path(tmp_path / "out").exists()


def _builtin(name: str) -> dict:
    from rendiff.scenes import builtin_scene
    from rendiff.scenes.io import scene_to_dict

    return scene_to_dict(builtin_scene(name))


def _validate(data: dict, tmp_path: Path, capsys) -> str:
    import yaml

    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    assert main(["validate", str(path)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    return lines[0]


def test_errors_inside_a_humans_gaussians_name_the_block(tmp_path, capsys):
    data = _builtin("gaussian_avatar")
    k, person = next((k, e) for k, e in enumerate(data["entities"])
                     if e["geometry"]["type"] == "human" and e["geometry"]["gaussians"])
    person["geometry"]["gaussians"]["bogus"] = 1
    assert f"entities[{k}].geometry.gaussians.bogus: unknown field" in \
        _validate(data, tmp_path, capsys)


@pytest.mark.parametrize("path", [
    {"type": "static", "eye": [1.0, 2.0, 1.0], "target": [1.0, 2.0, 1.0]},
    {"type": "dolly", "start": [0.0, 0.0, 0.3], "end": [2.0, 0.0, 1.0], "target": [0, 0, 0.3]},
    {"type": "keyframes", "times": [0, 1], "eyes": [[2, 0, 1], [1, 1, 1]],
     "targets": [[0, 0, 0], [1, 1, 1]]},
])
def test_a_camera_on_its_target_is_refused(path, tmp_path, capsys):
    data = _builtin("falling_objects")
    data["camera"]["path"] = path
    assert "the camera is at its target" in _validate(data, tmp_path, capsys)


@pytest.mark.parametrize("waypoints, words", [
    ([], "needs at least 2 waypoints, got 0"),
    ([[1.0, 1.0]], "needs at least 2 waypoints, got 1"),
    ([[1.0, 1.0], [1.0, 1.0]], "waypoints are all the same point"),
])
def test_a_walk_path_must_be_walkable(waypoints, words, tmp_path, capsys):
    data = _builtin("walking_human")
    person = next(e for e in data["entities"] if e["geometry"]["type"] == "human")
    person["animation"]["path"] = waypoints
    assert words in _validate(data, tmp_path, capsys)


def test_a_texture_header_claiming_30000_pixels_is_refused_at_validation(tmp_path, capsys):
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)  # 30000x30000 RGB
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
           + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))
    (tmp_path / "big.png").write_bytes(png)
    data = _builtin("falling_objects")
    k = next(k for k, e in enumerate(data["entities"]) if e["name"] != "ground")
    data["entities"][k]["appearance"]["texture"] = str(tmp_path / "big.png")
    line = _validate(data, tmp_path, capsys)
    assert f"entities[{k}].appearance.texture: 'big.png': too large a texture" in line


@pytest.mark.parametrize("change, words", [
    (lambda d: d.update(frames=True), "frames: input should be a valid integer"),
    (lambda d: d.update(frames=24.0), "frames: input should be a valid integer"),
    (lambda d: d.update(fps="12"), "fps: input should be a valid number"),
    (lambda d: d["entities"][1]["material"].update(friction="0.12"),
     "entities[1].material.friction: input should be a valid number"),
    (lambda d: d["entities"][1].update(dynamic="yes"),
     "entities[1].dynamic: input should be a valid boolean"),
])
def test_no_coercion_of_strings_and_booleans(change, words, tmp_path, capsys):
    """Strict means strict: a quoted number, "yes" or a boolean where a count belongs is refused
    (lists still make tuples, integers still make floats)."""
    data = _builtin("falling_objects")
    change(data)
    assert words in _validate(data, tmp_path, capsys)


def _numeric_leaves(node, path=""):
    """(path as errors write it, container, key) of every number in a scene dict."""
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in items:
        here = f"{path}[{key}]" if isinstance(key, int) else (f"{path}.{key}" if path else key)
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float):
            yield here, node, key
        elif isinstance(value, dict | list):
            yield from _numeric_leaves(value, here)


@pytest.mark.parametrize("scene", ["falling_objects", "walking_human", "dynamic_gaussians",
                                   "robot_arm", "gaussian_avatar", "cloth_and_jelly"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_every_number_of_a_scene_must_be_finite(scene, bad):
    """NaN or inf anywhere in a scene (a camera K or eye, a light's direction or intensity, a
    radius, SMPL betas, Young's modulus, an initial velocity...) is refused at validation,
    naming the field: it never reaches a render as NaN."""
    import random

    from rendiff.scenes.io import SceneError, scene_from_dict

    leaves = list(_numeric_leaves(_builtin(scene)))
    assert len(leaves) > 20
    for path, _, _ in random.Random(f"{scene}{bad}").sample(leaves, 25):
        data = _builtin(scene)
        for p, node, key in _numeric_leaves(data):
            if p == path:
                node[key] = bad
        with pytest.raises(SceneError) as err:
            scene_from_dict(data, source="s.yaml", check_assets=False)
        assert err.value.where.startswith(path), (path, str(err.value))


def test_a_gaussian_ply_missing_properties_is_refused_at_validation(tmp_path, capsys):
    (tmp_path / "cloud.ply").write_bytes(
        b"ply\nformat binary_little_endian 1.0\nelement vertex 10\nproperty float x\n"
        b"property float y\nproperty float z\nend_header\n" + bytes(120))
    data = _builtin("dynamic_gaussians")
    k = next(k for k, e in enumerate(data["entities"]) if e["geometry"]["type"] == "gaussians")
    data["entities"][k]["geometry"].update(path=str(tmp_path / "cloud.ply"), shape=None)
    line = _validate(data, tmp_path, capsys)
    assert f"entities[{k}].geometry.path: 'cloud.ply': missing vertex properties 'f_dc_0'" in line


def test_a_truncated_ply_is_refused_at_validation(tmp_path, capsys):
    from rendiff.engine.gaussians import from_primitive, save_ply

    save_ply(from_primitive("sphere", 50, seed=0), tmp_path / "cloud.ply")
    data = (tmp_path / "cloud.ply").read_bytes()
    (tmp_path / "cloud.ply").write_bytes(data[:-100])
    scene = _builtin("dynamic_gaussians")
    k = next(k for k, e in enumerate(scene["entities"]) if e["geometry"]["type"] == "gaussians")
    scene["entities"][k]["geometry"].update(path=str(tmp_path / "cloud.ply"), shape=None)
    assert "'cloud.ply': file is truncated (50 vertices announced)" in _validate(scene, tmp_path,
                                                                                capsys)


def test_a_body_model_that_is_not_smpl_is_refused_at_validation(tmp_path, capsys):
    folder = tmp_path / "smpl"
    folder.mkdir()
    (folder / "SMPL_NEUTRAL.pkl").write_bytes(bytes(range(200)))
    data = _builtin("walking_human")
    k = next(k for k, e in enumerate(data["entities"]) if e["geometry"]["type"] == "human")
    data["entities"][k]["geometry"]["body_model"] = str(folder)
    line = _validate(data, tmp_path, capsys)
    assert f"entities[{k}].geometry.body_model: " in line and "not a readable SMPL pickle" in line


def _with_amass(path: Path) -> dict:
    data = _builtin("walking_human")
    person = next(e for e in data["entities"] if e["geometry"]["type"] == "human")
    person["animation"] = {"type": "amass", "path": str(path)}
    return data


@pytest.mark.parametrize("arrays, words", [
    ({"trans": np.zeros((4, 3)), "mocap_framerate": np.array(30.0)},
     "no 'poses' (nor 'root_orient' + 'pose_body')"),
    ({"poses": np.zeros((4, 10)), "trans": np.zeros((4, 3)), "mocap_framerate": np.array(30.0)},
     "poses has shape (4, 10)"),
    ({"poses": np.zeros((4, 72)), "trans": np.zeros((3, 3)), "mocap_framerate": np.array(30.0)},
     "trans has shape (3, 3), expected [4, 3]"),
    ({"poses": np.full((4, 72), np.nan), "trans": np.zeros((4, 3)),
      "mocap_framerate": np.array(30.0)}, "poses holds non-numbers, NaN or inf"),
    ({"poses": np.zeros((4, 72)), "trans": np.zeros((4, 3))}, "no mocap_framerate"),
    ({"poses": np.zeros((4, 72)), "trans": np.zeros((4, 3)), "mocap_framerate": np.array(-1.0)},
     "mocap_framerate must be a frame rate in [1, 10000]"),
    ({"poses": np.zeros((4, 72)), "trans": np.zeros((4, 3)), "mocap_framerate": np.array(1e-6)},
     "mocap_framerate must be a frame rate in [1, 10000], got 1e-06"),
    ({"poses": np.array([{"a": 1}], dtype=object)}, "holds Python objects (pickles)"),
])
def test_an_amass_file_is_checked_at_validation(arrays, words, tmp_path, capsys):
    path = tmp_path / "clip.npz"
    np.savez(path, **arrays)
    k = next(k for k, e in enumerate(_with_amass(path)["entities"])
             if e["geometry"]["type"] == "human")
    line = _validate(_with_amass(path), tmp_path, capsys)
    assert f"entities[{k}].animation.path: 'clip.npz': {words}" in line


@pytest.mark.parametrize("content, words", [
    (None, "is a folder, not a mesh file"),
    (b"v 0 0 0\nv 1 0 0\nv 0 1 0\n", "holds no triangles"),
    (b"garbage\x00\x01\x02", "holds no triangles"),
])
def test_a_mesh_file_is_checked_at_validation(content, words, tmp_path, capsys):
    path = tmp_path / "part.obj"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    data = _builtin("falling_objects")
    data["entities"][1]["geometry"] = {"type": "mesh", "path": str(path)}
    assert f"entities[1].geometry.path: 'part.obj': {words}" in _validate(data, tmp_path, capsys)


@pytest.mark.parametrize("text, words", [
    ('name: t\nframes: "24"\n', 'frames: input should be a valid integer'),
    ("name: t\nseed: true\n", "seed: input should be a valid integer"),
    ('name: t\nfps: "12"\n', "fps: input should be a valid number"),
    ('name: t\nobjects: {count: "3"}\n', "objects.count: expected an integer, got '3'"),
])
def test_data_set_specs_do_not_coerce_either(text, words, tmp_path, capsys):
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    assert main(["dataset", str(path), "-o", str(tmp_path / "out"), "--clips", "1"]) == 2
    assert words in capsys.readouterr().err


def test_an_amass_clip_shorter_than_the_scene_says_so(tmp_path, caplog):
    """The clip's last pose is held past its end (documented), and the run says so."""
    import logging

    import rendiff
    from rendiff.scenes.io import scene_from_dict

    path = tmp_path / "short.npz"
    np.savez(path, poses=np.zeros((5, 72)), trans=np.zeros((5, 3)),
             mocap_framerate=np.array(30.0))
    data = _with_amass(path)
    data.update(frames=6, fps=10.0, size=(32, 32))
    scene = scene_from_dict(data, source="s.yaml")
    with caplog.at_level(logging.WARNING, logger="rendiff"):
        rendiff.simulate(scene, progress=False)
    notes = [r.getMessage() for r in caplog.records if "short.npz" in r.getMessage()]
    assert len(notes) == 1 and "the last 4 frames hold its last pose" in notes[0], notes


def _set(data: dict, path: str, value) -> None:
    """Sets data at a dotted path whose integer parts index lists (entities.1.pose.position)."""
    *head, last = path.split(".")
    node = data
    for part in head:
        node = node[int(part)] if part.isdigit() else node[part]
    node[int(last) if last.isdigit() else last] = value


NAN, INF = float("nan"), float("inf")
#: The non-finite inputs of the bad-input issue, exactly: scene, dotted path, value, field named.
NON_FINITE = [
    ("falling_objects", "camera.K", [[NAN, 0, 16], [0, 100, 16], [0, 0, 1]], "camera.K[0][0]"),
    ("falling_objects", "camera.path.eye.0", NAN, "camera.path.eye[0]"),
    ("falling_objects", "camera.path.target.2", INF, "camera.path.target[2]"),
    ("dynamic_gaussians", "camera.path.radius", NAN, "camera.path.radius"),
    ("falling_objects", "camera.path", {"type": "dolly", "start": [NAN, 1, 1]},
     "camera.path.start[0]"),
    ("walking_human", "camera.path.offset.1", INF, "camera.path.offset[1]"),
    ("falling_objects", "lights.1.direction.0", NAN, "lights[1].direction[0]"),
    ("falling_objects", "lights.1.intensity", INF, "lights[1].intensity"),
    ("falling_objects", "lights.1", {"type": "point", "position": [0, NAN, 2]},
     "lights[1].position[1]"),
    ("walking_human", "entities.1.geometry.betas", [NAN], "entities[1].geometry.betas[0]"),
    ("dynamic_gaussians", "entities.1.geometry.radius", INF, "entities[1].geometry.radius"),
    ("cloth_and_jelly", "entities.3.geometry.mpm.youngs_modulus", INF,
     "entities[3].geometry.mpm.youngs_modulus"),
    ("falling_objects", "entities.1.velocity.2", NAN, "entities[1].velocity[2]"),
]


@pytest.mark.parametrize("scene, path, value, field", NON_FINITE,
                         ids=[f"{s}:{p}" for s, p, _, _ in NON_FINITE])
def test_the_issues_non_finite_inputs_are_refused_naming_the_field(scene, path, value, field,
                                                                   tmp_path, capsys):
    data = _builtin(scene)
    _set(data, path, value)
    line = _validate(data, tmp_path, capsys)
    assert f"s.yaml: {field}" in line, line


@pytest.mark.parametrize("objects, field", [
    ("{spread: 1.0e+300}", "objects.spread: must be within +-1e+06"),
    ("{spread: {uniform: [0.0, 1.0e+300]}}", "objects.spread.uniform[1]: must be within +-1e+06"),
    ("{scale: {normal: {mean: 1.0, std: 1.0e+300}}}", "objects.scale.normal.std: must be within"),
])
def test_a_spec_cannot_draw_meaningless_magnitudes(objects, field, tmp_path, capsys):
    """The bad-input issue's `spread: 1e300` (an OverflowError deep in a clip before)."""
    path = tmp_path / "spec.yaml"
    path.write_text(f"name: t\ngenerator: falling_objects\nobjects: {objects}\n")
    assert main(["dataset", str(path), "-o", str(tmp_path / "out"), "--clips", "1"]) == 2
    assert field in capsys.readouterr().err


def test_a_failed_clip_is_logged_on_one_line(tmp_path, monkeypatch):
    import json

    import rendiff.dataset.sample as sample

    def fails(spec, index):
        raise ValueError("first line\n  second line\n  third line")

    monkeypatch.setattr(sample, "sample_clip", fails)
    path = tmp_path / "spec.yaml"
    path.write_text("name: t\nframes: 2\nsize: [32, 32]\ngenerator: falling_objects\n")
    assert main(["dataset", str(path), "-o", str(tmp_path / "out"), "--clips", "1",
                 "--quiet"]) == 1
    failed = json.loads((tmp_path / "out" / "failures.json").read_text())["failed"]
    assert failed[0]["error"] == "ValueError: first line second line third line"


#: Inputs within every single field's bounds whose product is a hang or a memory blow-up (found by
#: an audit of the loops whose trip count comes from input): scene, edits, the words of the error.
BUDGETS = [
    ("falling_objects", {"fps": 1e-06}, "fps: 32 frames at 1e-06 fps and physics.rate_hz 240 need"),
    ("falling_objects", {"frames": 20000, "fps": 0.1},
     "need 4.80e+07 physics steps (at most 1e+07)"),
    ("falling_objects", {"size": [8192, 8192]}, "frames x size: 32 frames of 8192x8192"),
    ("cloth_and_jelly", {"entities.3.geometry.mpm.youngs_modulus": 1e12,
                         "entities.3.material.density": 1e-12},
     "entities[3].geometry.mpm: youngs_modulus 1e+12 Pa at density 1e-12"),
    ("cloth_and_jelly", {"entities.3.geometry.radius": 10.0},
     "entities: the MPM bodies fill"),
    ("cloth_and_jelly", {"physics.deformables": {"mpm_cell_size": 0.002,
                                                "mpm_domain": [[-1e3, -1e3, 0], [1e3, 1e3, 1]]}},
     "physics.deformables.mpm_domain: 5.01e+14 grid nodes"),
    ("dynamic_gaussians", {"frames": 20000, "entities.1.geometry.count": 5000000},
     "frames: 20000 frames of 5,000,000 simulated points"),
    ("falling_objects", {"generation.window": 1000000000}, "generation.window: must be <= 256"),
]


@pytest.mark.parametrize("scene, edits, words", BUDGETS, ids=[f"{s}:{','.join(e)}"
                                                           for s, e, _ in BUDGETS])
def test_work_past_the_budgets_is_refused_at_once(scene, edits, words, tmp_path, capsys):
    """Each of these hung or exhausted memory after passing validation; now validation refuses
    it, naming the fields, in well under a second."""
    data = _builtin(scene)
    for path, value in edits.items():
        _set(data, path, value)
    start = time.perf_counter()
    line = _validate(data, tmp_path, capsys)
    assert time.perf_counter() - start < 5.0
    assert words in line, line


def test_the_builtin_scenes_are_well_within_the_budgets():
    """The bounds refuse typos, not scenes: ten times every built-in scene's frames passes."""
    from rendiff.scenes import builtin_scene

    for name in ("falling_objects", "walking_human", "dynamic_gaussians", "robot_arm",
                 "gaussian_avatar", "cloth_and_jelly"):
        scene = builtin_scene(name)
        type(scene).model_validate(scene.model_dump() | {"frames": scene.frames * 10,
                                                         "size": (1280, 720)})


@pytest.mark.parametrize("argv, words", [
    (["dataset", "SPEC", "-o", "OUT", "--clips", "1000000000"], "--clips must be <= 1000000"),
    (["dataset", "SPEC", "-o", "OUT", "--clips", "1", "--workers", "100000"],
     "--workers must be <= 256"),
    (["run", "falling_objects", "--steps", "1000000000"], "--steps must be <= 1000"),
])
def test_cli_counts_are_bounded(argv, words, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert words in capsys.readouterr().err


def test_a_ply_announcing_more_gaussians_than_a_scene_may_hold_is_refused(tmp_path):
    from rendiff.engine.gaussians import check_ply

    path = tmp_path / "big.ply"
    props = "".join(f"property float {p}\n" for p in (
        "x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2",
        "rot_0", "rot_1", "rot_2", "rot_3"))
    path.write_bytes(f"ply\nformat binary_little_endian 1.0\nelement vertex 900000000\n{props}"
                     "end_header\n".encode())
    with pytest.raises(ValueError, match="900,000,000 Gaussians"):
        check_ply(path)


@pytest.mark.parametrize("text, words", [
    ("fps: 1.0e-06\n", "fps: 24 frames at 1e-06 fps and physics.rate_hz 240 need"),
    ("size: [8192, 8192]\n", "frames x size: 24 frames of 8192x8192"),
])
def test_a_spec_asking_for_a_hang_is_refused_before_any_clip(text, words, tmp_path, capsys):
    path = tmp_path / "spec.yaml"
    path.write_text("name: t\ngenerator: falling_objects\n" + text)
    assert main(["dataset", str(path), "-o", str(tmp_path / "out"), "--clips", "1"]) == 2
    assert words in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_clip_whose_render_holds_nan_is_not_written(tmp_path, monkeypatch):
    """The data-set writer has the same last guard as ``rendiff.save``: a NaN in a layer fails
    the clip with the layer, frame and entity named, and leaves no clip folder behind."""
    import json

    import rendiff

    real = rendiff.render

    def poisoned(traj, *a, **kw):
        layers = real(traj, *a, **kw)
        layers.data[rendiff.Layer.SHADING][1] = float("nan")
        return layers

    monkeypatch.setattr(rendiff, "render", poisoned)
    path = tmp_path / "spec.yaml"
    path.write_text("name: t\nframes: 2\nsize: [32, 32]\ngenerator: falling_objects\n")
    assert main(["dataset", str(path), "-o", str(tmp_path / "out"), "--clips", "1",
                 "--quiet"]) == 1
    failed = json.loads((tmp_path / "out" / "failures.json").read_text())["failed"]
    assert "layer 'shading' holds NaN or inf at frame 1" in failed[0]["error"], failed
    assert not (tmp_path / "out" / "clips" / "000000").exists()


def test_deformation_from_a_file_saves_no_procedural_settings(tmp_path):
    """Deformation(path=...) ignores the procedural motion's settings: the saved scene.yaml does
    not show them (it showed amplitude 0.1 and frequency 1.0, never used), setting them
    with a path is refused, and the saved scene loads back to the same deformation."""
    from rendiff.engine.deformation import DDDM
    from rendiff.scenes.io import scene_to_dict

    coeffs = tmp_path / "motion.npz"
    DDDM.zeros(10, 2).save(coeffs)
    scene = rendiff.Scene(name="d", frames=2, fps=4.0, size=(16, 16))
    scene.add(rendiff.Gaussians(shape="sphere", count=10, radius=0.3), name="cloud",
              animation=rendiff.Deformation(path=str(coeffs)))
    saved = scene_to_dict(scene)["entities"][0]["animation"]
    assert saved["path"] == str(coeffs)
    assert saved["procedural"] is None and saved["amplitude"] is None
    assert saved["frequency"] is None
    rendiff.save_scene(scene, tmp_path / "scene.yaml")
    again = rendiff.load_scene(tmp_path / "scene.yaml")
    assert again.entities[0].animation == scene.entities[0].animation
    for field in ("amplitude", "frequency", "procedural"):
        with pytest.raises(ValueError, match=field):
            rendiff.Deformation(path=str(coeffs), **{field: "twist" if field == "procedural"
                                                     else 0.2})
    with pytest.raises(ValueError, match="amplitude: a procedural deformation needs it"):
        rendiff.Deformation(amplitude=None)
    assert rendiff.Deformation().amplitude == 0.1  # procedural defaults unchanged
