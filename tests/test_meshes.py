"""Primitive meshes: closed, outward-wound, with the right area and volume; mesh file loading."""

from __future__ import annotations

import math

import open3d as o3d
import pytest
import torch

from rendiff.engine.meshes import (
    TriMesh,
    box,
    capsule,
    cylinder,
    load_mesh,
    plane,
    sphere,
    vertex_normals,
)


def _face_normals(m: TriMesh) -> torch.Tensor:
    """Unnormalised face normals (length = 2 * area): [F, 3]."""
    v = m.verts.double()[m.faces]
    return torch.linalg.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])


def _area(m: TriMesh) -> float:
    return 0.5 * _face_normals(m).norm(dim=-1).sum().item()


def _volume(m: TriMesh) -> float:
    """Signed volume by the divergence theorem: positive when faces wind outwards."""
    v = m.verts.double()[m.faces]
    return (v[:, 0] * torch.linalg.cross(v[:, 1], v[:, 2])).sum().item() / 6


def _assert_closed_and_oriented(m: TriMesh) -> None:
    """After welding coincident vertices, each directed edge occurs once and its reverse once."""
    _, weld = torch.unique((m.verts * 1e5).round().long(), dim=0, return_inverse=True)
    f = weld[m.faces]
    edges = torch.cat([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    edges = edges[edges[:, 0] != edges[:, 1]]  # zero-length edges of pole fans, if any
    directed, counts = torch.unique(edges, dim=0, return_counts=True)
    assert (counts == 1).all(), "an edge is used twice in the same direction"
    reverse = set(map(tuple, directed.flip(1).tolist()))
    assert set(map(tuple, directed.tolist())) == reverse, "the surface has a boundary"


def _polygon_area(r: float, n: int) -> float:
    return 0.5 * n * r * r * math.sin(2 * math.pi / n)


CLOSED = {
    "sphere": lambda: sphere(0.7, 3),
    "box": lambda: box((0.5, 1.0, 1.5)),
    "cylinder": lambda: cylinder(0.4, 0.9, 32),
    "capsule": lambda: capsule(0.3, 0.5, 24, 8),
}


@pytest.mark.parametrize("name", CLOSED)
def test_closed_meshes_are_watertight_outward_and_have_unit_normals(name):
    m = CLOSED[name]()
    assert m.verts.dtype == torch.float32 and m.normals.dtype == torch.float32
    assert m.faces.dtype == torch.int64 and m.faces.shape[1] == 3
    _assert_closed_and_oriented(m)
    assert _volume(m) > 0
    # Convex and centred at the origin: every face normal points away from the origin.
    centroid = m.verts.double()[m.faces].mean(1)
    assert ((_face_normals(m) * centroid).sum(-1) > 0).all()
    torch.testing.assert_close(m.normals.norm(dim=-1), torch.ones(m.verts.shape[0]))
    # Each vertex normal agrees with the faces around it.
    fn = torch.nn.functional.normalize(_face_normals(m), dim=-1).float()
    for k in range(3):
        assert ((m.normals[m.faces[:, k]] * fn).sum(-1) > 0.9).all()


def test_sphere_geometry():
    r = 0.7
    m = sphere(r, 3)
    assert m.faces.shape == (20 * 4**3, 3) and m.verts.shape == (642, 3)
    torch.testing.assert_close(m.verts.norm(dim=-1), torch.full((642,), r))
    torch.testing.assert_close(m.normals, m.verts / r)
    # Inscribed polyhedron: slightly below the sphere's area and volume.
    assert 0.99 * 4 * math.pi * r**2 < _area(m) < 4 * math.pi * r**2
    assert 0.985 * 4 / 3 * math.pi * r**3 < _volume(m) < 4 / 3 * math.pi * r**3
    # Area-weighted normals of an icosphere are nearly radial.
    assert ((vertex_normals(m.verts, m.faces) * m.normals).sum(-1) > 0.999).all()


def test_box_geometry_and_sharp_normals():
    a, b, c = 0.5, 1.0, 1.5
    m = box((a, b, c))
    assert m.verts.shape == (24, 3) and m.faces.shape == (12, 3)
    assert _volume(m) == pytest.approx(8 * a * b * c, rel=1e-6)
    assert _area(m) == pytest.approx(8 * (a * b + b * c + a * c), rel=1e-6)
    fn = torch.nn.functional.normalize(_face_normals(m), dim=-1).float()
    for k in range(3):
        torch.testing.assert_close(m.normals[m.faces[:, k]], fn)
    torch.testing.assert_close(m.verts.abs().amax(0), torch.tensor([a, b, c]))


def test_cylinder_and_capsule_geometry():
    r, h, n = 0.4, 0.9, 32
    m = cylinder(r, h, n)
    assert _volume(m) == pytest.approx(_polygon_area(r, n) * 2 * h, rel=1e-5)
    side = 2 * h * n * 2 * r * math.sin(math.pi / n)
    assert _area(m) == pytest.approx(side + 2 * _polygon_area(r, n), rel=1e-5)
    torch.testing.assert_close(m.verts[:, 2].abs().max(), torch.tensor(h))

    r, h = 0.3, 0.5
    m = capsule(r, h, 24, 8)
    exact = math.pi * r * r * 2 * h + 4 / 3 * math.pi * r**3
    assert 0.95 * exact < _volume(m) < exact
    torch.testing.assert_close(m.verts[:, 2].abs().max(), torch.tensor(h + r))
    # Every vertex lies on the capsule surface: at distance r from the axis segment.
    z = m.verts[:, 2].clamp(-h, h)
    dist = (m.verts - torch.stack([torch.zeros_like(z), torch.zeros_like(z), z], 1)).norm(dim=-1)
    torch.testing.assert_close(dist, torch.full_like(dist, r))


def test_plane_faces_up():
    m = plane(2.0, 3.0)
    assert m.faces.shape == (2, 3)
    assert (m.verts[:, 2] == 0).all()
    torch.testing.assert_close(m.normals, torch.tensor([[0.0, 0.0, 1.0]]).expand(4, 3))
    fn = _face_normals(m)
    assert (fn[:, 2] > 0).all() and (fn[:, :2] == 0).all()
    assert _area(m) == pytest.approx(6.0)


def test_transformed_moves_verts_and_rotates_normals():
    a = 0.7
    R = torch.tensor([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    t = torch.tensor([1.0, -2.0, 0.5])
    m = box((0.5, 1.0, 1.5))
    moved = m.transformed(R, t)
    torch.testing.assert_close(moved.verts, m.verts @ R.T + t)
    torch.testing.assert_close(moved.normals, m.normals @ R.T)
    assert torch.equal(moved.faces, m.faces)
    assert _volume(moved.transformed(torch.eye(3), -t)) == pytest.approx(_volume(m), rel=1e-5)
    fn = torch.nn.functional.normalize(_face_normals(moved), dim=-1).float()
    torch.testing.assert_close(moved.normals[moved.faces[:, 0]], fn, atol=1e-5, rtol=0)


@pytest.mark.parametrize("suffix", [".obj", ".ply", ".stl"])
def test_load_mesh_round_trip(tmp_path, suffix):
    m = capsule(0.3, 0.5, 16, 4)
    o3 = o3d.geometry.TriangleMesh(
        o3d.utility.Vector3dVector(m.verts.double().numpy()),
        o3d.utility.Vector3iVector(m.faces.int().numpy()),
    )
    o3.compute_triangle_normals()
    path = tmp_path / f"capsule{suffix}"
    assert o3d.io.write_triangle_mesh(str(path), o3)
    loaded = load_mesh(path)
    assert loaded.faces.shape == m.faces.shape
    assert loaded.verts.dtype == torch.float32 and loaded.faces.dtype == torch.int64
    assert _area(loaded) == pytest.approx(_area(m), rel=1e-5)
    assert _volume(loaded) == pytest.approx(_volume(m), rel=1e-5)
    torch.testing.assert_close(loaded.normals.norm(dim=-1), torch.ones(loaded.verts.shape[0]))


def test_load_mesh_errors_name_the_file(tmp_path):
    missing = tmp_path / "nope.obj"
    with pytest.raises(ValueError, match="nope.obj"):
        load_mesh(missing)
    empty = tmp_path / "empty.obj"
    empty.write_text("# no geometry\n")
    with pytest.raises(ValueError, match="empty.obj"):
        load_mesh(empty)
