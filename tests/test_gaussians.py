"""Gaussian clouds: .ply round trips, an independently written .ply, Open3D's 3DGS reader, and
clouds built from meshes / primitives checked against Open3D's closest-point queries and
analytic surfaces."""

from __future__ import annotations

import math

import numpy as np
import open3d as o3d
import pytest
import torch
from scipy.spatial.transform import Rotation

from rendiff.engine.gaussians import (
    SH_C0,
    GaussianCloud,
    concat,
    from_mesh,
    from_points,
    from_primitive,
    load_ply,
    save_ply,
)


def _random_cloud(n: int, degree: int, seed: int = 0) -> GaussianCloud:
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(n, 4, generator=g)
    return GaussianCloud(
        means=torch.randn(n, 3, generator=g),
        quats=q / q.norm(dim=1, keepdim=True),
        scales=torch.exp(torch.randn(n, 3, generator=g) - 4),
        opacities=torch.rand(n, generator=g) * 0.98 + 0.01,
        sh=torch.randn(n, (degree + 1) ** 2, 3, generator=g),
    )


def _rotation_matrices(quats: torch.Tensor) -> np.ndarray:
    """Independent quaternion -> matrix: scipy, which wants (x, y, z, w)."""
    return Rotation.from_quat(quats.numpy()[:, [1, 2, 3, 0]]).as_matrix()


@pytest.mark.parametrize("degree", [0, 3])
def test_ply_round_trip(tmp_path, degree):
    cloud = _random_cloud(257, degree)
    path = tmp_path / "cloud.ply"
    save_ply(cloud, path)
    back = load_ply(path)
    assert back.sh_degree == degree and len(back) == 257
    # stored as they are: bit for bit
    assert torch.equal(back.means, cloud.means)
    assert torch.equal(back.quats, cloud.quats)
    assert torch.equal(back.sh, cloud.sh)
    # through float32 logit / log: a few ulps
    torch.testing.assert_close(back.opacities, cloud.opacities, rtol=1e-6, atol=0)
    torch.testing.assert_close(back.scales, cloud.scales, rtol=1e-6, atol=0)
    # and the file is the standard layout: 62 floats per Gaussian for degree 3
    header = path.read_bytes().split(b"end_header\n")[0].decode()
    assert header.count("property float") == 17 + 3 * ((degree + 1) ** 2 - 1)
    assert "format binary_little_endian 1.0" in header


def test_ply_written_independently_loads_to_the_same_values(tmp_path):
    """A file built here with numpy and a handwritten header, properties in a shuffled order,
    big-endian, with an extra double property and unnormalised rotations, as other tools may
    write it."""
    n, k = 11, 4  # degree 1
    rng = np.random.default_rng(3)
    xyz = rng.normal(size=(n, 3))
    rgb_dc = rng.normal(size=(n, 3))
    rest = rng.normal(size=(n, k - 1, 3))  # [N, coefficient, channel]
    logit = rng.normal(size=n) * 3
    log_scale = rng.normal(size=(n, 3)) - 3
    rot = rng.normal(size=(n, 4)) * 2.5
    fields = {"x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2]}
    fields.update({f"f_dc_{c}": rgb_dc[:, c] for c in range(3)})
    for c in range(3):  # channel-major: all of red's coefficients, then green's, then blue's
        for j in range(k - 1):
            fields[f"f_rest_{c * (k - 1) + j}"] = rest[:, j, c]
    fields["opacity"] = logit
    fields.update({f"scale_{i}": log_scale[:, i] for i in range(3)})
    fields.update({f"rot_{i}": rot[:, i] for i in range(4)})
    names = list(fields)
    rng.shuffle(names)
    names.insert(4, "confidence")
    dtype = [(name, ">f8" if name == "confidence" else ">f4") for name in names]
    table = np.zeros(n, dtype=dtype)
    for name in names:
        table[name] = fields.get(name, 0.5)
    header = "ply\nformat binary_big_endian 1.0\ncomment written by hand\n"
    header += f"element vertex {n}\n"
    for name in names:
        header += f"property {'double' if name == 'confidence' else 'float'} {name}\n"
    header += "end_header\n"
    path = tmp_path / "hand.ply"
    path.write_bytes(header.encode() + table.tobytes())

    cloud = load_ply(path)
    f32 = np.float32
    np.testing.assert_array_equal(cloud.means.numpy(), xyz.astype(f32))
    np.testing.assert_array_equal(cloud.sh[:, 0].numpy(), rgb_dc.astype(f32))
    np.testing.assert_array_equal(cloud.sh[:, 1:].numpy(), rest.astype(f32))
    expected_opacity = 1 / (1 + np.exp(-logit.astype(f32).astype(np.float64)))
    np.testing.assert_allclose(cloud.opacities.numpy(), expected_opacity, rtol=1e-6)
    np.testing.assert_allclose(cloud.scales.numpy(), np.exp(log_scale.astype(f32)), rtol=1e-6)
    unit = rot.astype(f32) / np.linalg.norm(rot.astype(f32), axis=1, keepdims=True)
    np.testing.assert_allclose(cloud.quats.numpy(), unit, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(cloud.colors(), (0.5 + SH_C0 * cloud.sh[:, 0]).clamp(0, 1))


def test_ply_errors_name_file_and_property(tmp_path):
    names = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "scale_0", "scale_1", "scale_2"]
    names += ["rot_0", "rot_1", "rot_2", "rot_3"]
    header = "ply\nformat binary_little_endian 1.0\nelement vertex 2\n"
    header += "".join(f"property float {p}\n" for p in names) + "end_header\n"
    path = tmp_path / "no_opacity.ply"
    path.write_bytes(header.encode() + np.ones((2, len(names)), "<f4").tobytes())
    with pytest.raises(ValueError, match=r"no_opacity\.ply.*'opacity'"):
        load_ply(path)
    bad = tmp_path / "odd_rest.ply"
    header = header.replace("end_header", "property float opacity\n" + "".join(
        f"property float f_rest_{i}\n" for i in range(6)) + "end_header")
    bad.write_bytes(header.encode() + np.ones((2, len(names) + 7), "<f4").tobytes())
    with pytest.raises(ValueError, match=r"odd_rest\.ply.*f_rest"):
        load_ply(bad)
    truncated = tmp_path / "short.ply"
    truncated.write_bytes(path.read_bytes()[:-4])
    with pytest.raises(ValueError, match="short.ply"):
        load_ply(truncated)


def test_open3d_reads_our_ply(tmp_path):
    """Open3D's tensor reader recognises the 3DGS layout (and un-interleaves f_rest itself, which
    checks our channel-major order independently)."""
    cloud = _random_cloud(300, 3, seed=1)
    path = tmp_path / "o3d.ply"
    save_ply(cloud, path)
    pcd = o3d.t.io.read_point_cloud(str(path))
    pts = pcd.point
    np.testing.assert_array_equal(pts["positions"].numpy(), cloud.means.numpy())
    opacity = 1 / (1 + np.exp(-pts["opacity"].numpy()[:, 0].astype(np.float64)))
    np.testing.assert_allclose(opacity, cloud.opacities.numpy(), rtol=1e-6)
    # Open3D keeps opacity as the stored logit but activates the log-scales itself
    np.testing.assert_allclose(pts["scale"].numpy(), cloud.scales.numpy(), rtol=1e-6)
    np.testing.assert_array_equal(pts["rot"].numpy(), cloud.quats.numpy())
    np.testing.assert_array_equal(pts["f_dc"].numpy(), cloud.sh[:, 0].numpy())
    np.testing.assert_array_equal(pts["f_rest"].numpy(), cloud.sh[:, 1:].numpy())


def _raycasting_scene(verts: np.ndarray, faces: np.ndarray) -> o3d.t.geometry.RaycastingScene:
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(
        o3d.core.Tensor(verts.astype(np.float32)), o3d.core.Tensor(faces.astype(np.uint32))
    )
    return scene


def test_from_mesh_samples_lie_on_surface_with_normal_short_axis():
    # an irregular closed tetrahedron, counter-clockwise seen from outside
    verts = np.array([[0, 0, 0], [1.5, 0, 0], [0, 1, 0], [0.2, 0.3, 0.8]], dtype=np.float64)
    faces = np.array([[0, 2, 1], [0, 1, 3], [1, 2, 3], [0, 3, 2]])
    vcol = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]], dtype=np.float64)
    n = 4000
    cloud = from_mesh(verts, faces, n, vertex_colors=vcol, seed=7, thickness=0.1)
    again = from_mesh(verts, faces, n, vertex_colors=vcol, seed=7, thickness=0.1)
    assert torch.equal(cloud.means, again.means)

    hit = _raycasting_scene(verts, faces).compute_closest_points(
        o3d.core.Tensor(cloud.means.numpy())
    )
    dist = np.linalg.norm(hit["points"].numpy() - cloud.means.numpy(), axis=1)
    assert dist.max() < 1e-5
    # shortest axis (local z) is the outward face normal
    R = _rotation_matrices(cloud.quats)
    np.testing.assert_allclose(R[:, :, 2], hit["primitive_normals"].numpy(), atol=1e-5)
    assert torch.all(cloud.scales[:, 2] < cloud.scales[:, 0])
    assert torch.allclose(cloud.scales[:, 2], 0.1 * cloud.scales[:, 1])
    # uniform by area: per-face sample counts within 5 sigma of n * area share
    e1, e2 = verts[faces[:, 1]] - verts[faces[:, 0]], verts[faces[:, 2]] - verts[faces[:, 0]]
    share = np.linalg.norm(np.cross(e1, e2), axis=1)
    share /= share.sum()
    counts = np.bincount(hit["primitive_ids"].numpy(), minlength=4)
    assert np.all(np.abs(counts - n * share) < 5 * np.sqrt(n * share * (1 - share)))
    # vertex colours interpolated barycentrically (Open3D's uv: p = (1-u-v) v0 + u v1 + v v2)
    uv = hit["primitive_uvs"].numpy().astype(np.float64)
    tri = faces[hit["primitive_ids"].numpy()]
    w = np.stack([1 - uv[:, 0] - uv[:, 1], uv[:, 0], uv[:, 1]], axis=1)
    expected = np.einsum("nk,nkc->nc", w, vcol[tri])
    np.testing.assert_allclose(cloud.colors().numpy(), expected, atol=1e-4)


def test_from_primitive_surfaces_and_normals():
    sphere = from_primitive("sphere", 2000, seed=1, radius=0.3)
    r = sphere.means.norm(dim=1)
    torch.testing.assert_close(r, torch.full_like(r, 0.3))
    z_axis = torch.from_numpy(_rotation_matrices(sphere.quats)[:, :, 2]).float()
    torch.testing.assert_close(z_axis, sphere.means / 0.3, atol=1e-5, rtol=0)
    assert sphere.means.mean(0).norm() < 0.03  # uniform: no pole is favoured

    torus = from_primitive("torus", 2000, seed=2, radius=0.5, tube=0.1, color=(1, 0, 0))
    x, y, z = torus.means.double().unbind(1)
    ring = torch.sqrt(x * x + y * y)
    torch.testing.assert_close((ring - 0.5) ** 2 + z * z, torch.full_like(z, 0.01))
    centre = torch.stack([x / ring * 0.5, y / ring * 0.5, torch.zeros_like(z)], 1)
    outward = (torus.means.double() - centre) / 0.1
    z_axis = torch.from_numpy(_rotation_matrices(torus.quats)[:, :, 2])
    torch.testing.assert_close(z_axis, outward, atol=1e-5, rtol=0)
    # area element grows with distance from the axis: more samples outside than inside
    assert (ring > 0.5).float().mean() > 0.55
    torch.testing.assert_close(torus.colors(), torch.tensor([[1.0, 0, 0]]).expand(2000, 3))

    h = torch.tensor([0.2, 0.1, 0.4])
    box = from_primitive("box", 3000, seed=3, half_extents=tuple(h.tolist()))
    rel = box.means.abs() / h
    torch.testing.assert_close(rel.max(1).values, torch.ones(3000))
    axis = rel.argmax(1)
    z_axis = torch.from_numpy(_rotation_matrices(box.quats)[:, :, 2]).float()
    normal = torch.zeros(3000, 3)
    normal[torch.arange(3000), axis] = torch.sign(box.means[torch.arange(3000), axis])
    torch.testing.assert_close(z_axis, normal, atol=1e-5, rtol=0)
    face_area = torch.tensor([h[1] * h[2], h[0] * h[2], h[0] * h[1]])
    share = torch.bincount(axis, minlength=3) / 3000
    torch.testing.assert_close(share, face_area / face_area.sum(), atol=0.04, rtol=0)

    with pytest.raises(ValueError, match="radius"):
        from_primitive("box", 10, radius=1.0)
    with pytest.raises(ValueError, match="cone"):
        from_primitive("cone", 10)


def test_from_points_scale_from_spacing():
    h = 0.05
    g = torch.stack(torch.meshgrid(*[torch.arange(6.0)] * 3, indexing="ij"), -1).reshape(-1, 3)
    colors = torch.rand(len(g), 3, generator=torch.Generator().manual_seed(0))
    cloud = from_points(g * h, colors, opacity=0.5)
    # every grid point has at least three neighbours at distance h
    torch.testing.assert_close(cloud.scales, torch.full((216, 3), h))
    torch.testing.assert_close(cloud.colors(), colors)
    assert cloud.sh_degree == 0 and torch.all(cloud.opacities == 0.5)
    fixed = from_points(g * h, (0.2, 0.4, 0.6), scale=0.01)
    assert torch.all(fixed.scales == 0.01)


def test_transformed_rotates_means_and_orientations():
    cloud = _random_cloud(64, 1, seed=5)
    rot = Rotation.from_rotvec([0.3, -1.2, 2.0])
    R = torch.from_numpy(rot.as_matrix()).float()
    t = torch.tensor([1.0, -2.0, 0.5])
    moved = cloud.transformed(R, t)
    torch.testing.assert_close(moved.means, cloud.means @ R.T + t)
    expected = rot.as_matrix()[None] @ _rotation_matrices(cloud.quats)
    np.testing.assert_allclose(_rotation_matrices(moved.quats), expected, atol=1e-5)
    assert torch.equal(moved.sh, cloud.sh) and torch.equal(moved.scales, cloud.scales)
    with pytest.raises(ValueError, match="reflection"):
        cloud.transformed(-torch.eye(3), t)


def test_concat_pads_sh_and_keeps_order():
    a, b = _random_cloud(3, 0, seed=1), _random_cloud(4, 2, seed=2)
    c = concat([a, b])
    assert len(c) == 7 and c.sh_degree == 2
    assert torch.equal(c.means[:3], a.means) and torch.equal(c.sh[3:], b.sh)
    assert torch.equal(c.sh[:3, :1], a.sh) and torch.all(c.sh[:3, 1:] == 0)
    with pytest.raises(ValueError, match="degree"):
        GaussianCloud(a.means, a.quats, a.scales, a.opacities, torch.zeros(3, 2, 3))
    assert math.isclose(SH_C0, 0.5 / math.sqrt(math.pi))
