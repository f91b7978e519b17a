"""Per-pixel shading: Lambert diffuse plus Blinn-Phong specular from ambient, spherical-harmonics
environment, directional, point and spot lights, with optional per-light shadow visibility.

Everything is in camera space (OpenCV axes); the caller transforms lights into it. The torch
reference here is the definition; see ``shade`` for the formulas.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

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
    ambient: Tensor = field(default_factory=lambda: torch.zeros(3))  # [3]
    sh: Tensor | None = None  # [9, 3] degree-2 SH environment radiance, camera frame

    @staticmethod
    def empty() -> LightSet:
        z = torch.zeros(0, 3)
        return LightSet(torch.zeros(0, dtype=torch.long), z, z, z, torch.zeros(0), torch.zeros(0))

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
        + _C3 * L[6] * z * z - _C5 * L[6]
        + _C1 * L[8] * (x * x - y * y)
        + 2 * _C1 * (L[4] * x * y + L[7] * x * z + L[5] * y * z)
    )
    return e / torch.pi


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
    """
    H, W = normal.shape[:2]
    if mask is None:
        mask = normal.abs().sum(-1) > 0
    if specular is None:
        specular = torch.zeros(H, W)
    if roughness is None:
        roughness = torch.full((H, W), 0.5)
    n = normal
    v = -points / points.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    irr = lights.ambient.view(1, 1, 3).expand(H, W, 3).clone()
    if lights.sh is not None:
        irr = irr + sh_irradiance(n, lights.sh).clamp_min(0)
    spec = torch.zeros(H, W, 3)
    p = (2.0 / roughness.clamp(0.02, 1.0) ** 4 - 2.0).clamp(1.0, 4096.0)
    for i in range(len(lights)):
        kind = int(lights.kind[i])
        E = lights.radiance[i].view(1, 1, 3)
        if kind == 0:
            l_dir = (-lights.direction[i]).view(1, 1, 3).expand(H, W, 3)
            atten = torch.ones(H, W)
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
