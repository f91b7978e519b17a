"""Mesh rasterizer against independent answers: the analytic sphere, Open3D's ray caster, a
round trip through the barycentrics, and (through Triton's interpreter) the torch reference."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import open3d as o3d
import pytest
import torch
from _aot import (
    aot_unavailable,
    assert_same_variants,
    record_launches,
)

from rendiff.engine.meshes import box, plane, sphere
from rendiff.kernels import mesh_raster
from rendiff.kernels.mesh_raster import (
    interpolate,
    mesh_normals_camera,
    rasterize_triangles,
)


def _look_at(eye, target) -> torch.Tensor:
    """OpenCV world-to-camera matrix (x right, y down, z forward) for a world with +Z up."""
    eye, target = torch.tensor(eye, dtype=torch.float32), torch.tensor(target, dtype=torch.float32)
    fwd = torch.nn.functional.normalize(target - eye, dim=0)
    right = torch.nn.functional.normalize(
        torch.linalg.cross(fwd, torch.tensor([0.0, 0.0, 1.0])), dim=0
    )
    down = torch.linalg.cross(fwd, right)
    view = torch.eye(4)
    view[:3, :3] = torch.stack([right, down, fwd])
    view[:3, 3] = -view[:3, :3] @ eye
    return view


def _intrinsics(f: float, width: int, height: int) -> torch.Tensor:
    return torch.tensor([[f, 0.0, width / 2 - 0.3], [0.0, f * 1.1, height / 2 + 0.2], [0, 0, 1]])


def _camera_rays(view, K, width, height) -> torch.Tensor:
    """Camera-space ray directions through pixel centres, scaled to z = 1: [H, W, 3]."""
    v, u = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    pix = torch.stack([u, v, torch.ones_like(u)], -1)
    return pix @ torch.linalg.inv(K).T


def _open3d_cast(verts, faces, view, K, width, height):
    """Open3D ray casting through the same pixel centres; depth = t_hit * (unit ray dir)_z."""
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(
        o3d.core.Tensor(verts.numpy().astype(np.float32)),
        o3d.core.Tensor(faces.numpy().astype(np.uint32)),
    )
    d_cam = torch.nn.functional.normalize(_camera_rays(view, K, width, height), dim=-1)
    R, t = view[:3, :3], view[:3, 3]
    d_world = d_cam @ R  # R^T d for each ray
    origin = (-R.T @ t).expand_as(d_world)
    rays = torch.cat([origin, d_world], -1).numpy().astype(np.float32)
    hit = scene.cast_rays(o3d.core.Tensor(rays))
    t_hit = torch.from_numpy(hit["t_hit"].numpy())
    prim = torch.from_numpy(hit["primitive_ids"].numpy().astype(np.int64))
    prim[~torch.isfinite(t_hit)] = -1
    uv = torch.from_numpy(hit["primitive_uvs"].numpy())
    bary = torch.stack([1 - uv[..., 0] - uv[..., 1], uv[..., 0], uv[..., 1]], -1)
    return t_hit * d_cam[..., 2], prim, bary


def _scene():
    """A sphere, a rotated box and a ground plane: overlaps, sharp edges, a large triangle pair."""
    a = math.radians(30)
    Rz = torch.tensor([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    meshes = [
        sphere(0.6, 3).transformed(torch.eye(3), torch.tensor([0.0, 0.3, 0.6])),
        box((0.4, 0.3, 0.5)).transformed(Rz, torch.tensor([0.5, -0.6, 0.5])),
        plane(6.0, 6.0),
    ]
    verts, faces, normals, offset = [], [], [], 0
    for m in meshes:
        verts.append(m.verts)
        faces.append(m.faces + offset)
        normals.append(m.normals)
        offset += m.verts.shape[0]
    return torch.cat(verts), torch.cat(faces), torch.cat(normals)


def test_sphere_matches_analytic_depth_and_normals():
    r, centre = 1.0, torch.tensor([0.2, -0.1, 0.3])
    mesh = sphere(r, 3).transformed(torch.eye(3), centre)
    width, height = 96, 80
    view, K = _look_at((3.0, -2.0, 1.5), centre.tolist()), _intrinsics(140.0, width, height)
    frags = rasterize_triangles(mesh.verts, mesh.faces, view, K, width, height)
    normals = mesh_normals_camera(mesh.verts, mesh.faces, mesh.normals, view, frags)

    d = _camera_rays(view, K, width, height)  # z = 1, so the ray parameter is the depth
    c = view[:3, :3] @ centre + view[:3, 3]
    dd, dc = (d * d).sum(-1), d @ c
    disc = dc**2 - dd * (c @ c - r * r)
    hit_true = disc > 0
    t_true = (dc - disc.clamp(min=0).sqrt()) / dd
    n_true = torch.nn.functional.normalize(t_true[..., None] * d - c, dim=-1)
    cos_view = -(n_true * torch.nn.functional.normalize(d, dim=-1)).sum(-1)

    # Tessellation error. The mesh is inscribed: its vertices are on the sphere and every point of
    # a face is at least r - s from the centre, s = r - sqrt(r^2 - rho^2) the sagitta of the
    # largest circumradius rho. A ray meeting the sphere at Q with incidence theta reaches that
    # inner shell after e = r cos(theta) - sqrt(r^2 cos^2(theta) - 2 r s + s^2), so the mesh hit
    # P is at most e further along the ray (depth: e * dir_z). The vertex normals are radial, so
    # the interpolated normal points from the centre to P; by the law of sines it is off the true
    # normal at Q by asin(|PQ| sin(theta) / |P - centre|) <= asin(e sin(theta) / (r - s)).
    tri = mesh.verts[mesh.faces].double() - centre.double()
    a, b, e = [(tri[:, i] - tri[:, (i + 1) % 3]).norm(dim=-1) for i in range(3)]
    area = 0.5 * torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]).norm(dim=-1)
    rho = (a * b * e / (4 * area)).max().item()
    s = r - math.sqrt(r * r - rho**2)
    cos_t = cos_view.double().clamp(0, 1)
    e_max = r * cos_t - (r * r * cos_t**2 - 2 * r * s + s * s).clamp(min=0).sqrt()
    depth_bound = e_max / d.double().norm(dim=-1) + 1e-5  # + float32 rounding
    sin_bound = e_max * (1 - cos_t**2).sqrt() / (r - s) + 1e-4

    hit = torch.isfinite(frags.depth)
    assert hit.sum() > 0.3 * width * height
    assert not (hit & ~hit_true).any(), "an inscribed mesh cannot cover pixels the sphere misses"
    assert (hit_true & ~hit).sum() <= 0.03 * hit_true.sum()  # only along the silhouette
    sel = hit & (cos_view > 0.3)  # grazing pixels: the analytic hit can be off the mesh face
    err = frags.depth[sel] - t_true[sel]
    assert err.min() > -1e-5  # the mesh lies behind the true surface
    assert (err <= depth_bound[sel]).all()
    sin_err = torch.linalg.cross(normals[sel], n_true[sel]).norm(dim=-1)
    assert (sin_err <= sin_bound[sel]).all()
    assert ((normals[sel] * n_true[sel]).sum(-1) > 0).all()
    assert (normals[~hit] == 0).all()

    # Round trip: interpolated camera-space vertices lie on each pixel's ray at the stored depth.
    cam = mesh.verts @ view[:3, :3].T + view[:3, 3]
    point = interpolate(cam, mesh.faces, frags)
    torch.testing.assert_close(point[hit], frags.depth[hit][:, None] * d[hit], atol=2e-4, rtol=1e-4)
    torch.testing.assert_close(frags.bary[hit].sum(-1), torch.ones(int(hit.sum())))
    assert (frags.bary[hit] >= -1e-6).all()


@pytest.mark.parametrize(("width", "height"), [(128, 96), (37, 53)])
def test_matches_open3d_raycasting(width, height):
    verts, faces, _ = _scene()
    view, K = _look_at((2.5, -2.8, 1.6), (0.1, -0.1, 0.4)), _intrinsics(0.9 * width, width, height)
    frags = rasterize_triangles(verts, faces, view, K, width, height)
    depth_o3d, prim_o3d, bary_o3d = _open3d_cast(verts, faces, view, K, width, height)

    assert frags.depth.shape == (height, width) and frags.bary.shape == (height, width, 3)
    hit, hit_o3d = torch.isfinite(frags.depth), torch.isfinite(depth_o3d)
    assert (hit == hit_o3d).float().mean() > 0.995
    both = hit & hit_o3d
    same = both & (frags.face_id == prim_o3d)
    assert same.sum() > 0.99 * both.sum()  # disagreements: pixel centres on shared edges
    torch.testing.assert_close(frags.depth[same], depth_o3d[same], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(frags.bary[same], bary_o3d[same], rtol=0, atol=5e-4)
    # Where the face differs, the two hits are on neighbouring faces at nearly the same depth.
    diff = both & ~same
    torch.testing.assert_close(frags.depth[diff], depth_o3d[diff], rtol=2e-3, atol=1e-4)

    # Flat normals against the hit face's normal from Open3D's own triangle, turned to the camera.
    normals = mesh_normals_camera(verts, faces, None, view, frags)
    tri = verts[faces[prim_o3d[same]]] @ view[:3, :3].T
    n = torch.nn.functional.normalize(
        torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), dim=-1
    )
    n = torch.where(
        (n * _camera_rays(view, K, width, height)[same]).sum(-1, keepdim=True) > 0, -n, n
    )
    torch.testing.assert_close(normals[same], n, atol=1e-4, rtol=0)
    assert (normals[~hit] == 0).all() and (frags.face_id[~hit] == -1).all()


@pytest.mark.parametrize(
    "verts",
    [
        [[-1.5, 1.0, 3.0], [1.5, 1.0, 3.0], [0.3, 1.0, -1.0]],  # one vertex behind the camera
        [[-1.5, 1.0, -1.0], [1.5, 1.0, -1.0], [0.3, 1.0, 4.0]],  # two vertices behind
    ],
)
def test_triangle_crossing_near_plane_is_clipped_not_dropped(verts):
    # A floor triangle in the camera-space plane y = 1 reaching behind the camera. Pixels below
    # the horizon see the part in front of the near plane; the part between the camera and the
    # near plane projects far outside the image, so it does not matter that Open3D keeps it.
    verts = torch.tensor(verts)
    faces = torch.tensor([[0, 1, 2]])
    view, width, height = torch.eye(4), 64, 48
    K = _intrinsics(40.0, width, height)
    frags = rasterize_triangles(verts, faces, view, K, width, height, near=0.01)
    depth_o3d, prim_o3d, bary_o3d = _open3d_cast(verts, faces, view, K, width, height)

    hit = torch.isfinite(frags.depth)
    assert hit.sum() > 100
    assert (hit == torch.isfinite(depth_o3d)).float().mean() > 0.99
    both = hit & torch.isfinite(depth_o3d)
    torch.testing.assert_close(frags.depth[both], depth_o3d[both], rtol=1e-4, atol=1e-5)
    # Barycentrics refer to the original three vertices, including the one behind the camera.
    torch.testing.assert_close(frags.bary[both], bary_o3d[both], rtol=0, atol=1e-3)
    point = interpolate(verts, faces, frags)
    d = _camera_rays(view, K, width, height)
    torch.testing.assert_close(point[hit], frags.depth[hit][:, None] * d[hit], atol=1e-4, rtol=1e-4)
    assert frags.depth[hit].min() >= 0.01


def test_triangle_through_the_camera_plane_gets_correct_partial_coverage():
    # A slanted triangle from behind the camera to z = 2 whose part in front of the near plane
    # at z = 0.5 is in view, so the clip line itself is visible in the image.
    verts = torch.tensor([[-0.5, -0.5, -1.0], [0.5, -0.5, -1.0], [0.0, 0.5, 2.0]])
    faces = torch.tensor([[0, 1, 2]])
    view, width, height = torch.eye(4), 40, 40
    K = _intrinsics(30.0, width, height)
    frags = rasterize_triangles(verts, faces, view, K, width, height, near=0.5)
    depth_o3d, _, _ = _open3d_cast(verts, faces, view, K, width, height)
    depth_o3d[depth_o3d < 0.5] = float("inf")  # what lies in front of the near plane is gone
    hit = torch.isfinite(frags.depth)
    assert hit.sum() > 20
    assert (hit == torch.isfinite(depth_o3d)).float().mean() > 0.99
    both = hit & torch.isfinite(depth_o3d)
    torch.testing.assert_close(frags.depth[both], depth_o3d[both], rtol=1e-4, atol=1e-5)


def _assert_empty(frags, width, height):
    assert frags.depth.shape == (height, width)
    assert torch.isinf(frags.depth).all()
    assert (frags.face_id == -1).all() and frags.face_id.dtype == torch.int64
    assert (frags.bary == 0).all() and frags.bary.shape == (height, width, 3)


def test_object_behind_camera_is_empty():
    mesh = sphere(1.0, 2).transformed(torch.eye(3), torch.tensor([0.0, 0.0, -5.0]))
    frags = rasterize_triangles(
        mesh.verts, mesh.faces, torch.eye(4), _intrinsics(30, 40, 30), 40, 30
    )
    _assert_empty(frags, 40, 30)


def test_empty_mesh():
    frags = rasterize_triangles(
        torch.zeros(0, 3),
        torch.zeros(0, 3, dtype=torch.int64),
        torch.eye(4),
        _intrinsics(30, 37, 53),
        37,
        53,
    )
    _assert_empty(frags, 37, 53)
    assert interpolate(torch.zeros(0, 4), torch.zeros(0, 3, dtype=torch.int64), frags).shape == (
        53,
        37,
        4,
    )


def test_back_faces_and_culling():
    mesh = sphere(2.0, 2)  # camera at its centre sees only the inside, i.e. back faces
    K, width, height = _intrinsics(20.0, 40, 30), 40, 30
    frags = rasterize_triangles(mesh.verts, mesh.faces, torch.eye(4), K, width, height)
    assert torch.isfinite(frags.depth).all()
    normals = mesh_normals_camera(mesh.verts, mesh.faces, mesh.normals, torch.eye(4), frags)
    d = _camera_rays(torch.eye(4), K, width, height)
    assert ((normals * d).sum(-1) < 0).all()  # turned to face the camera
    culled = rasterize_triangles(
        mesh.verts, mesh.faces, torch.eye(4), K, width, height, cull_backfaces=True
    )
    _assert_empty(culled, width, height)

    # From outside, culling leaves the visible (front) faces unchanged.
    view = _look_at((0.0, -6.0, 1.0), (0.0, 0.0, 0.0))
    a = rasterize_triangles(mesh.verts, mesh.faces, view, K, width, height)
    b = rasterize_triangles(mesh.verts, mesh.faces, view, K, width, height, cull_backfaces=True)
    assert torch.equal(a.face_id, b.face_id) and torch.equal(a.depth, b.depth)


def test_depth_ties_go_to_the_lower_face_and_nearest_wins():
    tri = torch.tensor([[-1.0, -1.0, 2.0], [1.0, -1.0, 2.0], [0.0, 1.0, 2.0]])
    verts = torch.cat([tri, tri, tri * torch.tensor([0.3, 0.3, 0.5])])
    faces = torch.tensor([[3, 4, 5], [0, 1, 2], [6, 7, 8]])  # faces 0 and 1: the same triangle
    K = _intrinsics(20.0, 32, 32)
    frags = rasterize_triangles(verts, faces, torch.eye(4), K, 32, 32)
    hit = torch.isfinite(frags.depth)
    near = hit & (frags.depth < 1.5)
    assert (frags.face_id[near] == 2).all() and near.any()
    assert (frags.face_id[hit & ~near] == 0).all() and (hit & ~near).any()


@pytest.mark.parametrize("level, eye", [(3, (3.0, -2.0, 1.5)), (2, (2.0, 2.5, -1.0)),
                                         (1, (2.5, 1.0, 2.0))])
def test_silhouette_normals_are_bent_back_not_flipped(level, eye):
    """At the silhouette an interpolated normal can point away from the camera on a face that
    faces it; negating it turned it up to 176 degrees off (4-109 pixels per view). Bent back
    onto the view ray's perpendicular, every pixel stays within one edge's normal turn (the
    interpolation's own error there) of the analytic sphere normal, and faces the camera."""
    r, centre = 1.0, torch.tensor([0.2, -0.1, 0.3])
    mesh = sphere(r, level).transformed(torch.eye(3), centre)
    width, height = 160, 128
    view, K = _look_at(eye, centre.tolist()), _intrinsics(200.0, width, height)
    frags = rasterize_triangles(mesh.verts, mesh.faces, view, K, width, height)
    normals = mesh_normals_camera(mesh.verts, mesh.faces, mesh.normals, view, frags)
    d = _camera_rays(view, K, width, height)
    c = view[:3, :3] @ centre + view[:3, 3]
    dd, dc = (d * d).sum(-1), d @ c
    disc = dc**2 - dd * (c @ c - r * r)
    t = (dc - disc.clamp(min=0).sqrt()) / dd
    n_true = torch.nn.functional.normalize(t[..., None] * d - c, dim=-1)
    hit = torch.isfinite(frags.depth) & (disc > 0)
    angle = torch.rad2deg(torch.acos((normals[hit] * n_true[hit]).sum(-1).clamp(-1, 1)))
    n = mesh.normals
    edges = torch.cat([mesh.faces[:, [0, 1]], mesh.faces[:, [1, 2]], mesh.faces[:, [2, 0]]])
    turn = torch.rad2deg(torch.acos((n[edges[:, 0]] * n[edges[:, 1]]).sum(-1).clamp(-1, 1)))
    assert int(hit.sum()) > 5000
    assert float(angle.max()) <= float(turn.max()) + 1.0, (float(angle.max()), float(turn.max()))
    assert bool(((normals[hit] * d[hit]).sum(-1) < 0).all())


def test_depth_only_matches_the_full_rasterizer_bit_for_bit():
    """rasterize_depth (shadow maps) keeps the same nearest depth without resolving faces: a
    scene of overlapping spheres, one clipped by the near plane, and a shared-depth tie."""
    verts, faces, _ = _scene()
    for eye, near in (((2.5, -2.8, 1.6), 0.01), ((0.3, -0.4, 0.6), 0.3)):
        view, K = _look_at(eye, (0.1, -0.1, 0.4)), _intrinsics(40.0, 64, 48)
        full = rasterize_triangles(verts, faces, view, K, 64, 48, near=near)
        assert bool(torch.isfinite(full.depth).any())
        depth = mesh_raster.rasterize_depth(verts, faces, view, K, 64, 48, near=near)
        assert torch.equal(depth, full.depth)


_TRITON_SCRIPT = textwrap.dedent(
    """
    import sys, torch
    from rendiff.kernels import mesh_raster
    cases = torch.load(sys.argv[1])
    out = []
    for verts, faces, view, K, width, height, near, cull in cases:
        f = mesh_raster.rasterize_triangles(verts, faces, view, K, width, height, near, cull)
        d = mesh_raster.rasterize_depth(verts, faces, view, K, width, height, near)
        out.append((f.depth, f.face_id, f.bary, d))
    torch.save(out, sys.argv[2])
    """
)


def test_triton_kernel_through_interpreter_matches_reference(tmp_path, monkeypatch):
    monkeypatch.setenv("RENDIFF_CPU_KERNELS", "torch")  # the reference, in this process
    verts, faces, _ = _scene()
    small = sphere(0.8, 1).transformed(torch.eye(3), torch.tensor([0.0, 0.0, 0.5]))
    floor = torch.tensor([[-1.5, 1.0, 0.5], [1.5, 1.0, 0.5], [0.3, 1.0, -1.0]])
    cases = [
        (
            small.verts,
            small.faces,
            _look_at((2.0, -2.0, 1.0), (0.0, 0.0, 0.5)),
            _intrinsics(30.0, 35, 21),
            35,
            21,
            0.01,
            False,
        ),
        (small.verts, small.faces, torch.eye(4), _intrinsics(20.0, 19, 17), 19, 17, 0.01, False),
        (small.verts, small.faces, torch.eye(4), _intrinsics(20.0, 19, 17), 19, 17, 0.01, True),
        (
            floor,
            torch.tensor([[0, 1, 2]]),
            torch.eye(4),
            _intrinsics(20.0, 33, 18),
            33,
            18,
            0.01,
            False,
        ),
        (
            verts,
            faces[-14:],
            _look_at((2.5, -2.8, 1.6), (0.1, -0.1, 0.4)),
            _intrinsics(25.0, 37, 29),
            37,
            29,
            0.01,
            False,
        ),
        (
            torch.zeros(0, 3),
            torch.zeros(0, 3, dtype=torch.int64),
            torch.eye(4),
            _intrinsics(20.0, 17, 5),
            17,
            5,
            0.01,
            False,
        ),
    ]
    torch.save(cases, tmp_path / "cases.pt")
    env = dict(os.environ, RENDIFF_TRITON="interpret", TRITON_INTERPRET="1")
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _TRITON_SCRIPT,
            str(tmp_path / "cases.pt"),
            str(tmp_path / "out.pt"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = torch.load(tmp_path / "out.pt")
    for (v, f, view, K, width, height, near, cull), (depth, face_id, bary, depth_only) in zip(
        cases, results, strict=True
    ):
        ref = rasterize_triangles(v, f, view, K, width, height, near, cull)
        assert torch.equal(face_id, ref.face_id)
        full = rasterize_triangles(v, f, view, K, width, height, near)
        assert torch.equal(depth_only, full.depth)
        torch.testing.assert_close(depth, ref.depth, rtol=1e-6, atol=0)
        torch.testing.assert_close(bary, ref.bary, rtol=0, atol=1e-6)


def test_aot_variants_match_the_launch(monkeypatch):
    """`mesh_raster._AOT_VARIANTS` lists exactly what `rasterize_triangles` launches."""
    if aot_unavailable(mesh_raster._raster_tile_kernel):
        pytest.skip(aot_unavailable(mesh_raster._raster_tile_kernel))
    monkeypatch.setenv("RENDIFF_TRITON", "interpret")
    launches = record_launches(monkeypatch, mesh_raster)
    small = sphere(0.8, 1).transformed(torch.eye(3), torch.tensor([0.0, 0.0, 0.5]))
    view, K = _look_at((2.0, -2.0, 1.0), (0.0, 0.0, 0.5)), _intrinsics(30.0, 35, 21)
    frags = rasterize_triangles(small.verts, small.faces, view, K, 35, 21)
    assert bool((frags.face_id >= 0).any())
    assert_same_variants(launches, mesh_raster._AOT_VARIANTS)
