"""Shadows for the render step: shadow maps of the scene's meshes and Gaussian clouds from each
shadow-casting light.

Both kinds of geometry cast shadows into the same maps (the nearer of the two per texel):

- triangle meshes (primitives, mesh files, bodies) through the mesh rasterizer
  (:func:`rendiff.kernels.shadow.mesh_depth_fn`);
- Gaussian clouds through the Gaussian rasterizer seen from the light: a texel is occupied where
  the clouds' accumulated alpha exceeds 0.5, at the clouds' expected depth there. That is the
  rule the camera view uses to give Gaussians a solid surface (depth, normal, ids), so a cloud's
  shadow has the outline and depth of the surface the camera sees, whatever the cloud's density,
  opacities and splat sizes. (Splatting the means as discs would need a radius chosen per cloud
  and leaks light through sparse clouds.) The occupied depth is pushed back, away from the light,
  by the texel's expected largest standard deviation (composited like a colour): a splatted
  surface is only defined to about one splat size along the ray, and the expected depths seen
  from the camera and from a grazing light differ by that much, so without it a cloud's lit side
  shadows itself in patches. Shadows cast onto other surfaces move by the same amount in depth
  only, which changes nothing unless a receiver is within one splat size of the cloud.

The Gaussian rasterizer is a pinhole renderer. Directional lights need an orthographic view, which
it renders this way: the pinhole is put a distance ``D`` (1000 times the clouds' extent) behind
the orthographic view's origin, with focal length ``f = s (D + z0)`` (``s`` the orthographic
scale, ``z0`` the mean depth), and each mean ``(x, y, z)`` is given to it at
``(x k, y k, z + D)`` with ``k = (D + z) / (D + z0)``. Then ``u = f x k / (z + D) + c = s x + c``
exactly, as in the orthographic view; the splats' footprints are off by ``|z - z0| / D`` (0.2 %
at most) and the depth of the mean reaches the splat's edges with a slope of ``x / D`` (0.1 %).
The expected depth less ``D`` is the orthographic depth. Float32 at that distance costs about
2e-4 of the extent in position and depth (a quarter of a texel in a 2048-texel map).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from rendiff import defaults
from rendiff.kernels.shadow import DepthFn, mesh_depth_fn, shadow_visibility

from .trajectory import LightState, Trajectory

__all__ = ["SceneShadows", "flat_meshes", "footprint_res", "gaussian_depth_fn",
           "scene_shadow_visibility"]

_ORTHO_DISTANCE = 1000.0  # pinhole distance for orthographic views, in units of the extent
_EXTENT_SIGMAS = 3.0  # a Gaussian reaches this many standard deviations from its mean
#: Texels of a directional light's map per camera pixel across the casters' footprint, when
#: Gaussian clouds are among the casters (a splat's shadow is soft over its own size; the map's
#: texel-splat pairs are most of a Gaussian scene's shadow cost). Maps of meshes alone are not
#: sized down: a mesh's depth pass costs little, and keeps its edges sharpest at full size.
TEXELS_PER_PIXEL = 1.0
#: The smallest directional map, in texels.
MIN_MAP = 128
#: A light-view texel of a Gaussian cloud stops compositing after the Gaussian that takes its
#: transmittance to this or below (the camera's pass, like gsplat, goes on to 1e-4). The map
#: needs whether the accumulated alpha passes ``defaults.ALPHA_SOLID``, which stopping above
#: 1 - ALPHA_SOLID leaves unchanged, and the expected depth, which the rest (at most 1% of the
#: weight) moves by at most 1% of its distance behind, far inside the push-back by a splat's
#: size. It shortens the compositing of a cloud seen from above, where each texel's list is long.
SHADOW_T_STOP = 0.01


def gaussian_depth_fn(
    means: Tensor,  # [N, 3] world centres
    quats: Tensor,  # [N, 4] (w, x, y, z)
    scales: Tensor,  # [N, 3] standard deviations
    opacities: Tensor,  # [N]
    near: float = 0.01,
) -> DepthFn:
    """A ``depth_fn`` (see :mod:`rendiff.kernels.shadow`) for Gaussian clouds: the expected
    depth where the accumulated alpha exceeds 0.5 seen from the light, +inf elsewhere;
    orthographic views through the far-pinhole substitution of the module docstring."""
    from rendiff.kernels.gaussian_raster import rasterize_gaussian_depth

    device = means.device
    # Composited like a colour: the expected largest standard deviation at each texel.
    sigma = scales.to(device=device, dtype=torch.float32).amax(-1, keepdim=True)

    def occupied(pass_: tuple[Tensor, Tensor, Tensor], shift: float = 0.0) -> Tensor:
        """Depth (less ``shift``) pushed back by the texel's expected largest standard
        deviation, where solid."""
        spread, depth, alpha = pass_
        push = spread[..., 0] / alpha.clamp_min(1e-6)
        return torch.where(alpha > defaults.ALPHA_SOLID, depth - shift + push, math.inf)

    def depth_fn(
        viewmat: Tensor,
        K: Tensor | None,
        width: int,
        height: int,
        ortho: tuple[float, float, float, float] | None = None,
    ) -> Tensor:
        view = torch.as_tensor(viewmat, dtype=torch.float32, device=device)
        if means.shape[0] == 0:
            return torch.full((height, width), math.inf, device=device)
        if ortho is None:
            return occupied(rasterize_gaussian_depth(means, quats, scales, opacities, sigma, view,
                                                     K, width, height, near=near,
                                                     t_stop=SHADOW_T_STOP))
        sx, sy, cx, cy = ortho
        cam = means.to(torch.float32) @ view[:3, :3].T + view[:3, 3]
        reach = _EXTENT_SIGMAS * float(scales.max())
        extent = float(cam.abs().max()) + reach + 1e-3
        dist = _ORTHO_DISTANCE * extent
        z0 = float(cam[:, 2].mean())
        k = (dist + cam[:, 2:]) / (dist + z0)
        warped = torch.cat([cam[:, :2] * k, cam[:, 2:] + dist], 1)
        f = dist + z0
        K_far = torch.tensor([[sx * f, 0.0, cx], [0.0, sy * f, cy], [0.0, 0.0, 1.0]],
                             device=device)
        # The rasterizer rotates means and covariances by the view: give it the rotation alone
        # and the warped means rotated back to world axes, so they land where they were put.
        rotation = torch.eye(4, device=device)
        rotation[:3, :3] = view[:3, :3]
        return occupied(rasterize_gaussian_depth(warped @ view[:3, :3], quats, scales,
                                                 opacities, sigma, rotation, K_far, width,
                                                 height, near=dist - extent,
                                                 far=dist + 2 * extent, t_stop=SHADOW_T_STOP),
                        dist)

    return depth_fn


def _min_depth_fn(fns: list[DepthFn]) -> DepthFn:
    """The nearest depth of several ``depth_fn``s, texel by texel."""

    def depth_fn(viewmat, K, width, height, ortho=None):  # noqa: ANN001, ANN202 - DepthFn
        maps = [fn(viewmat, K, width, height, ortho=ortho) for fn in fns]
        out = maps[0]
        for m in maps[1:]:
            out = torch.minimum(out, m.to(out.device))
        return out

    return depth_fn


def _flat(vertices: Tensor, faces: Tensor) -> tuple[Tensor, Tensor] | None:
    """(unit normal, point) of a mesh whose vertices all lie in one plane (a ground plane, a wall,
    a flat cloth), else None: the normal of its largest face, when every vertex is within 1e-6
    of the mesh's extent (at least 1 m) of that face's plane through its first vertex."""
    return _flat_frames(vertices[None], faces)[0]


def flat_meshes(traj: Trajectory, chunk: int = 32) -> list[list[tuple[Tensor, Tensor] | None]]:
    """``_flat`` of every mesh at every frame, [mesh][frame], computed a chunk of frames at a time
    (one set of tensor operations per mesh and chunk instead of per frame)."""
    out: list[list[tuple[Tensor, Tensor] | None]] = []
    for m in traj.meshes:
        per_frame: list[tuple[Tensor, Tensor] | None] = []
        for a in range(0, m.vertices.shape[0], chunk):
            v = m.vertices[a:a + chunk]
            if _maybe_flat(v):
                per_frame.extend(_flat_frames(v, m.faces))
            else:
                per_frame.extend([None] * v.shape[0])
        out.append(per_frame)
    return out


def _maybe_flat(vertices: Tensor) -> bool:
    """Whether any of frames [T, V, 3] could pass :func:`_flat_frames`' test, from the vertices'
    covariance alone (no faces): vertices within ``tol`` of a plane have a mean squared distance
    of at most ``tol^2`` from it, so the covariance's smallest eigenvalue (the least mean squared
    distance from any plane) is at most ``tol^2`` too. In double precision, where its rounding
    (1e-16 of the largest) is far below ``tol^2`` (1e-12 of the extent's square); a factor 4 of
    margin. A body or a box is turned away here without the cross products of every face."""
    if vertices.shape[1] < 4:
        return True
    v = vertices.to(torch.float64)
    rel = v - v.mean(1, keepdim=True)
    cov = rel.transpose(1, 2) @ rel / v.shape[1]  # [T, 3, 3]
    extent = (v - v[:, :1]).norm(dim=-1).amax(1).clamp_min(1.0)
    least = torch.linalg.eigvalsh(cov)[:, 0]
    return bool((least <= 4 * (1e-6 * extent) ** 2).any())


def _flat_frames(vertices: Tensor, faces: Tensor) -> list[tuple[Tensor, Tensor] | None]:
    """:func:`_flat` of frames [T, V, 3] of one mesh at once, [T]."""
    T = vertices.shape[0]
    if faces.shape[0] == 0:
        return [None] * T
    a, b, c = vertices[:, faces[:, 0]], vertices[:, faces[:, 1]], vertices[:, faces[:, 2]]
    areas = torch.linalg.cross(b - a, c - a, dim=-1)  # [T, F, 3]
    pick = areas.norm(dim=-1).argmax(dim=1)
    n = areas[torch.arange(T, device=vertices.device), pick]  # [T, 3]
    length = n.norm(dim=-1, keepdim=True)
    n = n / torch.where(length > 0, length, 1.0)
    p0 = vertices[:, 0]
    rel = vertices - p0[:, None]
    extent = rel.norm(dim=-1).amax(1).clamp_min(1.0)
    off = torch.bmm(rel, n[:, :, None])[..., 0].abs().amax(1)
    flat = ((length[:, 0] > 0) & (off <= 1e-6 * extent)).tolist()
    return [(n[t], p0[t]) if flat[t] else None for t in range(T)]


def _plane_reach(planes: list[tuple[Tensor, Tensor]], points_cam: Tensor, mask: Tensor,
                 view: Tensor, K: Tensor) -> list[tuple[float, ...]]:
    """For each plane (world unit normal, point): the least and greatest signed distance of the
    masked camera-space points [H, W, 3] (camera ``view``, intrinsics ``K``) from it, a bound on
    their distance from the plane's point (their farthest distance from the camera, bounded by
    the largest depth and the image's widest ray, plus the camera's distance from the plane's
    point), then the normal and the point, as Python floats (9 per plane). One product and one
    reduction over the pixels, in camera space, and one transfer for all the planes of a frame;
    needs a masked point."""
    n = torch.stack([pl[0] for pl in planes])  # [F, 3] world
    p0 = torch.stack([pl[1] for pl in planes])
    R, t = view[:3, :3], view[:3, 3]
    n_cam = n @ R.T  # the normals in camera axes
    offset = (n * p0).sum(1) + n_cam @ t  # n . p0 in camera space: n_c . (R p0 + t)
    rows = torch.cat([n_cam, torch.tensor([[0.0, 0.0, 1.0]], device=n.device)])  # [F + 1, 3]
    proj = rows @ points_cam.reshape(-1, 3).T  # [F + 1, HW]: distances + offset, and depths
    proj[:-1] -= offset[:, None]
    signed = torch.cat([proj[:-1], -proj[:-1], proj[-1:]])  # [2F + 1, HW]
    top = torch.where(mask.reshape(1, -1), signed, -math.inf).amax(1).tolist()
    f = len(planes)
    eye = -(R.T @ t)
    height, width = mask.shape
    (fx, _, cx), (_, fy, cy), _ = K.tolist()
    ray = math.hypot(1.0, max(cx, width - cx) / fx, max(cy, height - cy) / fy)  # / depth
    from_eye = (p0 - eye).norm(dim=1).tolist()
    geo = torch.cat([n, p0], 1).tolist()
    return [(-top[f + i], top[i], top[-1] * ray + from_eye[i], *geo[i]) for i in range(f)]


def _shadows_nothing(light: LightState, reach: tuple[float, ...]) -> bool:
    """Whether a flat mesh can shadow none of the visible points from this light: every point
    lies on the light's side of the mesh's plane (or within 0.1 mm per 1 m of scene of it, for
    the plane's own pixels), so no ray from the light to a point crosses the plane. ``reach``:
    the plane's row of :func:`_plane_reach`."""
    lo, hi, far = reach[:3]
    n, p0 = reach[3:6], reach[6:9]
    if light.type == "directional":
        side = -sum(a * b for a, b in zip(n, light.direction, strict=True))
    else:
        side = sum(a * (b - c) for a, b, c in zip(n, light.position, p0, strict=True))
    if abs(side) < 1e-9:
        return False  # the light lies in the plane: keep it (it casts an edge-on shadow)
    tol = 1e-4 * max(far, 1.0)
    return lo >= -tol if side > 0 else hi <= tol


class _Casters:
    """One set of shadow casters (meshes by index into ``traj.meshes``, and every Gaussian
    cloud) over the whole clip: their faces joined once, and their world box at every frame
    (meshes' vertices, and every Gaussian to 3 standard deviations, padded by 5 cm: shadows only
    fall inside its footprint along the light, so a directional map covers just that) computed
    a chunk of frames at a time."""

    #: Frames per reduction of the Gaussians' boxes (bounds the temporary [frames, N, 3]).
    CHUNK = 16

    def __init__(self, traj: Trajectory, casters: list[int]) -> None:
        meshes = [traj.meshes[i] for i in casters]
        self.meshes = meshes
        self.clouds = [g for g in traj.gaussians if g.means.shape[1]]
        self.faces = None
        if meshes:
            sizes = [0] + [m.vertices.shape[1] for m in meshes]
            offsets = torch.cumsum(torch.tensor(sizes, device=traj.device), 0)
            self.faces = torch.cat([m.faces + offsets[i] for i, m in enumerate(meshes)])
        if self.clouds:
            self.opacities = torch.cat([g.opacities for g in self.clouds])
        lo, hi = [], []  # [T, 3] each
        for m in meshes:
            lo.append(m.vertices.amin(1))
            hi.append(m.vertices.amax(1))
        for g in self.clouds:
            scales = (g.scales if g.frame_scales is None else g.frame_scales)
            reach = _EXTENT_SIGMAS * scales.amax(-1, keepdim=True)  # [N, 1] or [T, N, 1]
            parts_lo, parts_hi = [], []
            for a in range(0, g.means.shape[0], self.CHUNK):
                means = g.means[a:a + self.CHUNK]
                r = reach if reach.dim() == 2 else reach[a:a + self.CHUNK]
                parts_lo.append((means - r).amin(1))
                parts_hi.append((means + r).amax(1))
            lo.append(torch.cat(parts_lo))
            hi.append(torch.cat(parts_hi))
        self.bounds = None
        if lo:
            pad = 0.05
            self.bounds = (torch.stack(lo).amin(0) - pad, torch.stack(hi).amax(0) + pad)

    def box(self, k: int) -> tuple[Tensor, Tensor] | None:
        """The casters' world box at frame k (padded by 5 cm), or None without casters."""
        return None if self.bounds is None else (self.bounds[0][k], self.bounds[1][k])

    def depth_fn(self, k: int) -> DepthFn | None:
        """One ``depth_fn`` for the casters at frame k."""
        fns: list[DepthFn] = []
        if self.meshes:
            verts = torch.cat([m.vertices[k] for m in self.meshes])
            fns.append(mesh_depth_fn(verts, self.faces))
        if self.clouds:
            def cat(parts: list[Tensor]) -> Tensor:
                return parts[0] if len(parts) == 1 else torch.cat(parts)
            fns.append(gaussian_depth_fn(
                cat([g.means[k] for g in self.clouds]), cat([g.quats[k] for g in self.clouds]),
                cat([g.scales_at(k) for g in self.clouds]), self.opacities,
            ))  # fmt: skip
        if not fns:
            return None
        return fns[0] if len(fns) == 1 else _min_depth_fn(fns)


def footprint_res(bounds: tuple[Tensor, Tensor], viewmat: Tensor, K: Tensor, cap: int,
                  texels_per_pixel: float = TEXELS_PER_PIXEL) -> int:
    """Texels across a directional light's map of the casters in ``bounds`` (world box): the
    map covers their bounding sphere (:func:`rendiff.kernels.shadow.ortho_view`), sampled
    ``texels_per_pixel`` times as finely as the camera sees that sphere's diameter at its centre,
    between :data:`MIN_MAP` and ``cap``. Casters that fill the view get about ``texels_per_pixel``
    times the image's size; small or distant ones a smaller map with the same texels per pixel;
    a camera inside the sphere gets ``cap``."""
    lo, hi = bounds
    radius = float((hi - lo).norm()) / 2.0
    eye = -viewmat[:3, :3].T @ viewmat[:3, 3]
    dist = float(((lo + hi) / 2 - eye).norm())
    if dist <= radius:
        return cap
    across = 2.0 * radius * float(torch.maximum(K[0, 0], K[1, 1])) / dist  # pixels
    return int(min(cap, max(MIN_MAP, math.ceil(texels_per_pixel * across))))


def scene_shadow_visibility(traj: Trajectory, k: int, points_cam: Tensor, mask: Tensor,
                            res: int | None = None,
                            flat: list[tuple[Tensor, Tensor] | None] | None = None) -> Tensor:
    """Per-light visibility [L, H, W] (1 lit, 0 shadowed) for frame k, in the order of the lights
    that :func:`rendiff.engine.renderer.lights_in_camera` lists (ambient and environment lights
    skipped): :class:`SceneShadows` for one frame (a render makes one for all its frames).
    ``flat``: each mesh's plane at frame k as :func:`flat_meshes` gives it (computed here when
    not given)."""
    if flat is None:
        flat = [_flat(m.vertices[k], m.faces) for m in traj.meshes]
    planes = [[f] * traj.frames for f in flat]  # the same at every frame: only frame k is read
    return SceneShadows(traj, res, flat=planes)(k, points_cam, mask)


class SceneShadows:
    """The shadow pass of a render: per-light visibility [L, H, W] (1 lit, 0 shadowed) at each
    frame, in the order of the lights that :func:`rendiff.engine.renderer.lights_in_camera`
    lists (ambient and environment lights skipped). Lights with ``shadows: false`` get all ones.

    Meshes and Gaussian clouds cast shadows, except a flat mesh (a ground plane, a wall) that
    every visible point lies in front of, seen from the light: it can shadow nothing, so it is
    left out of that light's map, which then covers only what can cast. A directional light's
    map covers the casters, ``res`` texels square (default twice the image's larger side, 256 to
    2048) or, with Gaussian clouds among the casters, one texel per pixel of their span in the
    camera (:func:`footprint_res`, at most ``res``); spot and point lights get ``res // 2`` per
    view.

    What does not change from frame to frame is worked out once, for the whole clip: which
    meshes are flat (``flat``: [mesh][frame] as :func:`flat_meshes` gives it, computed here when
    not given), each set of casters' joined faces and its world box at every frame.
    """

    def __init__(self, traj: Trajectory, res: int | None = None,
                 flat: list[list[tuple[Tensor, Tensor] | None]] | None = None) -> None:
        if res is None:
            res = min(2048, max(256, 2 * max(traj.cameras.width, traj.cameras.height)))
        self.traj = traj
        self.res = res
        self.flat = flat_meshes(traj) if flat is None else flat
        self._casters: dict[tuple[int, ...], _Casters] = {}

    def casters(self, meshes: tuple[int, ...]) -> _Casters:
        """The caster set of these meshes (and every Gaussian cloud), made once per render."""
        if meshes not in self._casters:
            self._casters[meshes] = _Casters(self.traj, list(meshes))
        return self._casters[meshes]

    def __call__(self, k: int, points_cam: Tensor, mask: Tensor) -> Tensor:
        """Visibility [L, H, W] at frame k of the camera-space points [H, W, 3] under ``mask``."""
        traj = self.traj
        H, W = mask.shape
        lights = [li for li in traj.lights[k] if li.type not in ("ambient", "environment")]
        out = torch.ones(len(lights), H, W, device=mask.device)
        if not any(li.shadows for li in lights) or not bool(mask.any()):
            return out
        view, K = traj.cameras.viewmats[k], traj.cameras.K[k]
        R, t = view[:3, :3], view[:3, 3]
        pts_world = (points_cam - t) @ R  # R^T (p - t), row-wise
        flats = {i: planes[k] for i, planes in enumerate(self.flat) if planes[k] is not None}
        reach = {}
        if flats:
            rows = _plane_reach(list(flats.values()), points_cam, mask, view, K)
            reach = dict(zip(flats, rows, strict=True))
        frame_fns: dict[tuple[int, ...], DepthFn | None] = {}
        for i, light in enumerate(lights):
            if not light.shadows:
                continue
            meshes = tuple(j for j in range(len(traj.meshes))
                           if j not in flats or not _shadows_nothing(light, reach[j]))
            casters = self.casters(meshes)
            if meshes not in frame_fns:
                frame_fns[meshes] = casters.depth_fn(k)
            depth_fn, bounds = frame_fns[meshes], casters.box(k)
            if depth_fn is None:
                continue
            res = self.res
            if light.type == "directional":
                # Gaussian casters: a map sized to their footprint (mesh casters cost little:
                # theirs keeps the full size, for the sharpest edges)
                size = footprint_res(bounds, view, K, res) if casters.clouds else res
                out[i] = shadow_visibility(pts_world, mask, "directional", None, light.direction,
                                           depth_fn, res=size, scene_bounds=bounds)
            elif light.type == "spot":
                out[i] = shadow_visibility(pts_world, mask, "spot", light.position,
                                           light.direction, depth_fn, res=res // 2,
                                           cos_outer=math.cos(math.radians(light.angle_deg) / 2))
            elif light.type == "point":
                out[i] = shadow_visibility(pts_world, mask, "point", light.position, None,
                                           depth_fn, res=res // 2)
        return out
