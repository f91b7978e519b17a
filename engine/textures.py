"""Albedo textures: image files and a procedural checkerboard, sampled at UV coordinates.

UVs ride on the meshes as per-face-corner coordinates (:attr:`rendiff.engine.meshes.TriMesh.uvs`)
and are interpolated per pixel with the mesh rasterizer's perspective-correct barycentrics, so a
texture stays undistorted however the surface is seen. One texture tile (the whole image, or one
checker square) spans ``Appearance.texture_scale`` UV units. Images repeat, are sampled
bilinearly between texel centres, and have v = 0 at their bottom row (the OBJ convention); their
values are used as stored (like ``Appearance.color``, no colour-space conversion).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .trajectory import Trajectory

__all__ = ["CheckerTexture", "ImageTexture", "SceneTextures", "Texture", "load_image",
           "scene_textures"]


def load_image(path: str | Path) -> Tensor:
    """An image file as float32 RGB [H, W, 3] in [0, 1] (alpha dropped, greyscale expanded)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    except OSError as err:
        raise ValueError(f"texture {Path(path).name!r}: cannot read the image ({err})") from None
    return torch.from_numpy(rgb.copy())


def _bilinear(image: Tensor, uv: Tensor) -> Tensor:
    """Repeating bilinear lookup of image [H, W, 3] at uv [N, 2] (float64, one tile per unit)."""
    H, W = image.shape[:2]
    x = uv[:, 0] * W - 0.5  # texel centres at (i + 0.5) / W
    y = (1.0 - uv[:, 1]) * H - 0.5
    x0, y0 = torch.floor(x), torch.floor(y)
    fx, fy = (x - x0).float()[:, None], (y - y0).float()[:, None]
    xi0, yi0 = x0.long() % W, y0.long() % H
    xi1, yi1 = (xi0 + 1) % W, (yi0 + 1) % H
    top = image[yi0, xi0] * (1 - fx) + image[yi0, xi1] * fx
    bottom = image[yi1, xi0] * (1 - fx) + image[yi1, xi1] * fx
    return top * (1 - fy) + bottom * fy


@dataclass
class ImageTexture:
    """An image tiled over UV space, one copy per ``scale`` UV units, with a mip pyramid (each
    level half the size of the one before, by area averaging) for surfaces seen small."""

    image: Tensor  # [H, W, 3] float32 in [0, 1], row 0 at the top (v = 1)
    scale: float = 1.0

    def __post_init__(self) -> None:
        levels = [self.image]
        while max(levels[-1].shape[:2]) > 1:
            h, w = levels[-1].shape[:2]
            small = torch.nn.functional.interpolate(
                levels[-1].permute(2, 0, 1)[None], size=(max(1, h // 2), max(1, w // 2)),
                mode="area")
            levels.append(small[0].permute(1, 2, 0).contiguous())
        self.levels = levels

    def sample(self, uv: Tensor, duv_dx: Tensor | None = None,
               duv_dy: Tensor | None = None) -> Tensor:
        """Bilinear lookup at UVs, trilinear between mip levels where the pixel's footprint
        (the UV derivatives along screen x and y) spans more than one texel.

        Args:
            uv: [N, 2] texture coordinates.
            duv_dx, duv_dy: [N, 2] their change per pixel along x and y (None: no filtering).
        Returns:
            [N, 3] float32 colours.
        """
        uv = uv.to(torch.float64) / self.scale
        base = _bilinear(self.image, uv)
        if duv_dx is None or duv_dy is None or len(self.levels) == 1:
            return base
        H, W = self.image.shape[:2]
        size = torch.tensor([W, H], dtype=torch.float64, device=uv.device) / self.scale
        rho = torch.maximum((duv_dx.to(torch.float64) * size).norm(dim=-1),
                            (duv_dy.to(torch.float64) * size).norm(dim=-1))
        top = len(self.levels) - 1
        level = torch.log2(rho.clamp_min(1.0)).nan_to_num(float(top)).clamp(0, top)
        out = base.clone()
        lo = level.floor().long()
        frac = (level - lo).float()[:, None]
        for i in range(1, top + 1):  # level 0 is already in `base`
            for at, weight in ((lo == i, 1 - frac), (lo + 1 == i, frac)):
                if bool(at.any()):
                    sampled = _bilinear(self.levels[i], uv[at])
                    out[at] = out[at] + weight[at] * (sampled - base[at])
        return out


def _square_wave_mean(x: Tensor, w: Tensor) -> Tensor:
    """Mean over [x - w/2, x + w/2] of the square wave that is +1 on [0, 1), -1 on [1, 2), ...
    (its integral is the triangle wave 1 - |x mod 2 - 1|); the point value where w is tiny."""
    point = 1.0 - 2.0 * (torch.floor(x) % 2)
    tri = lambda t: 1.0 - ((t % 2.0) - 1.0).abs()  # noqa: E731
    safe = w.clamp_min(1e-9)
    box = (tri(x + safe / 2) - tri(x - safe / 2)) / safe
    box = torch.where(torch.isfinite(w), box, 0.0)  # a footprint without end: the mean, 0
    return torch.where(w < 1e-6, point, box)


@dataclass
class CheckerTexture:
    """Squares of ``scale`` UV units alternating between two colours; the square
    [0, scale) x [0, scale) has the first. With UV derivatives, each pixel gets the checker's
    mean over its footprint's bounding box in UV space (exact box filtering, no aliasing); a pixel
    whose footprint lies inside one square gets that square's colour exactly."""

    colors: Tensor  # [2, 3] float32
    scale: float = 1.0

    def sample(self, uv: Tensor, duv_dx: Tensor | None = None,
               duv_dy: Tensor | None = None) -> Tensor:
        """[N, 2] UVs (and optional [N, 2] derivatives per pixel) -> [N, 3] colours."""
        uv = uv.to(torch.float64) / self.scale
        if duv_dx is None or duv_dy is None:
            width = torch.zeros_like(uv)
        else:
            width = (duv_dx.abs() + duv_dy.abs()).to(torch.float64) / self.scale
        width = torch.where(width.isnan(), math.inf, width)
        sign = _square_wave_mean(uv[:, 0], width[:, 0]) * _square_wave_mean(uv[:, 1], width[:, 1])
        first = (0.5 + 0.5 * sign.nan_to_num(0.0)).float()[:, None]
        return first * self.colors[0] + (1 - first) * self.colors[1]


Texture = ImageTexture | CheckerTexture


@dataclass
class SceneTextures:
    """The textured meshes of a trajectory, laid out like the renderer's per-frame concatenation
    of ``traj.meshes`` (faces in mesh order)."""

    corner_uv: Tensor  # [F_all * 3, 2] float32 UVs of every face corner (0 on untextured meshes)
    corner_faces: Tensor  # [F_all, 3] int64 rows 3f, 3f + 1, 3f + 2: faces into corner_uv
    face_mesh: Tensor  # [F_all] int64 index into traj.meshes of each face
    textures: dict[int, Texture]  # mesh index -> its texture

    def apply(self, albedo: Tensor, frags, hit: Tensor, verts: Tensor, faces: Tensor,
              viewmat: Tensor, K: Tensor) -> Tensor:
        """Albedo [H, W, 3] with textured meshes' pixels replaced by their texture colour,
        filtered over each pixel's footprint.

        Args:
            albedo: [H, W, 3] per-pixel albedo from the vertex colours.
            frags: the frame's :class:`rendiff.kernels.mesh_raster.MeshFragments`.
            hit: [H, W] bool, pixels covered by a mesh.
            verts: [V, 3] world positions of the frame's concatenated meshes.
            faces: [F_all, 3] their faces (as rasterized).
            viewmat: [4, 4] world-to-camera; K: [3, 3] intrinsics.
        """
        from rendiff.kernels.mesh_raster import interpolate

        uv = interpolate(self.corner_uv, self.corner_faces, frags)  # perspective-correct
        face = frags.face_id.clamp_min(0)
        mesh = self.face_mesh[face]
        out = albedo.clone()
        for i, tex in self.textures.items():
            sel = hit & (mesh == i)
            if not bool(sel.any()):
                continue
            f = face[sel]
            tri = (verts.to(torch.float64) @ viewmat[:3, :3].T.double()
                   + viewmat[:3, 3].double())[faces[f]]
            pix = sel.nonzero().flip(1).to(torch.float64) + 0.5  # (x, y) pixel centres
            duv_dx, duv_dy = _uv_derivatives(self.corner_uv.view(-1, 3, 2)[f], tri, pix, K)
            out[sel] = tex.sample(uv[sel], duv_dx, duv_dy)
        return out


def _uv_derivatives(uv: Tensor, tri: Tensor, pix: Tensor, K: Tensor) -> tuple[Tensor, Tensor]:
    """Change of UV per pixel along screen x and y at each pixel, exactly, from the plane of the
    face it sees: central differences of the UVs where the rays through (x +- 1/2, y) and
    (x, y +- 1/2) meet that plane.

    Args:
        uv: [P, 3, 2] the face's corner UVs; tri: [P, 3, 3] its corners in camera space.
        pix: [P, 2] pixel centres (x, y); K: [3, 3] intrinsics.
    Returns:
        ([P, 2], [P, 2]) float64; NaN or inf where the plane is seen edge-on.
    """
    K = K.to(torch.float64)
    a, b, c = tri.unbind(1)
    n = torch.linalg.cross(b - a, c - a)
    nn = (n * n).sum(-1).clamp_min(1e-300)
    uv = uv.to(torch.float64)

    def uv_at(x: Tensor, y: Tensor) -> Tensor:
        ray = torch.stack([(x - K[0, 2]) / K[0, 0], (y - K[1, 2]) / K[1, 1],
                           torch.ones_like(x)], -1)
        p = ray * ((n * a).sum(-1) / (n * ray).sum(-1))[:, None]
        beta = (torch.linalg.cross(p - a, c - a) * n).sum(-1) / nn
        gamma = (torch.linalg.cross(b - a, p - a) * n).sum(-1) / nn
        alpha = 1.0 - beta - gamma
        return alpha[:, None] * uv[:, 0] + beta[:, None] * uv[:, 1] + gamma[:, None] * uv[:, 2]

    x, y = pix.unbind(1)
    return uv_at(x + 0.5, y) - uv_at(x - 0.5, y), uv_at(x, y + 0.5) - uv_at(x, y - 0.5)


def scene_textures(traj: Trajectory) -> SceneTextures | None:
    """Texture lookups for every textured mesh of the trajectory (None when there are none)."""
    uvs, owner, textures = [], [], {}
    dev = traj.device
    for i, m in enumerate(traj.meshes):
        F = m.faces.shape[0]
        if m.texture is None:
            uvs.append(torch.zeros(F, 3, 2, device=dev))
        else:
            if m.uvs is None or m.uvs.shape[0] != F:
                got = "no" if m.uvs is None else m.uvs.shape[0]
                raise ValueError(f"entity {m.name!r}: {got} faces with UVs but the simulated "
                                 f"mesh has {F}")
            uvs.append(m.uvs.to(torch.float32))
            textures[i] = m.texture
        owner.append(torch.full((F,), i, dtype=torch.int64, device=dev))
    if not textures:
        return None
    corner_uv = torch.cat(uvs).reshape(-1, 2)
    n = corner_uv.shape[0] // 3
    return SceneTextures(corner_uv, torch.arange(3 * n, device=dev).reshape(n, 3),
                         torch.cat(owner), textures)
