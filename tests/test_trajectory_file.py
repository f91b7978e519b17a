"""A run's 3D state: trajectory.npz round-trips exactly and re-renders to identical layers;
trajectory.csv is the entities' root state per frame, as a table."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

import rendiff
from rendiff.cli import main
from rendiff.io.trajectory import TrajectoryFileError, load_trajectory, save_trajectory

ROOT = Path(__file__).resolve().parents[1]


def _assert_same(a, b, path="trajectory"):
    """Every field equal, tensors bit for bit (dtype and shape too)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype, path
        assert a.shape == b.shape and torch.equal(a, b), path
    elif isinstance(a, list | tuple):
        assert type(a) is type(b) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _assert_same(a[k], b[k], f"{path}.{k}")
    elif dataclasses.is_dataclass(a):
        assert type(a) is type(b), path
        for f in dataclasses.fields(a):
            if f.name != "timings":
                _assert_same(getattr(a, f.name), getattr(b, f.name), f"{path}.{f.name}")
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


@pytest.mark.parametrize("name", ["falling_objects", "walking_human", "dynamic_gaussians",
                                  "robot_arm", "gaussian_avatar", "cloth_and_jelly"])
def test_trajectory_round_trips_exactly_and_rerenders_identically(tmp_path, name):
    scene = rendiff.builtin_scene(name).model_copy(update={"frames": 3, "size": (32, 24)})
    traj = rendiff.simulate(scene, progress=False)
    path = save_trajectory(traj, tmp_path / "trajectory.npz")
    back = rendiff.load_trajectory(path)
    _assert_same(traj, back)
    assert rendiff.render(back, progress=False).equal(rendiff.render(traj, progress=False))
    # numpy alone opens it: named arrays, no pickles
    with np.load(path, allow_pickle=False) as data:
        assert "times" in data.files and "cameras/viewmats" in data.files
        np.testing.assert_array_equal(data["times"], traj.times.numpy())


def test_textures_and_animated_lights_survive_the_file(tmp_path):
    scene = rendiff.load_scene(ROOT / "examples" / "lights_and_textures.yaml").model_copy(
        update={"frames": 3, "size": (32, 24)})
    traj = rendiff.simulate(scene, progress=False)
    assert any(m.texture is not None for m in traj.meshes)
    assert traj.lights[0] != traj.lights[-1]  # lights move in this example
    back = load_trajectory(save_trajectory(traj, tmp_path / "t.npz"))
    _assert_same(traj, back)
    assert rendiff.render(back, progress=False).equal(rendiff.render(traj, progress=False))


def test_cli_writes_the_trajectory_and_rerenders_it(tmp_path):
    first, again, larger = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert main(["render", "falling_objects", "-o", str(first), "--frames", "3",
                 "--size", "32x24", "--quiet"]) == 0
    assert (first / "trajectory.npz").is_file() and (first / "trajectory.csv").is_file()
    assert main(["render", str(first / "trajectory.npz"), "-o", str(again), "--quiet"]) == 0
    a, b = np.load(first / "layers.npz"), np.load(again / "layers.npz")
    assert a.files == b.files
    for k in a.files:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert not (again / "scene.yaml").exists()  # re-rendered from the 3D state alone

    # another size: the same view (intrinsics scaled), the same geometry
    assert main(["render", str(first / "trajectory.npz"), "-o", str(larger), "--size", "64x48",
                 "--quiet"]) == 0
    c = np.load(larger / "layers.npz")
    assert c["rgb"].shape == (3, 48, 64, 3)
    np.testing.assert_allclose(c["K"][:, :2], a["K"][:, :2] * 2, rtol=1e-6)
    # 2x2 blocks of the larger depth average to the smaller one where both are one surface
    d_small, d_large = a["depth"], c["depth"]
    pooled = d_large.reshape(3, 24, 2, 32, 2).mean((2, 4))
    solid = np.isfinite(pooled) & np.isfinite(d_small)
    assert np.median(np.abs(pooled[solid] - d_small[solid])) < 1e-3


def test_table_holds_every_entity_each_frame_as_simulated(tmp_path):
    scene = rendiff.builtin_scene("falling_objects").model_copy(update={"frames": 4,
                                                                        "size": (16, 16)})
    traj = rendiff.simulate(scene, progress=False)
    out = tmp_path / "run"
    rendiff.save(out, rendiff.render(traj, progress=False), scene=scene, trajectory=traj)
    with open(out / "trajectory.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 * len(traj.entity_names)
    for row in rows:
        k, name = int(row["frame"]), row["entity"]
        r = traj.rigid[name]
        got = [float(row[c]) for c in ("x", "y", "z", "qw", "qx", "qy", "qz")]
        assert got == [float(v) for v in (*r.positions[k], *r.quats[k])]  # exact: repr floats
        assert int(row["instance_id"]) == traj.entity_names.index(name) + 1
        mesh = next(m for m in traj.meshes if m.name == name)
        assert float(row["box_max_z"]) == float(mesh.vertices[k, :, 2].max())
    # numpy reads it too (pandas.read_csv would as well)
    table = np.genfromtxt(out / "trajectory.csv", delimiter=",", names=True, dtype=None,
                          encoding="utf-8")
    assert len(table) == len(rows) and "qw" in table.dtype.names


def test_bad_trajectory_files_are_one_line_errors(tmp_path, capsys):
    missing = tmp_path / "none" / "trajectory.npz"
    with pytest.raises(TrajectoryFileError, match="file not found"):
        load_trajectory(missing)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file")
    with pytest.raises(TrajectoryFileError, match="not a readable trajectory file"):
        load_trajectory(junk)
    other = tmp_path / "other.npz"
    np.savez(other, structure=np.array('{"format": "something/9"}'))
    with pytest.raises(TrajectoryFileError, match="format 'something/9'"):
        load_trajectory(other)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, structure=np.array('{"format": "rendiff.trajectory/1", "trajectory": '
                                         '{"__type__": "Popen", "fields": {}}}'))
    with pytest.raises(TrajectoryFileError, match="unknown type 'Popen'"):
        load_trajectory(pickled)
    assert main(["render", str(junk), "-o", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "junk.npz" in err[0]
    assert main(["render", str(junk), "-o", str(tmp_path / "out"), "--frames", "3"]) == 2
    assert "--frames" in capsys.readouterr().err
