"""Map encodings: raw float layers to the control images that video models are trained on.

Each encoding is frozen (training and inference use the same one) and documented here:

- depth -> inverse depth normalised over the *whole clip* to [0, 1] (near = bright, background =
  0), as MiDaS-style depth ControlNets expect. Per-frame normalisation would flicker.
- normal -> the convention of the SD1.5 normal ControlNet (``control_v11p_sd15_normalbae``, the
  ScanNet protocol of Bae et al.): red = surface faces left, green = faces up, blue = faces the
  viewer, i.e. ``rgb = 0.5 - 0.5 * n`` for an OpenCV camera-space normal ``n``. Empty pixels are 0.
- flow -> the Middlebury colour wheel (Baker et al. 2011), saturation by magnitude normalised by
  the largest flow in the clip; hue by direction.
- semantic / instance ids -> one fixed palette (id 0 = black).
- shading -> grey, clipped to [0, 1].

These are elementwise and cheap; they are plain torch for now (the fused Triton versions are
planned in the kernels issue).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "depth_to_control",
    "depth_to_normals",
    "flow_to_color",
    "ids_to_color",
    "normal_to_control",
    "palette",
    "shading_to_control",
]


def depth_to_control(depth: Tensor, valid: Tensor | None = None) -> Tensor:
    """Normalised inverse depth over the whole clip.

    Args:
        depth: [T, H, W] camera z in metres, +inf (or <= 0) where empty.
        valid: optional [T, H, W] bool mask of pixels to include; default: finite and > 0.
    Returns:
        [T, H, W] float32 in [0, 1]; 1 = nearest point of the clip, 0 = farthest or empty.
    """
    if valid is None:
        valid = torch.isfinite(depth) & (depth > 0)
    inv = torch.where(valid, 1.0 / depth.clamp_min(1e-6), torch.zeros_like(depth))
    if not bool(valid.any()):
        return torch.zeros_like(depth, dtype=torch.float32)
    lo = inv[valid].min()
    hi = inv[valid].max()
    span = (hi - lo).clamp_min(1e-8)
    # Keep the farthest valid point slightly above the empty background.
    out = 0.05 + 0.95 * (inv - lo) / span if float(hi - lo) > 1e-8 else torch.ones_like(inv)
    return torch.where(valid, out, torch.zeros_like(out)).float()


def normal_to_control(normal: Tensor) -> Tensor:
    """Camera-space normals (OpenCV axes) to the normal-ControlNet colours.

    Args:
        normal: [..., 3] unit normals, 0 where empty.
    Returns:
        [..., 3] float32 in [0, 1]; empty pixels 0.
    """
    empty = (normal.abs().sum(-1, keepdim=True) == 0)
    rgb = (0.5 - 0.5 * normal).clamp(0.0, 1.0)
    return torch.where(empty, torch.zeros_like(rgb), rgb).float()


def depth_to_normals(depth: Tensor, K: Tensor) -> Tensor:
    """Camera-space normals from depth by central finite differences (for checking).

    Args:
        depth: [..., H, W] camera z, +inf where empty.
        K: [..., 3, 3] intrinsics.
    Returns:
        [..., H, W, 3] unit normals facing the camera; 0 where a neighbour is empty.
    """
    H, W = depth.shape[-2:]
    fx, fy = K[..., 0, 0, None, None], K[..., 1, 1, None, None]
    cx, cy = K[..., 0, 2, None, None], K[..., 1, 2, None, None]
    v, u = torch.meshgrid(
        torch.arange(H, dtype=depth.dtype, device=depth.device) + 0.5,
        torch.arange(W, dtype=depth.dtype, device=depth.device) + 0.5,
        indexing="ij",
    )
    z = torch.where(torch.isfinite(depth), depth, torch.zeros_like(depth))
    pts = torch.stack([(u - cx) / fx * z, (v - cy) / fy * z, z], dim=-1)
    dx = torch.zeros_like(pts)
    dy = torch.zeros_like(pts)
    dx[..., :, 1:-1, :] = pts[..., :, 2:, :] - pts[..., :, :-2, :]
    dy[..., 1:-1, :, :] = pts[..., 2:, :, :] - pts[..., :-2, :, :]
    n = torch.cross(dx, dy, dim=-1)
    n = n / n.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    n = torch.where((n * pts).sum(-1, keepdim=True) > 0, -n, n)
    ok = torch.isfinite(depth)
    ok_nb = torch.zeros_like(ok)
    ok_nb[..., 1:-1, 1:-1] = (
        ok[..., 1:-1, 2:] & ok[..., 1:-1, :-2] & ok[..., 2:, 1:-1] & ok[..., :-2, 1:-1]
        & ok[..., 1:-1, 1:-1]
    )
    return torch.where(ok_nb[..., None], n, torch.zeros_like(n))


def _colour_wheel() -> Tensor:
    """The Middlebury flow colour wheel: 55 hues (RY 15, YG 6, GC 4, CB 11, BM 13, MR 6)."""
    segments = [(15, (1, 0, 0), (1, 1, 0)), (6, (1, 1, 0), (0, 1, 0)), (4, (0, 1, 0), (0, 1, 1)),
                (11, (0, 1, 1), (0, 0, 1)), (13, (0, 0, 1), (1, 0, 1)), (6, (1, 0, 1), (1, 0, 0))]
    cols = []
    for n, a, b in segments:
        t = torch.arange(n, dtype=torch.float32)[:, None] / n
        cols.append(torch.tensor(a, dtype=torch.float32) * (1 - t)
                    + torch.tensor(b, dtype=torch.float32) * t)
    return torch.cat(cols)


def flow_to_color(flow: Tensor, max_norm: float | None = None) -> Tensor:
    """Optical flow to colour: hue = direction, saturation = magnitude / ``max_norm``.

    Args:
        flow: [..., 2] pixels (u right, v down).
        max_norm: normaliser; default the largest magnitude in ``flow`` (the whole clip).
    Returns:
        [..., 3] float32 in [0, 1]; zero flow is white.
    """
    wheel = _colour_wheel().to(flow.device)
    ncols = wheel.shape[0]
    u, v = flow[..., 0].float(), flow[..., 1].float()
    mag = torch.sqrt(u * u + v * v)
    if max_norm is None:
        max_norm = float(mag.max()) if mag.numel() else 0.0
    rad = mag / max(max_norm, 1e-8)
    angle = torch.atan2(-v, -u) / math.pi
    fk = (angle + 1) / 2 * (ncols - 1)
    k0 = fk.floor().long().clamp(0, ncols - 1)
    k1 = (k0 + 1) % ncols
    f = (fk - k0.float())[..., None]
    col = (1 - f) * wheel[k0] + f * wheel[k1]
    r = rad[..., None]
    col = torch.where(r <= 1, 1 - r * (1 - col), col * 0.75)
    return col.clamp(0.0, 1.0)


def palette(n: int = 256) -> Tensor:
    """A fixed palette of ``n`` distinct colours; entry 0 is black (background).

    Colours come from a golden-ratio walk in hue with alternating value and saturation, so
    neighbouring ids look different. Returns [n, 3] float32 in [0, 1]."""
    i = torch.arange(n, dtype=torch.float64)
    h = (i * 0.6180339887498949) % 1.0
    s = 0.55 + 0.35 * ((i * 7) % 3) / 2
    val = 0.95 - 0.25 * ((i * 5) % 2)
    k = (h * 6)[:, None] + torch.tensor([5.0, 3.0, 1.0], dtype=torch.float64)
    k = k % 6
    rgb = val[:, None] - val[:, None] * s[:, None] * torch.clamp(
        torch.minimum(k, 4 - k), 0, 1
    )
    rgb[0] = 0.0
    return rgb.float()


_PALETTE = palette()


def ids_to_color(ids: Tensor) -> Tensor:
    """Integer ids [...] to palette colours [..., 3] (ids wrap around the 256-entry palette
    except that only id 0 is black)."""
    idx = torch.where(ids > 0, (ids - 1) % 255 + 1, torch.zeros_like(ids)).long()
    return _PALETTE.to(ids.device)[idx]


def shading_to_control(shading: Tensor) -> Tensor:
    """Shading [T, H, W] to a grey image [T, H, W, 3] in [0, 1]."""
    return shading.clamp(0.0, 1.0)[..., None].expand(*shading.shape, 3).float()
