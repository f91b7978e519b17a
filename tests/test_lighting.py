"""Animated lights and textures, against answers computed in the tests: Lambert's law with
keyframed intensities, shadow offsets from the sun's direction, the inverse-square law of a moving
point light, checker and image textures at analytic ray-surface intersections, one-line errors and
exact round trips of scene files."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import rendiff
from rendiff import Layer
from rendiff.engine import meshes
from rendiff.engine.lighting import light_at
from rendiff.scenes import load_scene, save_scene, scene_to_dict
from rendiff.scenes.spec import LightKeyframes

WHITE = rendiff.Appearance(color=(1.0, 1.0, 1.0), specular=0.0)


def _scene(frames: int, fps: float, size=(64, 64), eye=(0.0, -0.01, 4.0), target=(0, 0, 0),
           fov=50.0) -> rendiff.Scene:
    s = rendiff.Scene(name="t", frames=frames, fps=fps, size=size)
    s.camera = rendiff.Camera(fov_deg=fov, path=rendiff.StaticPath(eye=eye, target=target))
    return s


def _render(s: rendiff.Scene):
    return rendiff.render(rendiff.simulate(s, progress=False), progress=False)


def _rays(L, k: int = 0):
    """World ray origin [3] and directions [H, W, 3] through every pixel centre of frame k."""
    K, view = L.cameras.K[k].double(), L.cameras.viewmats[k].double()
    H, W = L[Layer.DEPTH].shape[1:]
    v, u = torch.meshgrid(torch.arange(H, dtype=torch.float64) + 0.5,
                          torch.arange(W, dtype=torch.float64) + 0.5, indexing="ij")
    return _rays_at(K, view, u, v)


def _rays_at(K, view, u, v):
    cam = torch.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], torch.ones_like(u)], -1)
    R, t = view[:3, :3], view[:3, 3]
    return -R.T @ t, cam @ R  # R^T d, row-wise


def _hit_ground(origin, dirs):
    """Where rays meet the plane z = 0 [..., 3]."""
    s = -origin[2] / dirs[..., 2]
    return origin + s[..., None] * dirs


# --------------------------------------------------------------------------------------------
# Animated lights


@pytest.mark.parametrize("interpolation", ["linear", "smooth"])
def test_keyframed_intensity_and_colour_light_a_lambert_plane(interpolation):
    s = _scene(frames=9, fps=8.0, size=(16, 16))  # t = 0, 0.125, ..., 1
    s.add(rendiff.Plane(size=(6, 6)), appearance=WHITE, name="ground")
    s.add_light(rendiff.Directional(direction=(0, 0, -1), shadows=False, animation=LightKeyframes(
        times=[0.25, 0.75], intensity=[0.2, 1.0], color=[(1, 1, 1), (1, 0.5, 0)],
        interpolation=interpolation)))
    L = _render(s)
    for k in range(9):
        t = k / 8
        a = min(1.0, max(0.0, (t - 0.25) / 0.5))  # held before and after the keyframes
        if interpolation == "smooth":
            a = a * a * (3 - 2 * a)
        intensity = 0.2 + 0.8 * a
        color = torch.tensor([1.0, 1.0 - 0.5 * a, 1.0 - a])
        # A white Lambert plane lit head-on: irradiance = intensity * colour * cos(0).
        assert float(L[Layer.SHADING][k, 8, 8]) == pytest.approx(
            intensity * float(color.mean()), abs=1e-5)
        torch.testing.assert_close(L[Layer.RGB][k, 8, 8], intensity * color, atol=1e-5, rtol=0)


def test_sun_direction_keyframes_move_the_shadow_where_geometry_says():
    h, zenith = 1.0, math.radians(40.0)
    d0 = (math.sin(zenith), 0.0, -math.cos(zenith))  # towards +x
    d1 = (0.0, math.sin(zenith), -math.cos(zenith))  # towards +y
    s = _scene(frames=3, fps=2.0, size=(128, 128), eye=(0.0, -0.01, 6.0))  # t = 0, 0.5, 1
    s.add(rendiff.Plane(size=(8, 8)), appearance=WHITE, name="ground")
    s.add(rendiff.Box(size=(0.4, 0.4, 0.04)), rendiff.Pose(position=(0, 0, h)), name="lid")
    s.add_light(rendiff.Directional(shadows=True, animation=LightKeyframes(
        times=[0.0, 1.0], direction=[d0, d1])))
    L = _render(s)
    origin, dirs = _rays(L)
    ground = _hit_ground(origin, dirs)[..., :2]
    # Slerp half-way between two directions is their normalised sum.
    mid = torch.nn.functional.normalize(torch.tensor(d0) + torch.tensor(d1), dim=0).tolist()
    for k, d in enumerate([d0, mid, d1]):
        shadow = (L[Layer.INSTANCE][k] == 1) & (L[Layer.SHADING][k] < 0.5)
        centroid = ground[shadow].mean(0)
        # The lid's centre at height h projects along d onto the ground at h * d_xy / -d_z.
        expected = torch.tensor([h * d[0] / -d[2], h * d[1] / -d[2]], dtype=torch.float64)
        torch.testing.assert_close(centroid, expected, atol=0.02, rtol=0)
        area = float(shadow.sum()) * float((ground[0, 1] - ground[0, 0]).norm()) ** 2
        assert area == pytest.approx(0.4 * 0.4, rel=0.25)


def test_moving_point_light_follows_inverse_square_cosine_law():
    s = _scene(frames=3, fps=2.0, size=(48, 48))
    s.add(rendiff.Plane(size=(6, 6)), appearance=WHITE, name="ground")
    s.add_light(rendiff.Point(intensity=2.0, animation=LightKeyframes(
        times=[0.0, 1.0], position=[(-1.0, 0.0, 1.0), (1.0, 0.0, 1.0)])))
    L = _render(s)
    origin, dirs = _rays(L)
    p = _hit_ground(origin, dirs)
    for k, x in enumerate([-1.0, 0.0, 1.0]):
        to_light = torch.tensor([x, 0.0, 1.0], dtype=torch.float64) - p
        r = to_light.norm(dim=-1)
        expected = 2.0 * (to_light[..., 2] / r) / r**2  # I cos(theta) / r^2
        got = L[Layer.SHADING][k].double()
        assert bool((L[Layer.INSTANCE][k] == 1).all())
        torch.testing.assert_close(got, expected, rtol=2e-3, atol=1e-5)
    # the brightest pixel sits under the light, frame after frame
    for k, x in enumerate([-1.0, 0.0, 1.0]):
        peak = int(L[Layer.SHADING][k].flatten().argmax())
        assert float(p.reshape(-1, 3)[peak, 0]) == pytest.approx(x, abs=0.1)


def test_direction_keyframes_turn_at_a_constant_rate():
    d0, d1 = (0.0, 0.0, -2.0), (1.0, 0.0, 0.0)  # a quarter turn; lengths do not matter
    light = rendiff.Directional(animation=LightKeyframes(times=[1.0, 3.0], direction=[d0, d1]))
    for t, frac in [(0.0, 0.0), (1.5, 0.25), (2.0, 0.5), (2.5, 0.75), (9.0, 1.0)]:
        d = light_at(light, t).direction
        angle = frac * math.pi / 2
        np.testing.assert_allclose(d, (math.sin(angle), 0.0, -math.cos(angle)), atol=1e-9)


def test_light_following_an_entity_is_carried_by_it():
    s = _scene(frames=3, fps=2.0)
    quarter = (math.cos(math.pi / 4), 0.0, 0.0, math.sin(math.pi / 4))  # 90 degrees about z
    s.add(rendiff.Box(), name="cart", animation=rendiff.Keyframes(
        times=[0.0, 1.0], positions=[(0, 0, 0.5), (2, 0, 0.5)],
        rotations=[(1.0, 0.0, 0.0, 0.0), quarter]))
    s.add_light(rendiff.Spot(position=(0.3, 0.0, 0.2), direction=(1.0, 0.0, 0.0), follow="cart"))
    traj = rendiff.simulate(s, progress=False)
    first, last = traj.lights[0][0], traj.lights[2][0]
    np.testing.assert_allclose(first.position, (0.3, 0.0, 0.7), atol=1e-6)
    np.testing.assert_allclose(first.direction, (1.0, 0.0, 0.0), atol=1e-6)
    # turned 90 degrees about z: local +x points along world +y
    np.testing.assert_allclose(last.position, (2.0, 0.3, 0.7), atol=1e-6)
    np.testing.assert_allclose(last.direction, (0.0, 1.0, 0.0), atol=1e-6)


# --------------------------------------------------------------------------------------------
# Textures


def test_checker_floor_is_perspective_correct():
    red, blue, cell = (1.0, 0.0, 0.0), (0.0, 0.0, 1.0), 0.3
    s = _scene(frames=1, fps=1.0, size=(96, 72), eye=(0.3, -2.5, 1.2), target=(0.0, 0.5, 0.0))
    s.add(rendiff.Plane(size=(8, 8)), name="floor",
          appearance=rendiff.Appearance(checker=(red, blue), texture_scale=cell))
    s.add_light(rendiff.Ambient(intensity=1.0))
    L = _render(s)
    K, view = L.cameras.K[0].double(), L.cameras.viewmats[0].double()
    H, W = 72, 96
    v, u = torch.meshgrid(torch.arange(H, dtype=torch.float64) + 0.5,
                          torch.arange(W, dtype=torch.float64) + 0.5, indexing="ij")

    def cells(du, dv):
        """Checker cell (i, j) where the ray through (u + du, v + dv) meets the floor, the
        floor's UVs being metres from its (-4, -4) corner."""
        origin, dirs = _rays_at(K, view, u + du, v + dv)
        p = _hit_ground(origin, dirs)
        ok = dirs[..., 2] < 0
        return torch.floor((p[..., :2] + 4.0) / cell).long(), ok

    centre, ok = cells(0.0, 0.0)
    same = ok.clone()
    for du in (-0.75, 0.75):  # the whole pixel footprint (and more) inside one cell
        for dv in (-0.75, 0.75):
            c, o = cells(du, dv)
            same &= o & (c == centre).all(-1)
    inside = (L[Layer.INSTANCE][0] == 1) & same
    assert int(inside.sum()) > 1500
    parity = (centre[..., 0] + centre[..., 1]) % 2
    expected = torch.where((parity == 0)[..., None], torch.tensor(red), torch.tensor(blue))
    torch.testing.assert_close(L[Layer.ALBEDO][0][inside], expected[inside].float(),
                               atol=1e-5, rtol=0)
    # Far away, where a pixel spans many squares, the filtered checker tends to their mean.
    far = (L[Layer.INSTANCE][0] == 1) & ~same
    assert int(far.sum()) > 50


def _gradient_png(path, w=32, h=16):
    """R rises left to right, G bottom to top (texel centres), B constant."""
    x = (np.arange(w) + 0.5) / w
    y = 1.0 - (np.arange(h) + 0.5) / h  # row 0 is the top, v = 1
    img = np.zeros((h, w, 3))
    img[..., 0] = x[None, :]
    img[..., 1] = y[:, None]
    img[..., 2] = 0.25
    Image.fromarray((img * 255).round().astype(np.uint8)).save(path)
    return str(path)


def _check_gradient(albedo, uv, mask, margin=(2 / 32, 2 / 16)):
    """Albedo is (u, v, 0.25) where the UVs are away from the wrap-around borders."""
    away = mask & (uv[..., 0] > margin[0]) & (uv[..., 0] < 1 - margin[0])
    away &= (uv[..., 1] > margin[1]) & (uv[..., 1] < 1 - margin[1])
    assert int(away.sum()) > 200
    got = albedo[away].double()
    torch.testing.assert_close(got[:, 0], uv[away][:, 0], atol=2.5 / 255, rtol=0)
    torch.testing.assert_close(got[:, 1], uv[away][:, 1], atol=2.5 / 255, rtol=0)
    torch.testing.assert_close(got[:, 2], torch.full_like(got[:, 2], 64 / 255), atol=1e-6,
                               rtol=0)


def test_image_texture_maps_to_plane_and_obj_uvs(tmp_path):
    png = _gradient_png(tmp_path / "grad.png")
    obj = tmp_path / "quad.obj"
    obj.write_text("v -1 -1 0\nv 1 -1 0\nv 1 1 0\nv -1 1 0\n"
                   "vt 0 0\nvt 1 0\nvt 1 1\nvt 0 1\nf 1/1 2/2 3/3\nf 1/1 3/3 4/4\n")
    for geometry, scale in ((rendiff.Plane(size=(2, 2)), 2.0), (rendiff.Mesh(path=str(obj)), 1.0)):
        s = _scene(frames=1, fps=1.0, size=(64, 64), eye=(0.0, -0.01, 3.0))
        s.add(geometry, name="sheet",
              appearance=rendiff.Appearance(texture=png, texture_scale=scale))
        s.add_light(rendiff.Ambient(intensity=1.0))
        L = _render(s)
        origin, dirs = _rays(L)
        p = _hit_ground(origin, dirs)
        uv = (p[..., :2] + 1.0) / 2.0  # both: the sheet's (-1, -1) corner is uv (0, 0)
        _check_gradient(L[Layer.ALBEDO][0], uv, L[Layer.INSTANCE][0] == 1)


def test_image_texture_on_box_faces_is_upright_and_unmirrored(tmp_path):
    png = _gradient_png(tmp_path / "grad.png")
    s = _scene(frames=1, fps=1.0, size=(96, 96), eye=(0.4, -2.2, 2.0), target=(0, 0, 0.5),
               fov=40.0)
    s.add(rendiff.Box(size=(1.0, 1.0, 1.0)), rendiff.Pose(position=(0, 0, 0.5)), name="box",
          appearance=rendiff.Appearance(texture=png))
    s.add_light(rendiff.Ambient(intensity=1.0))
    L = _render(s)
    origin, dirs = _rays(L)
    # Slab test against the box [-0.5, 0.5]^2 x [0, 1]: the entering face and the hit point.
    lo, hi = torch.tensor([-0.5, -0.5, 0.0]), torch.tensor([0.5, 0.5, 1.0])
    t0, t1 = (lo - origin) / dirs, (hi - origin) / dirs
    t_in = torch.minimum(t0, t1).amax(-1)
    face = torch.minimum(t0, t1).argmax(-1)  # axis of the entering face
    p = origin + t_in[..., None] * dirs
    box = L[Layer.INSTANCE][0] == 1
    top, front = box & (face == 2), box & (face == 1)
    assert int(top.sum()) > 300 and int(front.sum()) > 300
    # top (+z): u along +x, v along +y; front (-y): u along +x, v along +z
    _check_gradient(L[Layer.ALBEDO][0], torch.stack([p[..., 0] + 0.5, p[..., 1] + 0.5], -1), top)
    _check_gradient(L[Layer.ALBEDO][0], torch.stack([p[..., 0] + 0.5, p[..., 2]], -1), front)


@pytest.mark.parametrize("make,span", [
    (lambda: meshes.sphere(0.7, 3), 0.5), (lambda: meshes.box((0.2, 0.5, 0.3)), 1.0),
    (lambda: meshes.cylinder(0.3, 0.4), 1.0), (lambda: meshes.capsule(0.2, 0.3), 0.5),
    (lambda: meshes.plane(2.0, 3.0), 2.0)])
def test_primitive_uvs_are_unmirrored_and_continuous(make, span):
    m = make()
    assert m.uvs is not None and m.uvs.shape == (m.faces.shape[0], 3, 2)
    e1, e2 = m.uvs[:, 1] - m.uvs[:, 0], m.uvs[:, 2] - m.uvs[:, 0]
    # Faces wind counter-clockwise seen from outside; so must their UV triangles, seams and
    # poles included (a face wrapping the seam the wrong way would have a huge or flipped area).
    signed = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    assert bool((signed > 0).all())
    # no face stretches across the texture in u: a seam is crossed by continuing past u = 1
    assert float((m.uvs.amax(1) - m.uvs.amin(1))[:, 0].max()) <= span + 1e-6


def test_sphere_uvs_are_equirectangular():
    m = meshes.sphere(1.0, 2)
    p = m.verts[m.faces].double()
    lat_v = torch.asin(p[..., 2].clamp(-1, 1)) / math.pi + 0.5
    torch.testing.assert_close(m.uvs[..., 1].double(), lat_v, atol=1e-6, rtol=0)
    off_pole = p[..., :2].norm(dim=-1) > 1e-6
    az_u = torch.atan2(p[..., 1], p[..., 0]) / (2 * math.pi) + 0.5
    wrapped = (m.uvs[..., 0].double() - az_u) % 1.0
    wrapped = torch.minimum(wrapped, 1.0 - wrapped)
    assert float(wrapped[off_pole].max()) < 1e-6


# --------------------------------------------------------------------------------------------
# Scene files


def _base() -> dict:
    s = rendiff.Scene(name="t")
    s.add(rendiff.Plane(), name="ground")
    s.add(rendiff.Box(), rendiff.Pose(position=(0, 0, 0.1)), name="crate")
    s.add_light(rendiff.Point())
    return scene_to_dict(s)


BAD = [
    (lambda d: d["lights"][0].update(animation={"times": [0, 1], "intensity": [1, 2, 3]}),
     "bad.yaml: lights[0].animation.intensity: 3 values for 2 times"),
    (lambda d: d["lights"][0].update(animation={"times": [0, 1, 0.5], "intensity": [1, 2, 3]}),
     "bad.yaml: lights[0].animation.times: must be strictly increasing (got 1.0 then 0.5)"),
    (lambda d: d["lights"][0].update(animation={"times": [0, 1],
                                                "direction": [[0, 0, -1], [1, 0, -1]]}),
     "bad.yaml: lights[0].animation.direction: a point light has no direction to animate"),
    (lambda d: d["lights"][0].update(follow="nobody"),
     "bad.yaml: lights[0].follow: no entity named 'nobody'"),
    (lambda d: d["entities"][1]["appearance"].update(texture="missing.png"),
     "bad.yaml: entities[1].appearance.texture: file not found: 'missing.png'"),
    (lambda d: d["entities"][1]["appearance"].update(checker=[[1, 1, 1], [0, 0, 2]]),
     "bad.yaml: entities[1].appearance.checker[1][2]: must be <= 1.0 (got 2)"),
    (lambda d: d["entities"].append({"name": "who", "geometry": {"type": "human"},
                                     "appearance": {"checker": [[1, 1, 1], [0, 0, 0]]}}),
     "bad.yaml: entities[2].appearance: a human has no UVs"),
]


@pytest.mark.parametrize("mutate,expected", BAD)
def test_bad_lights_and_textures_give_one_line_errors(tmp_path, mutate, expected):
    data = _base()
    mutate(data)
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(data))
    with pytest.raises(rendiff.SceneError) as err:
        load_scene(p)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(expected), msg


def test_textured_mesh_file_without_uvs_is_a_one_line_error(tmp_path):
    (tmp_path / "tri.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    png = _gradient_png(tmp_path / "g.png")
    s = _scene(frames=1, fps=1.0, size=(16, 16))
    s.add(rendiff.Mesh(path=str(tmp_path / "tri.obj")), name="tri",
          appearance=rendiff.Appearance(texture=png))
    with pytest.raises(ValueError, match=r"^entity 'tri': appearance.texture: mesh file 'tri.obj' "
                                         r"has no texture coordinates"):
        _render(s)


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_animated_lights_and_textures_round_trip_exactly(tmp_path, suffix):
    png = _gradient_png(tmp_path / "g.png")
    s = rendiff.Scene(name="rt", fps=23.976023976023978)
    s.add(rendiff.Plane(), name="floor",
          appearance=rendiff.Appearance(checker=((0.9, 0.8, 0.7), (0.1, 0.2, 1 / 3)),
                                        texture_scale=0.3))
    s.add(rendiff.Box(), name="crate", appearance=rendiff.Appearance(texture=png,
                                                                    texture_scale=0.5))
    s.add_light(rendiff.Environment(sh=[(0.1, 0.2, 0.3)] * 9, animation=LightKeyframes(
        times=[0.0, 1.0], sh=[[(0.1, 0.2, 0.3)] * 9, [(1 / 7, 0.0, 0.5)] * 9])))
    s.add_light(rendiff.Directional(animation=LightKeyframes(
        times=[0.0, 0.5, 1.1], direction=[(0, 0, -1), (1, 0, -1), (1 / 3, 0.1, -0.2)],
        color=[(1, 1, 1), (1, 0.5, 0.25), (0.1, 0.2, 0.3)], interpolation="smooth")))
    s.add_light(rendiff.Spot(follow="crate", animation=LightKeyframes(
        times=[0.25], position=[(0.1, 0.2, 0.3)], intensity=[2.5])))
    p = save_scene(s, tmp_path / f"s{suffix}")
    back = load_scene(p)
    assert back == s
    assert save_scene(back, tmp_path / f"t{suffix}").read_bytes() == p.read_bytes()


def test_example_scene_loads_and_round_trips(tmp_path):
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "examples" / "lights_and_textures.yaml"
    s = load_scene(example)
    assert s.entities[1].appearance.texture.endswith("crate.png")
    assert load_scene(save_scene(s, tmp_path / "s.yaml")) == s
