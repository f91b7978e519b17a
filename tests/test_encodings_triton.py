"""The fused map-encoding kernels: Triton (through its interpreter) against the torch references,
and depth -> normals by finite differences against analytic surfaces.

Tolerances, per output (observed differences in brackets, Triton 3.9 interpreter on CPU):

- depth control: exact (0). Both paths do the same IEEE float32 operations in the same order
  (``1 / max(z, 1e-6)``, then ``(inv - lo) * 0.95 / span + 0.05``).
- normal control: exact (0): ``clamp(0.5 - 0.5 n)`` and an emptiness test.
- flow colour: atol 1e-5 [1e-6]. The kernel evaluates atan2 by series (error < 1e-7 rad), and a
  hue error is scaled by 54 / (2 pi) into the wheel.
- depth -> normals: atol 1e-5 [4e-7] on unit vectors. torch's cross product and norm round
  differently from the kernel's plain products (fused multiply-adds on CPU).
"""

from __future__ import annotations

import math

import pytest
import torch
from _aot import (
    aot_unavailable,
    assert_same_variants,
    record_launches,
)
from torch.testing import assert_close

from rendiff.kernels import _dispatch
from rendiff.kernels import encodings as enc

H, W = 37, 53


@pytest.fixture
def interpret(monkeypatch):
    """Run the public wrappers through the Triton interpreter for the test's duration."""
    monkeypatch.setenv(_dispatch.ENV, "interpret")


def _both(monkeypatch, fn, *args, **kwargs):
    """(Triton through the interpreter, torch reference) outputs of one public wrapper."""
    monkeypatch.setenv(_dispatch.ENV, "interpret")
    tri = fn(*args, **kwargs)
    monkeypatch.setenv(_dispatch.ENV, "off")
    ref = fn(*args, **kwargs)
    return tri, ref


def _depth_clip(T: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    depth = 0.3 + 20 * torch.rand(T, H, W, generator=g) ** 2
    depth[:, :9, :] = math.inf  # sky
    depth[0, 20:25, 30:41] = math.inf
    depth[-1, 5, 5] = 0.0  # not > 0: empty
    depth[-1, 6, 6] = -1.0
    depth[-1, 7, 7] = math.nan
    return depth


# --- dispatch ---------------------------------------------------------------------------------


def test_dispatch_reads_the_switch_at_each_call(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.delenv(_dispatch.ENV, raising=False)
    assert not _dispatch.use_triton(cpu) and not _dispatch.interpreting(cpu)
    monkeypatch.setenv(_dispatch.ENV, "interpret")
    assert _dispatch.use_triton(cpu) and _dispatch.interpreting(cpu)
    assert _dispatch.use_triton(torch.device("cuda")) and not _dispatch.interpreting("cuda")
    with pytest.raises(TypeError, match="triton.jit"):
        _dispatch.get_kernel(lambda: None, cpu)


def test_interpreted_launch_leaves_compiled_helpers_alone(interpret):
    """The interpreter's patches live only for the launch: afterwards triton.language is as it
    was (so kernels still compile in the same process) and a compiled-mode @triton.jit helper
    refuses a Python call again, as Triton's own does."""
    import triton.language as tl
    from triton.runtime.jit import JITFunction

    watched = (tl, tl.core, tl.math, tl.tensor, tl.dtype)
    before = [dict(vars(obj)) for obj in watched]
    enc.flow_to_color(torch.ones(2, 3, 2))  # calls the @triton.jit helper _atan2 and tl.max
    for obj, was in zip(watched, before, strict=True):
        now = dict(vars(obj))
        names = {k for k in was.keys() | now.keys() if not k.startswith("__")}  # not dunders:
        changed = sorted(k for k in names if was.get(k) is not now.get(k))  # Triton's own reset
        assert not changed, f"{obj.__name__}: left patched: {changed}"
    if not isinstance(enc._atan2, JITFunction):
        pytest.skip("TRITON_INTERPRET=1 was set: helpers are interpreted functions")
    with pytest.raises(RuntimeError, match="outside of the scope of a kernel"):
        enc._atan2(torch.ones(1), torch.ones(1))


# --- depth -> control -------------------------------------------------------------------------


@pytest.mark.parametrize("T", [1, 3])
def test_depth_control_kernel_matches_reference(monkeypatch, T):
    depth = _depth_clip(T, seed=T)
    tri, ref = _both(monkeypatch, enc.depth_to_control, depth)
    assert_close(tri, ref, atol=0, rtol=0)
    assert ref[:, :9].eq(0).all() and ref.max() == 1.0
    finite = torch.isfinite(depth) & (depth > 0)
    assert ref[finite].min() == pytest.approx(0.05)  # farthest valid pixel of the whole clip
    valid = finite & (depth < 5.0)
    tri, ref = _both(monkeypatch, enc.depth_to_control, depth, valid)
    assert_close(tri, ref, atol=0, rtol=0)
    assert ref[~valid].eq(0).all()


def test_depth_control_degenerate_clips(monkeypatch):
    flat = torch.full((2, 5, 7), 3.0)
    tri, ref = _both(monkeypatch, enc.depth_to_control, flat)
    assert torch.equal(tri, torch.ones_like(flat)) and torch.equal(ref, tri)
    empty = torch.full((1, 5, 7), math.inf)
    tri, ref = _both(monkeypatch, enc.depth_to_control, empty)
    assert torch.equal(tri, torch.zeros_like(empty)) and torch.equal(ref, tri)
    tri, ref = _both(monkeypatch, enc.depth_to_control, torch.empty(0, 4, 4))
    assert tri.shape == ref.shape == (0, 4, 4)
    with pytest.raises(ValueError, match="valid"):
        enc.depth_to_control(flat, torch.ones(5, 7, dtype=torch.bool))


# --- normal -> control ------------------------------------------------------------------------


@pytest.mark.parametrize("T", [1, 3])
def test_normal_control_kernel_matches_reference(monkeypatch, T):
    g = torch.Generator().manual_seed(10 + T)
    n = torch.nn.functional.normalize(torch.randn(T, H, W, 3, generator=g), dim=-1)
    n[:, :4] = 0.0  # empty
    n[0, 10, :3] = torch.tensor([[0.0, 0.0, -1.0], [-1.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    tri, ref = _both(monkeypatch, enc.normal_to_control, n)
    assert_close(tri, ref, atol=0, rtol=0)
    assert torch.equal(tri[0, 10, 0], torch.tensor([0.5, 0.5, 1.0]))  # faces the viewer
    assert torch.equal(tri[0, 10, 2], torch.tensor([0.5, 0.0, 0.5]))  # clamped
    assert tri[:, :4].eq(0).all()


# --- flow -> colour ---------------------------------------------------------------------------


def _flow_clip(T: int, seed: int, scale: float) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    flow = torch.randn(T, H, W, 2, generator=g) * scale
    flow[0, 0, :8] = torch.tensor(
        [[0.0, 0.0], [-0.0, -0.0], [3.0, 0.0], [3.0, -0.0], [-3.0, 0.0], [-3.0, -0.0],
         [0.0, 5.0], [-0.0, -5.0]]
    )  # signed zeros pick the side of the wheel's seam, as in torch.atan2
    flow[0, 1, :4] = torch.tensor([[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]]) * scale
    return flow


@pytest.mark.parametrize(("T", "scale"), [(1, 4.0), (3, 1.0e6)])
def test_flow_colour_kernel_matches_reference(monkeypatch, T, scale):
    flow = _flow_clip(T, seed=20 + T, scale=scale)
    tri, ref = _both(monkeypatch, enc.flow_to_color, flow)
    assert_close(tri, ref, atol=1e-5, rtol=0)
    # An explicit normaliser below the largest flow: longer vectors take the 0.75 branch.
    tri, ref = _both(monkeypatch, enc.flow_to_color, flow, 0.5 * scale)
    assert_close(tri, ref, atol=1e-5, rtol=0)
    assert (ref.amax(-1) <= 0.75 + 1e-6).float().mean() > 0.2


def test_flow_colour_zero_flow_is_white(monkeypatch):
    flow = torch.zeros(3, H, W, 2)
    tri, ref = _both(monkeypatch, enc.flow_to_color, flow)
    assert torch.equal(tri, torch.ones(3, H, W, 3)) and torch.equal(ref, tri)


def test_flow_colour_directions_follow_the_wheel(interpret):
    """Independent of the reference: unit flow in a direction lands on the wheel entry its angle
    names (Middlebury: angle atan2(-v, -u) / pi mapped from [-1, 1] to [0, 54])."""
    wheel = enc.colour_wheel()
    for k in (0, 7, 15, 21, 30, 41, 54):
        theta = math.pi * (2 * k / 54 - 1)  # atan2(-v, -u) = theta
        u, v = -math.cos(theta), -math.sin(theta)
        got = enc.flow_to_color(torch.tensor([[u, v], [0.0, 0.0]]))
        assert_close(got[0], wheel[k % 55], atol=1e-4, rtol=0)
        assert torch.equal(got[1], torch.ones(3))


# --- depth -> normals -------------------------------------------------------------------------


def _pixel_rays(K: torch.Tensor) -> torch.Tensor:
    """[H, W, 3] float64 rays K^-1 (u, v, 1) through the pixel centres."""
    v, u = torch.meshgrid(
        torch.arange(H, dtype=torch.float64) + 0.5,
        torch.arange(W, dtype=torch.float64) + 0.5,
        indexing="ij",
    )
    return torch.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], torch.ones_like(u)], -1)


@pytest.mark.parametrize("T", [1, 3])
def test_depth_normals_kernel_matches_reference(monkeypatch, T):
    g = torch.Generator().manual_seed(30 + T)
    v, u = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    waves = 4.0 + 0.3 * torch.sin(u / 5.0)[None] * torch.cos(v / 4.0)[None]
    depth = waves + 0.01 * torch.rand(T, H, W, generator=g)
    depth[:, 30:, 40:] = math.inf
    K = torch.tensor([[35.0, 0.0, 27.0], [0.0, 33.0, 18.0], [0.0, 0.0, 1.0]])
    Ks = K.expand(T, 3, 3).clone()
    Ks[-1, 0, 0] = 50.0  # per-frame intrinsics
    tri, ref = _both(monkeypatch, enc.depth_to_normals, depth, Ks)
    assert_close(tri, ref, atol=1e-5, rtol=0)
    assert torch.equal(tri.abs().sum(-1) == 0, ref.abs().sum(-1) == 0)
    for edge in (ref[:, 30:, 39:], ref[:, 29:, 40:], ref[:, 0], ref[:, -1], ref[:, :, 0]):
        assert edge.eq(0).all()  # the empty corner, its one-pixel rim, the image border
    assert ref[:, 1:29, 1:39].ne(0).any(-1).all()


@pytest.mark.parametrize("mode", ["reference", "interpret"])
def test_depth_normals_of_a_plane_are_exact(monkeypatch, mode):
    """A plane n . X = d: every finite difference lies in it, so the normal is exact."""
    monkeypatch.setenv(_dispatch.ENV, "interpret" if mode == "interpret" else "off")
    K = torch.tensor([[30.0, 0.0, 26.5], [0.0, 30.0, 18.5], [0.0, 0.0, 1.0]], dtype=torch.float64)
    rays = _pixel_rays(K)
    for normal in ([0.3, -0.4, -1.0], [-0.6, 0.2, -0.7], [0.0, 0.0, -1.0]):
        n = torch.nn.functional.normalize(torch.tensor(normal, dtype=torch.float64), dim=0)
        d = -5.0  # n . X = d, camera (origin) on the side the normal faces
        depth = d / (rays @ n)  # z of the ray's hit (rays have z = 1)
        got = enc.depth_to_normals(depth.float()[None], K.float())[0]
        inner = got[1:-1, 1:-1]
        assert_close(inner, n.float().expand_as(inner), atol=1e-5, rtol=0)


@pytest.mark.parametrize("mode", ["reference", "interpret"])
def test_depth_normals_of_a_sphere(monkeypatch, mode):
    """Sphere of radius 1 at distance 3: interior pixels get the true normal (X - C) / R to the
    finite-difference error O((h / R)^2), h ~ 0.05 here; the silhouette ring and the background
    get 0."""
    monkeypatch.setenv(_dispatch.ENV, "interpret" if mode == "interpret" else "off")
    K = torch.tensor([[60.0, 0.0, 26.5], [0.0, 60.0, 18.5], [0.0, 0.0, 1.0]], dtype=torch.float64)
    C, R = torch.tensor([0.1, -0.05, 3.0], dtype=torch.float64), 1.0
    rays = _pixel_rays(K)
    b, a, c = rays @ C, (rays * rays).sum(-1), C @ C - R * R
    disc = b * b - a * c
    t = torch.where(disc > 0, (b - disc.clamp_min(0).sqrt()) / a, math.inf)
    points = rays * t[..., None]
    truth = (points - C) / R
    got = enc.depth_to_normals(t.float(), K.float()).double()
    hit = torch.isfinite(t)
    inner = torch.zeros_like(hit)
    inner[1:-1, 1:-1] = hit[1:-1, 1:-1] & hit[2:, 1:-1] & hit[:-2, 1:-1] & hit[1:-1, 2:]
    inner[1:-1, 1:-1] &= hit[1:-1, :-2]
    assert int(inner.sum()) > 600
    assert torch.equal(got.abs().sum(-1) > 0, inner)  # covered exactly where all 5 are on it
    facing = -(truth * torch.nn.functional.normalize(points, dim=-1)).sum(-1)
    front = inner & (facing > 0.5)  # away from the silhouette, where differences are short
    err = (got - truth)[front].norm(dim=-1)
    assert float(err.max()) < 1e-2 and float(err.mean()) < 2e-3
    assert_close(got[inner].norm(dim=-1), torch.ones(int(inner.sum()), dtype=torch.float64))


def test_aot_variants_match_the_launches(monkeypatch):
    """`enc._AOT_VARIANTS` lists exactly what the wrappers launch (with and without a validity
    mask, flow colour with and without a given normaliser)."""
    if aot_unavailable(enc._flow_color_kernel):
        pytest.skip(aot_unavailable(enc._flow_color_kernel))
    monkeypatch.setenv(_dispatch.ENV, "interpret")
    launches = record_launches(monkeypatch, enc)
    depth = _depth_clip(2, seed=5)
    assert enc.depth_to_control(depth).shape == depth.shape
    assert enc.depth_to_control(depth, depth < 5.0).shape == depth.shape
    assert enc.normal_to_control(torch.rand(2, 4, 5, 3) - 0.5).shape == (2, 4, 5, 3)
    K = torch.tensor([[35.0, 0.0, 27.0], [0.0, 33.0, 18.0], [0.0, 0.0, 1.0]])
    assert enc.depth_to_normals(depth, K).shape == (*depth.shape, 3)
    flow = torch.randn(2, 4, 5, 2)
    assert enc.flow_to_color(flow).shape == enc.flow_to_color(flow, 2.0).shape == (2, 4, 5, 3)
    assert_same_variants(launches, enc._AOT_VARIANTS)
