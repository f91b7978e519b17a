"""Gaussian clouds cast shadows: a dense Gaussian sphere above a ground plane, lit from straight
above, shadows a disc of the radius geometry gives, and nothing else."""

from __future__ import annotations

import math

import pytest
import torch

import rendiff
from rendiff import Layer
from rendiff.engine.camera_paths import camera_frames
from rendiff.engine.gaussians import from_primitive
from rendiff.engine.lighting import light_state
from rendiff.engine.shadows import (
    MIN_MAP,
    footprint_res,
    gaussian_depth_fn,
    scene_shadow_visibility,
)
from rendiff.engine.trajectory import GaussianTrack, MeshTrack, Trajectory
from rendiff.kernels.shadow import ortho_view

RADIUS = 0.5  # of the Gaussian sphere
CENTRE = torch.tensor([0.1, -0.05, 1.2])  # its centre, above the plane z = 0


def _cloud():
    cloud = from_primitive("sphere", 6000, seed=3, radius=RADIUS, opacity=0.95)
    cloud.scales = cloud.scales * 2.0  # discs as wide as the sample spacing, as simulate does
    return cloud


def _trajectory(light) -> Trajectory:
    """Ground plane (a 2-triangle mesh) and the Gaussian sphere, one frame, built by hand so the
    test depends on neither physics nor scene loading."""
    scene = rendiff.Scene(name="t", frames=1, fps=10.0, size=(64, 64))
    scene.camera = rendiff.Camera(fov_deg=60.0, path=rendiff.StaticPath(eye=(0, -4, 2.5),
                                                                          target=(0, 0, 0)))
    scene.add(rendiff.Plane(size=(6, 6)), name="ground")
    scene.add_light(light)
    times = torch.zeros(1)
    cams = camera_frames(scene.camera, 64, 64, times)
    quad = torch.tensor([[-3.0, -3.0, 0.0], [3.0, -3.0, 0.0], [3.0, 3.0, 0.0], [-3.0, 3.0, 0.0]])
    ground = MeshTrack("ground", 1, 1, quad[None], torch.tensor([[0, 1, 2], [0, 2, 3]]),
                       torch.full((4, 3), 0.7), 0.0, 0.5)
    c = _cloud()
    ball = GaussianTrack("ball", 2, 2, (c.means + CENTRE)[None], c.quats[None], c.scales,
                         c.opacities, c.colors()[None], 0.0, 0.5)
    return Trajectory(times, scene.fps, cams, meshes=[ground], gaussians=[ball],
                      lights=[[light_state(light)]])


def _ground_points(n: int = 121, half: float = 1.5) -> torch.Tensor:
    x = torch.linspace(-half, half, n)
    yy, xx = torch.meshgrid(x, x, indexing="ij")
    return torch.stack([xx + CENTRE[0], yy + CENTRE[1], torch.zeros_like(xx)], -1)


def _visibility(traj: Trajectory, points_world: torch.Tensor, res: int = 256) -> torch.Tensor:
    view = traj.cameras.viewmats[0]
    cam = points_world @ view[:3, :3].T + view[:3, 3]
    mask = torch.ones(cam.shape[:2], dtype=torch.bool)
    return scene_shadow_visibility(traj, 0, cam, mask, res=res)[0]


def _check_disc(vis: torch.Tensor, points: torch.Tensor, centre_xy, radius: float,
                margin: float) -> None:
    r = (points[..., :2] - torch.as_tensor(centre_xy)).norm(dim=-1)
    inside, outside = r < radius - margin, r > radius + margin
    assert int(inside.sum()) > 200 and int(outside.sum()) > 200
    assert bool((vis[inside] == 0).all()), f"lit inside: {int((vis[inside] > 0).sum())}"
    assert bool((vis[outside] == 1).all()), f"dark outside: {int((vis[outside] < 1).sum())}"


def _margin(traj: Trajectory, texel: float, magnification: float = 1.0, pcf: int = 1) -> float:
    """Edge tolerance on the ground: the PCF footprint (pcf + 1 texels, plus rounding) and the
    splats' reach past the sphere (two in-plane standard deviations of the discs, magnified by
    the light's perspective from the sphere to the ground)."""
    sigma = float(traj.gaussians[0].scales.max())
    return (pcf + 1.5) * texel + 2 * sigma * magnification


def test_directional_light_from_above_shadows_a_disc_of_the_sphere_radius():
    traj = _trajectory(rendiff.Directional(direction=(0.0, 0.0, -1.0), shadows=True))
    points = _ground_points()
    vis = _visibility(traj, points)
    # The directional map covers the casters' bounding sphere (the cloud's 3-sigma box + 5 cm),
    # with as many texels as footprint_res gives this camera (at most the 256 asked for).
    lo = CENTRE - RADIUS - 3 * traj.gaussians[0].scales.max() - 0.05
    res = footprint_res((lo, 2 * CENTRE - lo), traj.cameras.viewmats[0], traj.cameras.K[0], 256)
    assert MIN_MAP <= res < 256
    texel = float((2 * (CENTRE - lo)).norm()) / res
    margin = _margin(traj, texel)
    assert margin < 0.3 * RADIUS  # (mostly the splats' reach: 0.08 of the 0.13 here)
    _check_disc(vis, points, CENTRE[:2], RADIUS, margin)


def test_spot_light_above_shadows_the_cone_of_the_sphere():
    """Perspective map: a spot at height L on the sphere's axis; the shadow is where the cone
    tangent to the sphere meets the ground, radius L tan(asin(R / (L - h)))."""
    height = 3.0
    traj = _trajectory(rendiff.Spot(position=(float(CENTRE[0]), float(CENTRE[1]), height),
                                    direction=(0.0, 0.0, -1.0), angle_deg=100.0, shadows=True))
    points = _ground_points()
    vis = _visibility(traj, points, res=512)  # spot maps are res // 2 = 256 square
    half_fov = math.radians(50.0) + 0.02
    texel = 2 * height * math.tan(half_fov) / 256  # on the ground, straight below
    radius = height * math.tan(math.asin(RADIUS / (height - float(CENTRE[2]))))
    margin = _margin(traj, texel, magnification=height / (height - float(CENTRE[2])))
    _check_disc(vis, points, CENTRE[:2], radius, margin)


def test_cloud_lit_on_top_and_dark_underneath():
    """Points on the sphere itself: its top is lit (no self-shadowing of the lit side), its
    underside is in its own shadow."""
    traj = _trajectory(rendiff.Directional(direction=(0.0, 0.0, -1.0), shadows=True))
    g = torch.Generator().manual_seed(0)
    n = torch.nn.functional.normalize(torch.randn(400, 3, generator=g), dim=-1)
    points = (CENTRE + RADIUS * n)[None]
    vis = _visibility(traj, points)[0]
    assert bool((vis[n[:, 2] > 0.5] == 1).all())
    assert bool((vis[n[:, 2] < -0.3] == 0).all())


def test_gaussian_depth_fn_orthographic_matches_the_sphere():
    """The orthographic light view of the cloud (far-pinhole substitution) puts the sphere's
    silhouette and near depth where an orthographic camera sees them."""
    c = _cloud()
    fn = gaussian_depth_fn(c.means + CENTRE, c.quats, c.scales, c.opacities)
    lo, hi = CENTRE - 1.0, CENTRE + 1.0
    view, ortho = ortho_view([0.0, 0.0, -1.0], (lo, hi), res=128)
    depth = fn(view, None, 128, 128, ortho=ortho)
    sx, sy, cx, cy = ortho
    v, u = torch.meshgrid(torch.arange(128) + 0.5, torch.arange(128) + 0.5, indexing="ij")
    centre_cam = view[:3, :3] @ CENTRE + view[:3, 3]
    x, y = (u - cx) / sx - centre_cam[0], (v - cy) / sy - centre_cam[1]
    rho = (x * x + y * y).sqrt()
    texel = 1.0 / sx
    sigma = float(c.scales.max())
    assert bool(torch.isfinite(depth[rho < RADIUS - 2 * texel]).all())
    assert bool(torch.isinf(depth[rho > RADIUS + 2 * texel + 2 * sigma]).all())
    # Near the middle the depth is the sphere's top (centre depth - R), give or take the splat
    # thickness and the push-back of one standard deviation.
    top = rho < 0.3 * RADIUS
    sphere_z = centre_cam[2] - (RADIUS**2 - rho[top] ** 2).sqrt()
    assert float((depth[top] - sphere_z).abs().max()) < 2 * sigma


@pytest.mark.parametrize("shadows", [True, False])
def test_render_darkens_the_ground_under_a_gaussian_ball(shadows):
    """End to end: rendiff.render's shading of the ground, lit straight from above with no
    ambient light, is 0 in the disc under the ball and 1 outside it."""
    s = rendiff.Scene(name="t", frames=1, fps=10.0, size=(80, 60))
    s.camera = rendiff.Camera(fov_deg=60.0, path=rendiff.StaticPath(eye=(0, -4, 2.5),
                                                                      target=(0, 0, 0)))
    s.add(rendiff.Plane(size=(6, 6)), name="ground")
    s.add(rendiff.Gaussians(shape="sphere", count=4000, radius=RADIUS),
          rendiff.Pose(position=tuple(CENTRE.tolist())), name="ball")
    s.add_light(rendiff.Directional(direction=(0.0, 0.0, -1.0), intensity=1.0, shadows=True))
    L = rendiff.render(rendiff.simulate(s, progress=False), shadows=shadows, progress=False)
    depth, inst, shading = L[Layer.DEPTH][0], L[Layer.INSTANCE][0], L[Layer.SHADING][0]
    K, view = L.cameras.K[0], L.cameras.viewmats[0]
    v, u = torch.meshgrid(torch.arange(60) + 0.5, torch.arange(80) + 0.5, indexing="ij")
    z = torch.where(torch.isfinite(depth), depth, 0.0)
    cam = torch.stack([(u - K[0, 2]) / K[0, 0] * z, (v - K[1, 2]) / K[1, 1] * z, z], -1)
    world = (cam - view[:3, 3]) @ view[:3, :3]
    r = (world[..., :2] - CENTRE[:2]).norm(dim=-1)
    ground = inst == 1
    inside, outside = ground & (r < 0.8 * RADIUS), ground & (r > 1.2 * RADIUS)
    assert int(inside.sum()) > 20 and int(outside.sum()) > 200
    assert torch.allclose(shading[outside], torch.ones(()), atol=1e-3)
    if shadows:
        assert bool((shading[inside] == 0).all())
    else:
        assert torch.allclose(shading[inside], torch.ones(()), atol=1e-3)


def test_footprint_res_samples_the_casters_as_the_camera_does():
    """A caster box whose bounding sphere (radius 1) is 10 m in front of a camera with a focal
    length of f pixels spans 2 f / 10 pixels: its map gets that many texels, within
    [MIN_MAP, cap], and the full cap when the camera is inside the sphere."""
    half = torch.full((3,), 1.0 / math.sqrt(3.0))
    centre = torch.tensor([0.0, 0.0, 10.0])
    box = (centre - half, centre + half)
    view = torch.eye(4)
    for f, cap, expected in ((1234.0, 2048, 247), (1234.0, 150, 150), (100.0, 2048, MIN_MAP)):
        K = torch.tensor([[f, 0.0, 64.0], [0.0, f, 64.0], [0.0, 0.0, 1.0]])
        assert footprint_res(box, view, K, cap) == expected
    inside = (box[0] - centre + 0.5, box[1] - centre + 0.5)
    assert footprint_res(inside, view, K, 300) == 300
