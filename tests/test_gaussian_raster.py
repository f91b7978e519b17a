"""Gaussian splat rasterizer against gsplat's torch implementation, analytic values and itself.

gsplat's own torch path (`gsplat.cuda._torch_impl._rasterize_to_pixels`) cannot run on CPU: it
calls `rasterize_to_indices_in_range` from gsplat's CUDA module and needs nerfacc. The reference
here therefore composes the gsplat torch pieces that do run on CPU (`_quat_scale_to_covar_preci`,
`_fully_fused_projection`, `_isect_tiles`, `_isect_offset_encode`, `_spherical_harmonics`) with a
per-pixel, one-Gaussian-at-a-time loop written from gsplat's CUDA kernel
(`RasterizeToPixels3DGSFwd.cu`): same alpha formula, 1/255 skip, "exclusive" stop at T <= 1e-4.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from _aot import (
    aot_unavailable,
    assert_same_variants,
    record_launches,
)
from gsplat.cuda._torch_impl import (
    _fully_fused_projection,
    _isect_offset_encode,
    _isect_tiles,
    _quat_scale_to_covar_preci,
    _quat_to_rotmat,
    _spherical_harmonics,
)
from torch.testing import assert_close

from rendiff.kernels import gaussian_raster
from rendiff.kernels.gaussian_raster import GaussianRender, rasterize_gaussians
from rendiff.kernels.sh import eval_sh, rgb_to_sh, sh_to_color


def _look_at(eye: list[float], target: list[float]) -> torch.Tensor:
    """OpenCV world-to-camera matrix for a camera at `eye` looking at `target`, world +Z up."""
    eye_t, target_t = torch.tensor(eye), torch.tensor(target)
    fwd = torch.nn.functional.normalize(target_t - eye_t, dim=0)
    right = torch.nn.functional.normalize(torch.linalg.cross(fwd, torch.tensor([0.0, 0, 1])), dim=0)
    down = torch.linalg.cross(fwd, right)
    viewmat = torch.eye(4)
    viewmat[:3, :3] = torch.stack([right, down, fwd])
    viewmat[:3, 3] = -viewmat[:3, :3] @ eye_t
    return viewmat


def _intrinsics(width: int, height: int) -> torch.Tensor:
    return torch.tensor(
        [[0.9 * width, 0.0, 0.47 * width], [0.0, 0.85 * width, 0.52 * height], [0.0, 0.0, 1.0]]
    )


def _random_scene(n: int, seed: int) -> dict[str, torch.Tensor]:
    """Gaussians around the origin: sub-pixel to large, some nearly transparent, some elongated."""
    g = torch.Generator().manual_seed(seed)
    return dict(
        means=torch.randn(n, 3, generator=g) * 0.6,
        quats=torch.randn(n, 4, generator=g),
        scales=torch.exp(torch.rand(n, 3, generator=g) * 3.5 - 4.5),
        opacities=torch.rand(n, generator=g),
        colors=torch.rand(n, 3, generator=g),
    )


def _gsplat_render(
    scene: dict[str, torch.Tensor],
    viewmat: torch.Tensor,
    K: torch.Tensor,
    width: int,
    height: int,
    features: torch.Tensor | None = None,
    means_next: torch.Tensor | None = None,
    background: torch.Tensor | None = None,
) -> tuple[GaussianRender, torch.Tensor]:
    """Render with gsplat's torch projection and binning and a per-pixel loop from its kernel.

    Returns the layers and a [H, W] mask of the pixels where the T <= 1e-4 stop fired.
    """
    means, quats, scales = scene["means"], scene["quats"], scene["scales"]
    opacities, colors = scene["opacities"], scene["colors"]
    n = means.shape[0]
    covars, _ = _quat_scale_to_covar_preci(quats, scales, compute_preci=False)
    radii, means2d, depths, conics, _ = _fully_fused_projection(
        means, covars, viewmat[None], K[None], width, height, eps2d=0.3, far_plane=1e4
    )
    tiles_x, tiles_y = math.ceil(width / 16), math.ceil(height / 16)
    _, isect_ids, flatten_ids = _isect_tiles(means2d, radii, depths, 16, tiles_x, tiles_y)
    offsets = _isect_offset_encode(isect_ids, 1, tiles_x, tiles_y).flatten().tolist()
    offsets.append(len(flatten_ids))
    means2d, depths, conics = means2d[0], depths[0], conics[0]

    # Per-Gaussian channels: colour, z, normal of the shortest axis facing the camera, extras.
    means_c = means @ viewmat[:3, :3].T + viewmat[:3, 3]
    axis = _quat_to_rotmat(quats)[torch.arange(n), :, scales.argmin(dim=1)]
    normal = axis @ viewmat[:3, :3].T
    normal = torch.where((normal * means_c).sum(-1, keepdim=True) > 0, -normal, normal)
    parts = [colors, depths[:, None], normal]
    if features is not None:
        parts.append(features)
    if means_next is not None:
        next_c = means_next @ viewmat[:3, :3].T + viewmat[:3, 3]
        next_2d = (next_c @ K.T)[:, :2] / next_c[:, 2:]
        parts.append(next_2d - means2d)
    payload = torch.cat(parts, dim=1)

    acc = torch.zeros(height, width, payload.shape[1])
    trans = torch.ones(height, width)
    best = torch.full((height, width), -1, dtype=torch.long)
    stopped = torch.zeros(height, width, dtype=torch.bool)
    for tile in range(tiles_x * tiles_y):
        ty, tx = divmod(tile, tiles_x)
        rows = torch.arange(ty * 16, min(ty * 16 + 16, height))
        cols = torch.arange(tx * 16, min(tx * 16 + 16, width))
        py, px = torch.meshgrid(rows + 0.5, cols + 0.5, indexing="ij")
        T = torch.ones_like(px)
        done = torch.zeros_like(px, dtype=torch.bool)
        out = torch.zeros(*px.shape, payload.shape[1])
        best_w = torch.zeros_like(px)
        best_id = torch.full(px.shape, -1, dtype=torch.long)
        for g in flatten_ids[offsets[tile] : offsets[tile + 1]].tolist():
            a, b, c = conics[g]
            dx, dy = means2d[g, 0] - px, means2d[g, 1] - py
            sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
            alpha = torch.clamp_max(opacities[g] * torch.exp(-sigma), 0.999)
            use = (sigma >= 0) & (alpha >= 1.0 / 255.0) & ~done
            next_t = T * (1.0 - alpha)
            stop = use & (next_t <= 1e-4)
            done |= stop
            use &= ~stop
            w = torch.where(use, alpha * T, 0.0)
            out += w[..., None] * payload[g]
            better = w > best_w
            best_w = torch.where(better, w, best_w)
            best_id = torch.where(better, g, best_id)
            T = torch.where(use, next_t, T)
        acc[rows[:, None], cols] = out
        trans[rows[:, None], cols] = T
        best[rows[:, None], cols] = best_id
        stopped[rows[:, None], cols] = done

    alpha = 1.0 - trans
    safe = alpha.clamp_min(1e-12)
    color = acc[..., :3] + (0.0 if background is None else trans[..., None] * background)
    depth = torch.where(alpha >= 1e-4, acc[..., 3] / safe, torch.inf)
    normal = torch.nn.functional.normalize(acc[..., 4:7], dim=-1)
    feats = flow = None
    if features is not None:
        feats = acc[..., 7 : 7 + features.shape[1]]
    if means_next is not None:
        flow = torch.where(best[..., None] >= 0, acc[..., -2:] / safe[..., None], 0.0)
    return GaussianRender(color, depth, alpha, normal, best, feats, flow), stopped


def _render(scene, viewmat, K, width, height, **kwargs) -> GaussianRender:
    return rasterize_gaussians(
        scene["means"], scene["quats"], scene["scales"], scene["opacities"], scene["colors"],
        viewmat, K, width, height, **kwargs,
    )  # fmt: skip


def _assert_renders_close(ours: GaussianRender, ref: GaussianRender, atol: float = 5e-5) -> None:
    assert_close(ours.alpha, ref.alpha, atol=atol, rtol=0)
    assert_close(ours.color, ref.color, atol=atol, rtol=0)
    assert torch.equal(torch.isinf(ours.depth), torch.isinf(ref.depth))
    hit = torch.isfinite(ref.depth)
    assert_close(ours.depth[hit], ref.depth[hit], atol=0, rtol=1e-4)
    # Normals are renormalised sums: compare where they are well defined.
    strong = ref.alpha > 0.05
    assert_close(ours.normal[strong], ref.normal[strong], atol=2e-3, rtol=0)
    assert torch.equal(ours.ids >= 0, ref.ids >= 0)
    assert (ours.ids != ref.ids).float().mean() <= 0.005  # near-ties may resolve differently
    if ref.features is not None:
        assert_close(ours.features, ref.features, atol=atol, rtol=0)
    if ref.flow is not None:
        assert_close(ours.flow[strong], ref.flow[strong], atol=1e-3, rtol=1e-4)


@pytest.mark.parametrize(
    "n, width, height, seed",
    [(1, 37, 53, 0), (5, 37, 53, 1), (1000, 37, 53, 2), (1000, 64, 48, 3), (300, 53, 37, 4)],
)
@pytest.mark.parametrize("cpu_path", ["warp", "torch"])
def test_matches_gsplat(n: int, width: int, height: int, seed: int, cpu_path: str,
                        monkeypatch) -> None:
    monkeypatch.setenv("RENDIFF_CPU_KERNELS", cpu_path)  # compiled kernels or torch references
    scene = _random_scene(n, seed)
    viewmat = _look_at([0.3, -3.0, 0.8], [0.0, 0.0, 0.0])
    K = _intrinsics(width, height)
    g = torch.Generator().manual_seed(seed + 100)
    features = torch.rand(n, 2, generator=g)
    means_next = scene["means"] + 0.05 * torch.randn(n, 3, generator=g)
    background = torch.tensor([0.2, 0.4, 0.6])
    ours = _render(
        scene, viewmat, K, width, height,
        features=features, means_next=means_next, background=background,
    )  # fmt: skip
    ref, _ = _gsplat_render(scene, viewmat, K, width, height, features, means_next, background)
    assert ours.color.shape == (height, width, 3) and ours.ids.dtype == torch.int64
    assert ref.alpha.max() > 0.1  # the scene is actually in view
    _assert_renders_close(ours, ref)


@pytest.mark.parametrize("cpu_path", ["warp", "torch"])
def test_dense_scene_terminates_like_gsplat(cpu_path: str, monkeypatch) -> None:
    """Opaque layers drive transmittance below 1e-4, so the early stop decides many pixels."""
    monkeypatch.setenv("RENDIFF_CPU_KERNELS", cpu_path)
    n = 400
    scene = _random_scene(n, 7)
    scene["opacities"] = 0.7 + 0.3 * scene["opacities"]
    scene["scales"] = scene["scales"] * 3
    viewmat = _look_at([0.0, -3.0, 0.0], [0.0, 0.0, 0.0])
    K = _intrinsics(40, 30)
    ours = _render(scene, viewmat, K, 40, 30)
    ref, stopped = _gsplat_render(scene, viewmat, K, 40, 30)
    assert stopped.float().mean() > 0.5
    _assert_renders_close(ours, ref)


def test_empty_input() -> None:
    empty = torch.zeros(0, 3)
    background = torch.tensor([0.1, 0.2, 0.3])
    out = rasterize_gaussians(
        empty, torch.zeros(0, 4), empty, torch.zeros(0), empty, torch.eye(4), _intrinsics(24, 16),
        24, 16, features=torch.zeros(0, 4), means_next=empty, background=background,
    )  # fmt: skip
    assert torch.equal(out.alpha, torch.zeros(16, 24))
    assert torch.equal(out.color, background.expand(16, 24, 3))
    assert torch.isinf(out.depth).all()
    assert torch.equal(out.ids, torch.full((16, 24), -1))
    assert torch.equal(out.normal, torch.zeros(16, 24, 3))
    assert out.features.shape == (16, 24, 4) and not out.features.any()
    assert out.flow.shape == (16, 24, 2) and not out.flow.any()


def test_gaussians_behind_camera_or_past_far_are_culled() -> None:
    width, height = 37, 53
    viewmat, K = torch.eye(4), _intrinsics(width, height)
    visible = _random_scene(50, 11)
    visible["means"][:, 2] += 3.0
    hidden = _random_scene(30, 12)
    hidden["scales"] = hidden["scales"] * 5  # large enough to cover the image if not culled
    hidden["means"][:10, 2] = -hidden["means"][:10, 2].abs() - 0.5  # behind the camera
    hidden["means"][10:20, 2] = 0.005  # between the camera and the near plane
    hidden["means"][20:, 2] = 50.0  # past `far` below
    both = {k: torch.cat([hidden[k], visible[k]]) for k in visible}

    alone = _render(visible, viewmat, K, width, height, far=20.0)
    mixed = _render(both, viewmat, K, width, height, far=20.0)
    nothing = _render(hidden, viewmat, K, width, height, far=20.0)
    assert alone.alpha.max() > 0.5
    assert torch.equal(nothing.alpha, torch.zeros(height, width))
    assert_close(mixed.color, alone.color, atol=1e-6, rtol=0)
    assert_close(mixed.alpha, alone.alpha, atol=1e-6, rtol=0)
    assert_close(mixed.depth, alone.depth)
    assert torch.equal(mixed.ids, torch.where(alone.ids >= 0, alone.ids + 30, -1))


@pytest.mark.parametrize("opacity", [0.37, 1.0])
def test_isotropic_gaussian_matches_analytic_alpha(opacity: float) -> None:
    """On the optical axis the EWA covariance is (f s / z)^2 + 0.3 in both directions."""
    width, height, f, z, s = 41, 25, 30.0, 2.0, 0.1
    K = torch.tensor([[f, 0.0, 20.5], [0.0, f, 12.5], [0.0, 0.0, 1.0]])  # axis hits pixel (12, 20)
    colour = torch.tensor([[0.2, 0.5, 0.9]])
    out = rasterize_gaussians(
        torch.tensor([[0.0, 0.0, z]]), torch.tensor([[1.0, 0.0, 0.0, 0.0]]),
        torch.full((1, 3), s), torch.tensor([opacity]), colour, torch.eye(4), K, width, height,
    )  # fmt: skip
    peak = min(opacity, 0.999)
    assert out.alpha[12, 20].item() == pytest.approx(peak, rel=1e-6)
    assert out.alpha.max().item() == pytest.approx(peak, rel=1e-6)

    var = (f * s / z) ** 2 + 0.3
    i, j = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    r2 = (j + 0.5 - 20.5) ** 2 + (i + 0.5 - 12.5) ** 2
    expected = torch.clamp_max(opacity * torch.exp(-0.5 * r2 / var), 0.999)
    expected = torch.where(expected >= 1 / 255, expected, 0.0)
    assert_close(out.alpha, expected, atol=1e-6, rtol=1e-5)
    assert_close(out.color, expected[..., None] * colour, atol=1e-6, rtol=1e-5)
    hit = expected > 0
    assert_close(out.depth[hit], torch.full_like(out.depth[hit], z))
    assert torch.isinf(out.depth[~hit]).all()
    assert torch.equal(out.ids, torch.where(hit, 0, -1))


def test_flat_gaussian_normal_faces_camera() -> None:
    """A disc's normal is its shortest axis, rotated into the camera and flipped to face it."""
    angle = 0.6
    quat = torch.tensor([[math.cos(angle / 2), math.sin(angle / 2), 0.0, 0.0]])  # about x
    viewmat = _look_at([0.0, -2.0, 0.5], [0.0, 0.0, 0.0])
    out = rasterize_gaussians(
        torch.zeros(1, 3), quat, torch.tensor([[0.3, 0.2, 0.002]]), torch.tensor([0.9]),
        torch.ones(1, 3), viewmat, _intrinsics(32, 32), 32, 32,
    )  # fmt: skip
    world_normal = torch.tensor([0.0, -math.sin(angle), math.cos(angle)])  # R_x(angle) e_z
    cam_normal = viewmat[:3, :3] @ world_normal
    mean_c = viewmat[:3, 3]
    if cam_normal @ mean_c > 0:
        cam_normal = -cam_normal
    hit = out.ids >= 0
    assert hit.sum() > 20
    assert_close(out.normal[hit], cam_normal.expand(int(hit.sum()), 3), atol=1e-5, rtol=0)
    assert torch.equal(out.normal[~hit], torch.zeros(int((~hit).sum()), 3))


def test_flow_of_a_translated_plane() -> None:
    """Gaussians at one depth moved by dx in x flow by f dx / z pixels wherever they cover."""
    n, z, dx, f = 40, 3.0, 0.05, 28.0
    scene = _random_scene(n, 5)
    scene["means"][:, 2] = z
    K = torch.tensor([[f, 0.0, 16.0], [0.0, f, 12.0], [0.0, 0.0, 1.0]])
    out = _render(
        scene, torch.eye(4), K, 32, 24, means_next=scene["means"] + torch.tensor([dx, 0, 0])
    )
    hit = out.ids >= 0
    assert hit.float().mean() > 0.3
    assert_close(out.flow[hit], torch.tensor([f * dx / z, 0.0]).expand(int(hit.sum()), 2))
    assert not out.flow[~hit].any()


def test_one_hot_features_sum_to_alpha() -> None:
    scene = _random_scene(200, 6)
    one_hot = torch.nn.functional.one_hot(torch.arange(200) % 4, 4).float()
    out = _render(
        scene, _look_at([0, -3.0, 0], [0, 0, 0]), _intrinsics(37, 29), 37, 29, features=one_hot
    )
    assert_close(out.features.sum(-1), out.alpha, atol=1e-5, rtol=0)


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_sh_matches_gsplat(degree: int) -> None:
    g = torch.Generator().manual_seed(degree)
    dirs = torch.randn(64, 3, generator=g) * 3
    coeffs = torch.randn(64, 16, 3, generator=g)
    assert_close(eval_sh(degree, dirs, coeffs), _spherical_harmonics(degree, dirs, coeffs))


def test_sh_degree_zero_is_constant_colour() -> None:
    scene = _random_scene(100, 8)
    viewmat, K = _look_at([0.5, -3.0, 0.4], [0, 0, 0]), _intrinsics(37, 53)
    coeffs = torch.zeros(100, 16, 3)
    coeffs[:, 0] = rgb_to_sh(scene["colors"])
    plain = _render(scene, viewmat, K, 37, 53)
    for degree, k in [(0, 1), (3, 16)]:  # higher bands are zero: still the constant colour
        sh = _render(dict(scene, colors=coeffs[:, :k]), viewmat, K, 37, 53, sh_degree=degree)
        assert_close(sh.color, plain.color, atol=1e-6, rtol=0)


def test_sh_colour_uses_direction_from_camera_centre() -> None:
    scene = _random_scene(100, 9)
    eye = [0.5, -3.0, 0.4]
    viewmat, K = _look_at(eye, [0, 0, 0]), _intrinsics(37, 53)
    coeffs = 0.3 * torch.randn(100, 16, 3, generator=torch.Generator().manual_seed(1))
    dirs = scene["means"] - torch.tensor(eye)
    colors = torch.clamp_min(_spherical_harmonics(3, dirs, coeffs) + 0.5, 0.0)
    assert_close(sh_to_color(3, dirs, coeffs), colors)
    sh = _render(dict(scene, colors=coeffs), viewmat, K, 37, 53, sh_degree=3)
    plain = _render(dict(scene, colors=colors), viewmat, K, 37, 53)
    assert_close(sh.color, plain.color, atol=1e-5, rtol=0)


_INTERPRETER_SCRIPT = textwrap.dedent(
    """
    import os
    import torch
    from torch.testing import assert_close
    from rendiff.kernels.gaussian_raster import rasterize_gaussian_depth, rasterize_gaussians

    def scene(n, seed, scale, opacity_floor):
        g = torch.Generator().manual_seed(seed)
        means = torch.randn(n, 3, generator=g) * 0.5 + torch.tensor([0.0, 0.0, 3.0])
        return (
            means, torch.randn(n, 4, generator=g),
            torch.exp(torch.rand(n, 3, generator=g) * 2 - 4) * scale,
            opacity_floor + (1 - opacity_floor) * torch.rand(n, generator=g),
            torch.rand(n, 3, generator=g),
        ), means

    K = torch.tensor([[20.0, 0.0, 11.0], [0.0, 20.0, 8.5], [0.0, 0.0, 1.0]])
    cases = [
        (1, 0, 1.0, 0.5),
        (12, 1, 1.0, 0.0),
        (80, 2, 4.0, 0.6),  # > 32 Gaussians per tile (several blocks) and early termination
    ]
    for n, seed, scale, floor in cases:
        args, means = scene(n, seed, scale, floor)
        kwargs = dict(
            features=torch.rand(n, 2), means_next=means + 0.05, background=torch.ones(3) * 0.5
        )
        os.environ["RENDIFF_TRITON"] = "interpret"
        tri = rasterize_gaussians(*args, torch.eye(4), K, 24, 16, **kwargs)
        os.environ["RENDIFF_TRITON"] = "off"
        ref = rasterize_gaussians(*args, torch.eye(4), K, 24, 16, **kwargs)
        assert ref.alpha.max() > 0.3, n
        if n > 32:
            assert (ref.alpha > 0.999).any(), "no pixel came near the early stop"
        for name in ("color", "alpha", "normal", "features", "flow"):
            assert_close(getattr(tri, name), getattr(ref, name), atol=2e-5, rtol=1e-5)
        assert_close(tri.depth, ref.depth, atol=0, rtol=1e-5)
        assert torch.equal(tri.ids, ref.ids)
        # the depth pass stopping each pixel early (shadow maps)
        alphas = []
        for t_stop in (0.0, 0.05):
            os.environ["RENDIFF_TRITON"] = "interpret"
            tri = rasterize_gaussian_depth(*args, torch.eye(4), K, 24, 16, t_stop=t_stop)
            os.environ["RENDIFF_TRITON"] = "off"
            ref = rasterize_gaussian_depth(*args, torch.eye(4), K, 24, 16, t_stop=t_stop)
            for a, b in zip(tri, ref):
                assert_close(a, b, atol=2e-5, rtol=1e-5)
            alphas.append(ref[2])
        if n > 32:
            assert (alphas[1] < alphas[0] - 1e-3).any(), "no pixel stopped early"
    print("ok")
    """
)


def test_triton_interpreter_matches_reference() -> None:
    env = dict(os.environ, RENDIFF_TRITON="interpret", TRITON_INTERPRET="1")
    proc = subprocess.run(
        [sys.executable, "-c", _INTERPRETER_SCRIPT],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.strip().endswith("ok")


def test_aot_variants_match_the_launch(monkeypatch) -> None:
    """`_AOT_VARIANTS` lists exactly what `_composite_triton` launches: a payload of up to 16
    channels (colour 3 + depth + normal 3 + flow 2 + features 2) and of 17-32 (features 12)."""
    if aot_unavailable(gaussian_raster._composite_kernel):
        pytest.skip(aot_unavailable(gaussian_raster._composite_kernel))
    monkeypatch.setenv("RENDIFF_TRITON", "interpret")
    launches = record_launches(monkeypatch, gaussian_raster)
    scene = _random_scene(12, 3)
    viewmat, K = _look_at([0.3, -3.0, 0.8], [0.0, 0.0, 0.0]), _intrinsics(24, 20)
    for f in (2, 12):
        r = rasterize_gaussians(**scene, viewmat=viewmat, K=K, width=24, height=20,
                                features=torch.rand(12, f), means_next=scene["means"] + 0.1)
        assert r.features.shape == (20, 24, f) and bool((r.alpha > 0).any())
    assert_same_variants(launches, gaussian_raster._AOT_VARIANTS)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_triton_cuda_matches_reference() -> None:
    scene = _random_scene(5000, 21)
    viewmat, K = _look_at([0.3, -3.0, 0.8], [0.0, 0.0, 0.0]), _intrinsics(123, 77)
    features = torch.rand(5000, 5)
    cpu = _render(scene, viewmat, K, 123, 77, features=features)
    gpu = _render(
        {k: v.cuda() for k, v in scene.items()}, viewmat.cuda(), K.cuda(), 123, 77,
        features=features.cuda(),
    )  # fmt: skip
    for name in ("color", "alpha", "features"):
        assert_close(getattr(gpu, name).cpu(), getattr(cpu, name), atol=1e-4, rtol=0)
    hit = torch.isfinite(cpu.depth)
    assert_close(gpu.depth.cpu()[hit], cpu.depth[hit], atol=0, rtol=1e-4)
    assert (gpu.ids.cpu() != cpu.ids).float().mean() <= 0.005
