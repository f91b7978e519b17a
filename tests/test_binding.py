"""Gaussians bound to other things, against independent answers: a physics box's world transform
composed here with scipy, smplx's own forward pass with barycentrics and normals written out in
numpy, Open3D's point-to-mesh distances, and the mesh renderer's silhouette of the same body."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import open3d as o3d
import pytest
import torch
from scipy.spatial.transform import Rotation

from rendiff.engine.binding import (
    bind_to_surface,
    compose_rigid,
    rest_vertices,
    surface_gaussians,
)
from rendiff.engine.body import SMPL_JOINT_NAMES
from rendiff.engine.gaussians import GaussianCloud, save_ply
from rendiff.engine.layers import Layer
from rendiff.engine.renderer import render
from rendiff.engine.simulator import simulate
from rendiff.engine.trajectory import RigidTrack
from rendiff.scenes import (
    AvatarGaussians,
    Box,
    Camera,
    Gaussians,
    Human,
    Material,
    Motion,
    Plane,
    Pose,
    Scene,
    SceneError,
    StaticPath,
    builtin_scene,
    load_scene,
    save_scene,
    scene_from_dict,
)

RX90 = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])  # SMPL Y-up -> world Z-up
J = {n: i for i, n in enumerate(SMPL_JOINT_NAMES)}
ROOT = Path(__file__).resolve().parents[1]


def _rot(q: np.ndarray) -> Rotation:
    """scipy rotations from (w, x, y, z) quaternions."""
    return Rotation.from_quat(np.asarray(q, dtype=np.float64)[..., [1, 2, 3, 0]])


def _same_rotation(q_a: np.ndarray, q_b: np.ndarray, atol: float) -> None:
    """Unit quaternions equal up to sign."""
    qa = q_a / np.linalg.norm(q_a, axis=-1, keepdims=True)
    qb = q_b / np.linalg.norm(q_b, axis=-1, keepdims=True)
    dot = np.abs((qa * qb).sum(-1))
    assert dot.min() > 1 - atol, f"rotations differ: min |<qa, qb>| = {dot.min()}"


def _surface_points(verts: np.ndarray, faces: np.ndarray, face: np.ndarray, bary: np.ndarray,
                    offset: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Barycentric point plus offset times unit face normal, and the face frames (columns:
    unit first edge, normal x edge, normal), all written out with numpy."""
    a, b, c = (verts[faces[face, i]] for i in range(3))
    n = np.cross(b - a, c - a)
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    x = (b - a) / np.linalg.norm(b - a, axis=-1, keepdims=True)
    frames = np.stack([x, np.cross(n, x), n], axis=-1)
    p = bary[:, :1] * a + bary[:, 1:2] * b + bary[:, 2:] * c + offset[:, None] * n
    return p, frames


# ---------------------------------------------------------------------------------------------
# rigid binding


def _random_cloud(n: int, seed: int) -> GaussianCloud:
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(n, 4, generator=g)
    return GaussianCloud(torch.randn(n, 3, generator=g) * 0.1, q / q.norm(dim=1, keepdim=True),
                         torch.full((n, 3), 0.02), torch.full((n,), 0.9),
                         torch.rand(n, 1, 3, generator=g))


def test_cloud_bound_to_physics_box_follows_its_transform(tmp_path):
    cloud = _random_cloud(40, seed=1)
    save_ply(cloud, tmp_path / "cloud.ply")
    scene = Scene(name="bound", frames=14, fps=16.0, size=(32, 32))
    scene.add(Plane(), name="ground")
    scene.add(Box(size=(0.3, 0.2, 0.25)), Pose.from_euler((0.0, 0.0, 0.8), (30.0, 20.0, 10.0)),
              Material(density=500.0), name="box", dynamic=True, velocity=(0.4, 0.0, 0.0),
              angular_velocity=(2.0, -3.0, 1.0))
    off_q = _rot([1.0, 0, 0, 0]) * Rotation.from_rotvec([0.3, -0.5, 0.9])
    off_q_wxyz = off_q.as_quat()[[3, 0, 1, 2]]
    scene.add(Gaussians(path=str(tmp_path / "cloud.ply"), bind_to="box"),
              Pose(position=(0.05, -0.02, 0.2), rotation=tuple(off_q_wxyz)), name="splats")
    traj = simulate(scene, progress=False)
    box = traj.rigid["box"]
    track = next(g for g in traj.gaussians if g.name == "splats")
    assert track.instance_id == 3
    pos, quat = box.positions.double().numpy(), box.quats.double().numpy()
    # the box really fell and tumbled
    assert pos[0, 2] - pos[-1, 2] > 0.3
    assert _rot(quat[0]).inv().__mul__(_rot(quat[-1])).magnitude() > 0.5
    local_p = cloud.means.double().numpy()
    local_q = cloud.quats.double().numpy()
    for k in range(scene.frames):
        R_box = _rot(quat[k])
        expect = R_box.apply(off_q.apply(local_p) + [0.05, -0.02, 0.2]) + pos[k]
        np.testing.assert_allclose(track.means[k].numpy(), expect, atol=2e-5)
        q_expect = (R_box * off_q * _rot(local_q)).as_quat()[:, [3, 0, 1, 2]]
        _same_rotation(track.quats[k].double().numpy(), q_expect, atol=1e-6)


def test_compose_rigid_velocity_is_rigid_body_motion():
    """A parent spinning about z at w: the child's velocity is w x (R r), its angle advances."""
    T, w = 5, 2.0
    t = torch.arange(T, dtype=torch.float32) * 0.1
    half = w * t / 2
    quats = torch.stack([torch.cos(half), 0 * half, 0 * half, torch.sin(half)], -1)
    parent = RigidTrack(torch.zeros(T, 3) + torch.tensor([1.0, 2.0, 3.0]), quats,
                        torch.zeros(T, 3), torch.tensor([0.0, 0.0, w]).expand(T, 3).clone())
    child = compose_rigid(parent, torch.tensor([0.5, 0.0, 0.1]), torch.tensor([1.0, 0, 0, 0]))
    ang = w * t.double().numpy()
    r = np.stack([0.5 * np.cos(ang), 0.5 * np.sin(ang), np.full(T, 0.1)], -1)
    np.testing.assert_allclose(child.positions.numpy(), r + [1.0, 2.0, 3.0], atol=1e-6)
    v = np.stack([-w * r[:, 1], w * r[:, 0], np.zeros(T)], -1)
    np.testing.assert_allclose(child.linear_velocity.numpy(), v, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Gaussian avatar


def test_avatar_rest_pose_lies_on_template(body, smpl_direct):
    faces = smpl_direct.faces.astype(np.int64)
    template = smpl_direct.v_template.double().numpy() @ RX90.T
    binding, cloud = surface_gaussians(rest_vertices(body), body.faces, per_triangle=3,
                                       offset=0.004)
    assert len(binding) == 3 * len(faces)
    face, bary = binding.face.numpy(), binding.bary.double().numpy()
    assert (bary > 0).all() and np.allclose(bary.sum(1), 1)
    expect, frames = _surface_points(template, faces, face, bary, binding.offset.double().numpy())
    np.testing.assert_allclose(cloud.means.numpy(), expect, atol=1e-6)
    zero = body.pose(torch.zeros(1, 3), torch.zeros(1, 69)).vertices
    means, quats = binding.pose(zero)
    np.testing.assert_allclose(means[0].numpy(), expect, atol=1e-6)
    # rotation = triangle frame * local rotation; the splat's short axis is the face normal
    R = _rot(quats[0].double().numpy()).as_matrix()
    local = _rot(binding.quats.double().numpy()).as_matrix()
    np.testing.assert_allclose(R, frames @ local, atol=1e-4)  # float32 frames of ~1 cm edges
    assert (cloud.scales[:, 2] < cloud.scales[:, 1]).all()


def test_avatar_follows_smplx_posing(body, smpl_direct):
    gen = torch.Generator().manual_seed(7)
    go, bp = torch.randn(2, 3, generator=gen) * 0.4, torch.randn(2, 69, generator=gen) * 0.4
    tr = torch.randn(2, 3, generator=gen)
    binding, _ = surface_gaussians(rest_vertices(body), body.faces, per_triangle=2, offset=0.01)
    means, quats = binding.pose(body.pose(go, bp, None, tr).vertices)
    with torch.no_grad():
        out = smpl_direct(global_orient=go, body_pose=bp, transl=tr)
    faces = smpl_direct.faces.astype(np.int64)
    for k in range(2):
        verts = out.vertices[k].double().numpy() @ RX90.T
        expect, frames = _surface_points(verts, faces, binding.face.numpy(),
                                         binding.bary.double().numpy(),
                                         binding.offset.double().numpy())
        np.testing.assert_allclose(means[k].numpy(), expect, atol=2e-5)
        q_expect = (Rotation.from_matrix(frames) * _rot(binding.quats.double().numpy()))
        _same_rotation(quats[k].double().numpy(), q_expect.as_quat()[:, [3, 0, 1, 2]], 1e-6)


def test_rotated_elbow_moves_forearm_not_foot(body, smpl_direct):
    binding, cloud = surface_gaussians(rest_vertices(body), body.faces)
    bp = torch.zeros(1, 69)
    bp[0, (J["left_elbow"] - 1) * 3 + 1] = 1.2  # bend about SMPL's y axis
    means, _ = binding.pose(body.pose(torch.zeros(1, 3), bp).vertices)
    moved = (means[0] - cloud.means).norm(dim=1).numpy()
    # parts from smplx's own skinning weights, by the triangle's first corner
    part = smpl_direct.lbs_weights.argmax(1).numpy()[smpl_direct.faces[binding.face.numpy(), 0]]
    forearm = np.isin(part, [J["left_elbow"], J["left_wrist"], J["left_hand"]])
    foot = np.isin(part, [J["left_ankle"], J["right_ankle"], J["left_foot"], J["right_foot"]])
    assert forearm.sum() > 50 and foot.sum() > 50
    assert np.median(moved[forearm]) > 0.05
    assert moved[foot].max() < 1e-6


def test_cloud_bound_to_human_skin_follows_it(tmp_path, smpl_direct):
    """A .ply cloud given on the rest surface (in the body's rest frame) stays on the same
    barycentric points of the skinned mesh that simulate() builds for the human."""
    faces = smpl_direct.faces.astype(np.int64)
    template = smpl_direct.v_template.double().numpy() @ RX90.T
    rng = np.random.default_rng(4)
    face = rng.choice(len(faces), 60, replace=False)
    bary = rng.dirichlet([4.0, 4.0, 4.0], 60)
    pts, _ = _surface_points(template, faces, face, bary, np.zeros(60))
    cloud = _random_cloud(60, seed=2)
    cloud.means = torch.from_numpy(pts).float()
    save_ply(cloud, tmp_path / "skin.ply")
    scene = Scene(name="skin", frames=3, fps=16.0, size=(32, 32))
    scene.add(Human(), Pose(position=(0.3, 0.2, 0.0)), name="person",
              animation=Motion(name="walk", speed=1.0))
    scene.add(Gaussians(path=str(tmp_path / "skin.ply"), bind_to="person"), name="skin")
    traj = simulate(scene, progress=False)
    mesh = next(m for m in traj.meshes if m.name == "person")
    track = next(g for g in traj.gaussians if g.name == "skin")
    for k in range(3):
        expect, _ = _surface_points(mesh.vertices[k].double().numpy(), faces, face, bary,
                                    np.zeros(60))
        np.testing.assert_allclose(track.means[k].numpy(), expect, atol=2e-5)
    assert (track.means[-1] - track.means[0]).norm(dim=1).max() > 0.02
    # and binding then posing at rest gives back the cloud exactly
    b = bind_to_surface(cloud.means, cloud.quats, torch.from_numpy(template).float(),
                        torch.from_numpy(faces))
    m, q = b.pose(torch.from_numpy(template).float())
    np.testing.assert_allclose(m.numpy(), pts, atol=1e-5)
    _same_rotation(q.double().numpy(), cloud.quats.double().numpy(), 1e-6)


def _person_scene(avatar: bool, size: int, eye, target) -> Scene:
    scene = Scene(name="avatar", frames=3, fps=16.0, size=(size, size))
    geom = Human(gaussians=AvatarGaussians(per_triangle=1) if avatar else None)
    scene.add(geom, Pose(), name="person", animation=Motion(name="walk", speed=1.0))
    scene.camera = Camera(fov_deg=50.0, path=StaticPath(eye=eye, target=target))
    return scene


def test_avatar_in_scene_lies_on_skinned_mesh_and_covers_its_silhouette():
    view = dict(size=192, eye=(1.0, -1.8, 0.9), target=(0.1, 0.0, 0.9))
    mesh_traj = simulate(_person_scene(False, **view), progress=False)
    avatar_traj = simulate(_person_scene(True, **view), progress=False)
    assert not avatar_traj.meshes and len(avatar_traj.gaussians) == 1
    track = avatar_traj.gaussians[0]
    mesh = mesh_traj.meshes[0]
    assert track.means.shape == (3, mesh.faces.shape[0], 3)
    assert track.part_labels is not None and set(track.part_labels.unique().tolist()) == set(
        range(1, 25))
    for k in range(3):  # every Gaussian on the skinned surface (Open3D's distance query)
        rc = o3d.t.geometry.RaycastingScene()
        rc.add_triangles(o3d.core.Tensor(mesh.vertices[k].numpy()),
                         o3d.core.Tensor(mesh.faces.numpy().astype(np.uint32)))
        d = rc.compute_distance(o3d.core.Tensor(track.means[k].numpy())).numpy()
        assert d.max() < 1e-5
    layers = [Layer.ALPHA, Layer.INSTANCE]
    ref = render(mesh_traj, layers, shadows=False, progress=False)
    got = render(avatar_traj, layers, shadows=False, progress=False)
    for k in range(3):
        sil = ref[Layer.INSTANCE][k] == 1
        ours = got[Layer.INSTANCE][k] == 1
        iou = (sil & ours).sum() / (sil | ours).sum()
        # ~0.86: the splat silhouette is about a pixel wider (the rasterizer's 0.3 px^2 filter)
        assert sil.sum() > 3000 and iou > 0.8, f"frame {k}: IoU {iou:.3f}"
        alpha = got[Layer.ALPHA][k]
        assert alpha[sil].min() > 0.9 and alpha[~sil].mean() < 0.05


def test_avatar_surface_is_closed_in_close_up():
    """Seen from 0.8 m, where a triangle spans a few pixels, no pixel of the body is
    see-through (with splats only as wide as their triangle, about half of them would be)."""
    view = dict(size=128, eye=(0.3, -0.8, 1.25), target=(0.1, 0.0, 1.2))
    layers = [Layer.ALPHA, Layer.INSTANCE]
    ref = render(simulate(_person_scene(False, **view), progress=False), layers,
                 shadows=False, progress=False)
    got = render(simulate(_person_scene(True, **view), progress=False), layers,
                 shadows=False, progress=False)
    for k in range(3):
        sil = ref[Layer.INSTANCE][k] == 1
        assert sil.sum() > 4000
        assert got[Layer.ALPHA][k][sil].min() > 0.9


# ---------------------------------------------------------------------------------------------
# scene errors


def _scene_dict(**cloud) -> dict:
    return {"entities": [
        {"name": "box", "geometry": {"type": "box"}},
        {"name": "cloud", "geometry": {"type": "gaussians", **cloud}},
    ]}


@pytest.mark.parametrize("cloud, extra, message", [
    ({"bind_to": "nobody"}, {}, "entities[1].geometry.bind_to: no entity named 'nobody'"),
    ({"bind_to": "cloud"}, {}, "entities[1].geometry.bind_to: a cloud cannot be bound to itself"),
    ({"bind_to": "box"}, {"animation": {"type": "keyframes", "times": [0.0],
                                        "positions": [[0, 0, 0]]}},
     "entities[1].animation: a cloud with 'bind_to' moves with the entity"),
])
def test_bad_binding_is_a_one_line_error_naming_the_field(cloud, extra, message):
    data = _scene_dict(**cloud)
    data["entities"][1].update(extra)
    with pytest.raises(SceneError) as err:
        scene_from_dict(data, source="s.yaml")
    text = str(err.value)
    assert "\n" not in text and text.startswith("s.yaml: " + message), text


def test_binding_cycle_and_dddm_on_skin_are_errors():
    data = _scene_dict(bind_to="other")
    data["entities"].append({"name": "other", "geometry": {"type": "gaussians",
                                                           "bind_to": "cloud"}})
    with pytest.raises(SceneError, match=r"entities\[1\]\.geometry\.bind_to: bindings form a "
                                         r"cycle \(cloud -> other -> cloud\)"):
        scene_from_dict(data)
    data = {"entities": [
        {"name": "person", "geometry": {"type": "human"}},
        {"name": "cloud", "geometry": {"type": "gaussians", "bind_to": "person"},
         "animation": {"type": "dddm"}},
    ]}
    with pytest.raises(SceneError, match=r"entities\[1\]\.geometry\.bind_to: .*'dddm'"):
        scene_from_dict(data)


# ---------------------------------------------------------------------------------------------
# scenes


def test_gaussian_avatar_scene_round_trips_and_is_deterministic(tmp_path):
    scene = builtin_scene("gaussian_avatar", seed=2)
    assert load_scene(save_scene(scene, tmp_path / "s.yaml")) == scene
    example = load_scene(ROOT / "examples" / "gaussian_avatar.yaml")
    assert example.entity("ball").geometry.bind_to == "person"
    assert example.entity("person").geometry.gaussians.per_triangle == 2
    small = scene.model_copy(update={"frames": 3, "size": (40, 32)})
    a = render(simulate(small, progress=False), progress=False)
    b = render(simulate(small, progress=False), progress=False)
    assert a.equal(b)
    ids = {int(i) for i in a[Layer.INSTANCE].unique()}
    assert {2, 4} <= ids and 3 not in ids  # avatar and splats; the crate hides under its splats
