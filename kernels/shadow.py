"""Shadow maps: how much of a light reaches each visible surface point.

A shadow map is the depth of the scene seen from the light. A surface point is lit when it is not
farther from the light than the map's depth where it projects (less a small bias); percentage-closer
filtering (PCF) averages that test over the (2 pcf + 1)^2 texels around the projection, which
softens the edge over about 2 pcf + 1 texels.

Light views (all OpenCV axes: x right, y down, z forward, along the light):

- directional: an orthographic view along the light (`ortho_view`) covering the scene's bounding
  sphere; a texel is ``2 r / res`` metres wide. Image coordinates are u = sx x + cx, v = sy y + cy
  and the depth is the light-camera z.
- spot: one perspective view along the spot's axis whose half field of view covers the outer cone
  (`perspective_view`), when that half angle is at most 60 degrees; wider spots are treated as
  point lights. Points outside the frustum are reported lit, as the spot's cone already leaves
  them dark in shading.
- point: a cube map, six 90-degree perspective views along +-x, +-y, +-z. A point uses the face of
  its largest light-to-point coordinate; PCF taps are clamped to that face, so filtering is
  one-sided across the cube's seams.

The depth maps come from a caller-supplied ``depth_fn(viewmat, K, width, height, ortho=None)``
returning camera z [height, width] (+inf where empty): ``K`` [3, 3] for a perspective view, or
``K=None`` and ``ortho=(sx, sy, cx, cy)`` for an orthographic one. `mesh_depth_fn` builds one for a
triangle mesh from ``rendiff.kernels.mesh_raster.rasterize_depth`` (the rasterizer's depth alone:
no face ids or barycentrics are resolved), which is pinhole-only; it renders an orthographic view
exactly through the pinhole rasterizer with this substitution: a vertex at ortho-camera (x, y, z)
is given to the rasterizer at (x w, y w, w) with w = 2 s / (C - z), where C = z_max + s and s the
mesh's z extent, and an identity view with
K = [[sx, 0, cx], [0, sy, cy], [0, 0, 1]]. Then u = sx x + cx exactly, 1 / w = (C - z) / (2 s) is
affine in z and so (for an orthographic view) affine in screen space, which is exactly what the
rasterizer interpolates; the nearest w is the nearest z, and z = C - 2 s / w is recovered per
pixel without approximation. (Only depth is valid this way; barycentrics are not.) The
substituted vertices' screen rows (u, v, 1 / w) are written directly, one per vertex gathered per
face, and handed to the z-buffer (``mesh_raster.rasterize_screen_depth``): nothing lies near the
pinhole, so there is nothing to clip and no general camera set-up to run.

All of it is torch (gathers and comparisons), so it runs on any device; on CPU tensors the PCF
lookup runs compiled (``rendiff.kernels.warp_cpu.pcf_lookup``, bit for bit the torch one) unless
``RENDIFF_CPU_KERNELS=torch``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from ._dispatch import use_warp_cpu

__all__ = [
    "DepthFn",
    "mesh_depth_fn",
    "ortho_view",
    "perspective_view",
    "shadow_visibility",
]

DepthFn = Callable[..., Tensor]
"""``depth_fn(viewmat [4, 4], K [3, 3] | None, width, height, ortho=None) -> depth [h, w]``."""

_KINDS = {"directional": 0, "point": 1, "spot": 2}
_MAX_SPOT_HALF_ANGLE = math.radians(60.0)
_DEFAULT_SLOPE = math.tan(math.radians(60.0))


def _look_along(eye: Tensor | Sequence[float], forward: Tensor | Sequence[float]) -> Tensor:
    """World-to-camera [4, 4] float32 for a camera at ``eye`` looking along ``forward`` (made a
    unit vector here), worked out in double precision on the host: a handful of 3-vectors, where
    each tensor operation would cost more than the arithmetic."""
    e, f = _floats(eye), _unit(_floats(forward))
    up = (0.0, 0.0, 1.0) if abs(f[2]) <= 0.9 else (1.0, 0.0, 0.0)
    right = _unit(_cross(f, up))
    down = _cross(f, right)
    rows = [right, down, f]
    view = [[*r, -sum(a * b for a, b in zip(r, e, strict=True))] for r in rows]
    return torch.tensor([*view, [0.0, 0.0, 0.0, 1.0]], dtype=torch.float32, device="cpu")


def _floats(v: Tensor | Sequence[float]) -> list[float]:
    """A 3-vector (tensor or sequence) as Python floats."""
    return [float(x) for x in (v.tolist() if isinstance(v, Tensor) else v)]


def _cross(a: Sequence[float], b: Sequence[float]) -> list[float]:
    return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]


def _unit(v: Sequence[float]) -> list[float]:
    n = math.sqrt(sum(x * x for x in v))
    return [x / max(n, 1e-12) for x in v]


def ortho_view(
    light_dir: Tensor | Sequence[float],  # [3] direction the light travels
    scene_bounds: tuple[Tensor | Sequence[float], Tensor | Sequence[float]],  # ([3] lo, [3] hi)
    res: int = 512,
) -> tuple[Tensor, tuple[float, float, float, float]]:
    """Orthographic light view covering the bounding sphere of an axis-aligned world box.

    The camera sits one radius before the sphere's centre, looking along the light, so the
    scene has light-camera z in [0, 2 r].

    Returns:
        viewmat: [4, 4] world-to-light-camera.
        ortho: (sx, sy, cx, cy) with u = sx x + cx, v = sy y + cy for a res x res map.
    """
    d = _unit(_floats(light_dir))
    lo, hi = _floats(scene_bounds[0]), _floats(scene_bounds[1])
    radius = max(math.dist(lo, hi) / 2.0, 1e-6)
    view = _look_along([(a + b) / 2 - c * radius for a, b, c in zip(lo, hi, d, strict=True)], d)
    scale = res / (2.0 * radius)
    return view, (scale, scale, res / 2.0, res / 2.0)


def perspective_view(
    light_pos: Tensor | Sequence[float],  # [3]
    forward: Tensor | Sequence[float],  # [3]
    half_fov: float,
    res: int = 512,
) -> tuple[Tensor, Tensor]:
    """Square perspective light view at ``light_pos`` along ``forward`` with half field of view
    ``half_fov`` (radians, < pi / 2).

    Returns:
        viewmat: [4, 4] world-to-light-camera.
        K: [3, 3] intrinsics of a res x res map.
    """
    f = (res / 2.0) / math.tan(half_fov)
    K = torch.tensor([[f, 0.0, res / 2.0], [0.0, f, res / 2.0], [0.0, 0.0, 1.0]], device="cpu")
    return _look_along(light_pos, forward), K


def _lookup(
    depth: Tensor, u: Tensor, v: Tensor, z: Tensor, bias: Tensor, pcf: int, clamp: bool = False
) -> Tensor:
    """PCF shadow test of points at map coordinates (u, v) with light-camera depth z [M].

    A point with z <= 0, or whose own texel is off the map (unless ``clamp``: cube faces, where
    a point on a seam may land a rounding error past the edge), is lit; taps are clamped to the
    map.
    """
    if use_warp_cpu(depth.device):
        from . import warp_cpu

        return warp_cpu.pcf_lookup(depth, u, v, z, bias, pcf, clamp)
    h, w = depth.shape
    j, i = torch.floor(u).long(), torch.floor(v).long()
    on_map = z > 0
    if not clamp:
        on_map = on_map & (j >= 0) & (j < w) & (i >= 0) & (i < h)
    # Taps clamped to the map = taps into the map padded by replicating its edge. Points are
    # first clamped one texel past the edge (a cube-face point a rounding error off its face);
    # farther ones are off the map and lit, whatever their taps read.
    pad = pcf + 1
    padded = torch.nn.functional.pad(depth[None, None], (pad, pad, pad, pad),
                                     mode="replicate")[0, 0].reshape(-1)
    stride = w + 2 * pad
    centre = (i.clamp(-1, h) + pad) * stride + (j.clamp(-1, w) + pad)
    reach = z - bias
    lit = torch.zeros(z.shape, dtype=torch.int32, device=z.device)
    for di in range(-pcf, pcf + 1):
        for dj in range(-pcf, pcf + 1):
            lit += padded.take(centre + (di * stride + dj)) >= reach
    return torch.where(on_map, lit.to(z.dtype) / (2 * pcf + 1) ** 2, torch.ones_like(z))


def _bias(texel: Tensor, bias: float | None, slope: Tensor, pcf: int) -> Tensor:
    """Depth bias per point: the given constant, or one texel plus the depth change a surface of
    the given slope (tan of the light's angle to the normal) makes over the farthest PCF tap."""
    if bias is not None:
        return torch.full_like(texel, float(bias))
    return texel * (1.0 + math.sqrt(2.0) * (pcf + 1) * slope)


def _slope(normals: Tensor | None, to_light: Tensor) -> Tensor | float:
    """tan of the angle between surface normals [M, 3] and unit directions to the light [M, 3]
    (clamped to 10), or the default slope when normals are not given."""
    if normals is None:
        return _DEFAULT_SLOPE
    cos = (torch.nn.functional.normalize(normals, dim=-1) * to_light).sum(-1).abs()
    cos = cos.clamp(0.0995, 1.0)
    return (1.0 - cos * cos).sqrt() / cos


def _perspective_test(
    pts: Tensor, view: Tensor, K: Tensor, depth: Tensor, bias: float | None, pcf: int,
    normals: Tensor | None, light_pos: Tensor, clamp: bool = False,
) -> Tensor:  # fmt: skip
    cam = pts @ view[:3, :3].T + view[:3, 3]
    z = cam[:, 2]
    zs = z.clamp_min(1e-9)
    u = K[0, 0] * cam[:, 0] / zs + K[0, 2]
    v = K[1, 1] * cam[:, 1] / zs + K[1, 2]
    to_light = torch.nn.functional.normalize(light_pos - pts, dim=-1)
    b = _bias(zs / K[0, 0], bias, _slope(normals, to_light), pcf)
    return _lookup(depth, u, v, z, b, pcf, clamp)


def shadow_visibility(
    points_world: Tensor,  # [H, W, 3]
    mask: Tensor,  # [H, W] bool
    light_kind: int | str,
    light_pos: Tensor | Sequence[float] | None,
    light_dir: Tensor | Sequence[float] | None,
    depth_fn: DepthFn,
    res: int = 512,
    bias: float | None = None,
    pcf: int = 1,
    *,
    scene_bounds: tuple[Tensor | Sequence[float], Tensor | Sequence[float]] | None = None,
    cos_outer: float | None = None,
    normals_world: Tensor | None = None,  # [H, W, 3]
) -> Tensor:
    """Fraction of one light reaching each surface point, from shadow maps.

    Args:
        points_world: [H, W, 3] world positions of the visible surface.
        mask: [H, W] bool, pixels with a surface; others get 1.
        light_kind: 0 / "directional", 1 / "point" or 2 / "spot" (as in ``LightSet.kind``).
        light_pos: [3] world position (point and spot lights).
        light_dir: [3] direction the light travels (directional and spot lights).
        depth_fn: renders the scene's depth from a light view (see the module docstring).
        res: shadow map size in texels (each cube face for point lights).
        bias: depth offset in metres against self-shadowing; None picks one per point from its
            texel footprint and surface slope (from ``normals_world``, else assuming up to 60
            degrees between normal and light).
        pcf: filter radius in texels (0 = one tap, 1 = 3 x 3, ...).
        scene_bounds: ([3] lo, [3] hi) world box holding every occluder, for directional lights;
            default: the box of the masked points (occluders outside it cast no shadow).
        cos_outer: cosine of a spot light's outer half angle; None treats the spot as a point.
        normals_world: [H, W, 3] surface normals, for the automatic bias.
    Returns:
        [H, W] float32 in [0, 1]: 1 lit, 0 in shadow.
    """
    kind = _KINDS[light_kind] if isinstance(light_kind, str) else int(light_kind)
    H, W = mask.shape
    device = points_world.device
    out = torch.ones(H, W, dtype=torch.float32, device=device)
    if not bool(mask.any()):
        return out
    fused = use_warp_cpu(device)  # directional and spot lights: one compiled pass per pixel

    @functools.cache
    def masked() -> tuple[Tensor, Tensor | None]:
        """The masked points [M, 3] and normals [M, 3] (or None), gathered once if needed."""
        return (points_world[mask].to(torch.float32),
                None if normals_world is None else normals_world[mask].to(torch.float32))

    def on(x: Tensor) -> Tensor:
        return x.to(device=device, dtype=torch.float32)

    if kind == 0:
        d = torch.as_tensor(light_dir, dtype=torch.float32, device="cpu")
        d = torch.nn.functional.normalize(d, dim=0)
        if scene_bounds is None:
            pts = masked()[0]
            scene_bounds = (pts.amin(0).cpu(), pts.amax(0).cpu())
        view, ortho = ortho_view(d, scene_bounds, res)
        depth = on(depth_fn(view, None, res, res, ortho=ortho))
        if fused:
            from . import warp_cpu

            return warp_cpu.shadow_test(points_world, mask, normals_world, view, ortho, True, -d,
                                        bias, _DEFAULT_SLOPE, depth, pcf, False)
        pts, normals = masked()
        view = on(view)
        cam = pts @ view[:3, :3].T + view[:3, 3]
        sx, sy, cx, cy = ortho
        texel = torch.full_like(cam[:, 2], 1.0 / sx)
        b = _bias(texel, bias, _slope(normals, on(-d).expand_as(pts)), pcf)
        vis = _lookup(depth, sx * cam[:, 0] + cx, sy * cam[:, 1] + cy, cam[:, 2], b, pcf)
        out[mask] = vis
        return out

    pos = torch.as_tensor(light_pos, dtype=torch.float32, device=device)
    if kind == 2 and cos_outer is not None:
        half = math.acos(max(min(float(cos_outer), 1.0), -1.0))
        if half <= _MAX_SPOT_HALF_ANGLE:
            axis = torch.as_tensor(light_dir, dtype=torch.float32, device="cpu")
            view, K = perspective_view(pos.cpu(), axis, half + 0.02, res)
            depth = on(depth_fn(view, K, res, res, ortho=None))
            if fused:
                from . import warp_cpu

                proj = (float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]))
                return warp_cpu.shadow_test(points_world, mask, normals_world, view, proj, False,
                                            pos.cpu(), bias, _DEFAULT_SLOPE, depth, pcf, False)
            pts, normals = masked()
            out[mask] = _perspective_test(pts, on(view), on(K), depth, bias, pcf, normals, pos)
            return out

    pts, normals = masked()
    rel = pts - pos
    axis = rel.abs().argmax(-1)
    sign = torch.gather(rel, 1, axis[:, None])[:, 0] >= 0
    face = axis * 2 + (~sign).long()  # +x, -x, +y, -y, +z, -z
    vis = torch.ones(pts.shape[0], dtype=torch.float32, device=device)
    for f in range(6):
        sel = face == f
        if not bool(sel.any()):
            continue
        forward = torch.zeros(3, device="cpu")  # the light's views are set up on the CPU
        forward[f // 2] = 1.0 if f % 2 == 0 else -1.0
        view, K = perspective_view(pos.cpu(), forward, math.pi / 4, res)
        depth = on(depth_fn(view, K, res, res, ortho=None))
        sel_normals = normals[sel] if normals is not None else None
        vis[sel] = _perspective_test(
            pts[sel], on(view), on(K), depth, bias, pcf, sel_normals, pos, clamp=True
        )
    out[mask] = vis
    return out


def mesh_depth_fn(
    verts: Tensor,  # [V, 3] world positions
    faces: Tensor,  # [F, 3] int
    near: float = 0.01,
) -> DepthFn:
    """A ``depth_fn`` for one triangle mesh (concatenate the scene's meshes first), rendering
    perspective views with ``rasterize_depth`` and orthographic ones through the exact
    substitution described in the module docstring."""
    from rendiff.kernels.mesh_raster import rasterize_depth, rasterize_screen_depth

    def depth_fn(
        viewmat: Tensor,
        K: Tensor | None,
        width: int,
        height: int,
        ortho: tuple[float, float, float, float] | None = None,
    ) -> Tensor:
        view = torch.as_tensor(viewmat, dtype=torch.float32, device=verts.device)
        if ortho is None:
            return rasterize_depth(verts, faces, view, K, width, height, near=near)
        cam = verts.to(torch.float32) @ view[:3, :3].T + view[:3, 3]
        if cam.shape[0] == 0 or faces.shape[0] == 0:
            return torch.full((height, width), math.inf, device=verts.device)
        z_min, z_max = torch.aminmax(cam[:, 2])
        z_min, z_max = float(z_min), float(z_max)
        span = max(z_max - z_min, 1e-3)
        c = z_max + span
        # Each vertex's screen row as the pinhole rasterizer would set up (x w, y w, w) under
        # K = [[sx, 0, cx], [0, sy, cy], [0, 0, 1]]: u = sx x + cx, v = sy y + cy and
        # 1 / w = (c - z) / (2 s) in [1/2, 1] (nothing near the pinhole: nothing to clip),
        # computed per vertex and gathered per face.
        sx, sy, cx, cy = ortho
        per_vertex = torch.stack([cam[:, 0] * sx + cx, cam[:, 1] * sy + cy,
                                  (c - cam[:, 2]) / (2.0 * span)], -1)
        tri = per_vertex[faces.to(device=verts.device, dtype=torch.int64)]  # [F, 3, 3]
        screen = torch.cat([tri[..., :2].reshape(-1, 6), tri[..., 2]], 1).contiguous()
        wd = rasterize_screen_depth(screen, height, width)
        if use_warp_cpu(wd.device):  # one pass over the map instead of four
            from .warp_cpu import affine_reciprocal_

            return affine_reciprocal_(wd, c, 2.0 * span)
        return torch.where(torch.isfinite(wd), c - 2.0 * span / wd, wd)

    return depth_fn
