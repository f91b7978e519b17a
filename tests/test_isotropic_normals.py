"""Round (isotropic) splats get their normal from the cloud's surface, not an arbitrary axis.

A plain 3DGS sphere of isotropic splats (as 3DGS initialises them) was shaded with each splat's
"shortest axis", which for equal scales is whichever local axis comes first: the centre normal
was ~52 degrees off and a light from the camera lit the centre at 0.555 instead of ~0.77. The
normal layer and the shading are checked here against the analytic sphere."""

from __future__ import annotations

import math

import numpy as np
import torch

import rendiff
from rendiff import Layer
from rendiff.engine.gaussians import ISOTROPY, from_points, save_ply, splat_normals

RADIUS, CENTRE = 0.5, (0.0, 0.0, 1.0)


def _fibonacci_sphere(n: int) -> np.ndarray:
    i = np.arange(n) + 0.5
    phi = np.arccos(1 - 2 * i / n)
    theta = math.pi * (1 + 5**0.5) * i
    return np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], -1)


def _render(tmp_path, n=6000):
    pts = RADIUS * _fibonacci_sphere(n) + np.array(CENTRE)
    cloud = from_points(pts, (0.9, 0.9, 0.9), opacity=0.95)  # isotropic, 3DGS's initialisation
    save_ply(cloud, tmp_path / "ball.ply")
    scene = rendiff.Scene(name="ball", frames=1, fps=1.0, size=(96, 96))
    scene.add(rendiff.Gaussians(path=str(tmp_path / "ball.ply")), name="ball",
              appearance=rendiff.Appearance(specular=0.0))
    eye = (0.0, -3.0, 1.0)
    scene.add_light(rendiff.Directional(direction=(0.0, 1.0, 0.0), intensity=1.0,
                                        shadows=False))  # from the camera
    scene.camera = rendiff.Camera(fov_deg=30.0, path=rendiff.StaticPath(eye=eye,
                                                                         target=CENTRE))
    return rendiff.render(rendiff.simulate(scene, progress=False), progress=False)


def test_round_splats_face_out_of_the_sphere(tmp_path):
    layers = _render(tmp_path)
    normal, depth = layers[Layer.NORMAL][0], layers[Layer.DEPTH][0]
    H, W = depth.shape
    centre = normal[H // 2 - 2:H // 2 + 2, W // 2 - 2:W // 2 + 2].reshape(-1, 3).mean(0)
    angle = math.degrees(math.acos(float(-centre[2] / centre.norm())))
    assert angle < 8.0, f"centre normal {angle:.1f} degrees off the view axis"
    # everywhere on the disc: the normal agrees with the analytic sphere's at the same pixel
    # (camera looks along +y; the sphere's normal at the hit point, in camera axes)
    K = layers.cameras.K[0]
    v, u = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
    x = (u - K[0, 2]) / K[0, 0]
    y = (v - K[1, 2]) / K[1, 1]
    ray = torch.nn.functional.normalize(torch.stack([x, y, torch.ones_like(x)], -1), dim=-1)
    c = torch.tensor([0.0, 0.0, 3.0])  # the centre in camera axes
    b = (ray * c).sum(-1)
    disc = b * b - (c * c).sum() + RADIUS**2
    inner = disc > 0.2 * RADIUS**2  # away from the rim, where splats blur the silhouette
    t = b - disc.clamp_min(0).sqrt()
    truth = torch.nn.functional.normalize(ray * t[..., None] - c, dim=-1)
    cos = (normal * truth).sum(-1)[inner]
    assert float(cos.median()) > math.cos(math.radians(5))
    assert float(cos.quantile(0.05)) > math.cos(math.radians(20))


def test_light_from_the_camera_lights_the_centre_fully(tmp_path):
    layers = _render(tmp_path)
    shading = layers[Layer.SHADING][0]
    H, W = shading.shape
    centre = float(shading[H // 2 - 2:H // 2 + 2, W // 2 - 2:W // 2 + 2].mean())
    assert centre > 0.9  # n . l ~ 1 facing the light (it was ~0.6 with arbitrary axes)


def test_flat_splats_keep_their_shortest_axis():
    quats = torch.nn.functional.normalize(torch.randn(50, 4), dim=-1)
    scales = torch.tensor([0.02, 0.05, 0.05]).expand(50, 3).clone()
    scales[:25] = torch.tensor([0.05, 0.05, 0.049])  # round: shortest axis meaningless
    means = torch.randn(50, 3)
    n = splat_normals(means, quats, scales)
    assert torch.equal(n[25:], torch.tensor([1.0, 0.0, 0.0]).expand(25, 3))
    assert torch.allclose(n.norm(dim=-1), torch.ones(50))
    assert 0.049 / 0.05 > ISOTROPY  # the round ones above are round by the rule
