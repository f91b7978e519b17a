"""Built-in scenes start with no body inside another (issue: falling_objects seed 0 started
sphere_4 9 mm inside cylinder_3, and physics pushed them apart on its first step).

Checked independently of the placement code: every vertex of each body's frame-0 mesh is tested
against every other body's closed mesh with Open3D's signed distance (negative inside)."""

from __future__ import annotations

import open3d as o3d
import pytest
import torch

import rendiff
from rendiff.engine.entities import kind_of
from rendiff.engine.transforms import quat_to_matrix


def _world_meshes(scene):
    out = {}
    for e in scene.entities:
        if not e.dynamic:
            continue
        local = kind_of(e.geometry).local_mesh(e.geometry)
        if local is None:  # not a fixed shape (a cloud, a body): not checked here
            continue
        R = quat_to_matrix(torch.tensor(e.pose.rotation, dtype=torch.float32))
        verts = local.verts @ R.T + torch.tensor(e.pose.position, dtype=torch.float32)
        out[e.name] = (verts.numpy(), local.faces.numpy())
    return out


def _deepest_overlap(scene) -> tuple[float, str]:
    meshes = _world_meshes(scene)
    worst, where = 0.0, ""
    for name, (verts, faces) in meshes.items():
        rc = o3d.t.geometry.RaycastingScene()
        rc.add_triangles(o3d.core.Tensor(verts), o3d.core.Tensor(faces.astype("uint32")))
        for other, (overts, _) in meshes.items():
            if other == name:
                continue
            d = rc.compute_signed_distance(o3d.core.Tensor(overts)).numpy()
            if d.min() < worst:
                worst, where = float(d.min()), f"{other} inside {name}"
    return worst, where


@pytest.mark.parametrize("seed", range(8))
def test_falling_objects_bodies_start_apart(seed):
    depth, where = _deepest_overlap(rendiff.builtin_scene("falling_objects", seed=seed))
    assert depth >= 0.0, f"seed {seed}: {where} by {-depth * 1000:.1f} mm"


def test_the_overlap_check_sees_an_overlap():
    scene = rendiff.builtin_scene("falling_objects")
    a, b = [e for e in scene.entities if e.dynamic][:2]
    b.pose = b.pose.model_copy(update={"position": a.pose.position})
    depth, where = _deepest_overlap(scene)
    assert depth < -0.02 and where  # a box around a sphere of radius 0.12


@pytest.mark.parametrize("spec_file", ["falling_objects_dataset.yaml", "mixed_dataset.yaml"])
def test_data_set_sampler_starts_bodies_apart(spec_file):
    from pathlib import Path

    from rendiff.dataset.sample import sample_clip
    from rendiff.dataset.spec import load_dataset_spec

    spec = load_dataset_spec(Path(__file__).resolve().parents[1] / "examples" / spec_file)
    for index in range(6):
        scene = sample_clip(spec, index).scene
        depth, where = _deepest_overlap(scene)
        assert depth >= 0.0, f"{spec_file} clip {index}: {where} by {-depth * 1000:.1f} mm"
