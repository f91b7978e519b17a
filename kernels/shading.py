"""Per-pixel shading: Lambert diffuse plus Blinn-Phong specular from ambient, spherical-harmonics
environment, directional, point and spot lights, with optional per-light shadow visibility.

Everything is in camera space (OpenCV axes); the caller transforms lights into it. The torch
reference ``_shade_reference`` is the definition; see ``shade`` for the formulas. The Triton kernel
does the same math in one fused pass per pixel (all lights in a loop) and writes shading,
irradiance and rgb at once.

Dispatch (``rendiff.kernels._dispatch``, which documents the interpreter's limitation once):
Triton on CUDA tensors; on CPU the same pass compiled by Warp (``rendiff.kernels.warp_cpu.shade``),
or the torch reference with ``RENDIFF_CPU_KERNELS=torch``; and Triton through its interpreter on
CPU when the environment variable ``RENDIFF_TRITON=interpret`` is set (both read at each call).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl
from torch import Tensor

from ._dispatch import get_kernel
from ._dispatch import use_triton as _use_triton
from ._dispatch import use_warp_cpu as _use_warp_cpu

__all__ = ["LightSet", "ShadingResult", "shade", "sh_irradiance"]

# Degree-2 SH irradiance constants (Ramamoorthi & Hanrahan 2001).
_C1, _C2, _C3, _C4, _C5 = 0.429043, 0.511664, 0.743125, 0.886227, 0.247708


@dataclass
class LightSet:
    """Lights in camera space. Each tensor is [L, ...] (L may be 0).

    ``kind``: 0 directional, 1 point, 2 spot. ``direction`` is where the light travels (unit).
    ``radiance`` is colour times intensity (RGB). ``cos_outer``/``cos_inner`` bound a spot's cone.
    """

    kind: Tensor  # [L] int64
    position: Tensor  # [L, 3]
    direction: Tensor  # [L, 3]
    radiance: Tensor  # [L, 3]
    cos_outer: Tensor  # [L]
    cos_inner: Tensor  # [L]
    ambient: Tensor | None = None  # [3]; None: no ambient light (zeros on kind's device)
    sh: Tensor | None = None  # [9, 3] degree-2 SH environment radiance, camera frame

    def __post_init__(self) -> None:
        if self.ambient is None:
            self.ambient = torch.zeros(3, device=self.kind.device)

    @staticmethod
    def empty(device: torch.device | str = "cpu") -> LightSet:
        z = torch.zeros(0, 3, device=device)
        return LightSet(torch.zeros(0, dtype=torch.long, device=device), z, z, z,
                        torch.zeros(0, device=device), torch.zeros(0, device=device))

    def __len__(self) -> int:
        return int(self.kind.shape[0])


@dataclass
class ShadingResult:
    shading: Tensor  # [H, W] scalar irradiance (mean over RGB of diffuse light), shadows included
    irradiance: Tensor  # [H, W, 3] diffuse light arriving at the surface (RGB)
    rgb: Tensor  # [H, W, 3] lit colour = albedo * irradiance + specular, not clipped


def sh_irradiance(normal: Tensor, sh: Tensor) -> Tensor:
    """Irradiance [..., 3] from degree-2 SH radiance coefficients ``sh`` [9, 3] (order
    L00, L1-1, L10, L11, L2-2, L2-1, L20, L21, L22; projections of the radiance onto the real SH
    basis) for unit normals [..., 3]: the Ramamoorthi-Hanrahan closed form, divided by pi so that
    a constant environment of radiance c gives c (and a white Lambert surface looks c)."""
    x, y, z = normal[..., 0:1], normal[..., 1:2], normal[..., 2:3]
    L = sh
    e = (
        _C4 * L[0]
        + 2 * _C2 * (L[3] * x + L[1] * y + L[2] * z)
        + _C3 * L[6] * z * z
        - _C5 * L[6]
        + _C1 * L[8] * (x * x - y * y)
        + 2 * _C1 * (L[4] * x * y + L[7] * x * z + L[5] * y * z)
    )
    return e / torch.pi


def _shade_reference(
    points: Tensor,
    normal: Tensor,
    albedo: Tensor,
    lights: LightSet,
    specular: Tensor,
    roughness: Tensor,
    visibility: Tensor | None,
    mask: Tensor,
) -> ShadingResult:
    """Torch definition of ``shade`` (all arguments given, same shapes and device)."""
    H, W = normal.shape[:2]
    n = normal
    v = -points / points.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    irr = lights.ambient.view(1, 1, 3).expand(H, W, 3).clone()
    if lights.sh is not None:
        irr = irr + sh_irradiance(n, lights.sh).clamp_min(0)
    spec = torch.zeros_like(irr)
    p = (2.0 / roughness.clamp(0.02, 1.0) ** 4 - 2.0).clamp(1.0, 4096.0)
    for i in range(len(lights)):
        kind = int(lights.kind[i])
        E = lights.radiance[i].view(1, 1, 3)
        if kind == 0:
            l_dir = (-lights.direction[i]).view(1, 1, 3).expand(H, W, 3)
            atten = torch.ones_like(specular)
        else:
            to_light = lights.position[i].view(1, 1, 3) - points
            d2 = (to_light * to_light).sum(-1).clamp_min(1e-6)
            l_dir = to_light / d2.sqrt()[..., None]
            atten = 1.0 / d2
            if kind == 2:
                cos_a = -(l_dir * lights.direction[i].view(1, 1, 3)).sum(-1)
                lo, hi = lights.cos_outer[i], lights.cos_inner[i]
                s = ((cos_a - lo) / (hi - lo).clamp_min(1e-6)).clamp(0, 1)
                atten = atten * s * s * (3 - 2 * s)
        if visibility is not None:
            atten = atten * visibility[i]
        ndl = (n * l_dir).sum(-1).clamp_min(0.0)
        irr = irr + E * (atten * ndl)[..., None]
        h = l_dir + v
        h = h / h.norm(dim=-1, keepdim=True).clamp_min(1e-9)
        ndh = (n * h).sum(-1).clamp_min(0.0)
        spec = spec + E * (atten * ndl * specular * ndh.pow(p))[..., None]
    m = mask[..., None]
    irr = torch.where(m, irr, torch.zeros_like(irr))
    rgb = torch.where(m, albedo * irr + spec, torch.zeros_like(irr))
    return ShadingResult(shading=irr.mean(-1), irradiance=irr, rgb=rgb)


@triton.jit
def _shade_kernel(
    points_ptr,  # [N, 3]
    normal_ptr,  # [N, 3]
    albedo_ptr,  # [N, 3]
    specular_ptr,  # [N]
    roughness_ptr,  # [N]
    mask_ptr,  # [N] int8
    lights_ptr,  # [L, 12] (kind, position, direction, radiance, cos_outer, cos_inner)
    env_ptr,  # [30] ambient (3) then SH radiance [9, 3]
    vis_ptr,  # [L, N] (read only when HAS_VIS)
    shading_ptr,  # [N] out
    irr_ptr,  # [N, 3] out
    rgb_ptr,  # [N, 3] out
    n_pixels,
    n_lights,
    HAS_SH: tl.constexpr,
    HAS_VIS: tl.constexpr,
    BLOCK: tl.constexpr,
):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    valid = offs < n_pixels
    o3 = offs.to(tl.int64) * 3
    px = tl.load(points_ptr + o3, mask=valid, other=0.0)
    py = tl.load(points_ptr + o3 + 1, mask=valid, other=0.0)
    pz = tl.load(points_ptr + o3 + 2, mask=valid, other=0.0)
    nx = tl.load(normal_ptr + o3, mask=valid, other=0.0)
    ny = tl.load(normal_ptr + o3 + 1, mask=valid, other=0.0)
    nz = tl.load(normal_ptr + o3 + 2, mask=valid, other=0.0)
    ks = tl.load(specular_ptr + offs, mask=valid, other=0.0)
    rough = tl.load(roughness_ptr + offs, mask=valid, other=1.0)
    inv_pn = 1.0 / tl.maximum(tl.sqrt(px * px + py * py + pz * pz), 1e-9)
    vx, vy, vz = -px * inv_pn, -py * inv_pn, -pz * inv_pn
    r = tl.minimum(tl.maximum(rough, 0.02), 1.0)
    r2 = r * r
    expo = tl.minimum(tl.maximum(2.0 / (r2 * r2) - 2.0, 1.0), 4096.0)

    ir = tl.zeros([BLOCK], tl.float32) + tl.load(env_ptr + 0)
    ig = tl.zeros([BLOCK], tl.float32) + tl.load(env_ptr + 1)
    ib = tl.zeros([BLOCK], tl.float32) + tl.load(env_ptr + 2)
    if HAS_SH:
        # Ramamoorthi-Hanrahan irradiance per channel, divided by pi (see sh_irradiance).
        xx, yy, zz = nx * nx, ny * ny, nz * nz
        for c in tl.static_range(3):
            sh = env_ptr + 3 + c  # coefficient k of channel c at sh + 3 * k
            e = (
                0.886227 * tl.load(sh)
                + 1.023328 * (tl.load(sh + 9) * nx + tl.load(sh + 3) * ny + tl.load(sh + 6) * nz)
                + 0.743125 * tl.load(sh + 18) * zz
                - 0.247708 * tl.load(sh + 18)
                + 0.429043 * tl.load(sh + 24) * (xx - yy)
                + 0.858086 * tl.load(sh + 12) * nx * ny
                + 0.858086 * tl.load(sh + 21) * nx * nz
                + 0.858086 * tl.load(sh + 15) * ny * nz
            )
            e = tl.maximum(e / 3.141592653589793, 0.0)
            if c == 0:
                ir += e
            elif c == 1:
                ig += e
            else:
                ib += e

    sr = tl.zeros([BLOCK], tl.float32)
    sg = tl.zeros([BLOCK], tl.float32)
    sb = tl.zeros([BLOCK], tl.float32)
    for i in range(n_lights):
        light = lights_ptr + i * 12
        kind = tl.load(light + 0)
        dx, dy, dz = tl.load(light + 4), tl.load(light + 5), tl.load(light + 6)
        tx = tl.load(light + 1) - px
        ty = tl.load(light + 2) - py
        tz = tl.load(light + 3) - pz
        d2 = tl.maximum(tx * tx + ty * ty + tz * tz, 1e-6)
        inv_d = 1.0 / tl.sqrt(d2)
        directional = kind == 0.0
        lx = tl.where(directional, -dx, tx * inv_d)
        ly = tl.where(directional, -dy, ty * inv_d)
        lz = tl.where(directional, -dz, tz * inv_d)
        atten = tl.where(directional, 1.0, 1.0 / d2)
        cos_a = -(lx * dx + ly * dy + lz * dz)
        lo = tl.load(light + 10)
        s = (cos_a - lo) / tl.maximum(tl.load(light + 11) - lo, 1e-6)
        s = tl.minimum(tl.maximum(s, 0.0), 1.0)
        atten = tl.where(kind == 2.0, atten * (s * s * (3.0 - 2.0 * s)), atten)
        if HAS_VIS:
            atten *= tl.load(vis_ptr + i * n_pixels + offs, mask=valid, other=1.0)
        ndl = tl.maximum(nx * lx + ny * ly + nz * lz, 0.0)
        hx, hy, hz = lx + vx, ly + vy, lz + vz
        inv_h = 1.0 / tl.maximum(tl.sqrt(hx * hx + hy * hy + hz * hz), 1e-9)
        ndh = tl.maximum((nx * hx + ny * hy + nz * hz) * inv_h, 0.0)
        lobe = tl.where(ndh > 0.0, tl.exp2(expo * tl.log2(tl.maximum(ndh, 1e-30))), 0.0)
        diffuse = atten * ndl
        glossy = diffuse * ks * lobe
        er, eg, eb = tl.load(light + 7), tl.load(light + 8), tl.load(light + 9)
        ir += er * diffuse
        ig += eg * diffuse
        ib += eb * diffuse
        sr += er * glossy
        sg += eg * glossy
        sb += eb * glossy

    hit = tl.load(mask_ptr + offs, mask=valid, other=0) != 0
    ar = tl.load(albedo_ptr + o3, mask=valid, other=0.0)
    ag = tl.load(albedo_ptr + o3 + 1, mask=valid, other=0.0)
    ab = tl.load(albedo_ptr + o3 + 2, mask=valid, other=0.0)
    ir = tl.where(hit, ir, 0.0)
    ig = tl.where(hit, ig, 0.0)
    ib = tl.where(hit, ib, 0.0)
    tl.store(shading_ptr + offs, (ir + ig + ib) / 3.0, mask=valid)
    tl.store(irr_ptr + o3, ir, mask=valid)
    tl.store(irr_ptr + o3 + 1, ig, mask=valid)
    tl.store(irr_ptr + o3 + 2, ib, mask=valid)
    tl.store(rgb_ptr + o3, tl.where(hit, ar * ir + sr, 0.0), mask=valid)
    tl.store(rgb_ptr + o3 + 1, tl.where(hit, ag * ig + sg, 0.0), mask=valid)
    tl.store(rgb_ptr + o3 + 2, tl.where(hit, ab * ib + sb, 0.0), mask=valid)


def _shade_triton(
    points: Tensor,
    normal: Tensor,
    albedo: Tensor,
    lights: LightSet,
    specular: Tensor,
    roughness: Tensor,
    visibility: Tensor | None,
    mask: Tensor,
) -> ShadingResult:
    """Same contract as `_shade_reference`: one program per block of pixels, all lights in a
    loop."""
    H, W = normal.shape[:2]
    n_pix, device, f32 = H * W, normal.device, torch.float32
    packed, env = _packed_lights(lights, device)
    vis = visibility if visibility is not None else torch.ones(1, device=device)

    def flat(x: Tensor, dtype: torch.dtype = f32) -> Tensor:
        return x.to(device=device, dtype=dtype).contiguous()

    shading = torch.empty(H, W, dtype=f32, device=device)
    irr = torch.empty(H, W, 3, dtype=f32, device=device)
    rgb = torch.empty(H, W, 3, dtype=f32, device=device)
    block = 128
    get_kernel(_shade_kernel, device)[(triton.cdiv(n_pix, block),)](
        flat(points), flat(normal), flat(albedo), flat(specular), flat(roughness),
        flat(mask, torch.int8), packed, env.contiguous(), flat(vis), shading, irr, rgb,
        n_pix, len(lights), HAS_SH=lights.sh is not None, HAS_VIS=visibility is not None,
        BLOCK=block,
    )  # fmt: skip
    return ShadingResult(shading=shading, irradiance=irr, rgb=rgb)


def _packed_lights(lights: LightSet, device: torch.device) -> tuple[Tensor, Tensor]:
    """The lights as the kernels read them: [L, 12] rows (kind, position, direction, radiance,
    cos_outer, cos_inner) and [30] environment (ambient, then the SH radiance [9, 3])."""
    f32 = torch.float32
    packed = torch.cat(
        [
            lights.kind.to(device=device, dtype=f32)[:, None],
            lights.position.to(device=device, dtype=f32).reshape(-1, 3),
            lights.direction.to(device=device, dtype=f32).reshape(-1, 3),
            lights.radiance.to(device=device, dtype=f32).reshape(-1, 3),
            lights.cos_outer.to(device=device, dtype=f32)[:, None],
            lights.cos_inner.to(device=device, dtype=f32)[:, None],
        ],
        1,
    ).contiguous()
    sh = lights.sh if lights.sh is not None else torch.zeros(9, 3, device=lights.ambient.device)
    env = torch.cat([lights.ambient.reshape(3), sh.reshape(27)]).to(device=device, dtype=f32)
    return packed, env


# Ahead-of-time sm_90 compile checks (tests/_aot.py, benchmarks/aot_kernels.py): each entry is
# (kernel, runtime argument types, constexprs, launch options) as `_shade_triton` launches it:
# the four HAS_SH / HAS_VIS combinations, and a single light (Triton turns an int argument equal
# to 1 into a constant). tests/test_shading.py checks that the launch and this table agree.
_AOT_SIGNATURE = {f"{name}_ptr": "*fp32" for name in ("points", "normal", "albedo", "specular",
                                                       "roughness", "mask", "lights", "env", "vis",
                                                       "shading", "irr", "rgb")}
_AOT_SIGNATURE |= {"mask_ptr": "*i8", "n_pixels": "i32", "n_lights": "i32"}
_AOT_VARIANTS = tuple(
    (_shade_kernel, _AOT_SIGNATURE, {"HAS_SH": sh, "HAS_VIS": vis, "BLOCK": 128}, {})
    for sh in (False, True)
    for vis in (False, True)
) + (
    (_shade_kernel, {k: v for k, v in _AOT_SIGNATURE.items() if k != "n_lights"},
     {"n_lights": 1, "HAS_SH": True, "HAS_VIS": True, "BLOCK": 128}, {}),
)  # fmt: skip


def shade(
    points: Tensor,
    normal: Tensor,
    albedo: Tensor,
    lights: LightSet,
    *,
    specular: Tensor | None = None,
    roughness: Tensor | None = None,
    visibility: Tensor | None = None,
    mask: Tensor | None = None,
) -> ShadingResult:
    """Shades every pixel.

    For each light with unit direction ``l`` towards the light and radiance ``E`` (a point or spot
    light's falls off with 1 / d^2), the diffuse term is ``E * max(n.l, 0)`` and the specular
    term ``E * ks * max(n.h, 0)^p * max(n.l, 0)`` with ``h = normalise(l + v)`` and Blinn-Phong
    exponent ``p = 2 / roughness^4 - 2`` (clamped to [1, 4096]). Ambient and SH environment light
    add diffuse light only. A spot light scales by a smoothstep between its outer and inner cone.

    Args:
        points: [H, W, 3] camera-space surface points (camera at the origin).
        normal: [H, W, 3] unit normals facing the camera, 0 where empty.
        albedo: [H, W, 3] in [0, 1].
        lights: the lights, in camera space.
        specular: [H, W] specular strength ks (default 0).
        roughness: [H, W] in (0, 1] (default 0.5).
        visibility: [L, H, W] in [0, 1] per-light shadow factor (1 = lit), e.g. from shadow maps.
        mask: [H, W] bool, pixels with geometry (default: non-zero normal).
    Returns:
        ShadingResult with shading [H, W], irradiance [H, W, 3], rgb [H, W, 3]; 0 outside mask.
    """
    H, W = normal.shape[:2]
    device = normal.device
    if mask is None:
        mask = normal.abs().sum(-1) > 0
    if specular is None:
        specular = torch.zeros(H, W, device=device)
    if roughness is None:
        roughness = torch.full((H, W), 0.5, device=device)
    if _use_triton(device):
        return _shade_triton(points, normal, albedo, lights, specular, roughness, visibility, mask)
    if _use_warp_cpu(device):
        from . import warp_cpu

        packed, env = _packed_lights(lights, device)
        shading, irr, rgb = warp_cpu.shade(points, normal, albedo, specular, roughness, mask,
                                           packed, env, lights.sh is not None, visibility)
        return ShadingResult(shading=shading, irradiance=irr, rgb=rgb)
    return _shade_reference(points, normal, albedo, lights, specular, roughness, visibility, mask)
