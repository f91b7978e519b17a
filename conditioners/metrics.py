"""Video quality against the engine's own render, and temporal consistency with exact flow.

Pixel metrics (L1, PSNR, SSIM via kornia) compare a generated clip with the engine's RGB frame by
frame. Because the simulator knows the true motion, temporal consistency is measured exactly:
each frame t+1 is warped back onto frame t with the ground-truth forward flow (t -> t+1) and the
squared difference is averaged over pixels that are visible in both frames (the warping error of
Lai et al., "Learning Blind Video Temporal Consistency", 2018, with true flow in place of an
estimated one).

All functions take channels-last float tensors or arrays in [0, 1]: a frame ``[H, W, C]`` or a
clip ``[T, H, W, C]``; clip values are means over frames.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from kornia.metrics import ssim as _kornia_ssim
from torch import Tensor

__all__ = ["CHANGED", "COLOURED", "evaluate_video", "l1", "psnr", "score_clip", "ssim",
           "warp_backward", "warping_error"]

#: An albedo pixel counts as coloured when its channels differ by more than this.
COLOURED = 0.12
#: A pixel "moved" (changed since the reference frame) when a channel differs by more than this.
CHANGED = 0.05

Array = np.ndarray | Tensor


def _clip(x: Array) -> Tensor:  # -> [T, C, H, W] float64
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, Tensor) else x).detach().cpu()
    t = t.to(torch.float64)
    if t.ndim == 3:
        t = t[None]
    if t.ndim != 4:
        raise ValueError(f"expected [H, W, C] or [T, H, W, C], got shape {list(t.shape)}")
    return t.permute(0, 3, 1, 2)


def _pair(pred: Array, target: Array) -> tuple[Tensor, Tensor]:
    p, t = _clip(pred), _clip(target)
    if p.shape != t.shape:
        raise ValueError(f"shapes differ: {list(p.shape)} vs {list(t.shape)} ([T, C, H, W])")
    return p, t


def l1(pred: Array, target: Array) -> float:
    """Mean absolute difference."""
    p, t = _pair(pred, target)
    return float((p - t).abs().mean())


def psnr(pred: Array, target: Array, max_val: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB, computed per frame and averaged over frames."""
    p, t = _pair(pred, target)
    mse = ((p - t) ** 2).flatten(1).mean(1)
    return float((10 * torch.log10(max_val**2 / mse)).mean())


def ssim(pred: Array, target: Array, window_size: int = 11, max_val: float = 1.0) -> float:
    """Structural similarity (Gaussian window, kornia), averaged over pixels and frames."""
    p, t = _pair(pred, target)
    return float(_kornia_ssim(p, t, window_size, max_val=max_val).mean())


def warp_backward(
    image: Tensor,  # [N, C, H, W]
    flow: Tensor,  # [N, H, W, 2] pixels (dx, dy) from each output pixel to where it is sampled
) -> tuple[Tensor, Tensor]:  # warped [N, C, H, W], in-bounds mask [N, H, W]
    """Sample ``image`` at ``pixel + flow`` (bilinear); also says where that point lies inside.

    Pixel (row i, col j) has its centre at (j + 0.5, i + 0.5), so with ``align_corners=False``
    a zero flow returns the image unchanged.
    """
    n, _, h, w = image.shape
    ii, jj = torch.meshgrid(
        torch.arange(h, dtype=flow.dtype), torch.arange(w, dtype=flow.dtype), indexing="ij"
    )
    x = jj + 0.5 + flow[..., 0]
    y = ii + 0.5 + flow[..., 1]
    grid = torch.stack([2 * x / w - 1, 2 * y / h - 1], dim=-1).to(image.dtype)
    warped = F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)
    inside = (x >= 0.5) & (x <= w - 0.5) & (y >= 0.5) & (y <= h - 0.5)
    return warped, inside


def warping_error(
    frames: Array,  # [T, H, W, C]
    flow: Array,  # [T, H, W, 2] or [T - 1, H, W, 2], forward flow t -> t+1 in pixels
    valid: Array | None = None,  # [T, H, W] or [T - 1, H, W] bool: visible in t and t+1
) -> float:
    """Mean squared difference between frame t and frame t+1 warped back with the true flow.

    Averaged over channels and the valid pixels of each pair (pixels whose flow lands outside
    the frame are excluded), then over the T - 1 pairs.
    """
    x = _clip(frames)
    fl = torch.as_tensor(np.asarray(flow) if not isinstance(flow, Tensor) else flow)
    fl = fl.detach().cpu().to(torch.float64)
    steps = x.shape[0] - 1
    if steps < 1:
        raise ValueError("warping error needs at least two frames")
    if fl.ndim != 4 or fl.shape[-1] != 2 or fl.shape[0] < steps or fl.shape[1:3] != x.shape[2:]:
        raise ValueError(f"flow must be [T, H, W, 2] matching the frames, got {list(fl.shape)}")
    warped, inside = warp_backward(x[1:], fl[:steps])
    mask = inside
    if valid is not None:
        v = torch.as_tensor(np.asarray(valid) if not isinstance(valid, Tensor) else valid)
        mask = mask & v[:steps].detach().cpu().bool()
    err = ((warped - x[:-1]) ** 2).mean(1)
    per_pair = (err * mask).flatten(1).sum(1) / mask.flatten(1).sum(1).clamp_min(1)
    return float(per_pair.mean())


def evaluate_video(
    pred: Array,  # [T, H, W, 3]
    target: Array,  # [T, H, W, 3]
    flow: Array | None = None,  # [T, H, W, 2]
    valid: Array | None = None,  # [T, H, W]
) -> dict[str, float]:
    """All metrics in one dict: l1, psnr, ssim, and warping_error (of ``pred``) when flow is given.

    ``warping_error_target`` (the same on the engine's own frames) is the floor to compare with.
    """
    out = {"l1": l1(pred, target), "psnr": psnr(pred, target), "ssim": ssim(pred, target)}
    if flow is not None:
        out["warping_error"] = warping_error(pred, flow, valid)
        out["warping_error_target"] = warping_error(target, flow, valid)
    return out


def _chroma(x: np.ndarray) -> np.ndarray:
    return x.max(-1) - x.min(-1)


def score_clip(frames: np.ndarray, target: np.ndarray, flow: np.ndarray, valid: np.ndarray,
               albedo: np.ndarray) -> dict[str, float]:
    """The evaluation's measures of a generated clip against the engine's (all [T, H, W, C]
    floats in [0, 1], ``flow`` [T, H, W, 2] forward flow, ``valid`` [T, H, W]): those of
    :func:`evaluate_video` over frames 1.. (frame 0 is the reference itself), PSNR over the
    pixels that changed since frame 0 (``psnr_changed``: where copying the reference cannot be
    right), and the colour kept: the mean chroma (max minus min channel) of the frames over the
    engine's coloured pixels (albedo chroma > :data:`COLOURED`), divided by the engine's own
    there (1 = as colourful as the engine; grey objects give about 0)."""
    m = evaluate_video(frames[1:], target[1:], flow[1:], valid[1:])
    changed = np.abs(target[1:] - target[:1]).max(-1) > CHANGED
    err = ((frames[1:] - target[1:]) ** 2).mean(-1)[changed]
    m["psnr_changed"] = (float(10 * np.log10(1.0 / max(err.mean(), 1e-10))) if err.size
                         else float("nan"))
    coloured = _chroma(albedo[1:]) > COLOURED
    m["colour_kept"] = (float(_chroma(frames[1:])[coloured].mean()
                              / max(_chroma(target[1:])[coloured].mean(), 1e-6))
                        if coloured.any() else float("nan"))
    return m
