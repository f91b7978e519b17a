"""Cameras (OpenCV convention, look-at, paths) and the control-image encodings."""

from __future__ import annotations

import math

import pytest
import torch

from rendiff.engine.camera import interpolate_points, intrinsics, look_at
from rendiff.engine.camera_paths import camera_frames
from rendiff.kernels.encodings import (
    depth_to_control,
    depth_to_normals,
    flow_to_color,
    ids_to_color,
    normal_to_control,
)
from rendiff.scenes.spec import Camera, DollyPath, KeyframedPath, OrbitPath, StaticPath


def test_look_at_opencv_axes():
    # Camera on -Y looking at the origin: world +X is image right, world +Z is image up (-y).
    V = look_at(torch.tensor([0.0, -5.0, 0.0]), torch.tensor([0.0, 0.0, 0.0]))
    p = lambda x: (V[:3, :3] @ torch.tensor(x) + V[:3, 3])  # noqa: E731
    assert torch.allclose(p([0.0, 0.0, 0.0]), torch.tensor([0.0, 0.0, 5.0]), atol=1e-6)
    assert p([1.0, 0.0, 0.0])[0] > 0  # right
    assert p([0.0, 0.0, 1.0])[1] < 0  # up in the world is -y in the image
    assert torch.allclose(V[:3, :3] @ V[:3, :3].T, torch.eye(3), atol=1e-6)


def test_intrinsics_fov():
    K = intrinsics(64, 48, 90.0)
    assert K[1, 1] == pytest.approx(24.0) and K[0, 2] == 32 and K[1, 2] == 24


def test_projection_of_known_point():
    cam = camera_frames(Camera(fov_deg=90.0, path=StaticPath(eye=(0, -2, 0), target=(0, 0, 0))),
                        64, 64, torch.zeros(1))
    uv, z = cam.project(torch.tensor([[[1.0, 0.0, 0.0]]]))
    # x = 1 at depth 2 with f = 32: u = 32 + 32 * 1 / 2
    assert uv[0, 0, 0] == pytest.approx(48.0) and uv[0, 0, 1] == pytest.approx(32.0)
    assert z[0, 0] == pytest.approx(2.0)
    assert torch.allclose(cam.centers[0], torch.tensor([0.0, -2.0, 0.0]), atol=1e-5)


def test_orbit_keeps_radius_and_sweeps():
    times = torch.linspace(0, 1, 5)
    cam = camera_frames(Camera(path=OrbitPath(target=(0, 0, 0), radius=3, height=1,
                                              start_deg=0, degrees=90)), 32, 32, times)
    c = cam.centers
    assert torch.allclose(c[:, :2].norm(dim=-1), torch.full((5,), 3.0), atol=1e-4)
    assert torch.allclose(c[0], torch.tensor([3.0, 0.0, 1.0]), atol=1e-4)
    assert torch.allclose(c[-1], torch.tensor([0.0, 3.0, 1.0]), atol=1e-4)


def test_dolly_and_keyframes():
    times = torch.tensor([0.0, 0.5, 1.0])
    cam = camera_frames(Camera(path=DollyPath(start=(4, 0, 1), end=(2, 0, 1), target=(0, 0, 0))),
                        32, 32, times)
    assert torch.allclose(cam.centers[1], torch.tensor([3.0, 0.0, 1.0]), atol=1e-4)
    kp = KeyframedPath(times=[0, 1], eyes=[(4, 0, 1), (2, 0, 1)], targets=[(0, 0, 0)] * 2,
                       interpolation="linear")
    cam2 = camera_frames(Camera(path=kp), 32, 32, times)
    assert torch.allclose(cam2.viewmats, cam.viewmats, atol=1e-5)


def test_catmull_rom_passes_through_keys():
    pts = torch.tensor([[0.0], [1.0], [4.0], [9.0]])
    out = interpolate_points([0, 1, 2, 3], pts, torch.tensor([0.0, 1.0, 2.0, 3.0]), cubic=True)
    assert torch.allclose(out, pts)


def test_depth_control_is_clip_normalised_inverse_depth():
    depth = torch.tensor([[[1.0, 2.0]], [[4.0, math.inf]]])
    c = depth_to_control(depth)
    assert c[0, 0, 0] == pytest.approx(1.0)  # nearest in the clip
    assert c[1, 0, 0] == pytest.approx(0.05)  # farthest valid, above background
    assert c[1, 0, 1] == 0.0  # empty
    # 1/2 lies at (0.5 - 0.25) / (1 - 0.25) of the inverse-depth range
    assert c[0, 0, 1] == pytest.approx(0.05 + 0.95 * (0.25 / 0.75))


def test_normal_control_convention():
    # OpenCV camera space: facing the viewer = -z, up = -y, left = -x.
    n = torch.tensor([[0.0, 0.0, -1.0], [0.0, -1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    c = normal_to_control(n)
    assert torch.allclose(c[0], torch.tensor([0.5, 0.5, 1.0]))  # lavender: faces the viewer
    assert torch.allclose(c[1], torch.tensor([0.5, 1.0, 0.5]))  # green: faces up
    assert torch.allclose(c[2], torch.tensor([1.0, 0.5, 0.5]))  # red: faces left
    assert torch.all(c[3] == 0)


def test_depth_to_normals_of_a_tilted_plane():
    # Plane z = 2 + 0.5 * x (camera space), seen through a pinhole.
    K = torch.tensor([[20.0, 0, 16], [0, 20.0, 16], [0, 0, 1]])
    v, u = torch.meshgrid(torch.arange(32) + 0.5, torch.arange(32) + 0.5, indexing="ij")
    xn = (u - 16) / 20
    z = 2.0 / (1 - 0.5 * xn)  # z = 2 + 0.5 * x with x = xn * z
    n = depth_to_normals(z, K)
    expected = torch.tensor([0.5, 0.0, -1.0]) / math.sqrt(1.25)
    assert torch.allclose(n[5:-5, 5:-5], expected.expand(22, 22, 3), atol=1e-4)
    assert torch.all(n[0] == 0)


def test_flow_colour_wheel():
    # Middlebury wheel at full magnitude: right = red, left = cyan-blue, down = yellow.
    flow = torch.tensor([[0.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.5, 0.0]])
    c = flow_to_color(flow)
    assert torch.allclose(c[0], torch.ones(3))  # no motion is white
    assert c[1, 0] > 0.9 and c[1, 1] < 0.1 and c[1, 2] < 0.3
    assert c[2, 0] < 0.1 and c[2, 1] > 0.7 and c[2, 2] > 0.9
    assert c[3, 0] > 0.9 and 0.4 < c[3, 1] < 1.0 and c[3, 2] < 0.1
    # half the largest magnitude: halfway from white to the hue
    assert torch.allclose(c[4], 1 - 0.5 * (1 - c[1]), atol=1e-6)


def test_id_palette_fixed_and_distinct():
    ids = torch.arange(0, 40)
    c = ids_to_color(ids)
    assert torch.all(c[0] == 0)
    d = torch.cdist(c[1:], c[1:]) + torch.eye(39) * 10
    assert float(d.min()) > 0.05
    assert torch.equal(ids_to_color(ids), c)


def test_flow_control_image_has_a_one_pixel_floor():
    """Float noise on a static clip stays (almost) white; real motion keeps full colour."""
    from rendiff.conditioners.controls import control_image

    noise = torch.randn(2, 9, 11, 2, generator=torch.Generator().manual_seed(0)) * 3e-4
    still = control_image("flow", noise)
    assert float((1 - still).abs().max()) < 2e-3
    moving = torch.zeros(2, 9, 11, 2)
    moving[0, 4, 5] = torch.tensor([5.0, 0.0])
    img = control_image("flow", moving)
    assert float((1 - img[0, 4, 5]).abs().max()) > 0.5  # the moving pixel is saturated
