"""3D Gaussian splat rasterizer: EWA projection, 16x16 tile binning, fused front-to-back blending.

The maths follows gsplat (its CUDA kernels and ``gsplat.cuda._torch_impl``) so that scenes trained
with 3DGS/gsplat render identically:

* projection: world -> camera with ``viewmat``, covariance ``R S S^T R^T`` from the normalised
  quaternion (w, x, y, z) and linear scales, EWA 2D covariance ``J Sigma J^T`` with the perspective
  Jacobian evaluated at the mean clamped to 1.3x the field of view, plus the ``eps2d`` low-pass
  filter on the diagonal; conic = inverse 2D covariance;
* culling: camera z outside (near, far), non-positive 2D determinant, opacity < 1/255, or a
  bounding box that misses the image;
* bounding box: gsplat's opacity-aware extent, ``min(3.33, sqrt(2 ln(255 opacity)))`` sigmas per
  axis, rounded up to whole pixels. It holds exactly the pixels where alpha >= 1/255, so it drops
  nothing the compositing would have kept;
* compositing, per pixel with centre (j + 0.5, i + 0.5), front to back by camera z (ties by
  index): ``alpha = min(0.999, opacity * exp(-0.5 d^T conic d))``, skipped below 1/255; a pixel
  stops at the first Gaussian that would take its transmittance to <= 1e-4 (that Gaussian is
  left out, as in gsplat's kernel); accumulated alpha is ``1 - T``. Depth passes may also stop a
  pixel after the Gaussian that takes its transmittance to ``t_stop`` or below (that Gaussian
  kept): they composite a prefix of the full pass's Gaussians (shadow maps, see
  ``rendiff.engine.shadows``).

What runs where:

* ``_project``, ``_bin_tiles`` and ``_finish`` (divisions, normalisation, background) are torch
  on every device;
* compositing is ``_composite_reference`` (torch) or ``_composite_kernel`` (Triton, one program per
  16x16 tile, looping over the tile's depth-sorted Gaussians in blocks and producing every output
  in one pass: colour, depth, normal, features and flow as one weighted payload sum, plus the
  transmittance and the index of the largest blend weight).

Dispatch in ``rasterize_gaussians`` (``rendiff.kernels._dispatch``, which documents the
interpreter's limitation once): CUDA tensors use the Triton kernel; CPU tensors the compiled
Warp kernels of ``rendiff.kernels.warp_cpu`` (binning and compositing, per pixel over 4x4-pixel
tile lists; the same lists, blending to rounding), or the torch reference with
``RENDIFF_CPU_KERNELS=torch``, or the Triton kernel through Triton's interpreter when
``RENDIFF_TRITON=interpret`` is set (slow: tests only).

``rasterize_gaussian_depth`` is the same pass with colour and depth alone in the payload (shadow
maps), optionally stopping each pixel early (``t_stop``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import triton
import triton.language as tl
from torch import Tensor

from ._dispatch import get_kernel
from ._dispatch import use_triton as _use_triton
from ._dispatch import use_warp_cpu as _use_warp_cpu
from .sh import sh_to_color

__all__ = ["GaussianRender", "rasterize_gaussian_depth", "rasterize_gaussians"]

TILE = 16
"""Tile edge in pixels (gsplat's default tile size)."""

_ALPHA_MIN = 1.0 / 255.0
_ALPHA_MAX = 0.999
_T_MIN = 1e-4
_EXTENT_MAX = 3.33
# Gaussians per step of the Triton kernel: with 256 pixels and 8 warps, 16 keeps a 16-channel
# payload in registers (ptxas, sm_90: 200 registers, no spills); 32 spills.
_BLOCK = 16
# Tile edge of the compiled CPU kernel's lists (``warp_cpu.composite`` walks one pixel's list at
# a time, so smaller tiles mean shorter lists; its binning costs the same at any size). Of 2, 4,
# 8 and 16, 4 rendered the Gaussian scenes fastest.
_WARP_TILE = 4


@dataclass
class GaussianRender:
    """Layers rendered from one camera. Empty pixels are those no Gaussian reached (alpha == 0).

    Attributes:
        color: Tensor  # [H, W, C] float32, composited colour plus ``background * (1 - alpha)``.
        depth: Tensor  # [H, W] float32, expected camera z ``sum(w_i z_i) / alpha``; +inf where
            alpha < 1e-4.
        alpha: Tensor  # [H, W] float32, accumulated opacity ``1 - T``.
        normal: Tensor  # [H, W, 3] float32, composited camera-space normal of each Gaussian
            (its shortest axis, or ``normals``; turned to face the camera), renormalised; 0
            where empty.
        ids: Tensor  # [H, W] int64, index of the Gaussian with the largest blend weight (the
            front-most one on ties); -1 where empty.
        features: Tensor | None  # [H, W, F] float32, composited ``features`` (not divided by
            alpha).
        flow: Tensor | None  # [H, W, 2] float32, composited 2D motion in pixels of each Gaussian
            from ``means`` to ``means_next``, divided by alpha; 0 where empty.
    """

    color: Tensor
    depth: Tensor
    alpha: Tensor
    normal: Tensor
    ids: Tensor
    features: Tensor | None = None
    flow: Tensor | None = None


@dataclass
class _Projected:
    """Per-Gaussian screen-space quantities; Gaussians that are culled have ``radii == 0``.

    Attributes:
        means2d: Tensor  # [N, 2] pixel coordinates of the projected mean.
        conics: Tensor  # [N, 3] (a, b, c) of the inverse 2D covariance [[a, b], [b, c]].
        depths: Tensor  # [N] camera z.
        radii: Tensor  # [N, 2] int32 bounding-box half extents in pixels, 0 = culled.
        means_c: Tensor  # [N, 3] camera-space means.
        rot_c: Tensor  # [N, 3, 3] camera-space rotation of each Gaussian (columns = axes).
    """

    means2d: Tensor
    conics: Tensor
    depths: Tensor
    radii: Tensor
    means_c: Tensor
    rot_c: Tensor


def _quat_to_rotmat(quats: Tensor) -> Tensor:
    """Rotation matrices from (w, x, y, z) quaternions, normalised first.

    Args:
        quats: Tensor  # [N, 4]

    Returns:
        Tensor  # [N, 3, 3]
    """
    w, x, y, z = torch.nn.functional.normalize(quats, dim=-1).unbind(-1)
    rows = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]  # fmt: skip
    return torch.stack(rows, dim=-1).reshape(quats.shape[:-1] + (3, 3))


def _project_points(means_c: Tensor, K: Tensor) -> Tensor:
    """Pinhole projection of camera-space points (z must be positive).

    Args:
        means_c: Tensor  # [N, 3]
        K: Tensor  # [3, 3]

    Returns:
        Tensor  # [N, 2] pixel coordinates.
    """
    x, y, z = means_c.unbind(-1)
    return torch.stack([K[0, 0] * x / z + K[0, 2], K[1, 1] * y / z + K[1, 2]], dim=-1)


def _project(
    means: Tensor,  # [N, 3]
    quats: Tensor,  # [N, 4]
    scales: Tensor,  # [N, 3]
    opacities: Tensor,  # [N]
    viewmat: Tensor,  # [4, 4]
    K: Tensor,  # [3, 3]
    width: int,
    height: int,
    near: float,
    far: float,
    eps2d: float,
) -> _Projected:
    """EWA splatting of 3D Gaussians to the image plane (see the module docstring)."""
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    tan_fovx, tan_fovy = 0.5 * width / fx, 0.5 * height / fy
    lim_x_pos, lim_x_neg = (width - cx) / fx + 0.3 * tan_fovx, cx / fx + 0.3 * tan_fovx
    lim_y_pos, lim_y_neg = (height - cy) / fy + 0.3 * tan_fovy, cy / fy + 0.3 * tan_fovy
    if _use_warp_cpu(means.device):  # compiled, one Gaussian per thread
        from . import warp_cpu as compiled

        lims = (float(lim_x_pos), float(lim_x_neg), float(lim_y_pos), float(lim_y_neg))
        means2d, conics, radii, means_c, rot_c = compiled.project(
            means, quats, scales, opacities, viewmat, K, width, height, near, far, eps2d,
            _ALPHA_MIN, _EXTENT_MAX, lims)
        return _Projected(means2d, conics, means_c[:, 2], radii, means_c, rot_c)
    R, t = viewmat[:3, :3], viewmat[:3, 3]
    means_c = means @ R.T + t
    rot_c = R @ _quat_to_rotmat(quats)
    M = rot_c * scales[:, None, :]
    cov_c = M @ M.transpose(-1, -2)

    x, y, z = means_c.unbind(-1)
    in_range = (z > near) & (z < far)
    z = torch.where(in_range, z, torch.ones_like(z))
    tx = z * torch.minimum(torch.maximum(x / z, -lim_x_neg), lim_x_pos)
    ty = z * torch.minimum(torch.maximum(y / z, -lim_y_neg), lim_y_pos)
    zeros = torch.zeros_like(z)
    J = torch.stack(
        [fx / z, zeros, -fx * tx / (z * z), zeros, fy / z, -fy * ty / (z * z)], dim=-1
    ).reshape(-1, 2, 3)
    cov2d = J @ cov_c @ J.transpose(-1, -2)
    a = cov2d[:, 0, 0] + eps2d
    b = 0.5 * (cov2d[:, 0, 1] + cov2d[:, 1, 0])
    c = cov2d[:, 1, 1] + eps2d
    det = a * c - b * b
    valid = in_range & (det > 0) & (opacities >= _ALPHA_MIN)
    det = torch.where(valid, det, torch.ones_like(det))
    conics = torch.stack([c / det, -b / det, a / det], dim=-1)
    means2d = torch.stack([fx * x / z + cx, fy * y / z + cy], dim=-1)

    extent = torch.sqrt(2.0 * torch.log(opacities.clamp_min(_ALPHA_MIN) / _ALPHA_MIN))
    extent = extent.clamp_max(_EXTENT_MAX)
    radii = torch.stack(
        [torch.ceil(extent * a.clamp_min(0).sqrt()), torch.ceil(extent * c.clamp_min(0).sqrt())],
        dim=-1,
    )
    valid &= (radii > 0).any(dim=-1)
    valid &= (means2d[:, 0] + radii[:, 0] > 0) & (means2d[:, 0] - radii[:, 0] < width)
    valid &= (means2d[:, 1] + radii[:, 1] > 0) & (means2d[:, 1] - radii[:, 1] < height)
    radii = torch.where(valid[:, None], radii, torch.zeros_like(radii)).to(torch.int32)
    means2d = torch.where(valid[:, None], means2d, torch.zeros_like(means2d))
    return _Projected(means2d, conics, means_c[:, 2], radii, means_c, rot_c)


def _bin_tiles(proj: _Projected, tiles_x: int, tiles_y: int,
               tile_size: int = TILE) -> tuple[Tensor, Tensor]:
    """List, for each tile (``tile_size`` pixels square), the Gaussians whose bounding box
    touches it, nearest first.

    Returns:
        offsets: Tensor  # [tiles_x * tiles_y + 1] int64; tile t owns
            flat_ids[offsets[t] : offsets[t + 1]].
        flat_ids: Tensor  # [M] int32 Gaussian indices sorted by (tile, depth, index).
    """
    device = proj.means2d.device
    n = proj.means2d.shape[0]
    radii = proj.radii.to(proj.means2d.dtype)
    lo = torch.floor(proj.means2d / tile_size - radii / tile_size).long()
    hi = torch.ceil(proj.means2d / tile_size + radii / tile_size).long()
    limit = torch.tensor([tiles_x, tiles_y], device=device)
    lo = torch.minimum(lo.clamp_min(0), limit)
    hi = torch.minimum(hi.clamp_min(0), limit)
    span = hi - lo
    per_gauss = span[:, 0] * span[:, 1] * (proj.radii > 0).all(dim=-1)

    gids = torch.repeat_interleave(torch.arange(n, device=device), per_gauss)
    first = torch.cumsum(per_gauss, 0) - per_gauss
    local = torch.arange(gids.shape[0], device=device) - first[gids]
    width_g = span[gids, 0]
    tile = (lo[gids, 1] + local // width_g) * tiles_x + lo[gids, 0] + local % width_g

    rank = torch.empty(n, dtype=torch.long, device=device)
    rank[torch.argsort(proj.depths, stable=True)] = torch.arange(n, device=device)
    order = torch.argsort(tile * max(n, 1) + rank[gids])
    counts = torch.bincount(tile, minlength=tiles_x * tiles_y)
    offsets = torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)])
    return offsets, gids[order].to(torch.int32)


def _blend_params(means2d: Tensor, conics: Tensor, opacities: Tensor) -> tuple[Tensor, float]:
    """Per Gaussian [N, 6]: mean x, mean y, a / 2, b, c / 2, log(opacity) (one gather per use),
    and the float just below 1/255: alphas above it (>= 1/255) count."""
    params = torch.stack(
        [means2d[:, 0], means2d[:, 1], 0.5 * conics[:, 0], conics[:, 1], 0.5 * conics[:, 2],
         torch.log(opacities)], dim=-1,
    )  # fmt: skip
    floor = torch.nextafter(torch.tensor(_ALPHA_MIN, dtype=means2d.dtype, device="cpu"),
                            torch.tensor(0.0, dtype=means2d.dtype, device="cpu")).item()
    return params, floor


def _composite_reference(
    means2d: Tensor,  # [N, 2]
    conics: Tensor,  # [N, 3]
    opacities: Tensor,  # [N]
    payload: Tensor,  # [N, D]
    offsets: Tensor,  # [n_tiles + 1]
    flat_ids: Tensor,  # [M]
    width: int,
    height: int,
    tiles_x: int,
    block: int = 64,
    budget: int = 1 << 18,
    t_stop: float = 0.0,
) -> tuple[Tensor, Tensor, Tensor]:
    """Torch compositing over tile lists, vectorised across tiles, pixels and a block of Gaussians.

    Tiles are processed in groups sorted by list length; each group walks its lists in blocks of
    ``block`` Gaussians, so every intermediate has at most ``budget`` elements ([tiles, 16, 16,
    block], small enough to stay in cache). Within a block, transmittance is a cumulative product
    seeded with the transmittance so far, multiplying in the same order as gsplat's per-pixel loop.
    A finished pixel's working transmittance is set to 0, which zeroes its later weights without
    a mask; tiles whose pixels are all finished leave the group. With ``t_stop`` > 0 a pixel also
    finishes after the Gaussian that takes its transmittance to ``t_stop`` or below.

    Returns:
        acc: Tensor  # [H, W, D] sum of blend weight times payload.
        trans: Tensor  # [H, W] final transmittance T.
        best: Tensor  # [H, W] int64 index of the Gaussian with the largest weight, -1 if none.
    """
    device, dtype = means2d.device, means2d.dtype
    n_tiles = offsets.shape[0] - 1
    tiles_y = n_tiles // tiles_x
    d = payload.shape[1]
    npix = TILE * TILE
    acc = torch.zeros(n_tiles, npix, d, device=device, dtype=dtype)
    trans = torch.ones(n_tiles, npix, device=device, dtype=dtype)
    best = torch.full((n_tiles, npix), -1, device=device, dtype=torch.long)

    params, alpha_floor = _blend_params(means2d, conics, opacities)
    counts = offsets[1:] - offsets[:-1]
    tiles = torch.argsort(counts, descending=True, stable=True)
    tiles = tiles[: int((counts > 0).sum())]
    lane = torch.arange(TILE, device=device, dtype=dtype) + 0.5
    arange_b = torch.arange(block, device=device)
    group = max(1, budget // (npix * block))
    flat_ids = flat_ids.long()
    last = flat_ids.shape[0] - 1

    for g0 in range(0, tiles.shape[0], group):
        tg = tiles[g0 : g0 + group]
        n_g = tg.shape[0]
        px = (tg % tiles_x * TILE).to(dtype)[:, None] + lane  # [G, 16]
        py = (tg // tiles_x * TILE).to(dtype)[:, None] + lane
        start, count = offsets[tg], counts[tg]
        outside = (px[:, None, :] >= width) | (py[:, :, None] >= height)
        T = (~outside).reshape(n_g, npix).to(dtype)  # 0 once a pixel is finished or unused
        T_out = torch.ones(n_g, npix, device=device, dtype=dtype)
        A = torch.zeros(n_g, npix, d, device=device, dtype=dtype)
        best_w = torch.zeros(n_g, npix, device=device, dtype=dtype)
        best_g = torch.full((n_g, npix), -1, device=device, dtype=torch.long)
        live = torch.arange(n_g, device=device)
        for k in range(0, int(count.max()), block):
            live = live[(count[live] > k) & (T[live] > 0).any(dim=1)]
            if live.shape[0] == 0:
                break
            cols = k + arange_b
            gid = flat_ids[(start[live, None] + cols).clamp_max(last)]  # [L, B]
            p = params[gid][:, None].unbind(-1)  # 6 x [L, 1, B]
            lop = torch.where(cols < count[live, None], p[5][:, 0], -torch.inf)
            dx = p[0] - px[live, :, None]  # [L, 16 x, B]
            dy = p[1] - py[live, :, None]  # [L, 16 y, B]
            sx, sy, bx = p[2] * dx * dx, p[4] * dy * dy, p[3] * dx
            sigma = torch.addcmul(sy[:, :, None] + sx[:, None], dy[:, :, None], bx[:, None])
            sigma = sigma.reshape(-1, npix, block)  # [L, 256, B], pixel = 16 * y + x
            # exp of the log-alpha, clamped well below log(1/255) so that far-away pixels do
            # not produce denormals (a ~10x slowdown); those alphas are skipped anyway.
            alpha = torch.sub(lop[:, None, :], sigma).masked_fill_(sigma < 0, -torch.inf)
            alpha = alpha.clamp_min_(-16.0).exp_().clamp_max_(_ALPHA_MAX)
            alpha = torch.nn.functional.threshold_(alpha, alpha_floor, 0.0)

            T_live = T[live]
            t_all = torch.cat([T_live[..., None], 1.0 - alpha], dim=-1).cumprod_(dim=-1)
            w = alpha * t_all[..., :-1]
            t_end = t_all[..., -1]
            ending = (t_end <= max(_T_MIN, t_stop)) & (T_live > 0)
            if bool(ending.any()):
                rows = ending.nonzero(as_tuple=True)
                t_after = t_all[rows][..., 1:]  # T after each Gaussian of the block
                n_keep = (t_after > _T_MIN).sum(dim=-1)
                if t_stop > 0:  # up to and including the first to reach t_stop
                    n_keep = torch.minimum(n_keep, (t_after > t_stop).sum(dim=-1) + 1)
                w[rows] *= (arange_b < n_keep[:, None]).to(dtype)
                T_out[live[rows[0]], rows[1]] = t_all[rows].gather(1, n_keep[:, None])[:, 0]
                t_end = t_end.masked_fill(ending, 0.0)
            T[live] = t_end
            A.index_add_(0, live, torch.bmm(w, payload[gid]))
            w_max, arg = w.max(dim=-1)
            bw, bg = best_w[live], best_g[live]
            better = w_max > bw
            best_w[live] = torch.where(better, w_max, bw)
            best_g[live] = torch.where(better, torch.gather(gid, 1, arg), bg)
        T_out = torch.where(T > 0, T, T_out)
        acc[tg], trans[tg], best[tg] = A, T_out, best_g

    def to_image(x: Tensor) -> Tensor:
        x = x.reshape(tiles_y, tiles_x, TILE, TILE, *x.shape[2:]).transpose(1, 2)
        return x.reshape(tiles_y * TILE, tiles_x * TILE, *x.shape[4:])[:height, :width]

    return to_image(acc), to_image(trans), to_image(best)


@triton.jit
def _composite_kernel(
    means2d_ptr,  # [N, 2] f32
    conics_ptr,  # [N, 3] f32
    opac_ptr,  # [N] f32
    payload_ptr,  # [N, D] f32
    offsets_ptr,  # [n_tiles + 1] i32
    ids_ptr,  # [M] i32
    acc_ptr,  # [H, W, D] f32 out
    trans_ptr,  # [H, W] f32 out
    best_ptr,  # [H, W] i64 out
    width,
    height,
    tiles_x,
    D,
    t_stop,  # a pixel also stops after the Gaussian that takes T to this or below (0: never)
    DP: tl.constexpr,
    TILE_SIZE: tl.constexpr,
    BLOCK: tl.constexpr,
):
    tile = tl.program_id(0)
    lane = tl.arange(0, TILE_SIZE * TILE_SIZE)
    pix_x = (tile % tiles_x) * TILE_SIZE + lane % TILE_SIZE
    pix_y = (tile // tiles_x) * TILE_SIZE + lane // TILE_SIZE
    inside = (pix_x < width) & (pix_y < height)
    px = pix_x.to(tl.float32) + 0.5
    py = pix_y.to(tl.float32) + 0.5
    chan = tl.arange(0, DP)

    start = tl.load(offsets_ptr + tile)
    end = tl.load(offsets_ptr + tile + 1)
    T = tl.full([TILE_SIZE * TILE_SIZE], 1.0, tl.float32)
    done = inside == 0
    acc = tl.zeros([TILE_SIZE * TILE_SIZE, DP], tl.float32)
    best_w = tl.zeros([TILE_SIZE * TILE_SIZE], tl.float32)
    best_pos = tl.full([TILE_SIZE * TILE_SIZE], -1, tl.int32)

    pos = start
    go = pos < end
    while go:
        j = pos + tl.arange(0, BLOCK)
        jm = j < end
        g = tl.load(ids_ptr + j, mask=jm, other=0).to(tl.int64)
        mx = tl.load(means2d_ptr + 2 * g, mask=jm, other=0.0)
        my = tl.load(means2d_ptr + 2 * g + 1, mask=jm, other=0.0)
        ca = tl.load(conics_ptr + 3 * g, mask=jm, other=0.0)
        cb = tl.load(conics_ptr + 3 * g + 1, mask=jm, other=0.0)
        cc = tl.load(conics_ptr + 3 * g + 2, mask=jm, other=0.0)
        op = tl.load(opac_ptr + g, mask=jm, other=0.0)

        dx = mx[None, :] - px[:, None]
        dy = my[None, :] - py[:, None]
        sigma = 0.5 * (ca[None, :] * dx * dx + cc[None, :] * dy * dy) + cb[None, :] * dx * dy
        alpha = tl.minimum(op[None, :] * tl.exp(-sigma), 0.999)
        ok = (sigma >= 0.0) & (alpha >= 1.0 / 255.0) & jm[None, :] & (done[:, None] == 0)
        alpha = tl.where(ok, alpha, 0.0)
        t_incl = T[:, None] * tl.cumprod(1.0 - alpha, axis=1)
        t_excl = t_incl / (1.0 - alpha)  # T before each Gaussian
        keep = (t_incl > 1e-4) & (t_excl > t_stop)
        w = tl.where(keep, alpha * t_excl, 0.0)
        t_min = tl.min(t_incl, axis=1)
        T = tl.min(tl.where(keep, t_incl, T[:, None]), axis=1)
        done = done | (t_min <= 1e-4) | (t_min <= t_stop)

        pay = tl.load(
            payload_ptr + g[:, None] * D + chan[None, :],
            mask=jm[:, None] & (chan[None, :] < D),
            other=0.0,
        )
        acc += tl.dot(w, pay, input_precision="ieee")

        w_max = tl.max(w, axis=1)
        arg = tl.min(tl.where(w == w_max[:, None], j[None, :], 2147483647), axis=1)
        better = w_max > best_w
        best_w = tl.where(better, w_max, best_w)
        best_pos = tl.where(better, arg, best_pos)

        pos += BLOCK
        go = (pos < end) & (tl.min(done.to(tl.int32), axis=0) == 0)

    pix = pix_y * width + pix_x
    tl.store(
        acc_ptr + pix[:, None].to(tl.int64) * D + chan[None, :],
        acc,
        mask=inside[:, None] & (chan[None, :] < D),
    )
    tl.store(trans_ptr + pix, T, mask=inside)
    has = best_pos >= 0
    best_id = tl.load(ids_ptr + best_pos, mask=has & inside, other=-1).to(tl.int64)
    tl.store(best_ptr + pix, tl.where(has, best_id, -1), mask=inside)


def _composite_triton(
    means2d: Tensor,  # [N, 2]
    conics: Tensor,  # [N, 3]
    opacities: Tensor,  # [N]
    payload: Tensor,  # [N, D]
    offsets: Tensor,  # [n_tiles + 1]
    flat_ids: Tensor,  # [M]
    width: int,
    height: int,
    tiles_x: int,
    t_stop: float = 0.0,
) -> tuple[Tensor, Tensor, Tensor]:
    """Launch ``_composite_kernel``; same contract as ``_composite_reference``."""
    if flat_ids.shape[0] >= 2**31:
        raise ValueError("more than 2^31 tile intersections")
    device = means2d.device
    d = payload.shape[1]
    acc = torch.empty(height, width, d, device=device, dtype=torch.float32)
    trans = torch.empty(height, width, device=device, dtype=torch.float32)
    best = torch.empty(height, width, device=device, dtype=torch.int64)
    n_tiles = offsets.shape[0] - 1
    get_kernel(_composite_kernel, device)[(n_tiles,)](
        means2d.contiguous(),
        conics.contiguous(),
        opacities.contiguous(),
        payload.contiguous(),
        offsets.to(torch.int32).contiguous(),
        flat_ids.contiguous(),
        acc,
        trans,
        best,
        width,
        height,
        tiles_x,
        d,
        float(t_stop),
        DP=max(16, triton.next_power_of_2(d)),
        TILE_SIZE=TILE,
        BLOCK=_BLOCK,
        num_warps=8,
    )
    return acc, trans, best


# Ahead-of-time sm_90 compile checks (tests/_aot.py, benchmarks/aot_kernels.py): each entry is
# (kernel, runtime argument types, constexprs, launch options) as `_composite_triton` launches
# it: DP=16 holds up to 16 payload channels (every engine render: colour, depth, normal and up to
# 9 features or flow), DP=32 up to 32. tests/test_gaussian_raster.py checks that the launch and
# this table agree.
_AOT_SIGNATURE = {f"{name}_ptr": "*fp32" for name in ("means2d", "conics", "opac", "payload",
                                                       "offsets", "ids", "acc", "trans", "best")}
_AOT_SIGNATURE |= {"offsets_ptr": "*i32", "ids_ptr": "*i32", "best_ptr": "*i64"}
_AOT_SIGNATURE |= {"width": "i32", "height": "i32", "tiles_x": "i32", "D": "i32",
                   "t_stop": "fp32"}
_AOT_VARIANTS = tuple(
    (_composite_kernel, _AOT_SIGNATURE, {"DP": dp, "TILE_SIZE": TILE, "BLOCK": _BLOCK},
     {"num_warps": 8})
    for dp in (16, 32)
)  # fmt: skip


def _payload(
    colors: Tensor,  # [N, C]
    proj: _Projected,
    scales: Tensor,  # [N, 3]
    features: Tensor | None,  # [N, F]
    means_next: Tensor | None,  # [N, 3]
    viewmat: Tensor,  # [4, 4]
    K: Tensor,  # [3, 3]
    near: float,
    normals: Tensor | None = None,  # [N, 3] unit normals in each Gaussian's own frame
) -> Tensor:
    """Per-Gaussian channels that are composited with the blend weights.

    Layout: [colour C | camera z | normal 3 | features F | flow 2], the last two only when given.

    Returns:
        Tensor  # [N, D]
    """
    if normals is None:  # the shortest axis
        axis = torch.argmin(scales, dim=-1)
        normal = torch.gather(proj.rot_c, 2, axis[:, None, None].expand(-1, 3, 1))[..., 0]
    else:
        normal = (proj.rot_c @ normals[..., None])[..., 0]
    facing = (normal * proj.means_c).sum(-1, keepdim=True) > 0
    normal = torch.where(facing, -normal, normal)
    parts = [colors, proj.depths[:, None], normal]
    if features is not None:
        parts.append(features)
    if means_next is not None:
        next_c = means_next @ viewmat[:3, :3].T + viewmat[:3, 3]
        ahead = next_c[:, 2:] > near
        next_c = torch.where(ahead, next_c, torch.ones_like(next_c))
        flow = _project_points(next_c, K) - proj.means2d
        parts.append(torch.where(ahead & (proj.radii > 0).all(-1, keepdim=True), flow, 0.0))
    return torch.cat(parts, dim=-1)


def _finish(
    acc: Tensor,  # [H, W, D]
    trans: Tensor,  # [H, W]
    best: Tensor,  # [H, W]
    n_colors: int,
    n_features: int | None,
    with_flow: bool,
    background: Tensor | None,  # [C]
) -> GaussianRender:
    """Split the composited payload into layers, normalise, and blend the background."""
    alpha = 1.0 - trans
    empty = best < 0
    safe_alpha = torch.where(alpha > 0, alpha, torch.ones_like(alpha))
    color = acc[..., :n_colors]
    if background is not None:
        color = color + trans[..., None] * background
    depth = torch.where(alpha >= 1e-4, acc[..., n_colors] / safe_alpha, torch.inf)
    normal = torch.nn.functional.normalize(acc[..., n_colors + 1 : n_colors + 4], dim=-1)
    normal = torch.where(empty[..., None], torch.zeros_like(normal), normal)
    c = n_colors + 4
    features = None
    if n_features is not None:
        features = acc[..., c : c + n_features]
        c += n_features
    flow = None
    if with_flow:
        flow = torch.where(empty[..., None], 0.0, acc[..., c : c + 2] / safe_alpha[..., None])
    return GaussianRender(color, depth, alpha, normal, best, features, flow)


def _splat(proj: _Projected, opacities: Tensor, payload: Tensor, width: int, height: int,
           track_best: bool = True, t_stop: float = 0.0) -> tuple[Tensor, Tensor, Tensor]:
    """Bin the projected Gaussians to tiles and composite ``payload`` [N, D] front to back, on
    the device's path: acc [H, W, D], transmittance [H, W], best Gaussian [H, W] (-1 everywhere
    on the compiled CPU path without ``track_best``); ``t_stop`` as in
    ``rasterize_gaussian_depth``."""
    device = payload.device
    # The compiled CPU kernel walks one pixel's list at a time: smaller tiles give it shorter
    # lists (every Gaussian it skips has alpha < 1/255 there, as the bounding boxes hold every
    # pixel with alpha >= 1/255, so the result is the same).
    warp_cpu = _use_warp_cpu(device)
    tile = _WARP_TILE if warp_cpu else TILE
    tiles_x, tiles_y = math.ceil(width / tile), math.ceil(height / tile)
    if warp_cpu:
        from . import warp_cpu as compiled

        offsets, flat_ids = compiled.bin_tiles(proj.means2d, proj.radii, proj.depths, tiles_x,
                                               tiles_y, tile)
    else:
        offsets, flat_ids = _bin_tiles(proj, tiles_x, tiles_y, tile)
    if flat_ids.shape[0] == 0:
        return (torch.zeros(height, width, payload.shape[1], device=device),
                torch.ones(height, width, device=device),
                torch.full((height, width), -1, device=device, dtype=torch.long))
    if warp_cpu:
        params, floor = _blend_params(proj.means2d, proj.conics, opacities)
        return compiled.composite(params, payload, offsets, flat_ids, width, height, tiles_x,
                                  tile, floor, track_best, t_stop)
    if _use_triton(device):
        return _composite_triton(proj.means2d, proj.conics, opacities, payload, offsets,
                                 flat_ids, width, height, tiles_x, t_stop)
    return _composite_reference(proj.means2d, proj.conics, opacities, payload, offsets, flat_ids,
                                width, height, tiles_x, t_stop=t_stop)


@torch.no_grad()
def rasterize_gaussian_depth(
    means: Tensor,  # [N, 3] world-space centres
    quats: Tensor,  # [N, 4] rotations (w, x, y, z)
    scales: Tensor,  # [N, 3] standard deviations
    opacities: Tensor,  # [N]
    colors: Tensor,  # [N, C] channels composited with the depth
    viewmat: Tensor,  # [4, 4] world-to-camera
    K: Tensor,  # [3, 3]
    width: int,
    height: int,
    *,
    near: float = 0.01,
    far: float = 1e4,
    eps2d: float = 0.3,
    t_stop: float = 0.0,
) -> tuple[Tensor, Tensor, Tensor]:
    """The depth pass of :func:`rasterize_gaussians` (shadow maps): the same projection, lists
    and compositing, with only ``colors`` and the camera z in the payload (no normals, ids,
    features or flow).

    ``t_stop`` in [0, 1): a pixel also stops after the Gaussian that takes its transmittance to
    ``t_stop`` or below (0, the default: the full pass). It then holds a prefix of the full
    pass's Gaussians: its alpha is the full pass's, or at least ``1 - t_stop``, and its colour
    and depth leave out at most ``t_stop`` of the weight.

    Returns:
        color: Tensor  # [H, W, C] composited ``colors`` (no background)
        depth: Tensor  # [H, W] expected camera z, +inf where alpha < 1e-4 (as rasterize_gaussians)
        alpha: Tensor  # [H, W] accumulated opacity
    """
    f32 = dict(device=means.device, dtype=torch.float32)
    means, quats, scales = means.to(**f32), quats.to(**f32), scales.to(**f32)
    opacities, colors = opacities.to(**f32).reshape(-1), colors.to(**f32)
    n = means.shape[0]
    if quats.shape != (n, 4) or scales.shape != (n, 3) or colors.shape[:1] != (n,):
        raise ValueError(f"expected quats [N,4], scales [N,3], colors [N,C] for N={n}")
    proj = _project(means, quats, scales, opacities, viewmat.to(**f32), K.to(**f32), width,
                    height, near, far, eps2d)
    payload = torch.cat([colors.reshape(n, -1), proj.depths[:, None]], 1)
    if not 0.0 <= t_stop < 1.0:
        raise ValueError(f"t_stop must be in [0, 1), got {t_stop}")
    acc, trans, _ = _splat(proj, opacities, payload, width, height, track_best=False,
                           t_stop=t_stop)
    alpha = 1.0 - trans
    depth = torch.where(alpha >= 1e-4, acc[..., -1] / torch.where(alpha > 0, alpha, 1.0),
                        torch.inf)
    return acc[..., :-1], depth, alpha


@torch.no_grad()
def rasterize_gaussians(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    colors: Tensor,
    viewmat: Tensor,
    K: Tensor,
    width: int,
    height: int,
    *,
    sh_degree: int | None = None,
    features: Tensor | None = None,
    means_next: Tensor | None = None,
    near: float = 0.01,
    far: float = 1e4,
    background: Tensor | None = None,
    eps2d: float = 0.3,
    normals: Tensor | None = None,
) -> GaussianRender:
    """Render 3D Gaussians from one pinhole camera into colour, depth, alpha, normal, id layers.

    Semantics follow gsplat (see the module docstring); the result matches gsplat's rasterizer
    for colour, depth ("ED" mode) and alpha. Forward only: the outputs carry no gradient (this
    renders control maps; optimise Gaussians with gsplat itself).

    Args:
        means: Tensor  # [N, 3] world-space centres.
        quats: Tensor  # [N, 4] rotations (w, x, y, z), normalised here.
        scales: Tensor  # [N, 3] standard deviations along the local axes (linear, not log).
        opacities: Tensor  # [N] in [0, 1].
        colors: Tensor  # [N, C] colours or any per-Gaussian channels, or [N, K, 3] SH
            coefficients when ``sh_degree`` is given (K >= (sh_degree + 1)^2).
        viewmat: Tensor  # [4, 4] world-to-camera (OpenCV: x right, y down, z forward).
        K: Tensor  # [3, 3] intrinsics in pixels.
        width: image width W in pixels.
        height: image height H in pixels.
        sh_degree: evaluate ``colors`` as SH of this degree (0..3) in the direction from the
            camera centre to each Gaussian, as ``max(SH + 0.5, 0)`` (3DGS convention).
        features: Tensor  # [N, F] extra channels composited like colour (e.g. instance one-hot).
        means_next: Tensor  # [N, 3] world-space centres at the next frame; gives ``flow``, the
            composited 2D motion in pixels (Gaussians whose next centre is behind the near
            plane contribute zero motion).
        near: Gaussians with camera z <= near are culled.
        far: Gaussians with camera z >= far are culled.
        background: Tensor  # [C] colour blended in with weight (1 - alpha); None = zeros.
        eps2d: low-pass variance (pixels^2) added to the 2D covariance diagonal.
        normals: Tensor  # [N, 3] each Gaussian's unit normal in its own (rotated) frame, for
            the ``normal`` layer; None = its shortest axis (flat splats). Near-isotropic splats
            have no shortest axis worth the name: give them one (see
            :func:`rendiff.engine.gaussians.splat_normals`).

    Returns:
        GaussianRender with [H, W, ...] layers on the input device.
    """
    device = means.device
    f32 = dict(device=device, dtype=torch.float32)
    means, quats, scales = means.to(**f32), quats.to(**f32), scales.to(**f32)
    opacities, colors = opacities.to(**f32).reshape(-1), colors.to(**f32)
    viewmat, K = viewmat.to(**f32), K.to(**f32)
    n = means.shape[0]
    if quats.shape != (n, 4) or scales.shape != (n, 3) or opacities.shape != (n,):
        raise ValueError(
            f"expected quats [N,4], scales [N,3], opacities [N] for N={n}; got "
            f"{tuple(quats.shape)}, {tuple(scales.shape)}, {tuple(opacities.shape)}"
        )
    if features is not None:
        features = features.to(**f32)
        if features.ndim != 2 or features.shape[0] != n:
            raise ValueError(f"features must be [N, F], got {tuple(features.shape)}")
    if normals is not None:
        normals = normals.to(**f32)
        if normals.shape != (n, 3):
            raise ValueError(f"normals must be [N, 3], got {tuple(normals.shape)}")
    if means_next is not None:
        means_next = means_next.to(**f32)
        if means_next.shape != (n, 3):
            raise ValueError(f"means_next must be [N, 3], got {tuple(means_next.shape)}")

    if sh_degree is not None:
        if colors.ndim != 3 or colors.shape[0] != n or colors.shape[2] != 3:
            raise ValueError(f"SH colours must be [N, K, 3], got {tuple(colors.shape)}")
        campos = -viewmat[:3, :3].T @ viewmat[:3, 3]
        colors = sh_to_color(sh_degree, means - campos, colors)
    elif colors.ndim != 2 or colors.shape[0] != n:
        raise ValueError(f"colors must be [N, C] (or [N, K, 3] with sh_degree), got {colors.shape}")
    n_colors = colors.shape[1]
    if background is not None:
        background = background.to(**f32).reshape(n_colors)

    proj = _project(means, quats, scales, opacities, viewmat, K, width, height, near, far, eps2d)
    payload = _payload(colors, proj, scales, features, means_next, viewmat, K, near, normals)
    acc, trans, best = _splat(proj, opacities, payload, width, height)
    n_features = None if features is None else features.shape[1]
    return _finish(acc, trans, best, n_colors, n_features, means_next is not None, background)
