"""Which meshes are drawn into a light's shadow map: a flat mesh that every visible point lies in
front of (a ground plane under the scene) can shadow nothing and is left out; a flat mesh with
visible points behind it (a wall, or the ground lit from below) still casts, with the shadow
geometry gives."""

from __future__ import annotations

import math

import torch

import rendiff
from rendiff.engine import shadows
from rendiff.engine.camera_paths import camera_frames
from rendiff.engine.lighting import light_state
from rendiff.engine.trajectory import MeshTrack, Trajectory

QUAD = torch.tensor([[0, 1, 2], [0, 2, 3]])


def _track(name: str, corners: list[list[float]], ident: int) -> MeshTrack:
    v = torch.tensor(corners, dtype=torch.float32)
    return MeshTrack(name, ident, ident, v[None], QUAD, torch.full((4, 3), 0.7), 0.0, 0.5)


def _trajectory(light, meshes: list[MeshTrack]) -> Trajectory:
    scene = rendiff.Scene(name="t", frames=1, fps=10.0, size=(64, 64))
    scene.camera = rendiff.Camera(fov_deg=60.0, path=rendiff.StaticPath(eye=(4, -4, 3),
                                                                          target=(0, 0, 0)))
    scene.add_light(light)
    times = torch.zeros(1)
    return Trajectory(times, scene.fps, camera_frames(scene.camera, 64, 64, times),
                      meshes=meshes, lights=[[light_state(light)]])


def _visibility(traj: Trajectory, points_world: torch.Tensor, res: int = 512) -> torch.Tensor:
    view = traj.cameras.viewmats[0]
    cam = points_world @ view[:3, :3].T + view[:3, 3]
    mask = torch.ones(cam.shape[:2], dtype=torch.bool)
    return shadows.scene_shadow_visibility(traj, 0, cam, mask, res=res)[0]


GROUND = [[-4.0, -4.0, 0.0], [4.0, -4.0, 0.0], [4.0, 4.0, 0.0], [-4.0, 4.0, 0.0]]
WALL = [[0.0, -1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, 2.0], [0.0, -1.0, 2.0]]  # x = 0


def test_wall_between_a_point_light_and_the_ground_casts_the_shadow_geometry_gives():
    """Light at (-2, 0, 1), wall x = 0, |y| <= 1, 0 <= z <= 2: a ground point (x > 0, y) is
    behind the wall exactly when |y| < (x + 2) / 2 (the ray crosses x = 0 at y (2 / (x + 2)),
    at height x / (x + 2) < 2)."""
    traj = _trajectory(rendiff.Point(position=(-2.0, 0.0, 1.0), shadows=True),
                       [_track("ground", GROUND, 1), _track("wall", WALL, 2)])
    x = torch.linspace(0.3, 2.5, 45)
    y = torch.linspace(-2.5, 2.5, 101)
    yy, xx = torch.meshgrid(y, x, indexing="ij")
    points = torch.stack([xx, yy, torch.zeros_like(xx)], -1)
    vis = _visibility(traj, points)
    edge = (xx + 2) / 2
    inside, outside = yy.abs() < edge - 0.08, yy.abs() > edge + 0.08
    assert int(inside.sum()) > 500 and int(outside.sum()) > 500
    assert bool((vis[inside] == 0).all()), int((vis[inside] > 0).sum())
    assert bool((vis[outside] == 1).all()), int((vis[outside] < 1).sum())


def test_ground_lit_from_below_shadows_what_stands_on_it():
    """A light travelling up through the ground: every point above the ground is behind it."""
    traj = _trajectory(rendiff.Directional(direction=(0.2, 0.1, 1.0), shadows=True),
                       [_track("ground", GROUND, 1)])
    g = torch.linspace(-1.0, 1.0, 21)
    yy, xx = torch.meshgrid(g, g, indexing="ij")
    above = torch.stack([xx, yy, torch.full_like(xx, 0.5)], -1)
    assert bool((_visibility(traj, above) == 0).all())


def test_ground_under_the_scene_is_left_out_of_the_map(monkeypatch):
    """Lit from above with everything on or above it, the ground is not drawn into the shadow
    map (it would fill every texel and shadow nothing); the wall still is, and casts the shadow
    geometry gives: light along d = (1, 0.3, -1) reaches ground point (x, y) from (x, y) - s d,
    which meets the wall (x = 0) at s = x, height x, y - 0.3 x: shadowed when 0 < x < 2 and
    |y - 0.3 x| < 1."""
    drawn: list[torch.Tensor] = []
    real = shadows.mesh_depth_fn

    def recording(verts, faces, *a, **kw):
        drawn.append(verts)
        return real(verts, faces, *a, **kw)

    monkeypatch.setattr(shadows, "mesh_depth_fn", recording)
    light = rendiff.Directional(direction=(1.0, 0.3, -1.0), shadows=True)
    traj = _trajectory(light, [_track("ground", GROUND, 1), _track("wall", WALL, 2)])
    g = torch.linspace(-3.0, 3.0, 61)
    yy, xx = torch.meshgrid(g, g, indexing="ij")
    points = torch.stack([xx, yy, torch.zeros_like(xx)], -1)
    vis = _visibility(traj, points)
    assert len(drawn) == 1 and torch.equal(drawn[0], torch.tensor(WALL))
    m = 0.05  # PCF footprint: 2.5 texels of a 512-texel map over the wall's 3 m box
    lateral = (yy - 0.3 * xx).abs()
    inside = (xx > m) & (xx < 2 - m) & (lateral < 1 - m)
    outside = (xx < -m) | (xx > 2 + m) | (lateral > 1 + m)
    assert int(inside.sum()) > 100 and int(outside.sum()) > 1000
    assert bool((vis[inside] == 0).all()), int((vis[inside] > 0).sum())
    assert bool((vis[outside] == 1).all()), int((vis[outside] < 1).sum())


def _grid(n: int, bend: float) -> tuple[torch.Tensor, torch.Tensor]:
    """An n x n grid over 10 m x 6 m, its middle row lifted by ``bend`` metres, tilted and
    moved off the origin; two triangles per cell."""
    u, v = torch.meshgrid(torch.linspace(-5, 5, n), torch.linspace(-3, 3, n), indexing="ij")
    z = torch.zeros_like(u)
    z[:, n // 2] = bend
    pts = torch.stack([u, v, z], -1).reshape(-1, 3).double()
    a, b = 0.7, -0.4  # tilt about x, then about y
    rx = torch.tensor([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]],
                      dtype=torch.float64)
    ry = torch.tensor([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]],
                      dtype=torch.float64)
    pts = (pts @ (ry @ rx).T + torch.tensor([3.0, -2.0, 1.5], dtype=torch.float64)).float()
    idx = torch.arange(n * n).reshape(n, n)
    a0, a1, b0, b1 = idx[:-1, :-1], idx[1:, :-1], idx[:-1, 1:], idx[1:, 1:]
    faces = torch.cat([torch.stack([a0, a1, b1], -1).reshape(-1, 3),
                       torch.stack([a0, b1, b0], -1).reshape(-1, 3)])
    return pts, faces


def test_the_covariance_pre_test_never_turns_away_a_flat_mesh():
    """``flat_meshes`` skips the per-face test for meshes whose vertex covariance rules out a
    plane (``_maybe_flat``): every frame the full test calls flat must pass the pre-test, and
    solid meshes (a sphere, a box, a grid bent by 1 cm) are turned away by it."""
    from rendiff.engine.meshes import box, sphere

    cases = {"flat": _grid(40, 0.0), "within tolerance": _grid(40, 2e-6),
             "bent": _grid(40, 0.01)}
    for name, (v, f) in cases.items():
        frames = torch.stack([v, v + 0.5])
        full = [x is not None for x in shadows._flat_frames(frames, f)]
        assert full == ([name != "bent"] * 2), name
        assert shadows._maybe_flat(frames) == (name != "bent"), name
    for mesh in (sphere(0.5), box((0.3, 0.2, 0.1))):
        v = mesh.verts[None].float()
        assert not shadows._maybe_flat(v)
        assert shadows._flat_frames(v, mesh.faces) == [None]


def test_caster_boxes_for_the_whole_clip_are_each_frames_box(monkeypatch):
    """``_Casters`` computes every frame's caster box at once, a chunk of frames at a time (2
    here, over 5 frames): each equals the box of that frame's vertices and of its Gaussians to
    3 standard deviations (per-frame scales of a deforming cloud and fixed ones), padded 5 cm."""
    from rendiff.engine.trajectory import GaussianTrack

    g = torch.Generator().manual_seed(2)
    T, N = 5, 40
    verts = torch.randn(T, 4, 3, generator=g)
    mesh = MeshTrack("m", 1, 1, verts, QUAD, torch.full((4, 3), 0.7), 0.0, 0.5)

    def cloud(frame_scales: torch.Tensor | None) -> GaussianTrack:
        return GaussianTrack("c", 2, 2, torch.randn(T, N, 3, generator=g),
                             torch.randn(T, N, 4, generator=g),
                             torch.rand(N, 3, generator=g) * 0.1, torch.rand(N, generator=g),
                             torch.rand(T, N, 3, generator=g), 0.0, 0.5,
                             frame_scales=frame_scales)

    clouds = [cloud(None), cloud(torch.rand(T, N, 3, generator=g) * 0.2)]
    traj = _trajectory(rendiff.Directional(direction=(0.0, 0.0, -1.0), shadows=True), [mesh])
    traj.gaussians = clouds
    monkeypatch.setattr(shadows._Casters, "CHUNK", 2)
    casters = shadows._Casters(traj, [0])
    for k in range(T):
        pts = [verts[k]] + [c.means[k] + s * 3.0 * c.scales_at(k).amax(1, keepdim=True)
                            for c in clouds for s in (-1.0, 1.0)]
        allp = torch.cat(pts)
        lo, hi = casters.box(k)
        assert torch.equal(lo, allp.amin(0) - 0.05) and torch.equal(hi, allp.amax(0) + 0.05), k
