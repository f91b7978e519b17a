"""Shading against analytic answers (cosine law, inverse square, spot cone, SH irradiance by
quadrature, Blinn-Phong peak), the Triton kernel (through its interpreter) against the torch
reference, and shadow maps against exact shadow polygons of a box on a plane."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from _aot import (
    aot_unavailable,
    assert_same_variants,
    record_launches,
)
from scipy.spatial import ConvexHull

from rendiff.kernels import shading as shading_module
from rendiff.kernels.shading import LightSet, sh_irradiance, shade
from rendiff.kernels.shadow import mesh_depth_fn, ortho_view, perspective_view, shadow_visibility

normalize = torch.nn.functional.normalize


def _lights(kinds, positions, directions, radiance, cos_outer=None, cos_inner=None, **kw):
    n = len(kinds)
    return LightSet(
        torch.tensor(kinds),
        torch.tensor(positions, dtype=torch.float32).reshape(n, 3),
        normalize(torch.as_tensor(directions, dtype=torch.float32).reshape(n, 3), dim=-1),
        torch.as_tensor(radiance, dtype=torch.float32).reshape(n, 3),
        torch.tensor(cos_outer if cos_outer is not None else [-1.0] * n),
        torch.tensor(cos_inner if cos_inner is not None else [-1.0] * n),
        **kw,
    )


def _frame(axis: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two unit vectors completing ``axis`` to an orthonormal frame."""
    helper = torch.eye(3)[0] if abs(float(axis[0])) < 0.9 else torch.eye(3)[1]
    a = normalize(torch.linalg.cross(axis, helper), dim=0)
    return a, torch.linalg.cross(axis, a)


def test_lambert_sphere_follows_cosine_law():
    # Points on a sphere parameterised by their angle theta from the direction towards the light.
    to_light = normalize(torch.tensor([0.3, -0.6, -0.7]), dim=0)
    a, b = _frame(to_light)
    theta = torch.linspace(0.0, math.pi, 37)
    phi = torch.linspace(0.0, 2 * math.pi, 24)
    th, ph = torch.meshgrid(theta, phi, indexing="ij")
    n = (th.cos()[..., None] * to_light + th.sin()[..., None]
         * (ph.cos()[..., None] * a + ph.sin()[..., None] * b))  # fmt: skip
    points = torch.tensor([0.0, 0.0, 5.0]) + 1.5 * n
    E = torch.tensor([2.0, 1.0, 0.5])
    lights = _lights([0], [0, 0, 0], -to_light, E)
    albedo = torch.full(points.shape, 0.8)
    res = shade(points, n, albedo, lights)
    want = E * th.cos().clamp_min(0)[..., None]
    torch.testing.assert_close(res.irradiance, want, atol=2e-6, rtol=1e-5)
    torch.testing.assert_close(res.rgb, 0.8 * want, atol=2e-6, rtol=1e-5)
    torch.testing.assert_close(res.shading, want.mean(-1), atol=2e-6, rtol=1e-5)


def test_point_light_inverse_square():
    # A wall at z = 4 facing the camera; a point light on its axis at distance d.
    x = torch.linspace(-3.0, 3.0, 25)
    yy, xx = torch.meshgrid(x, x, indexing="ij")
    points = torch.stack([xx, yy, torch.full_like(xx, 4.0)], -1)
    n = torch.tensor([0.0, 0.0, -1.0]).expand_as(points)
    for d in (0.5, 1.0, 2.5):
        lights = _lights([1], [0.0, 0.0, 4.0 - d], [0, 0, 1], [3.0, 3.0, 3.0])
        res = shade(points, n, torch.ones_like(points), lights)
        r2 = xx**2 + yy**2 + d * d
        want = 3.0 * (d / r2.sqrt()) / r2  # I cos(theta) / r^2
        torch.testing.assert_close(res.shading, want, rtol=1e-5, atol=1e-7)
        assert float(res.shading[12, 12]) == pytest.approx(3.0 / d**2, rel=1e-6)


def test_spot_cone_edge():
    d, outer, inner = 2.0, math.radians(30), math.radians(20)
    r = torch.linspace(0.0, 2.0, 201)  # radius on the wall
    points = torch.stack([r, torch.zeros_like(r), torch.full_like(r, 5.0)], -1)[None]
    n = torch.tensor([0.0, 0.0, -1.0]).expand_as(points)
    lights = _lights([2], [0.0, 0.0, 5.0 - d], [0, 0, 1], [1.0, 1.0, 1.0],
                     [math.cos(outer)], [math.cos(inner)])  # fmt: skip
    spot = shade(points, n, torch.ones_like(points), lights).shading[0]
    bare = _lights([1], [0.0, 0.0, 5.0 - d], [0, 0, 1], [1.0, 1.0, 1.0])
    point = shade(points, n, torch.ones_like(points), bare).shading[0]
    angle = torch.atan(r / d)
    torch.testing.assert_close(spot[angle < inner - 1e-4], point[angle < inner - 1e-4])
    assert bool((spot[angle > outer + 1e-4] == 0).all())
    between = (angle > inner) & (angle < outer)
    assert bool(((spot[between] > 0) & (spot[between] < point[between])).all())
    # The lit disc ends at radius d tan(outer).
    edge = float(r[spot > 0].max())
    assert edge == pytest.approx(d * math.tan(outer), abs=0.011)


def _real_sh(dirs: torch.Tensor) -> torch.Tensor:
    """Real SH basis up to degree 2 in the documented order, [N, 9]."""
    x, y, z = dirs.unbind(-1)
    return torch.stack([
        torch.full_like(x, 0.282095), 0.488603 * y, 0.488603 * z, 0.488603 * x,
        1.092548 * x * y, 1.092548 * y * z, 0.315392 * (3 * z * z - 1), 1.092548 * x * z,
        0.546274 * (x * x - y * y),
    ], -1)  # fmt: skip


def test_sh_constant_environment_gives_constant_irradiance():
    c = torch.tensor([0.7, 0.4, 1.3])
    sh = torch.zeros(9, 3)
    sh[0] = c * math.sqrt(4 * math.pi)  # projection of a constant radiance c onto Y00
    n = normalize(torch.randn(5, 7, 3, generator=torch.Generator().manual_seed(0)), dim=-1)
    lights = LightSet.empty()
    lights.sh = sh
    res = shade(torch.zeros(5, 7, 3) + torch.tensor([0, 0, 3.0]), n, torch.ones(5, 7, 3), lights)
    torch.testing.assert_close(res.irradiance, c.expand(5, 7, 3), rtol=1e-5, atol=1e-6)


def test_sh_irradiance_matches_quadrature():
    # (1/pi) * integral over the hemisphere of L(w) max(n.w, 0) dw, with L a random degree-2
    # SH radiance, by a dense Fibonacci-sphere quadrature (independent of the closed form).
    gen = torch.Generator().manual_seed(1)
    sh = torch.randn(9, 3, generator=gen, dtype=torch.float64)
    m = 400_000
    k = torch.arange(m, dtype=torch.float64) + 0.5
    z = 1 - 2 * k / m
    ang = math.pi * (1 + 5**0.5) * k
    w = torch.stack([(1 - z * z).sqrt() * ang.cos(), (1 - z * z).sqrt() * ang.sin(), z], -1)
    radiance = _real_sh(w) @ sh  # [m, 3]
    normals = normalize(torch.randn(6, 3, generator=gen, dtype=torch.float64), dim=-1)
    cos = (normals @ w.T).clamp_min(0)  # [6, m]
    want = cos @ radiance * (4 * math.pi / m) / math.pi
    got = sh_irradiance(normals, sh)
    # Radiance of degree <= 2 makes the closed form exact (the clamped cosine's higher bands
    # meet no radiance), so only the quadrature error remains.
    torch.testing.assert_close(got, want, atol=1e-4 * float(sh.abs().max()), rtol=0)


def test_blinn_phong_peak_where_normal_is_half_vector():
    to_light = normalize(torch.tensor([0.5, -0.4, -0.77]), dim=0)
    centre = torch.tensor([0.0, 0.0, 4.0])
    theta = torch.linspace(0, math.pi / 2, 361)
    phi = torch.linspace(0, 2 * math.pi, 721)
    th, ph = torch.meshgrid(theta, phi, indexing="ij")
    # Hemisphere facing the camera (-z).
    n = torch.stack([th.sin() * ph.cos(), th.sin() * ph.sin(), -th.cos()], -1)
    points = centre + n
    E = torch.tensor([1.0, 1.0, 1.0])
    lights = _lights([0], [0, 0, 0], -to_light, E)
    ks, rough = torch.full(th.shape, 0.7), torch.full(th.shape, 0.3)
    res = shade(points, n, torch.zeros_like(points), lights, specular=ks, roughness=rough)
    spec = res.rgb[..., 0]
    i, j = divmod(int(spec.argmax()), spec.shape[1])
    v = normalize(-points[i, j], dim=0)
    h = normalize(to_light + v, dim=0)
    assert float(torch.acos((n[i, j] @ h).clamp(max=1))) < 0.01
    # At n = h the lobe is 1: the peak is E ks (n.l).
    assert float(spec[i, j]) == pytest.approx(0.7 * float(h @ to_light), rel=2e-3)
    # Away from the peak the lobe follows (n.h)^p with p = 2 / 0.3^4 - 2.
    p = 2 / 0.3**4 - 2
    ii, jj = i + 12, j
    vv = normalize(-points[ii, jj], dim=0)
    hh = normalize(to_light + vv, dim=0)
    want = 0.7 * float(n[ii, jj] @ to_light) * float(n[ii, jj] @ hh) ** p
    assert float(spec[ii, jj]) == pytest.approx(want, rel=1e-3)


def test_visibility_and_mask():
    points = torch.tensor([0.0, 0.0, 2.0]).expand(3, 4, 3).clone()
    n = torch.tensor([0.0, 0.0, -1.0]).expand(3, 4, 3).clone()
    n[0, 0] = 0.0
    lights = _lights([0, 0], [[0, 0, 0]] * 2, [[0, 0, 1]] * 2, [[1.0] * 3, [2.0] * 3],
                     ambient=torch.tensor([0.1, 0.1, 0.1]))  # fmt: skip
    vis = torch.ones(2, 3, 4)
    vis[1, 2] = 0.25
    res = shade(points, n, torch.ones(3, 4, 3), lights, visibility=vis, specular=torch.ones(3, 4))
    assert float(res.shading[0, 0]) == 0.0 and float(res.rgb[0, 0].abs().sum()) == 0.0
    assert float(res.shading[1, 1]) == pytest.approx(3.1)
    assert float(res.shading[2, 1]) == pytest.approx(1.6)


_TRITON_SCRIPT = textwrap.dedent(
    """
    import sys, torch
    from rendiff.kernels.shading import shade, _use_triton
    assert _use_triton(torch.device("cpu"))
    cases = torch.load(sys.argv[1], weights_only=False)
    out = [shade(*c["args"], **c["kw"]) for c in cases]
    torch.save([(r.shading, r.irradiance, r.rgb) for r in out], sys.argv[2])
    """
)


def _kernel_cases() -> list[dict]:
    """Random pixels, every light kind, SH, visibility, masks, and no lights at all."""
    gen = torch.Generator().manual_seed(4)

    def rand(*shape):
        return torch.rand(*shape, generator=gen)

    H, W = 13, 17
    points = torch.randn(H, W, 3, generator=gen)
    points[..., 2] = points[..., 2].abs() + 2
    n = normalize(torch.randn(H, W, 3, generator=gen), dim=-1)
    n = torch.where((n * points).sum(-1, keepdim=True) > 0, -n, n)
    n[0, :3] = 0.0
    lights = LightSet(
        torch.tensor([0, 1, 2, 2]), torch.randn(4, 3, generator=gen),
        normalize(torch.randn(4, 3, generator=gen), dim=-1), 3 * rand(4, 3),
        torch.tensor([-1.0, -1.0, 0.6, 0.8]), torch.tensor([-1.0, -1.0, 0.9, 0.8]),
        ambient=torch.tensor([0.1, 0.05, 0.02]), sh=0.3 * torch.randn(9, 3, generator=gen),
    )  # fmt: skip
    full = {"specular": rand(H, W), "roughness": 0.1 + 0.9 * rand(H, W),
            "visibility": rand(4, H, W)}  # fmt: skip
    cases = [
        {"args": (points, n, rand(H, W, 3), lights), "kw": full},
        {"args": (points, n, rand(H, W, 3), lights), "kw": {"mask": rand(H, W) > 0.3}},
        {"args": (points[:5, :3], n[:5, :3], rand(5, 3, 3), LightSet.empty()), "kw": {}},
    ]
    return cases


def test_triton_kernel_through_interpreter_matches_reference(tmp_path, monkeypatch):
    monkeypatch.setenv("RENDIFF_CPU_KERNELS", "torch")  # the reference, in this process
    cases = _kernel_cases()
    cases_path, out_path = tmp_path / "cases.pt", tmp_path / "out.pt"
    torch.save(cases, cases_path)
    env = dict(os.environ, RENDIFF_TRITON="interpret", TRITON_INTERPRET="1")
    cmd = [sys.executable, "-c", _TRITON_SCRIPT, str(cases_path), str(out_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = torch.load(out_path)
    for case, (shading, irr, rgb) in zip(cases, got, strict=True):
        want = shade(*case["args"], **case["kw"])
        torch.testing.assert_close(shading, want.shading, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(irr, want.irradiance, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(rgb, want.rgb, rtol=1e-5, atol=1e-5)


def test_compiled_cpu_kernel_matches_reference(monkeypatch):
    """``warp_cpu.shade`` (the default on CPU) against the torch reference."""
    for case in _kernel_cases():
        monkeypatch.setenv("RENDIFF_CPU_KERNELS", "warp")
        got = shade(*case["args"], **case["kw"])
        monkeypatch.setenv("RENDIFF_CPU_KERNELS", "torch")
        want = shade(*case["args"], **case["kw"])
        for name in ("shading", "irradiance", "rgb"):
            torch.testing.assert_close(getattr(got, name), getattr(want, name), rtol=1e-5,
                                       atol=1e-5)
        assert float(want.rgb.abs().amax()) > 0.1 or not len(case["args"][3])


# --- shadow maps -------------------------------------------------------------------------------

_BOX_LO = torch.tensor([-0.5, -0.3, 0.0], dtype=torch.float64)
_BOX_HI = torch.tensor([0.5, 0.3, 1.0], dtype=torch.float64)
_PLANE_HALF = 4.0
_BOUNDS = ([-4.0, -4.0, 0.0], [4.0, 4.0, 1.0])


def _scene_depth(viewmat, K, width, height, ortho=None):
    """Exact ray cast of the box on the plane z = 0 (a tiny z-buffer of our own)."""
    rows = torch.arange(height, dtype=torch.float64) + 0.5
    v, u = torch.meshgrid(rows, torch.arange(width, dtype=torch.float64) + 0.5, indexing="ij")
    one, zero = torch.ones_like(u), torch.zeros_like(u)
    if ortho is None:
        K = K.double()
        origin = torch.stack([zero, zero, zero], -1)
        d = torch.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], one], -1)
    else:
        sx, sy, cx, cy = ortho
        origin = torch.stack([(u - cx) / sx, (v - cy) / sy, zero], -1)
        d = torch.stack([zero, zero, one], -1)
    R, t = viewmat[:3, :3].double(), viewmat[:3, 3].double()
    o, dw = (origin - t) @ R, d @ R  # camera -> world; d has camera z = 1, so t_hit = depth
    with np.errstate(divide="ignore", invalid="ignore"):
        tp = -o[..., 2] / dw[..., 2]
        hit_p = (tp > 0) & ((o + tp[..., None] * dw)[..., :2].abs() <= _PLANE_HALF).all(-1)
        inv = 1.0 / dw
        t0, t1 = (_BOX_LO - o) * inv, (_BOX_HI - o) * inv
        t_in = torch.minimum(t0, t1).nan_to_num(-math.inf).amax(-1)
        t_out = torch.maximum(t0, t1).nan_to_num(math.inf).amin(-1)
    hit_b = (t_out >= t_in) & (t_in > 0)
    depth = torch.full_like(u, math.inf)
    depth = torch.where(hit_p, tp, depth)
    depth = torch.where(hit_b, torch.minimum(t_in, depth), depth)
    return depth.float()


def _shadow_polygon(light_pos=None, light_dir=None) -> np.ndarray:
    """Convex hull [k, 2] on z = 0 of the box's corners projected from the light."""
    corners = torch.cartesian_prod(*[torch.stack([_BOX_LO[i], _BOX_HI[i]]) for i in range(3)])
    if light_dir is not None:
        d = torch.as_tensor(light_dir, dtype=torch.float64)
        proj = corners - d * (corners[:, 2:] / d[2])
    else:
        p = torch.as_tensor(light_pos, dtype=torch.float64)
        proj = p + (corners - p) * (p[2] / (p[2] - corners[:, 2:]))
    xy = proj[:, :2].numpy()
    return xy[ConvexHull(xy).vertices]


def _signed_distance(points: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Signed distance from 2-D points to a convex polygon (negative inside)."""
    a, b = poly, np.roll(poly, -1, 0)
    ab = b - a
    rel = points[:, None] - a[None]
    s = np.clip((rel * ab).sum(-1) / (ab * ab).sum(-1), 0, 1)
    dist = np.linalg.norm(rel - s[..., None] * ab, axis=-1).min(1)
    cross = ab[None, :, 0] * rel[..., 1] - ab[None, :, 1] * rel[..., 0]
    inside = (cross >= 0).all(1) | (cross <= 0).all(1)
    return np.where(inside, -dist, dist)


def _floor_points(n: int = 161, half: float = 2.0) -> torch.Tensor:
    x = torch.linspace(-half, half, n)
    yy, xx = torch.meshgrid(x, x, indexing="ij")
    return torch.stack([xx, yy, torch.zeros_like(xx)], -1)


def _check_shadow(vis, points, poly, margin):
    sd = _signed_distance(points[..., :2].reshape(-1, 2).double().numpy(), poly)
    sd = torch.from_numpy(sd).reshape(points.shape[:2])
    inside, outside = sd < -margin, sd > margin
    assert int(inside.sum()) > 50 and int(outside.sum()) > 50
    assert bool((vis[inside] == 0).all()), f"lit inside: {int((vis[inside] > 0).sum())}"
    assert bool((vis[outside] == 1).all()), f"dark outside: {int((vis[outside] < 1).sum())}"
    assert float(((vis > 0) & (vis < 1)).float().sum()) <= float((sd.abs() <= margin).sum())


def test_directional_light_from_above_shadows_the_footprint():
    points = _floor_points()
    mask = torch.ones(points.shape[:2], dtype=torch.bool)
    res, pcf = 512, 1
    vis = shadow_visibility(points, mask, "directional", None, [0.0, 0.0, -1.0], _scene_depth,
                            res=res, pcf=pcf, scene_bounds=_BOUNDS)  # fmt: skip
    texel = 2 * math.dist(*_BOUNDS) / 2 / res
    poly = _shadow_polygon(light_dir=[0.0, 0.0, -1.0])
    np.testing.assert_allclose(np.sort(np.abs(poly), 0)[-1], [0.5, 0.3])
    _check_shadow(vis, points, poly, (pcf + 1.5) * texel)
    # The box's top is lit (no self-shadowing), and masked-out pixels report 1.
    top = torch.tensor([[[0.1, 0.05, 1.0], [-0.4, 0.2, 1.0]]])
    on_top = shadow_visibility(top, torch.ones(1, 2, dtype=torch.bool), 0, None, [0, 0, -1.0],
                               _scene_depth, scene_bounds=_BOUNDS)  # fmt: skip
    assert bool((on_top == 1).all())
    none = shadow_visibility(points, torch.zeros_like(mask), 0, None, [0, 0, -1.0], _scene_depth)
    assert bool((none == 1).all())


@pytest.mark.parametrize("angle_deg", [20.0, 35.0])
def test_tilted_directional_light_shifts_shadow_by_height_tan(angle_deg):
    a = math.radians(angle_deg)
    d = [math.sin(a), 0.0, -math.cos(a)]
    points = _floor_points()
    normals = torch.tensor([0.0, 0.0, 1.0]).expand_as(points)
    mask = torch.ones(points.shape[:2], dtype=torch.bool)
    res, pcf = 512, 1
    vis = shadow_visibility(points, mask, 0, None, d, _scene_depth, res=res, pcf=pcf,
                            scene_bounds=_BOUNDS, normals_world=normals)  # fmt: skip
    texel = 2 * math.dist(*_BOUNDS) / 2 / res
    poly = _shadow_polygon(light_dir=d)
    height = 1.0
    assert poly[:, 0].max() == pytest.approx(0.5 + height * math.tan(a))
    _check_shadow(vis, points, poly, (pcf + 2) * texel / math.cos(a))
    # Along y = 0 the shadow ends (half-lit) at x = 0.5 + h tan(angle).
    row = vis[points.shape[0] // 2]
    x = points[0, :, 0]
    end = float(x[(row < 0.5) & (x > 0)].max())
    assert end == pytest.approx(0.5 + height * math.tan(a), abs=2 * texel / math.cos(a) + 0.025)


def test_point_light_cube_map_shadow():
    light = [2.0, 0.5, 1.8]
    points = _floor_points(201, 2.5)
    mask = torch.ones(points.shape[:2], dtype=torch.bool)
    normals = torch.tensor([0.0, 0.0, 1.0]).expand_as(points)
    res, pcf = 512, 1
    vis = shadow_visibility(points, mask, "point", light, None, _scene_depth, res=res, pcf=pcf,
                            normals_world=normals)  # fmt: skip
    # Points reach the light through several cube faces (-z below it, -x and +-y to the sides).
    rel = points.reshape(-1, 3) - torch.tensor(light)
    faces = set((rel.abs().argmax(-1) * 2 + (rel.gather(1, rel.abs().argmax(-1, keepdim=True))[:, 0]
                                              < 0).long()).tolist())  # fmt: skip
    assert {1, 5} <= faces
    # The texel footprint grows with distance: (distance / f) / cos(incidence) at most.
    dist = float(rel.norm(dim=-1).max())
    texel = dist / (res / 2) / (1.8 / dist)
    _check_shadow(vis, points, _shadow_polygon(light_pos=light), (pcf + 2) * texel)


def test_spot_light_single_frustum_shadow():
    light = [0.2, 0.1, 3.0]
    points = _floor_points()
    mask = torch.ones(points.shape[:2], dtype=torch.bool)
    res, pcf = 512, 1
    calls = []

    def depth_fn(*args, **kw):
        calls.append(args)
        return _scene_depth(*args, **kw)

    vis = shadow_visibility(points, mask, "spot", light, [0.0, 0.0, -1.0], depth_fn, res=res,
                            pcf=pcf, cos_outer=math.cos(math.radians(40)))  # fmt: skip
    assert len(calls) == 1
    poly = _shadow_polygon(light_pos=light)
    texel = 3.0 / math.cos(math.radians(42)) ** 2 / (res / 2 / math.tan(math.radians(40) + 0.02))
    _check_shadow(vis, points, poly, (pcf + 2) * texel)
    # The shadow is the footprint scaled by 3 / (3 - 1) about the light's foot.
    assert poly[:, 0].max() == pytest.approx(0.2 + (0.5 - 0.2) * 1.5)


def test_mesh_depth_fn_matches_exact_ray_cast():
    from rendiff.engine.meshes import box, plane

    b = box((0.5, 0.3, 0.5)).transformed(torch.eye(3), torch.tensor([0.0, 0.0, 0.5]))
    p = plane(8.0, 8.0)
    verts = torch.cat([b.verts, p.verts])
    faces = torch.cat([b.faces, p.faces + b.verts.shape[0]])
    depth_fn = mesh_depth_fn(verts, faces)
    view, ortho = ortho_view([0.5, 0.3, -0.8], _BOUNDS, 96)
    got = depth_fn(view, None, 96, 96, ortho=ortho)
    want = _scene_depth(view, None, 96, 96, ortho=ortho)
    assert float(torch.isfinite(want).float().mean()) > 0.4
    same = (got == want) | ((got - want).abs() < 1e-4)
    assert float(same.float().mean()) > 0.995  # the rest would be edge pixels
    view, K = perspective_view([1.5, -1.0, 3.0], [-0.4, 0.3, -1.0], math.radians(40), 80)
    got = depth_fn(view, K, 80, 80)
    want = _scene_depth(view, K, 80, 80)
    same = (got == want) | ((got - want).abs() < 1e-4)
    assert float(same.float().mean()) > 0.995


def test_aot_variants_match_the_launch(monkeypatch):
    """`shading._AOT_VARIANTS` lists exactly what `shade` launches: with and without an SH
    environment and shadow visibility, and with one light."""
    if aot_unavailable(shading_module._shade_kernel):
        pytest.skip(aot_unavailable(shading_module._shade_kernel))
    monkeypatch.setenv("RENDIFF_TRITON", "interpret")
    launches = record_launches(monkeypatch, shading_module)
    g = torch.Generator().manual_seed(4)
    normal = normalize(torch.randn(5, 6, 3, generator=g), dim=-1)
    points = torch.tensor([0.0, 0.0, 4.0]) + torch.randn(5, 6, 3, generator=g) * 0.2
    albedo = torch.rand(5, 6, 3, generator=g)
    sun = ([0], [0, 0, 0], [0.2, 0.5, 1.0], [1.0, 0.9, 0.8])
    lamp = ([0, 1], [0, 0, 0, 0.5, -1.0, 3.0], [0.2, 0.5, 1.0] * 2, [1.0, 0.9, 0.8] * 2)
    for kinds, pos, dirs, rad in (lamp, sun):
        for env in (None, torch.rand(9, 3, generator=g) * 0.2):
            for vis in (None, torch.rand(len(kinds), 5, 6, generator=g)):
                if len(kinds) == 1 and (env is None or vis is None):
                    continue  # one light: the engine's usual scene, sun + sky + shadows
                res = shade(points, normal, albedo, _lights(kinds, pos, dirs, rad, sh=env),
                            visibility=vis)  # fmt: skip
                assert res.rgb.shape == (5, 6, 3) and bool((res.irradiance > 0).any())
    assert_same_variants(launches, shading_module._AOT_VARIANTS)
