"""The compiled CPU kernels (``rendiff.kernels.warp_cpu``) against the torch references they
replace: the z-buffer and the PCF lookup bit for bit, barycentrics, attributes and normals to
rounding, and whole renders of built-in scenes within the tolerances of the Triton path."""

from __future__ import annotations

import math

import pytest
import torch

import rendiff
from rendiff import Layer
from rendiff.engine.meshes import box, sphere
from rendiff.kernels import gaussian_raster, mesh_raster, shadow, warp_cpu
from rendiff.kernels._dispatch import CPU_ENV, use_warp_cpu


@pytest.fixture
def torch_reference(monkeypatch):
    """A function that runs ``fn`` on the torch references (``RENDIFF_CPU_KERNELS=torch``)."""

    def run(fn):
        monkeypatch.setenv(CPU_ENV, "torch")
        try:
            return fn()
        finally:
            monkeypatch.delenv(CPU_ENV)

    return run


def _view(eye, target=(0.0, 0.0, 0.5)) -> torch.Tensor:
    eye, target = torch.tensor(eye), torch.tensor(target)
    fwd = torch.nn.functional.normalize(target - eye, dim=0)
    right = torch.nn.functional.normalize(torch.linalg.cross(fwd, torch.tensor([0.0, 0, 1])), dim=0)
    view = torch.eye(4)
    view[:3, :3] = torch.stack([right, torch.linalg.cross(fwd, right), fwd])
    view[:3, 3] = -view[:3, :3] @ eye
    return view


def _soup(seed: int, n: int = 300) -> tuple[torch.Tensor, torch.Tensor]:
    """Random triangles around z = 3 in front of an identity camera, with exact copies (depth
    ties), slivers, zero-area triangles and a few reaching behind the near plane."""
    g = torch.Generator().manual_seed(seed)
    centre = torch.randn(n, 1, 3, generator=g) * torch.tensor([0.8, 0.6, 0.8]) + torch.tensor(
        [0.0, 0.0, 3.0])
    tri = centre + torch.randn(n, 3, 3, generator=g) * 0.4
    tri[: n // 10, 2] = tri[: n // 10, 1]  # zero area
    tri[n // 10 : n // 5, :, 2] -= 3.2  # through the near plane
    tri = torch.cat([tri, tri[-20:]])  # exact duplicates: ties go to the lower index
    verts = tri.reshape(-1, 3)
    return verts, torch.arange(verts.shape[0]).reshape(-1, 3)


_K = torch.tensor([[90.0, 0.0, 61.7], [0.0, 95.0, 40.2], [0.0, 0.0, 1.0]])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_zbuffer_is_the_reference_bit_for_bit(seed, torch_reference):
    verts, faces = _soup(seed)
    setup = mesh_raster._prepared(verts, faces, torch.eye(4), _K, 0.05, False)
    assert setup.clipped
    depth, index = warp_cpu.zbuffer(setup.screen, 83, 121)
    ref_depth, ref_index = mesh_raster._rasterize_reference(setup.screen, 83, 121)
    assert torch.isfinite(ref_depth).float().mean() > 0.3
    assert torch.equal(depth, ref_depth) and torch.equal(index, ref_index)
    only, none = warp_cpu.zbuffer(setup.screen, 83, 121, depth_only=True)
    assert none is None and torch.equal(only, ref_depth)
    # the public entry points on both paths
    frags = mesh_raster.rasterize_triangles(verts, faces, torch.eye(4), _K, 121, 83, near=0.05)
    ref = torch_reference(lambda: mesh_raster.rasterize_triangles(verts, faces, torch.eye(4), _K,
                                                                  121, 83, near=0.05))
    assert torch.equal(frags.depth, ref.depth) and torch.equal(frags.face_id, ref.face_id)
    torch.testing.assert_close(frags.bary, ref.bary, rtol=0, atol=1e-6)
    d = mesh_raster.rasterize_depth(verts, faces, torch.eye(4), _K, 121, 83, near=0.05)
    assert torch.equal(d, ref.depth)


def test_non_finite_and_off_screen_triangles_draw_nothing():
    screen = torch.tensor([
        [1.0, 1.0, 9.0, 1.0, 1.0, 9.0, 1.0, 1.0, 1.0],  # on screen
        [1.0, 1.0, math.nan, 1.0, 1.0, 9.0, 1.0, 1.0, 1.0],  # a NaN corner
        [1.0, 1.0, 9.0, 1.0, 1.0, 9.0, math.inf, 1.0, 1.0],  # an infinite 1/z
        [-50.0, -50.0, -40.0, -50.0, -50.0, -40.0, 1.0, 1.0, 1.0],  # off screen
    ])
    depth, index = warp_cpu.zbuffer(screen, 10, 10)
    ref_depth, ref_index = mesh_raster._rasterize_reference(screen, 10, 10)
    assert torch.equal(depth, ref_depth) and torch.equal(index, ref_index)
    assert set(index.unique().tolist()) == {-1, 0}
    empty = warp_cpu.zbuffer(torch.zeros(0, 9), 4, 5)
    assert torch.isinf(empty[0]).all() and (empty[1] == -1).all()


def _meshes():
    a = sphere(0.5, 3).transformed(torch.eye(3), torch.tensor([0.0, 0.2, 0.5]))
    b = box((0.3, 0.3, 0.4)).transformed(torch.eye(3), torch.tensor([0.4, -0.5, 0.4]))
    verts = torch.cat([a.verts, b.verts])
    faces = torch.cat([a.faces, b.faces + a.verts.shape[0]])
    return verts, faces, torch.cat([a.normals, b.normals])


@pytest.mark.parametrize(("eye", "near"), [((2.0, -2.2, 1.4), 0.1), ((0.6, -0.9, 0.6), 0.6)])
def test_attributes_and_normals_match_the_reference(eye, near, torch_reference):
    verts, faces, normals = _meshes()
    view = _view(eye)
    clipped = mesh_raster._prepared(verts, faces, view, _K, near, False).clipped
    assert clipped == (near > 0.5)
    frags = mesh_raster.rasterize_triangles(verts, faces, view, _K, 121, 83, near=near)
    hit = frags.face_id >= 0
    assert 0.1 < hit.float().mean() < 0.95
    attrs = torch.randn(verts.shape[0], 7, generator=torch.Generator().manual_seed(3))
    ref_interp = torch_reference(lambda: mesh_raster.interpolate(attrs, faces, frags))
    torch.testing.assert_close(mesh_raster.interpolate(attrs, faces, frags), ref_interp,
                               rtol=0, atol=2e-6)
    assert (ref_interp[~hit] == 0).all()
    for n in (normals, None):
        ours = mesh_raster.mesh_normals_camera(verts, faces, n, view, frags)
        ref = torch_reference(lambda n=n: mesh_raster.mesh_normals_camera(verts, faces, n, view,
                                                                            frags))
        torch.testing.assert_close(ours, ref, rtol=0, atol=2e-6)
        assert (ours[~hit] == 0).all()
        torch.testing.assert_close(ours[hit].norm(dim=-1), torch.ones(int(hit.sum())))


def test_pcf_lookup_is_the_reference_bit_for_bit(monkeypatch):
    g = torch.Generator().manual_seed(5)
    depth = torch.rand(37, 41, generator=g) * 4 + 1
    depth[5:9, 3:30] = math.inf
    m = 4000
    u = torch.rand(m, generator=g) * 47 - 3  # some off the map
    v = torch.rand(m, generator=g) * 43 - 3
    z = torch.rand(m, generator=g) * 6 - 0.5  # some behind the light
    bias = torch.rand(m, generator=g) * 0.05
    for pcf in (0, 1, 2):
        for clamp in (False, True):
            ours = shadow._lookup(depth, u, v, z, bias, pcf, clamp)
            monkeypatch.setenv(CPU_ENV, "torch")
            ref = shadow._lookup(depth, u, v, z, bias, pcf, clamp)
            monkeypatch.delenv(CPU_ENV)
            assert torch.equal(ours, ref), (pcf, clamp)
            assert 0.05 < float((ref == 1).float().mean()) < 0.95


def test_the_choice_of_path(monkeypatch):
    monkeypatch.delenv(CPU_ENV, raising=False)
    monkeypatch.delenv("RENDIFF_TRITON", raising=False)
    assert use_warp_cpu("cpu") and not use_warp_cpu("cuda")
    monkeypatch.setenv(CPU_ENV, "torch")
    assert not use_warp_cpu("cpu")
    monkeypatch.setenv(CPU_ENV, "warp")
    assert use_warp_cpu("cpu")
    monkeypatch.setenv("RENDIFF_TRITON", "interpret")
    assert not use_warp_cpu("cpu")  # the interpreter runs the Triton kernels instead
    monkeypatch.delenv("RENDIFF_TRITON")
    monkeypatch.setenv(CPU_ENV, "numba")
    with pytest.raises(ValueError, match="RENDIFF_CPU_KERNELS='numba'"):
        use_warp_cpu("cpu")


# Per layer, the largest difference allowed between the two paths' renders: the z-buffer and
# the shadow lookups are exact, everything interpolated differs by rounding; flow is in pixels.
_RENDER_TOL = {Layer.RGB: 1e-5, Layer.ALBEDO: 1e-6, Layer.NORMAL: 1e-6, Layer.SHADING: 1e-5,
               Layer.FLOW: 1e-3, Layer.FLOW_BACKWARD: 1e-3}


@pytest.mark.parametrize("name", ["falling_objects", "walking_human", "robot_arm"])
def test_render_matches_the_torch_references(name, torch_reference):
    scene = rendiff.builtin_scene(name).model_copy(update={"frames": 3, "size": (72, 56)})
    traj = rendiff.simulate(scene, progress=False)
    ours = rendiff.render(traj, progress=False)
    ref = torch_reference(lambda: rendiff.render(traj, progress=False))
    shaded = rendiff.render(traj, [Layer.SHADING], shadows=False, progress=False)
    assert float((shaded[Layer.SHADING] - ref[Layer.SHADING]).abs().amax()) > 0.1, "no shadows"
    for layer in ref:
        tol = _RENDER_TOL.get(layer, 0.0)
        torch.testing.assert_close(ours[layer], ref[layer], rtol=0, atol=tol,
                                   msg=lambda m, layer=layer: f"{name} {layer}: {m}")


def _cloud(n: int = 1500, seed: int = 4) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return dict(means=torch.randn(n, 3, generator=g) * 0.5 + torch.tensor([0.0, 0.0, 0.5]),
                quats=torch.randn(n, 4, generator=g),
                scales=torch.exp(torch.rand(n, 3, generator=g) * 3.0 - 4.5),
                opacities=0.3 + 0.7 * torch.rand(n, generator=g),
                colors=torch.rand(n, 2, generator=g))


@pytest.mark.parametrize("tile", [16, 4, 1])
def test_gaussian_tile_lists_are_the_reference_exactly(tile):
    c = _cloud()
    view, K = _view((1.5, -2.0, 1.2)), _K
    proj = gaussian_raster._project(c["means"], c["quats"], c["scales"], c["opacities"], view, K,
                                    121, 83, 0.01, 1e4, 0.3)
    tiles_x, tiles_y = math.ceil(121 / tile), math.ceil(83 / tile)
    ref = gaussian_raster._bin_tiles(proj, tiles_x, tiles_y, tile)
    ours = warp_cpu.bin_tiles(proj.means2d, proj.radii, proj.depths, tiles_x, tiles_y, tile)
    assert ref[1].numel() > 3 * c["means"].shape[0]  # Gaussians over several tiles
    assert torch.equal(ours[0], ref[0]) and torch.equal(ours[1], ref[1])


def test_depth_order_is_the_stable_argsort():
    """Binning's depth order: the stable argsort of the positive depths, ties by index, with
    the non-positive ones (culled, skipped by binning) ahead of them."""
    g = torch.Generator().manual_seed(3)
    d = torch.rand(5000, generator=g) * 4 + 0.01
    d[torch.randint(0, 5000, (300,), generator=g)] = float(d[7])  # ties
    d[::97] = -torch.rand(d[::97].shape, generator=g)  # behind the camera
    d[5] = 0.0
    order = warp_cpu.depth_order(d)
    positive = order[(d[order] > 0)]
    expected = torch.argsort(d, stable=True)
    assert torch.equal(positive, expected[d[expected] > 0])
    assert bool((d[order[: int((d <= 0).sum())]] <= 0).all())
    assert torch.equal(torch.sort(order).values, torch.arange(5000))


def test_gaussian_depth_pass_is_the_full_pass():
    """rasterize_gaussian_depth (shadow maps) composites the same colour, depth and alpha as
    rasterize_gaussians, on both CPU paths."""
    c = _cloud()
    args = (c["means"], c["quats"], c["scales"], c["opacities"], c["colors"],
            _view((1.5, -2.0, 1.2)), _K, 121, 83)
    full = gaussian_raster.rasterize_gaussians(*args)
    color, depth, alpha = gaussian_raster.rasterize_gaussian_depth(*args)
    assert 0.2 < float((alpha > 0.5).float().mean()) < 0.9
    torch.testing.assert_close(color, full.color, rtol=0, atol=1e-6)
    torch.testing.assert_close(alpha, full.alpha, rtol=0, atol=1e-6)
    torch.testing.assert_close(depth, full.depth, rtol=1e-6, atol=0)


@pytest.mark.parametrize("t_stop", [0.01, 0.3])
def test_gaussian_depth_pass_stopping_early(t_stop, torch_reference):
    """``t_stop`` composites a prefix of the full pass's Gaussians, on both CPU paths alike: the
    same alpha where the full pass stays above ``t_stop`` in transmittance, at least 1 - t_stop
    elsewhere (so the same solid texels at alpha > 0.5), and a depth within the left-out weight
    (at most t_stop) times the cloud's depth span of the full pass's. Opacities reach 1, so
    splats at the 0.999 alpha clamp are among them: a pixel keeps the Gaussian that takes it
    past ``t_stop`` (leaving it out would empty every texel whose first splat is opaque)."""
    c = _cloud()
    c["opacities"] = torch.where(torch.arange(1500) % 3 == 0, 1.0, c["opacities"])
    view = _view((1.5, -2.0, 1.2))
    args = (c["means"], c["quats"], c["scales"], c["opacities"], c["colors"], view, _K, 121, 83)
    _, full_depth, full_alpha = gaussian_raster.rasterize_gaussian_depth(*args)
    color, depth, alpha = gaussian_raster.rasterize_gaussian_depth(*args, t_stop=t_stop)
    ref = torch_reference(lambda: gaussian_raster.rasterize_gaussian_depth(*args, t_stop=t_stop))
    torch.testing.assert_close(color, ref[0], rtol=0, atol=1e-6)
    torch.testing.assert_close(alpha, ref[2], rtol=0, atol=1e-6)
    torch.testing.assert_close(depth, ref[1], rtol=1e-5, atol=0)

    stopped = full_alpha > 1 - t_stop
    assert float(stopped.float().mean()) > 0.1, "too few texels reach t_stop"
    assert float((alpha[stopped] - full_alpha[stopped]).abs().max()) > 1e-3, "nothing stopped"
    torch.testing.assert_close(alpha[~stopped], full_alpha[~stopped], rtol=0, atol=1e-6)
    assert bool((alpha[stopped] >= 1 - t_stop - 1e-6).all())
    assert torch.equal(alpha > 0.5, full_alpha > 0.5)
    cam_z = (c["means"] @ view[:3, :3].T + view[:3, 3])[:, 2]
    span = float(cam_z.max() - cam_z.min())
    solid = torch.isfinite(full_depth)
    assert torch.equal(torch.isfinite(depth), solid)
    gap = (depth[solid] - full_depth[solid]).abs()
    assert float(gap.max()) <= t_stop / (1 - t_stop) * span + 1e-5
    assert float(gap.max()) > 1e-4, "the depth did not change: nothing was left out"


def test_gaussian_render_matches_the_torch_references(torch_reference):
    """A Gaussian scene's render on both paths: splats composited to rounding; a shadow-map
    texel within rounding of a shadow test may flip one PCF tap (1/9) at a few pixels."""
    scene = rendiff.builtin_scene("dynamic_gaussians").model_copy(
        update={"frames": 3, "size": (72, 56)})
    traj = rendiff.simulate(scene, progress=False)
    ours = rendiff.render(traj, progress=False)
    ref = torch_reference(lambda: rendiff.render(traj, progress=False))
    for layer in (Layer.DEPTH, Layer.ALPHA, Layer.INSTANCE, Layer.SEMANTIC):
        assert torch.equal(torch.isfinite(ours[layer]), torch.isfinite(ref[layer])), layer
    solid = torch.isfinite(ref[Layer.DEPTH])
    torch.testing.assert_close(ours[Layer.DEPTH][solid], ref[Layer.DEPTH][solid], rtol=1e-5,
                               atol=0)
    torch.testing.assert_close(ours[Layer.ALPHA], ref[Layer.ALPHA], rtol=0, atol=1e-5)
    torch.testing.assert_close(ours[Layer.ALBEDO], ref[Layer.ALBEDO], rtol=0, atol=1e-5)
    assert float((ours[Layer.INSTANCE] != ref[Layer.INSTANCE]).float().mean()) < 1e-3
    off = (ours[Layer.SHADING] - ref[Layer.SHADING]).abs() > 1e-4
    assert float(off.float().mean()) < 1e-3


@pytest.mark.parametrize("light", ["directional", "spot"])
def test_shadow_test_matches_the_reference(light, torch_reference):
    """The fused per-pixel shadow test (directional and spot maps) against the reference's
    gather, test and scatter: the same visibility, but for a PCF tap at rounding distance from
    its texel's depth (at most one tap, 1/9, at a few pixels)."""
    cube = box((0.6, 0.4, 0.5)).transformed(torch.eye(3), torch.tensor([0.1, 0.0, 0.6]))
    depth_fn = shadow.mesh_depth_fn(cube.verts, cube.faces)
    g = torch.Generator().manual_seed(8)
    pts = torch.rand(64, 80, 3, generator=g) * torch.tensor([3.0, 3.0, 0.0]) - torch.tensor(
        [1.5, 1.5, 0.0])  # the ground around the box
    mask = torch.rand(64, 80, generator=g) > 0.1
    normals = torch.nn.functional.normalize(torch.randn(64, 80, 3, generator=g), dim=-1)
    kw = dict(scene_bounds=(cube.verts.amin(0), cube.verts.amax(0))) if light == "directional" \
        else dict(cos_outer=math.cos(math.radians(35)))
    where = (None, (0.3, -0.2, -1.0)) if light == "directional" else ((0.2, 0.1, 3.0),
                                                                       (0.0, 0.0, -1.0))
    for bias, n in ((None, None), (None, normals), (0.02, None)):
        args = (pts, mask, light, where[0], where[1], depth_fn, 256, bias)
        ours = shadow.shadow_visibility(*args, normals_world=n, **kw)
        ref = torch_reference(lambda args=args, n=n: shadow.shadow_visibility(
            *args, normals_world=n, **kw))
        assert 0.05 < float((ref < 1).float().mean()) < 0.9
        assert (ours[~mask] == 1).all()
        diff = (ours - ref).abs()
        assert float(diff.max()) <= 1 / 9 + 1e-6 and float((diff > 0).float().mean()) < 5e-3


def _hard_maps(g: torch.Generator) -> dict[Layer, torch.Tensor]:
    """Layers with the values the encodings treat specially: empty and non-finite pixels, ids
    past the palette, flow along the axes with zeros of both signs, out-of-range colours."""
    depth = 0.5 + 6 * torch.rand(3, 17, 23, generator=g)
    depth[0, :3] = float("inf")
    depth[1, 2, :5] = torch.tensor([0.0, -1.0, float("nan"), 1e-9, float("-inf")])
    normal = torch.nn.functional.normalize(torch.randn(3, 17, 23, 3, generator=g), dim=-1)
    normal[0, :4] = 0.0
    normal[2, 1, 1] = torch.tensor([0.0, -0.0, 0.0])
    ids = torch.randint(-3, 700, (3, 17, 23), generator=g, dtype=torch.int32)
    flow = 7 * torch.randn(3, 17, 23, 2, generator=g)
    flow[0, 0, :6] = torch.tensor([[3.0, 0.0], [3.0, -0.0], [-3.0, 0.0], [-3.0, -0.0],
                                   [0.0, 2.0], [-0.0, -2.0]])
    flow[1, :2] = 0.0
    rgb = 1.4 * torch.rand(3, 17, 23, 3, generator=g) - 0.2
    rgb[0, 0, :3, 0] = torch.tensor([float("nan"), float("inf"), float("-inf")])
    shading = rgb[..., 1].contiguous()
    return {Layer.DEPTH: depth, Layer.NORMAL: normal, Layer.INSTANCE: ids, Layer.FLOW: flow,
            Layer.RGB: rgb, Layer.SHADING: shading}


@pytest.mark.parametrize("seed", [0, 1])
def test_uint8_encodings_match_the_torch_encodings(seed, torch_reference):
    """The compiled uint8 control maps are the torch encodings converted by to_uint8, byte for
    byte (flow: Warp's atan2 for torch's, at most one level on a pixel at a rounding boundary)."""
    from rendiff.conditioners.controls import control_image_uint8

    maps = _hard_maps(torch.Generator().manual_seed(seed))
    for layer, data in maps.items():
        ours = control_image_uint8(layer, data)
        ref = torch_reference(lambda layer=layer, data=data: control_image_uint8(layer, data))
        assert ours.dtype == ref.dtype and ours.shape == ref.shape, layer
        diff = abs(ours.astype(int) - ref.astype(int))
        if layer == Layer.FLOW:
            assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
        else:
            assert diff.max() == 0, layer
    # a clip of one depth, and one with no valid depth
    for depth in (torch.full((2, 4, 5), 2.5), torch.full((2, 4, 5), float("inf"))):
        ref = torch_reference(lambda depth=depth: control_image_uint8(Layer.DEPTH, depth))
        assert (control_image_uint8(Layer.DEPTH, depth) == ref).all()
    assert warp_cpu.inverse_depth_range(maps[Layer.DEPTH]) == torch_reference(
        lambda: __import__("rendiff.kernels.encodings", fromlist=["x"]).inverse_depth_range(
            maps[Layer.DEPTH]))


def test_flow_along_the_axes_takes_torchs_signed_zeros():
    """Rightward flow with v = +0 is the wheel's first colour, with v = -0 its last (torch's
    atan2(-v, -u) is -pi or pi); Warp alone would make both pi."""
    from rendiff.conditioners.controls import control_image_uint8
    from rendiff.io.video import to_uint8
    from rendiff.kernels.encodings import colour_wheel

    flow = torch.tensor([[[[1.0, 0.0], [1.0, -0.0]]]])  # |flow| = the normaliser: full colour
    ours = control_image_uint8(Layer.FLOW, flow)[0, 0]
    wheel = to_uint8(colour_wheel()[None])[0]
    assert (ours[0] == wheel[0]).all() and (ours[1] == wheel[-1]).all()
    assert (ours[0] != ours[1]).any()


@pytest.mark.parametrize("seed", [0, 1])
def test_gaussian_projection_matches_the_reference(seed, torch_reference):
    """The compiled EWA projection against the torch one on Gaussians in front of, behind, beside
    and far from the camera, flat, tiny and nearly transparent ones among them."""
    g = torch.Generator().manual_seed(seed)
    n = 4000
    means = torch.randn(n, 3, generator=g) * torch.tensor([3.0, 3.0, 4.0]) + torch.tensor(
        [0.0, 0.0, 3.0])
    quats = torch.randn(n, 4, generator=g)
    scales = torch.rand(n, 3, generator=g) * 0.3
    scales[:200, 2] = 1e-6  # flat
    opacities = torch.rand(n, generator=g)
    opacities[:100] = 1.0 / 300.0  # below the alpha floor: culled
    view = _view((0.3, -4.0, 1.5), target=(0.0, 0.0, 3.0))
    K = torch.tensor([[120.0, 0, 64.5], [0, 118.0, 47.0], [0, 0, 1]])
    args = (means, quats, scales, opacities, view, K, 128, 96, 0.1, 50.0, 0.3)
    ours = gaussian_raster._project(*args)
    ref = torch_reference(lambda: gaussian_raster._project(*args))
    assert (ref.radii > 0).all(-1).sum() > 1000  # plenty on screen
    torch.testing.assert_close(ours.means_c, ref.means_c, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours.rot_c, ref.rot_c, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours.depths, ref.depths, rtol=1e-5, atol=1e-5)
    same_cull = (ours.radii > 0).any(-1) == (ref.radii > 0).any(-1)
    assert same_cull.float().mean() > 0.999
    both = (ours.radii > 0).any(-1) & (ref.radii > 0).any(-1)
    assert (ours.radii[both] - ref.radii[both]).abs().max() <= 1  # ceil at a rounding boundary
    assert (ours.radii[both] == ref.radii[both]).float().mean() > 0.995
    torch.testing.assert_close(ours.means2d[both], ref.means2d[both], rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(ours.conics[both], ref.conics[both], rtol=1e-4, atol=1e-6)
