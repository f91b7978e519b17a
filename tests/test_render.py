"""The render step end to end, against answers computed independently of the rasterizers."""

from __future__ import annotations

import math

import pytest
import torch

import rendiff
from rendiff import Layer


def _scene(**kw):
    s = rendiff.Scene(name="t", frames=3, fps=10.0, size=(64, 48), **kw)
    s.camera = rendiff.Camera(fov_deg=60.0, path=rendiff.StaticPath(eye=(0, -3, 0),
                                                                      target=(0, 0, 0)))
    return s


def test_sphere_depth_normal_ids_match_geometry():
    s = _scene()
    s.add(rendiff.Sphere(radius=0.5), rendiff.Pose(position=(0, 0, 0)), name="ball")
    s.add_light(rendiff.Ambient(intensity=1.0))
    L = rendiff.render(rendiff.simulate(s, progress=False), progress=False)
    d = L[Layer.DEPTH][0]
    # Ray through the centre of pixel (24, 32) against the analytic sphere, in camera space
    # (sphere centre at z = 3).
    K = L.cameras.K[0]
    ray = torch.tensor([(32.5 - K[0, 2]) / K[0, 0], (24.5 - K[1, 2]) / K[1, 1], 1.0])
    c = torch.tensor([0.0, 0.0, 3.0])
    a, b, cc = ray @ ray, -2 * ray @ c, c @ c - 0.25
    t = (-b - torch.sqrt(b * b - 4 * a * cc)) / (2 * a)
    hit = t * ray
    assert d[24, 32] == pytest.approx(float(hit[2]), abs=0.01)  # tessellation error < 1 cm
    assert torch.isinf(d[0, 0])
    n = L[Layer.NORMAL][0, 24, 32]
    assert torch.allclose(n, (hit - c) / 0.5, atol=0.02)
    inst = L[Layer.INSTANCE][0]
    assert inst[24, 32] == 1 and inst[0, 0] == 0
    # silhouette radius: a sphere of radius r at distance D subtends asin(r / D)
    f = 24 / math.tan(math.radians(30))
    r_px = f * math.tan(math.asin(0.5 / 3))
    covered = float((inst[24] == 1).sum())
    assert covered == pytest.approx(2 * r_px, abs=2.0)
    # ambient white light on a white-ish albedo: rgb = albedo where covered
    assert torch.allclose(L[Layer.RGB][0, 24, 32], torch.tensor([0.7, 0.7, 0.7]), atol=1e-3)
    assert torch.allclose(L[Layer.SHADING][0, 24, 32], torch.tensor(1.0), atol=1e-3)


def test_no_rendered_normal_points_away_from_the_sphere_it_shows():
    """The render step's own normals (not only mesh_normals_camera) at the silhouette: every
    pixel of a sphere within 30 degrees of the analytic normal (it was up to 175 degrees off
    where the interpolated normal was negated instead of bent back)."""
    s = _scene()
    s.size = (256, 192)
    s.add(rendiff.Sphere(radius=0.5), rendiff.Pose(position=(0, 0, 0)), name="ball")
    s.add_light(rendiff.Ambient(intensity=1.0))
    L = rendiff.render(rendiff.simulate(s, progress=False), ["depth", "normal"], progress=False)
    K = L.cameras.K[0]
    v, u = torch.meshgrid(torch.arange(192) + 0.5, torch.arange(256) + 0.5, indexing="ij")
    ray = torch.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], torch.ones_like(u)], -1)
    c = torch.tensor([0.0, 0.0, 3.0])
    a, b = (ray * ray).sum(-1), -2 * ray @ c
    disc = b * b - 4 * a * (c @ c - 0.25)
    t = (-b - disc.clamp(min=0).sqrt()) / (2 * a)
    n_true = torch.nn.functional.normalize(t[..., None] * ray - c, dim=-1)
    hit = torch.isfinite(L[Layer.DEPTH][0]) & (disc > 0)
    cos = (L[Layer.NORMAL][0][hit] * n_true[hit]).sum(-1)
    assert int(hit.sum()) > 1000
    assert float(cos.min()) > math.cos(math.radians(30)), math.degrees(math.acos(cos.min()))


def test_flow_follows_the_projected_centre_of_a_moving_box():
    s = _scene()
    s.add(rendiff.Box(size=(0.4, 0.4, 0.4)), name="box",
          animation=rendiff.Keyframes(times=[0.0, 0.2], positions=[(-0.3, 0, 0), (0.3, 0, 0)]))
    traj = rendiff.simulate(s, progress=False)
    L = rendiff.render(traj, progress=False)
    # the pixel at the box's centre sees its front face, 0.2 m nearer the camera than the centre
    front = traj.rigid["box"].positions[:, None] + torch.tensor([0.0, -0.2, 0.0])
    uv, _ = traj.cameras.project(front)
    expected = uv[1, 0] - uv[0, 0]
    px = uv[0, 0].long()
    flow = L[Layer.FLOW][0, px[1], px[0]]
    assert torch.allclose(flow, expected, atol=0.05)
    back = L[Layer.FLOW_BACKWARD][1, uv[1, 0, 1].long(), uv[1, 0, 0].long()]
    assert torch.allclose(back, -expected, atol=0.05)
    assert torch.all(L[Layer.FLOW][-1] == 0)


def test_shadow_under_a_box_lit_from_above():
    s = _scene()
    s.camera = rendiff.Camera(fov_deg=60.0, path=rendiff.StaticPath(eye=(0, -0.01, 4),
                                                                      target=(0, 0, 0)))
    s.add(rendiff.Plane(size=(4, 4)), name="ground")
    s.add(rendiff.Box(size=(0.5, 0.5, 0.1)), rendiff.Pose(position=(0.8, 0, 1.0)), name="lid")
    s.add_light(rendiff.Directional(direction=(-1.0, 0.0, -1.0), intensity=1.0, shadows=True))
    L = rendiff.render(rendiff.simulate(s, progress=False), progress=False)
    inst, shading = L[Layer.INSTANCE][0], L[Layer.SHADING][0]
    cams = L.cameras
    # The lid at height 1 m, light at 45 degrees towards -x: its shadow is centred 1 m
    # further along -x on the ground, at (-0.2, 0, 0) (the lid's bottom is at 0.95 m).
    uv, _ = cams.project(torch.tensor([[[-0.15, 0.0, 0.0], [0.8 - 1.6, 0.0, 0.0]]]))
    (u_shadow, v_shadow), (u_lit, v_lit) = uv[0].long().tolist()
    assert inst[v_shadow, u_shadow] == 1  # ground
    assert shading[v_shadow, u_shadow] < 0.05
    assert inst[v_lit, u_lit] == 1
    assert shading[v_lit, u_lit] == pytest.approx(1 / math.sqrt(2), abs=0.02)
