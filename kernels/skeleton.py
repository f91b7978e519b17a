"""OpenPose-18 skeleton images, drawn the way pretrained pose ControlNets saw them in training.

The look follows ``draw_bodypose`` of ControlNet 1.1's OpenPose annotator (``controlnet_aux``):

- 17 limbs (the first 17 pairs of OpenPose's ``limbSeq``; the two ear-shoulder pairs are not
  drawn), each a filled ellipse centred on the limb's midpoint, semi-axes (length / 2,
  ``stickwidth``) along and across the limb, in the limb's colour. Limbs are opaque: a later limb
  (limb-major, then person) covers an earlier one. The whole limb layer is then dimmed to 0.6 of
  its colour, truncated to uint8 as the annotator does (255 -> 153, 170 -> 102, 85 -> 51).
- 18 joints on top, each a filled disc of radius ``radius`` in the joint's full colour, joint-major
  then person, later covering earlier.
- Black background; everything outside the image is clipped.

Differences from the cv2 original, on purpose: geometry is exact (cv2 truncates the ellipse centre,
axes and angle to integers and fills a 1-degree polygon), and a pixel belongs to a shape when its
centre (j + 0.5, i + 0.5) lies inside it. A limb shorter than one pixel keeps a semi-major axis of
half a pixel (cv2 draws such a limb as a one-pixel-wide bar). The result differs from cv2 only on
edge pixels.

Both paths compute an integer code per pixel (0 background, 1 + l limb l, 18 + j joint j) from the
same per-shape parameters, so they agree bit for bit; the wrapper maps codes to colours.

Dispatch (``rendiff.kernels._dispatch``, which documents the interpreter's limitation once):
Triton on CUDA tensors, the torch reference on CPU, and Triton through its interpreter on CPU when
the environment variable ``RENDIFF_TRITON=interpret`` is set (read at each call).
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl
from torch import Tensor

from ._dispatch import get_kernel
from ._dispatch import use_triton as _use_triton

__all__ = [
    "COCO17_TO_OPENPOSE18",
    "OPENPOSE18_COLORS",
    "OPENPOSE18_LIMBS",
    "OPENPOSE18_LIMB_COLORS",
    "coco17_to_openpose18",
    "draw_openpose",
]

# OpenPose-18 joints: 0 nose, 1 neck, 2 r-shoulder, 3 r-elbow, 4 r-wrist, 5 l-shoulder, 6 l-elbow,
# 7 l-wrist, 8 r-hip, 9 r-knee, 10 r-ankle, 11 l-hip, 12 l-knee, 13 l-ankle, 14 r-eye, 15 l-eye,
# 16 r-ear, 17 l-ear.
OPENPOSE18_LIMBS: list[tuple[int, int]] = [
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10),
    (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
]  # fmt: skip
"""The 17 drawn limbs as 0-based joint pairs, in drawing order (limb l has colour l)."""

OPENPOSE18_COLORS: Tensor = torch.tensor(
    [
        [255, 0, 0], [255, 85, 0], [255, 170, 0], [255, 255, 0], [170, 255, 0], [85, 255, 0],
        [0, 255, 0], [0, 255, 85], [0, 255, 170], [0, 255, 255], [0, 170, 255], [0, 85, 255],
        [0, 0, 255], [85, 0, 255], [170, 0, 255], [255, 0, 255], [255, 0, 170], [255, 0, 85],
    ],
    dtype=torch.uint8,
)  # fmt: skip
"""[18, 3] uint8 RGB: joint j's colour, and limb l's colour before dimming."""

OPENPOSE18_LIMB_COLORS: Tensor = (OPENPOSE18_COLORS[:17].long() * 3 // 5).to(torch.uint8)
"""[17, 3] uint8 RGB of the drawn limbs: floor(0.6 * colour), as the annotator's uint8 cast."""

COCO17_TO_OPENPOSE18: tuple[int, ...] = (
    0, -1, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3,
)  # fmt: skip
"""For each OpenPose-18 joint, its COCO-17 index; -1 for the neck (mid-shoulder, COCO 5 and 6)."""

_N_LIMBS, _N_JOINTS = 17, 18
_BLOCK = 256


def coco17_to_openpose18(kp: Tensor) -> Tensor:
    """Reorders COCO-17 keypoints to OpenPose-18 and adds the neck.

    The neck is the midpoint of the two shoulders, with the smaller of their visibilities, so it
    is visible exactly when both shoulders are.

    Args:
        kp: [..., 17, 3] (x, y, visibility).
    Returns:
        [..., 18, 3] (x, y, visibility) in OpenPose-18 order.
    """
    index = torch.tensor([max(i, 0) for i in COCO17_TO_OPENPOSE18], device=kp.device)
    out = kp.index_select(-2, index).clone()
    l_sh, r_sh = kp[..., 5, :], kp[..., 6, :]
    out[..., 1, :2] = 0.5 * (l_sh[..., :2] + r_sh[..., :2])
    out[..., 1, 2] = torch.minimum(l_sh[..., 2], r_sh[..., 2])
    return out


def _shapes(keypoints: Tensor, stickwidth: float, radius: float) -> tuple[Tensor, Tensor]:
    """Ellipse parameters of every shape in drawing order: 17 * P limbs (limb-major), then
    18 * P joints (joint-major). A disc is an ellipse with both semi-axes = radius.

    Returns:
        params: [T, S, 7] float32 (cx, cy, ex, ey, 1/a^2, 1/b^2, drawn) with (ex, ey) the unit
            semi-major axis a; a point is inside when s^2/a^2 + t^2/b^2 <= 1, (s, t) its
            coordinates along (ex, ey) and (-ey, ex) from the centre.
        codes: [S] int32 pixel code of each shape (1 + limb, 18 + joint).
    """
    T, P = keypoints.shape[:2]
    device = keypoints.device
    kp = keypoints.to(torch.float32)
    xy, vis = kp[..., :2], kp[..., 2]
    shown = (vis >= 0.5) & torch.isfinite(xy).all(-1)  # [T, P, 18]

    pairs = torch.tensor(OPENPOSE18_LIMBS, device=device)
    a, b = xy[:, :, pairs[:, 0]], xy[:, :, pairs[:, 1]]  # [T, P, 17, 2]
    delta = b - a
    length = delta.norm(dim=-1)
    long_enough = length > 1e-6
    ex = torch.where(long_enough, delta[..., 0] / length.clamp_min(1e-6), 1.0)
    ey = torch.where(long_enough, delta[..., 1] / length.clamp_min(1e-6), 0.0)
    semi = (0.5 * length).clamp_min(0.5)
    limb = torch.stack(
        [
            *(0.5 * (a + b)).unbind(-1), ex, ey, 1.0 / (semi * semi),
            torch.full_like(semi, 1.0 / (stickwidth * stickwidth)),
            (shown[:, :, pairs[:, 0]] & shown[:, :, pairs[:, 1]]).float(),
        ],
        -1,
    )  # fmt: skip
    inv_r2 = 1.0 / (radius * radius)
    ones, zeros = torch.ones_like(vis), torch.zeros_like(vis)
    joint = torch.stack(
        [xy[..., 0], xy[..., 1], ones, zeros, ones * inv_r2, ones * inv_r2, shown.float()], -1
    )
    # Drawing order is shape-major then person: [T, P, S, 7] -> [T, S, P, 7].
    params = torch.cat([limb.transpose(1, 2), joint.transpose(1, 2)], 1).reshape(T, -1, 7)
    codes = torch.arange(1, 1 + _N_LIMBS + _N_JOINTS, dtype=torch.int32, device=device)
    codes = codes.repeat_interleave(P)
    return params.contiguous(), codes


def _inside(params: Tensor, px: Tensor, py: Tensor) -> Tensor:
    """Pixel centres (px, py) inside the ellipse params [7]; same arithmetic as the kernel."""
    cx, cy, ex, ey, ia2, ib2, _ = params.unbind(-1)
    dx, dy = px - cx, py - cy
    s = dx * ex + dy * ey
    t = dy * ex - dx * ey
    return s * s * ia2 + t * t * ib2 <= 1.0


def _codes_reference(params: Tensor, codes: Tensor, height: int, width: int) -> Tensor:
    """Torch painter's algorithm: each drawn shape, in order, overwrites the pixels inside it
    (tested only within the shape's bounding box).

    Returns:
        [T, H, W] int32 codes.
    """
    T = params.shape[0]
    device = params.device
    out = torch.zeros(T, height, width, dtype=torch.int32, device=device)
    rows = torch.arange(height, dtype=torch.float32, device=device) + 0.5
    cols = torch.arange(width, dtype=torch.float32, device=device) + 0.5
    host = params.cpu()
    for t in range(T):
        for k in range(params.shape[1]):
            cx, cy, ex, ey, ia2, ib2, drawn = host[t, k].tolist()
            if drawn < 0.5:
                continue
            a2, b2 = 1.0 / ia2, 1.0 / ib2
            hx = math.sqrt(a2 * ex * ex + b2 * ey * ey) + 1.0
            hy = math.sqrt(a2 * ey * ey + b2 * ex * ex) + 1.0
            j0, j1 = max(math.floor(cx - hx), 0), min(math.ceil(cx + hx), width)
            i0, i1 = max(math.floor(cy - hy), 0), min(math.ceil(cy + hy), height)
            if j0 >= j1 or i0 >= i1:
                continue
            inside = _inside(params[t, k], cols[None, j0:j1], rows[i0:i1, None])
            region = out[t, i0:i1, j0:j1]
            out[t, i0:i1, j0:j1] = torch.where(inside, codes[k], region)
    return out


@triton.jit
def _skeleton_kernel(
    params_ptr,  # [T, S, 7] float32
    codes_ptr,  # [S] int32
    out_ptr,  # [T, H * W] int32
    n_shapes,
    height,
    width,
    BLOCK: tl.constexpr,
):
    frame = tl.program_id(1)
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    valid = offs < height * width
    px = (offs % width).to(tl.float32) + 0.5
    py = (offs // width).to(tl.float32) + 0.5
    code = tl.zeros([BLOCK], tl.int32)
    base = params_ptr + frame.to(tl.int64) * n_shapes * 7
    for k in range(n_shapes):
        p = base + k * 7
        drawn = tl.load(p + 6)
        if drawn > 0.5:
            dx = px - tl.load(p + 0)
            dy = py - tl.load(p + 1)
            ex = tl.load(p + 2)
            ey = tl.load(p + 3)
            s = dx * ex + dy * ey
            t = dy * ex - dx * ey
            inside = s * s * tl.load(p + 4) + t * t * tl.load(p + 5) <= 1.0
            code = tl.where(inside, tl.load(codes_ptr + k), code)
    tl.store(out_ptr + frame.to(tl.int64) * height * width + offs, code, mask=valid)


def _codes_triton(params: Tensor, codes: Tensor, height: int, width: int) -> Tensor:
    """Same contract as `_codes_reference`: one program per block of pixels of one frame, looping
    over every shape of that frame in drawing order."""
    T, S = params.shape[:2]
    out = torch.empty(T, height, width, dtype=torch.int32, device=params.device)
    grid = (triton.cdiv(height * width, _BLOCK), T)
    kernel = get_kernel(_skeleton_kernel, params.device)
    kernel[grid](params, codes, out, S, height, width, BLOCK=_BLOCK)
    return out


# Ahead-of-time sm_90 compile checks (tests/_aot.py, benchmarks/aot_kernels.py): each entry is
# (kernel, runtime argument types, constexprs, launch options) as `_codes_triton` launches it;
# tests/test_skeleton.py checks that the launch and this table agree.
_AOT_VARIANTS = (
    (
        _skeleton_kernel,
        {"params_ptr": "*fp32", "codes_ptr": "*i32", "out_ptr": "*i32", "n_shapes": "i32",
         "height": "i32", "width": "i32"},
        {"BLOCK": _BLOCK},
        {},
    ),
)  # fmt: skip


def draw_openpose(
    keypoints: Tensor,  # [T, P, 18, 3] (x, y) in pixels, visibility in [0, 1]
    width: int,
    height: int,
    stickwidth: float = 4.0,
    radius: float = 4.0,
) -> Tensor:
    """Draws OpenPose-18 skeletons in the colours pose ControlNets were trained on.

    Keypoint coordinates are continuous image coordinates (pixel (i, j) has its centre at
    (j + 0.5, i + 0.5)); a keypoint with visibility < 0.5 (or a non-finite position) is not drawn,
    and neither is any limb touching it. Shapes reaching past the image are clipped.

    Args:
        keypoints: [T, P, 18, 3] per frame and person, OpenPose-18 order.
        width, height: image size in pixels.
        stickwidth: limb half-width in pixels (the annotator's 4).
        radius: joint disc radius in pixels (the annotator's 4).
    Returns:
        [T, H, W, 3] float32 RGB in [0, 1], black background.
    """
    if keypoints.dim() != 4 or keypoints.shape[-2:] != (_N_JOINTS, 3):
        raise ValueError(f"keypoints must be [T, P, 18, 3], got {tuple(keypoints.shape)}")
    device = keypoints.device
    T, P = keypoints.shape[:2]
    black = torch.zeros(1, 3, dtype=torch.uint8, device=device)
    palette = torch.cat([black, OPENPOSE18_LIMB_COLORS.to(device),
                         OPENPOSE18_COLORS.to(device)]) / 255.0
    if T == 0 or P == 0 or height == 0 or width == 0:
        return torch.zeros(T, height, width, 3, dtype=torch.float32, device=device)
    params, codes = _shapes(keypoints, float(stickwidth), float(radius))
    if _use_triton(device):
        code = _codes_triton(params, codes, int(height), int(width))
    else:
        code = _codes_reference(params, codes, int(height), int(width))
    return palette[code.long()]
