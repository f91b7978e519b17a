"""Triangle meshes for the primitive shapes, plus mesh loading.

Every primitive is centred at the origin of its local frame with +Z up, and its triangles wind
counter-clockwise seen from outside, so the right-hand rule gives the outward normal. Curved
surfaces carry smooth vertex normals (the analytic normal of the shape at each vertex); the box
keeps separate vertices per face so that its normals stay sharp. The mesh rasterizer
(`rendiff.kernels.mesh_raster`) consumes these directly.

Texture coordinates are stored per face corner (`TriMesh.uvs`, [F, 3, 2], as an OBJ file's `vt`
indices do), so a seam needs no duplicated vertices and the geometry is the same with or without
them. Conventions (u, v with v up, the OBJ one; each chart is unmirrored seen from outside):
plane: metres from the (-x, -y) corner; box: 0..1 across each face, v along +Z on the sides and u
along +X on top and bottom; sphere: equirectangular, u = azimuth / 2 pi + 0.5, v = latitude / pi
+ 0.5; cylinder: u = azimuth / 2 pi + 0.5, v = 0..1 bottom to top on the side, planar 0..1 on the
caps; capsule: cylindrical over its whole length. Where a face crosses the u = 0 / 1 seam its
corners continue past 1 (textures repeat), and a pole corner takes the mean u of the other two.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "TriMesh",
    "box",
    "capsule",
    "cylinder",
    "load_mesh",
    "plane",
    "sphere",
    "vertex_normals",
]


@dataclass
class TriMesh:
    """An indexed triangle mesh.

    Attributes:
        verts: Tensor    # [V, 3] float32 vertex positions
        faces: Tensor    # [F, 3] int64 vertex indices, counter-clockwise seen from outside
        normals: Tensor  # [V, 3] float32 unit vertex normals
        uvs: Tensor | None  # [F, 3, 2] float32 texture coordinates per face corner, or None
    """

    verts: Tensor
    faces: Tensor
    normals: Tensor
    uvs: Tensor | None = None

    def transformed(self, R: Tensor, t: Tensor) -> TriMesh:
        """The mesh moved by the rigid transform x -> R x + t.

        Args:
            R: Tensor  # [3, 3] rotation matrix
            t: Tensor  # [3] translation
        """
        R = torch.as_tensor(R, dtype=torch.float32, device=self.verts.device)
        t = torch.as_tensor(t, dtype=torch.float32, device=self.verts.device)
        return TriMesh(self.verts @ R.T + t, self.faces, self.normals @ R.T, self.uvs)


def _mesh(verts: Tensor, faces: Tensor, normals: Tensor, uvs: Tensor | None = None) -> TriMesh:
    return TriMesh(
        verts.to(torch.float32).contiguous(),
        faces.to(torch.int64).contiguous(),
        normals.to(torch.float32).contiguous(),
        None if uvs is None else uvs.to(torch.float32).contiguous(),
    )


def _azimuth_u(corners: Tensor) -> Tensor:
    """u = azimuth / 2 pi + 0.5 per face corner [F, 3] of corner positions [F, 3, 3], continued
    past 1 where a face crosses the seam; a corner on the Z axis takes the others' mean."""
    x, y = corners[..., 0], corners[..., 1]
    on_axis = x * x + y * y < 1e-12 * (corners * corners).sum(-1).clamp_min(1e-30)
    u = torch.atan2(y, x) / (2 * math.pi) + 0.5
    big = torch.where(on_axis, -math.inf, u).amax(1, keepdim=True)
    small = torch.where(on_axis, math.inf, u).amin(1, keepdim=True)
    u = torch.where((big - small > 0.5) & (u < 0.5), u + 1.0, u)
    keep = (~on_axis).to(u.dtype)
    mean = (u * keep).sum(1, keepdim=True) / keep.sum(1, keepdim=True).clamp_min(1)
    return torch.where(on_axis, mean, u)


def vertex_normals(verts: Tensor, faces: Tensor) -> Tensor:
    """Area-weighted vertex normals: each face adds its (unnormalised) cross product.

    Args:
        verts: Tensor  # [V, 3]
        faces: Tensor  # [F, 3] int
    Returns:
        Tensor  # [V, 3] unit normals (zero for vertices used by no face of non-zero area)
    """
    faces = faces.long()
    v0, v1, v2 = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    face_n = torch.linalg.cross(v1 - v0, v2 - v0)
    acc = torch.zeros_like(verts)
    for k in range(3):
        acc.index_add_(0, faces[:, k], face_n)
    return torch.nn.functional.normalize(acc, dim=-1)


_PHI = (1.0 + math.sqrt(5.0)) / 2.0
_ICOSAHEDRON_VERTS = [
    (-1, _PHI, 0), (1, _PHI, 0), (-1, -_PHI, 0), (1, -_PHI, 0),
    (0, -1, _PHI), (0, 1, _PHI), (0, -1, -_PHI), (0, 1, -_PHI),
    (_PHI, 0, -1), (_PHI, 0, 1), (-_PHI, 0, -1), (-_PHI, 0, 1),
]  # fmt: skip
_ICOSAHEDRON_FACES = [
    (0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11),
    (1, 5, 9), (5, 11, 4), (11, 10, 2), (10, 7, 6), (7, 1, 8),
    (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8), (3, 8, 9),
    (4, 9, 5), (2, 4, 11), (6, 2, 10), (8, 6, 7), (9, 8, 1),
]  # fmt: skip


def sphere(radius: float, subdivisions: int = 3) -> TriMesh:
    """Icosphere: an icosahedron whose triangles are split in four `subdivisions` times.

    Has 20 * 4**subdivisions faces; every vertex lies exactly on the sphere and its normal is the
    exact radial direction.
    """
    verts = torch.nn.functional.normalize(
        torch.tensor(_ICOSAHEDRON_VERTS, dtype=torch.float64), dim=-1
    )
    faces = torch.tensor(_ICOSAHEDRON_FACES, dtype=torch.int64)
    for _ in range(subdivisions):
        # Each edge gets one midpoint vertex, shared by the two faces on either side of it.
        edges = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
        unique, inverse = torch.unique(edges.sort(dim=1).values, dim=0, return_inverse=True)
        mids = torch.nn.functional.normalize(verts[unique[:, 0]] + verts[unique[:, 1]], dim=-1)
        m = (inverse + verts.shape[0]).view(3, -1)  # midpoints of edges 01, 12, 20 of each face
        a, b, c = faces.unbind(1)
        corners = [(a, m[0], m[2]), (b, m[1], m[0]), (c, m[2], m[1]), (m[0], m[1], m[2])]
        faces = torch.cat([torch.stack(corner, 1) for corner in corners])
        verts = torch.cat([verts, mids])
    corners = verts[faces]
    v = torch.asin(corners[..., 2].clamp(-1.0, 1.0)) / math.pi + 0.5
    uvs = torch.stack([_azimuth_u(corners), v], -1)
    return _mesh(verts * radius, faces, verts, uvs)


def box(half_extents: tuple[float, float, float] | Tensor) -> TriMesh:
    """Axis-aligned box spanning [-h, h] on each axis: 24 vertices (4 per face), 12 triangles."""
    h = torch.as_tensor(half_extents, dtype=torch.float32).reshape(3)
    verts, normals, faces = [], [], []
    for axis in range(3):
        u, v = (axis + 1) % 3, (axis + 2) % 3  # (u, v, axis) is a right-handed frame
        for sign in (1.0, -1.0):
            n = torch.zeros(3)
            n[axis] = sign
            # Corners counter-clockwise around n: swapping u and v on the negative face flips
            # the orientation so that it stays outward.
            uu, vv = (u, v) if sign > 0 else (v, u)
            corners = []
            for cu, cv in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
                p = torch.zeros(3)
                p[axis] = sign * h[axis]
                p[uu] = cu * h[uu]
                p[vv] = cv * h[vv]
                corners.append(p)
            base = len(verts)
            verts.extend(corners)
            normals.extend([n] * 4)
            faces.extend([(base, base + 1, base + 2), (base, base + 2, base + 3)])
    verts_t, faces_t, normals_t = torch.stack(verts), torch.tensor(faces), torch.stack(normals)
    # Per face, v along +Z on the sides and +Y on top (-Y under the bottom), u = v x n.
    n = normals_t[faces_t[:, 0]]  # [F, 3]
    side = n[:, 2].abs() < 0.5
    up = torch.where(side[:, None], torch.tensor([0.0, 0.0, 1.0]),
                     torch.tensor([0.0, 1.0, 0.0]) * n[:, 2:3])
    right = torch.linalg.cross(up, n)
    corners = verts_t[faces_t]  # [F, 3, 3]
    uvs = torch.stack([(corners @ right[:, :, None])[..., 0] / (2 * (right.abs() @ h))[:, None],
                       (corners @ up[:, :, None])[..., 0] / (2 * (up.abs() @ h))[:, None]], -1)
    return _mesh(verts_t, faces_t, normals_t, uvs + 0.5)


def _revolve(profile: list[tuple[float, float, float, float]], segments: int) -> TriMesh:
    """Surface of revolution about Z from a profile listed top to bottom.

    Each profile point is (z, rho, normal_z, normal_rho); a point with rho == 0 is a pole and
    becomes a single vertex. Consecutive points are joined by a band of triangles wound so that
    the normal points away from the axis (for a profile that runs downwards on the outside).
    """
    theta = torch.arange(segments, dtype=torch.float64) * (2.0 * math.pi / segments)
    cos, sin = theta.cos(), theta.sin()
    verts, normals, rings = [], [], []
    for z, rho, nz, nrho in profile:
        start = sum(len(v) for v in verts)
        if rho == 0.0:
            verts.append(torch.tensor([[0.0, 0.0, z]], dtype=torch.float64))
            normals.append(torch.tensor([[0.0, 0.0, nz]], dtype=torch.float64))
            rings.append(torch.full((segments,), start, dtype=torch.int64))
        else:
            zs = torch.full_like(cos, z)
            verts.append(torch.stack([rho * cos, rho * sin, zs], 1))
            normals.append(torch.stack([nrho * cos, nrho * sin, torch.full_like(cos, nz)], 1))
            rings.append(start + torch.arange(segments))
    faces = []
    for k in range(len(profile) - 1):
        a, d = rings[k], rings[k].roll(-1)  # upper ring at angles j and j + 1
        b, c = rings[k + 1], rings[k + 1].roll(-1)  # lower ring at angles j and j + 1
        if profile[k][1] == 0.0:  # fan from the upper pole
            faces.append(torch.stack([a, b, c], 1))
        elif profile[k + 1][1] == 0.0:  # fan into the lower pole
            faces.append(torch.stack([a, b, d], 1))
        else:
            faces += [torch.stack([a, b, c], 1), torch.stack([a, c, d], 1)]
    return _mesh(torch.cat(verts), torch.cat(faces), torch.cat(normals))


def cylinder(radius: float, half_height: float, segments: int = 32) -> TriMesh:
    """Capped cylinder with axis Z spanning z in [-half_height, half_height].

    The side and the two caps have their own vertices, so the rims stay sharp.
    """
    r, h = float(radius), float(half_height)
    parts = [
        _revolve([(h, 0.0, 1.0, 0.0), (h, r, 1.0, 0.0)], segments),
        _revolve([(h, r, 0.0, 1.0), (-h, r, 0.0, 1.0)], segments),
        _revolve([(-h, r, -1.0, 0.0), (-h, 0.0, -1.0, 0.0)], segments),
    ]
    m = _concat(parts)
    corners = m.verts[m.faces]  # [F, 3, 3]
    nz = m.normals[m.faces[:, 0], 2]  # +1 top cap, -1 bottom cap, 0 side
    cap = nz.abs() > 0.5
    # Caps: planar, seen from outside (v along +Y on top, -Y underneath); side: cylindrical.
    cap_uv = torch.stack([corners[..., 0], corners[..., 1] * nz[:, None]], -1) / (2 * r) + 0.5
    side_uv = torch.stack([_azimuth_u(corners), (corners[..., 2] + h) / (2 * h)], -1)
    m.uvs = torch.where(cap[:, None, None], cap_uv, side_uv).contiguous()
    return m


def capsule(radius: float, half_height: float, segments: int = 24, rings: int = 8) -> TriMesh:
    """Capsule with axis Z: a cylinder of length 2 * half_height with hemispherical ends.

    Each hemisphere has `rings` bands of latitude; the total extent along Z is
    2 * (half_height + radius). One connected, closed mesh with smooth normals.
    """
    r, h = float(radius), float(half_height)
    profile = []
    for k in range(rings + 1):  # top hemisphere, pole to equator
        phi = k * math.pi / (2 * rings)
        profile.append((h + r * math.cos(phi), r * math.sin(phi), math.cos(phi), math.sin(phi)))
    for k in range(rings + 1):  # bottom hemisphere, equator to pole
        phi = math.pi / 2 + k * math.pi / (2 * rings)
        profile.append((-h + r * math.cos(phi), r * math.sin(phi), math.cos(phi), math.sin(phi)))
    profile[0] = (h + r, 0.0, 1.0, 0.0)  # exact poles: sin(pi) is not exactly 0 in floats
    profile[-1] = (-h - r, 0.0, -1.0, 0.0)
    m = _revolve(profile, segments)
    corners = m.verts[m.faces]
    m.uvs = torch.stack([_azimuth_u(corners), (corners[..., 2] + h + r) / (2 * (h + r))],
                        -1).contiguous()
    return m


def plane(size_x: float, size_y: float) -> TriMesh:
    """Rectangle in z = 0 spanning [-size_x / 2, size_x / 2] x [-size_y / 2, size_y / 2].

    Two triangles facing +Z (seen from above they are counter-clockwise).
    """
    hx, hy = size_x / 2.0, size_y / 2.0
    verts = torch.tensor([[-hx, -hy, 0.0], [hx, -hy, 0.0], [hx, hy, 0.0], [-hx, hy, 0.0]])
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    normals = torch.tensor([[0.0, 0.0, 1.0]]).expand(4, 3)
    return _mesh(verts, faces, normals, verts[faces][..., :2] + torch.tensor([hx, hy]))


def _concat(meshes: list[TriMesh]) -> TriMesh:
    offsets = [0]
    for m in meshes[:-1]:
        offsets.append(offsets[-1] + m.verts.shape[0])
    uvs = None
    if all(m.uvs is not None for m in meshes):
        uvs = torch.cat([m.uvs for m in meshes])  # type: ignore[misc]
    return TriMesh(
        torch.cat([m.verts for m in meshes]),
        torch.cat([m.faces + o for m, o in zip(meshes, offsets, strict=True)]),
        torch.cat([m.normals for m in meshes]),
        uvs,
    )


def load_mesh(path: str | Path) -> TriMesh:
    """Read a triangle mesh (.obj, .ply, .stl, or anything else Open3D reads).

    Vertex normals come from the file when it has them, otherwise they are computed with
    `vertex_normals`. Texture coordinates come from the file when it has them (an OBJ's `vt`,
    as Open3D reads them: per face corner, v up), else `uvs` is None.

    Raises:
        ValueError: the file does not exist, or it holds no triangles.
    """
    import open3d as o3d

    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a folder, not a mesh file")
    if not path.is_file():
        raise ValueError(f"mesh file not found: {path}")
    mesh = o3d.io.read_triangle_mesh(str(path))
    if len(mesh.triangles) == 0:
        raise ValueError(f"{path}: holds no triangles (empty, truncated or not a mesh file)")
    if not np.isfinite(np.asarray(mesh.vertices)).all():
        raise ValueError(f"{path}: vertex positions hold NaN or inf")
    faces_np = np.asarray(mesh.triangles)
    if faces_np.min() < 0 or faces_np.max() >= len(mesh.vertices):
        raise ValueError(f"{path}: triangles index vertices the file does not have")
    verts = torch.from_numpy(np.asarray(mesh.vertices))
    faces = torch.from_numpy(np.asarray(mesh.triangles))
    if mesh.has_vertex_normals():
        normals = torch.nn.functional.normalize(
            torch.from_numpy(np.asarray(mesh.vertex_normals)), dim=-1
        )
    else:
        normals = vertex_normals(verts, faces)
    uvs = None
    if mesh.has_triangle_uvs() and len(mesh.triangle_uvs) == 3 * len(mesh.triangles):
        uvs = torch.from_numpy(np.asarray(mesh.triangle_uvs)).reshape(-1, 3, 2)
    return _mesh(verts, faces, normals, uvs)
