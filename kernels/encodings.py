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

Depth to normals by finite differences is here too, to check rendered normals against the
rendered depth.

Kernels. Depth, normal, depth-to-normal and flow encodings each have a torch reference
(``_*_reference``, the definition) and a fused elementwise Triton kernel; the public function
dispatches through ``rendiff.kernels._dispatch`` (Triton on CUDA, the reference on CPU, Triton's
interpreter on CPU under ``RENDIFF_TRITON=interpret``). The clip-wide normalisers (the inverse
depth range, the largest flow magnitude) come from a Triton reduction kernel writing one partial
per block, finished by torch over the few partials, so no value goes through the host; the
encoding is then one read of the input and one write of the output. The kernels agree with the
references to float32 rounding (``tests/test_encodings_triton.py`` states the tolerance per
output). ``atan2`` is not a Triton builtin the interpreter can run, so the flow kernel evaluates
it itself (octant reduction and an odd series, error below 1e-7 rad) with the signs of zero
handled as ``torch.atan2`` does. Ids and shading are a single gather or clamp in torch and have
no kernel.
"""

from __future__ import annotations

import functools
import math

import torch
import triton
import triton.language as tl
from torch import Tensor

from ._dispatch import get_kernel
from ._dispatch import use_triton as _use_triton

__all__ = [
    "FAR_FLOOR",
    "colour_wheel",
    "depth_to_control",
    "inverse_depth_range",
    "depth_to_normals",
    "flow_to_color",
    "ids_to_color",
    "normal_to_control",
    "palette",
    "shading_to_control",
]

_BLOCK = 1024
_N_WHEEL = 55
#: The farthest valid depth of a clip encodes to this, just above empty (0).
FAR_FLOOR = 0.05


# ---------------------------------------------------------------------------------------------
# torch references (the definitions)
# ---------------------------------------------------------------------------------------------


def _depth_to_control_reference(depth: Tensor, valid: Tensor | None = None,
                                inv_range: tuple[float, float] | None = None) -> Tensor:
    """Same contract as `depth_to_control`, in torch (in-place after the first temporary)."""
    if valid is None:
        valid = torch.isfinite(depth) & (depth > 0)
    if inv_range is None and not bool(valid.any()):
        return torch.zeros_like(depth, dtype=torch.float32)
    inv = depth.clamp_min(1e-6).reciprocal_()
    if inv_range is None:
        lo, hi = torch.aminmax(inv[valid])
    else:
        lo, hi = (torch.tensor(v, dtype=inv.dtype, device=inv.device) for v in inv_range)
    if float(hi - lo) > 1e-8:
        inv.sub_(lo).mul_(1.0 - FAR_FLOOR).div_(hi - lo).add_(FAR_FLOOR)
    else:
        inv.fill_(1.0)
    return inv.masked_fill_(~valid, 0.0).float()


def _normal_to_control_reference(normal: Tensor) -> Tensor:
    """Same contract as `normal_to_control`, in torch (one temporary, then in place)."""
    empty = ~(normal != 0).any(-1, keepdim=True)
    return normal.mul(-0.5).add_(0.5).clamp_(0.0, 1.0).masked_fill_(empty, 0.0).float()


def _depth_to_normals_reference(depth: Tensor, K: Tensor) -> Tensor:
    """Same contract as `depth_to_normals`, in torch."""
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


def colour_wheel() -> Tensor:
    """The Middlebury flow colour wheel: 55 hues (RY 15, YG 6, GC 4, CB 11, BM 13, MR 6)."""
    segments = [(15, (1, 0, 0), (1, 1, 0)), (6, (1, 1, 0), (0, 1, 0)), (4, (0, 1, 0), (0, 1, 1)),
                (11, (0, 1, 1), (0, 0, 1)), (13, (0, 0, 1), (1, 0, 1)), (6, (1, 0, 1), (1, 0, 0))]
    cols = []
    for n, a, b in segments:
        t = torch.arange(n, dtype=torch.float32)[:, None] / n
        cols.append(torch.tensor(a, dtype=torch.float32) * (1 - t)
                    + torch.tensor(b, dtype=torch.float32) * t)
    return torch.cat(cols)


@functools.cache
def _wheel_on(device: torch.device) -> Tensor:
    return colour_wheel().to(device).contiguous()


def _flow_to_color_reference(flow: Tensor, max_norm: float | Tensor | None = None) -> Tensor:
    """Same contract as `flow_to_color`, in torch (in place where it can be)."""
    wheel = _wheel_on(flow.device)
    ncols = wheel.shape[0]
    u, v = flow[..., 0].float(), flow[..., 1].float()
    mag = (u * u).add_(v * v).sqrt_()
    if max_norm is None:
        max_norm = float(mag.max()) if mag.numel() else 0.0
    rad = mag.div_(max(float(max_norm), 1e-8))[..., None]
    fk = torch.atan2(-v, -u).div_(math.pi).add_(1).div_(2).mul_(ncols - 1)
    k0f = fk.floor().clamp_(0, ncols - 1)
    f = fk.sub_(k0f)[..., None]
    k0 = k0f.long()
    k1 = (k0 + 1) % ncols
    col = wheel[k0].mul_(1 - f).add_(wheel[k1].mul_(f))
    near = col.neg().add_(1).mul_(rad).neg_().add_(1)  # 1 - r (1 - col): within the normaliser
    return torch.where(rad <= 1, near, col.mul_(0.75)).clamp_(0.0, 1.0)


# ---------------------------------------------------------------------------------------------
# Triton kernels
# ---------------------------------------------------------------------------------------------


@triton.jit
def _inv_depth_range_kernel(
    depth_ptr,  # [N] float32
    valid_ptr,  # [N] int8 (read only when HAS_VALID)
    partial_ptr,  # [n_blocks, 2] out: min and max of 1 / depth over the block's valid pixels
    n,
    HAS_VALID: tl.constexpr,
    BLOCK: tl.constexpr,
):
    pid = tl.program_id(0)
    offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    inside = offs < n
    d = tl.load(depth_ptr + offs, mask=inside, other=float("inf"))
    if HAS_VALID:
        valid = (tl.load(valid_ptr + offs, mask=inside, other=0) != 0) & inside
    else:
        valid = (d > 0.0) & (d < float("inf")) & inside
    inv = tl.div_rn(1.0, tl.maximum(d, 1e-6))
    tl.store(partial_ptr + 2 * pid, tl.min(tl.where(valid, inv, float("inf")), axis=0))
    tl.store(partial_ptr + 2 * pid + 1, tl.max(tl.where(valid, inv, -float("inf")), axis=0))


@triton.jit
def _depth_control_kernel(
    depth_ptr,  # [N] float32
    valid_ptr,  # [N] int8 (read only when HAS_VALID)
    range_ptr,  # [2] min and max inverse depth of the clip
    out_ptr,  # [N] float32 out
    n,
    far_floor,
    HAS_VALID: tl.constexpr,
    BLOCK: tl.constexpr,
):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    inside = offs < n
    d = tl.load(depth_ptr + offs, mask=inside, other=float("inf"))
    if HAS_VALID:
        valid = tl.load(valid_ptr + offs, mask=inside, other=0) != 0
    else:
        valid = (d > 0.0) & (d < float("inf"))
    lo = tl.load(range_ptr)
    span = tl.load(range_ptr + 1) - lo
    inv = tl.div_rn(1.0, tl.maximum(d, 1e-6))
    spread = span > 1e-8
    scaled = tl.div_rn((inv - lo) * (1.0 - far_floor), tl.where(spread, span, 1.0)) + far_floor
    out = tl.where(spread, scaled, 1.0)
    tl.store(out_ptr + offs, tl.where(valid, out, 0.0), mask=inside)


@triton.jit
def _normal_control_kernel(
    normal_ptr,  # [N, 3] float32
    out_ptr,  # [N, 3] float32 out
    n,
    BLOCK: tl.constexpr,
):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    inside = offs < n
    nx = tl.load(normal_ptr + 3 * offs, mask=inside, other=0.0)
    ny = tl.load(normal_ptr + 3 * offs + 1, mask=inside, other=0.0)
    nz = tl.load(normal_ptr + 3 * offs + 2, mask=inside, other=0.0)
    keep = (tl.abs(nx) + tl.abs(ny)) + tl.abs(nz) != 0.0
    r = tl.minimum(tl.maximum(0.5 - 0.5 * nx, 0.0), 1.0)
    g = tl.minimum(tl.maximum(0.5 - 0.5 * ny, 0.0), 1.0)
    b = tl.minimum(tl.maximum(0.5 - 0.5 * nz, 0.0), 1.0)
    tl.store(out_ptr + 3 * offs, tl.where(keep, r, 0.0), mask=inside)
    tl.store(out_ptr + 3 * offs + 1, tl.where(keep, g, 0.0), mask=inside)
    tl.store(out_ptr + 3 * offs + 2, tl.where(keep, b, 0.0), mask=inside)


@triton.jit
def _depth_normals_kernel(
    depth_ptr,  # [B, H, W] float32
    intr_ptr,  # [B, 4] fx, fy, cx, cy
    out_ptr,  # [B, H, W, 3] float32 out
    height,
    width,
    BLOCK: tl.constexpr,
):
    b = tl.program_id(1).to(tl.int64)
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    inside = offs < height * width
    i = offs // width
    j = offs % width
    interior = inside & (i >= 1) & (i < height - 1) & (j >= 1) & (j < width - 1)
    fx = tl.load(intr_ptr + 4 * b)
    fy = tl.load(intr_ptr + 4 * b + 1)
    cx = tl.load(intr_ptr + 4 * b + 2)
    cy = tl.load(intr_ptr + 4 * b + 3)
    base = depth_ptr + b * height * width
    inf = float("inf")
    zc = tl.load(base + offs, mask=inside, other=inf)
    zl = tl.load(base + offs - 1, mask=interior, other=inf)
    zr = tl.load(base + offs + 1, mask=interior, other=inf)
    zu = tl.load(base + offs - width, mask=interior, other=inf)
    zd = tl.load(base + offs + width, mask=interior, other=inf)
    ok = (tl.abs(zc) < inf) & (tl.abs(zl) < inf) & (tl.abs(zr) < inf)
    ok = ok & (tl.abs(zu) < inf) & (tl.abs(zd) < inf) & interior
    zc = tl.where(tl.abs(zc) < inf, zc, 0.0)
    zl = tl.where(tl.abs(zl) < inf, zl, 0.0)
    zr = tl.where(tl.abs(zr) < inf, zr, 0.0)
    zu = tl.where(tl.abs(zu) < inf, zu, 0.0)
    zd = tl.where(tl.abs(zd) < inf, zd, 0.0)
    uc = j.to(tl.float32) + 0.5
    vc = i.to(tl.float32) + 0.5
    xn_c = tl.div_rn(uc - cx, fx)
    yn_c = tl.div_rn(vc - cy, fy)
    xn_l = tl.div_rn(uc - 1.0 - cx, fx)
    xn_r = tl.div_rn(uc + 1.0 - cx, fx)
    yn_u = tl.div_rn(vc - 1.0 - cy, fy)
    yn_d = tl.div_rn(vc + 1.0 - cy, fy)
    # dx = P(i, j + 1) - P(i, j - 1), dy = P(i + 1, j) - P(i - 1, j); P = (xn z, yn z, z)
    dx0 = xn_r * zr - xn_l * zl
    dx1 = yn_c * zr - yn_c * zl
    dx2 = zr - zl
    dy0 = xn_c * zd - xn_c * zu
    dy1 = yn_d * zd - yn_u * zu
    dy2 = zd - zu
    n0 = dx1 * dy2 - dx2 * dy1
    n1 = dx2 * dy0 - dx0 * dy2
    n2 = dx0 * dy1 - dx1 * dy0
    norm = tl.maximum(tl.sqrt_rn(n0 * n0 + n1 * n1 + n2 * n2), 1e-12)
    n0 = tl.div_rn(n0, norm)
    n1 = tl.div_rn(n1, norm)
    n2 = tl.div_rn(n2, norm)
    away = n0 * (xn_c * zc) + n1 * (yn_c * zc) + n2 * zc > 0.0
    sign = tl.where(away, -1.0, 1.0)
    sign = tl.where(ok, sign, 0.0)
    o = out_ptr + (b * height * width + offs) * 3
    tl.store(o, sign * n0, mask=inside)
    tl.store(o + 1, sign * n1, mask=inside)
    tl.store(o + 2, sign * n2, mask=inside)


@triton.jit
def _flow_max_kernel(
    flow_ptr,  # [N, 2] float32
    partial_ptr,  # [n_blocks] out: the block's largest magnitude
    n,
    BLOCK: tl.constexpr,
):
    pid = tl.program_id(0)
    offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    inside = offs < n
    u = tl.load(flow_ptr + 2 * offs, mask=inside, other=0.0)
    v = tl.load(flow_ptr + 2 * offs + 1, mask=inside, other=0.0)
    tl.store(partial_ptr + pid, tl.max(tl.sqrt_rn(u * u + v * v), axis=0))


@triton.jit
def _atan2(y, x):
    """atan2(y, x) in float32 with torch's signed-zero results (see the module docstring)."""
    ay = tl.abs(y)
    ax = tl.abs(x)
    hi = tl.maximum(ax, ay)
    lo = tl.minimum(ax, ay)
    a = tl.where(hi > 0.0, tl.div_rn(lo, tl.where(hi > 0.0, hi, 1.0)), 0.0)  # in [0, 1]
    # atan(a) = pi/4 + atan((a - 1) / (a + 1)) brings the argument into [-tan(pi/8), tan(pi/8)],
    # where the odd series to t^17 is below 3e-9.
    big = a > 0.41421356237309503
    t = tl.where(big, tl.div_rn(a - 1.0, a + 1.0), a)
    t2 = t * t
    p = 1.0 / 17.0
    p = p * t2 - 1.0 / 15.0
    p = p * t2 + 1.0 / 13.0
    p = p * t2 - 1.0 / 11.0
    p = p * t2 + 1.0 / 9.0
    p = p * t2 - 1.0 / 7.0
    p = p * t2 + 1.0 / 5.0
    p = p * t2 - 1.0 / 3.0
    p = p * t2 + 1.0
    r = t * p + tl.where(big, 0.7853981633974483, 0.0)
    r = tl.where(ay > ax, 1.5707963267948966 - r, r)
    x_negative = x.to(tl.int32, bitcast=True) < 0  # sign bit: -0.0 counts as negative
    r = tl.where(x_negative, 3.141592653589793 - r, r)
    y_negative = y.to(tl.int32, bitcast=True) < 0
    return tl.where(y_negative, -r, r)


@triton.jit
def _flow_color_kernel(
    flow_ptr,  # [N, 2] float32
    norm_ptr,  # [1] the normaliser
    wheel_ptr,  # [NCOLS, 3] float32
    out_ptr,  # [N, 3] float32 out
    n,
    NCOLS: tl.constexpr,
    BLOCK: tl.constexpr,
):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    inside = offs < n
    u = tl.load(flow_ptr + 2 * offs, mask=inside, other=0.0)
    v = tl.load(flow_ptr + 2 * offs + 1, mask=inside, other=0.0)
    rad = tl.div_rn(tl.sqrt_rn(u * u + v * v), tl.maximum(tl.load(norm_ptr), 1e-8))
    angle = tl.div_rn(_atan2(-v, -u), 3.141592653589793)
    fk = (angle + 1.0) / 2.0 * (NCOLS - 1)
    k0f = tl.minimum(tl.maximum(tl.floor(fk), 0.0), NCOLS - 1.0)
    f = fk - k0f
    k0 = k0f.to(tl.int32)
    k1 = (k0 + 1) % NCOLS
    for c in tl.static_range(3):
        w0 = tl.load(wheel_ptr + 3 * k0 + c, mask=inside, other=0.0)
        w1 = tl.load(wheel_ptr + 3 * k1 + c, mask=inside, other=0.0)
        col = (1.0 - f) * w0 + f * w1
        col = tl.where(rad <= 1.0, 1.0 - rad * (1.0 - col), col * 0.75)
        tl.store(out_ptr + 3 * offs + c, tl.minimum(tl.maximum(col, 0.0), 1.0), mask=inside)


# ---------------------------------------------------------------------------------------------
# launches
# ---------------------------------------------------------------------------------------------


def _depth_to_control_triton(depth: Tensor, valid: Tensor | None,
                             inv_range: tuple[float, float] | None = None) -> Tensor:
    flat = depth.detach().reshape(-1).float().contiguous()
    n = flat.numel()
    out = torch.empty_like(flat)
    if n == 0:
        return out.view(depth.shape)
    has_valid = valid is not None
    mask = (
        valid.reshape(-1).to(device=flat.device, dtype=torch.int8).contiguous()
        if has_valid
        else flat  # never read
    )
    grid = (triton.cdiv(n, _BLOCK),)
    if inv_range is None:
        partial = torch.empty(grid[0], 2, dtype=torch.float32, device=flat.device)
        get_kernel(_inv_depth_range_kernel, flat.device)[grid](
            flat, mask, partial, n, HAS_VALID=has_valid, BLOCK=_BLOCK
        )
        clip_range = torch.stack([partial[:, 0].min(), partial[:, 1].max()]).contiguous()
    else:
        clip_range = torch.tensor(inv_range, dtype=torch.float32, device=flat.device)
    get_kernel(_depth_control_kernel, flat.device)[grid](
        flat, mask, clip_range, out, n, FAR_FLOOR, HAS_VALID=has_valid, BLOCK=_BLOCK
    )
    return out.view(depth.shape)


def _normal_to_control_triton(normal: Tensor) -> Tensor:
    flat = normal.detach().float().contiguous()
    out = torch.empty_like(flat)
    n = flat.numel() // 3
    if n:
        get_kernel(_normal_control_kernel, flat.device)[(triton.cdiv(n, _BLOCK),)](
            flat, out, n, BLOCK=_BLOCK
        )
    return out


def _depth_to_normals_triton(depth: Tensor, K: Tensor) -> Tensor:
    H, W = depth.shape[-2:]
    batch = torch.broadcast_shapes(depth.shape[:-2], K.shape[:-2])
    K = torch.broadcast_to(K.to(depth.device), (*batch, 3, 3)).float()
    intr = torch.stack([K[..., 0, 0], K[..., 1, 1], K[..., 0, 2], K[..., 1, 2]], -1)
    intr = intr.reshape(-1, 4).contiguous()
    flat = torch.broadcast_to(depth.detach(), (*batch, H, W)).float().reshape(-1, H, W)
    flat = flat.contiguous()
    out = torch.empty(*flat.shape, 3, dtype=torch.float32, device=depth.device)
    if out.numel():
        grid = (triton.cdiv(H * W, _BLOCK), flat.shape[0])
        get_kernel(_depth_normals_kernel, flat.device)[grid](flat, intr, out, H, W, BLOCK=_BLOCK)
    return out.view(*batch, H, W, 3)


def _flow_to_color_triton(flow: Tensor, max_norm: float | Tensor | None) -> Tensor:
    flat = flow.detach().float().contiguous()
    n = flat.numel() // 2
    out = torch.empty(*flat.shape[:-1], 3, dtype=torch.float32, device=flat.device)
    if n == 0:
        return out
    grid = (triton.cdiv(n, _BLOCK),)
    if max_norm is None:
        partial = torch.empty(grid[0], dtype=torch.float32, device=flat.device)
        get_kernel(_flow_max_kernel, flat.device)[grid](flat, partial, n, BLOCK=_BLOCK)
        norm = partial.max().reshape(1)
    else:
        norm = torch.as_tensor(max_norm, dtype=torch.float32, device=flat.device).reshape(1)
    get_kernel(_flow_color_kernel, flat.device)[grid](
        flat, norm.contiguous(), _wheel_on(flat.device), out, n, NCOLS=_N_WHEEL, BLOCK=_BLOCK
    )
    return out


# Ahead-of-time sm_90 compile checks (tests/_aot.py, benchmarks/aot_kernels.py): each entry is
# (kernel, runtime argument types, constexprs, launch options) as the launches above make it.
# Without a validity mask the depth kernels get the depth again as their (unread) mask pointer.
# tests/test_encodings_triton.py checks that the launches and this table agree.
_AOT_VARIANTS = tuple(
    (kernel, {"depth_ptr": "*fp32", "valid_ptr": "*i8" if has_valid else "*fp32"} | signature,
     {"HAS_VALID": has_valid, "BLOCK": _BLOCK}, {})
    for has_valid in (False, True)
    for kernel, signature in (
        (_inv_depth_range_kernel, {"partial_ptr": "*fp32", "n": "i32"}),
        (_depth_control_kernel, {"range_ptr": "*fp32", "out_ptr": "*fp32", "n": "i32",
                                 "far_floor": "fp32"}),
    )
) + (
    (_normal_control_kernel, {"normal_ptr": "*fp32", "out_ptr": "*fp32", "n": "i32"},
     {"BLOCK": _BLOCK}, {}),
    (_depth_normals_kernel, {"depth_ptr": "*fp32", "intr_ptr": "*fp32", "out_ptr": "*fp32",
                             "height": "i32", "width": "i32"}, {"BLOCK": _BLOCK}, {}),
    (_flow_max_kernel, {"flow_ptr": "*fp32", "partial_ptr": "*fp32", "n": "i32"},
     {"BLOCK": _BLOCK}, {}),
    (_flow_color_kernel, {"flow_ptr": "*fp32", "norm_ptr": "*fp32", "wheel_ptr": "*fp32",
                          "out_ptr": "*fp32", "n": "i32"},
     {"NCOLS": _N_WHEEL, "BLOCK": _BLOCK}, {}),
)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# public wrappers
# ---------------------------------------------------------------------------------------------


def inverse_depth_range(depth: Tensor, valid: Tensor | None = None) -> tuple[float, float] | None:
    """The (smallest, largest) inverse depth over the valid pixels of ``depth`` (default finite
    and > 0), as :func:`depth_to_control` normalises a clip; None where no pixel is valid. Give
    it to ``depth_to_control(part, inv_range=...)`` to encode a clip a few frames at a time."""
    if valid is None:
        valid = torch.isfinite(depth) & (depth > 0)
    if not bool(valid.any()):
        return None
    lo, hi = torch.aminmax(depth[valid].clamp_min(1e-6).reciprocal_())
    return float(lo), float(hi)


def depth_to_control(depth: Tensor, valid: Tensor | None = None,
                     inv_range: tuple[float, float] | None = None) -> Tensor:
    """Normalised inverse depth over the whole clip.

    The farthest valid point of the clip encodes to 0.05 (just above the empty background), the
    nearest to 1, linearly in 1 / depth in between; a clip of one depth encodes to 1.

    Args:
        depth: [T, H, W] (any shape) camera z in metres, +inf (or <= 0) where empty.
        valid: optional bool mask of depth's shape, pixels to include; default finite and > 0.
        inv_range: the clip's (smallest, largest) inverse depth when ``depth`` is only part of
            it (:func:`inverse_depth_range` of the whole clip); default: ``depth``'s own.
    Returns:
        [T, H, W] float32 in [0, 1]; 1 = nearest point of the clip, 0 = empty.
    """
    if valid is not None and valid.shape != depth.shape:
        raise ValueError(
            f"depth_to_control: valid {tuple(valid.shape)} must match depth {tuple(depth.shape)}"
        )
    if _use_triton(depth.device):
        return _depth_to_control_triton(depth, valid, inv_range)
    return _depth_to_control_reference(depth, valid, inv_range)


def normal_to_control(normal: Tensor) -> Tensor:
    """Camera-space normals (OpenCV axes) to the normal-ControlNet colours ``0.5 - 0.5 n``.

    Args:
        normal: [..., 3] unit normals, 0 where empty.
    Returns:
        [..., 3] float32 in [0, 1]; empty pixels 0.
    """
    if normal.shape[-1:] != (3,):
        raise ValueError(f"normal_to_control: normal must be [..., 3], got {tuple(normal.shape)}")
    if _use_triton(normal.device):
        return _normal_to_control_triton(normal)
    return _normal_to_control_reference(normal)


def depth_to_normals(depth: Tensor, K: Tensor) -> Tensor:
    """Camera-space normals from depth by central finite differences (for checking).

    Each pixel's camera-space point is ``z K^-1 (u, v, 1)`` at its centre (j + 0.5, i + 0.5); the
    normal is the cross product of the differences of its right-left and down-up neighbours,
    turned to face the camera.

    Args:
        depth: [..., H, W] camera z, +inf where empty.
        K: [..., 3, 3] intrinsics (broadcast against depth's leading dims).
    Returns:
        [..., H, W, 3] unit normals (depth's dtype) facing the camera; 0 on the border and
        where the pixel or one of its four neighbours is empty.
    """
    if depth.dim() < 2 or K.shape[-2:] != (3, 3):
        raise ValueError(
            f"depth_to_normals: need depth [..., H, W] and K [..., 3, 3], got "
            f"{tuple(depth.shape)} and {tuple(K.shape)}"
        )
    if _use_triton(depth.device):
        out = _depth_to_normals_triton(depth, K)
        return out.to(depth.dtype) if depth.is_floating_point() else out
    return _depth_to_normals_reference(depth, K)


def flow_to_color(flow: Tensor, max_norm: float | None = None) -> Tensor:
    """Optical flow to colour: hue = direction, saturation = magnitude / ``max_norm``.

    Args:
        flow: [..., 2] pixels (u right, v down).
        max_norm: normaliser; default the largest magnitude in ``flow`` (the whole clip).
            Flow longer than it is drawn at 0.75 of the hue's full colour.
    Returns:
        [..., 3] float32 in [0, 1]; zero flow is white.
    """
    if flow.shape[-1:] != (2,):
        raise ValueError(f"flow_to_color: flow must be [..., 2], got {tuple(flow.shape)}")
    if _use_triton(flow.device):
        return _flow_to_color_triton(flow, max_norm)
    return _flow_to_color_reference(flow, max_norm)


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
