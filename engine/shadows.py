"""Shadows for the render step: shadow maps of the scene's meshes from each shadow-casting light.

Triangle meshes (primitives, mesh files, bodies) cast shadows. Gaussian clouds receive shadows but
do not cast them yet (their orthographic light view needs a Gaussian depth pass).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from rendiff.kernels.shadow import mesh_depth_fn, shadow_visibility
from rendiff.scenes.spec import Ambient, Directional, Environment, Plane, Point, Spot

from .simulate import Trajectory

__all__ = ["scene_shadow_visibility"]


def _caster_bounds(traj: Trajectory, k: int) -> tuple[Tensor, Tensor] | None:
    """World box of everything but ground planes at frame k: shadows only fall inside its
    footprint along the light, so the directional shadow map covers just that."""
    planes = {e.name for e in traj.scene.entities if isinstance(e.geometry, Plane)}
    pts = [m.vertices[k] for m in traj.meshes if m.name not in planes]
    if not pts:
        return None
    p = torch.cat(pts)
    pad = 0.05
    return p.amin(0) - pad, p.amax(0) + pad


def scene_shadow_visibility(traj: Trajectory, k: int, points_cam: Tensor, mask: Tensor,
                            res: int | None = None) -> Tensor:
    """Per-light visibility [L, H, W] (1 lit, 0 shadowed) for frame k, in the order of the lights
    that :func:`rendiff.engine.render.lights_in_camera` lists (ambient and environment lights
    skipped). Lights with ``shadows: false`` get all ones. The shadow map is ``res`` texels
    square (default twice the image's larger side, 256 to 2048)."""
    scene = traj.scene
    if res is None:
        res = min(2048, max(256, 2 * max(traj.cameras.width, traj.cameras.height)))
    view = traj.cameras.viewmats[k]
    R, t = view[:3, :3], view[:3, 3]
    pts_world = (points_cam - t) @ R  # R^T (p - t), row-wise
    H, W = mask.shape
    lights = [li for li in scene.lights if not isinstance(li, Ambient | Environment)]
    out = torch.ones(len(lights), H, W)
    if not traj.meshes:
        return out
    verts = torch.cat([m.vertices[k] for m in traj.meshes])
    offsets = torch.cumsum(torch.tensor([0] + [m.vertices.shape[1] for m in traj.meshes]), 0)
    faces = torch.cat([m.faces + offsets[i] for i, m in enumerate(traj.meshes)])
    depth_fn = mesh_depth_fn(verts, faces)
    bounds = _caster_bounds(traj, k)
    for i, light in enumerate(lights):
        if not getattr(light, "shadows", False):
            continue
        if isinstance(light, Directional):
            if bounds is None:
                continue
            out[i] = shadow_visibility(pts_world, mask, "directional", None, light.direction,
                                       depth_fn, res=res, scene_bounds=bounds)
        elif isinstance(light, Spot):
            out[i] = shadow_visibility(pts_world, mask, "spot", light.position, light.direction,
                                       depth_fn, res=res // 2,
                                       cos_outer=math.cos(math.radians(light.angle_deg) / 2))
        elif isinstance(light, Point):
            out[i] = shadow_visibility(pts_world, mask, "point", light.position, None, depth_fn,
                                       res=res // 2)
    return out
