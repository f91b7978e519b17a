"""A scene's camera and its path evaluated at every frame time, as :class:`CameraFrames`."""

from __future__ import annotations

import torch
from torch import Tensor

from rendiff.scenes.spec import (
    Camera,
    DollyPath,
    FollowPath,
    KeyframedPath,
    OrbitPath,
    StaticPath,
)

from .camera import CameraFrames, interpolate_points, intrinsics, look_at

__all__ = ["camera_frames"]


def camera_frames(
    camera: Camera,
    width: int,
    height: int,
    times: Tensor,
    entity_positions: dict[str, Tensor] | None = None,
) -> CameraFrames:
    """Evaluates a scene camera at every frame time.

    Args:
        camera: the scene's camera spec.
        width, height: image size in pixels.
        times: [T] seconds.
        entity_positions: name -> [T, 3] world positions, needed by a ``follow`` path.
    """
    T = times.shape[0]
    path = camera.path
    if isinstance(path, StaticPath):
        eye = torch.tensor(path.eye).expand(T, 3)
        target = torch.tensor(path.target).expand(T, 3)
    elif isinstance(path, OrbitPath):
        frac = times / times[-1] if T > 1 and float(times[-1]) > 0 else torch.zeros(T)
        az = torch.deg2rad(path.start_deg + path.degrees * frac)
        tgt = torch.tensor(path.target)
        eye = torch.stack(
            [tgt[0] + path.radius * torch.cos(az), tgt[1] + path.radius * torch.sin(az),
             torch.full((T,), tgt[2] + path.height)], dim=-1,
        )
        target = tgt.expand(T, 3)
    elif isinstance(path, DollyPath):
        frac = (times / times[-1] if T > 1 and float(times[-1]) > 0 else torch.zeros(T))[:, None]
        a, b = torch.tensor(path.start), torch.tensor(path.end)
        eye = a + (b - a) * frac
        target = torch.tensor(path.target).expand(T, 3)
    elif isinstance(path, KeyframedPath):
        cubic = path.interpolation == "cubic"
        eye = interpolate_points(path.times, torch.tensor(path.eyes), times, cubic)
        target = interpolate_points(path.times, torch.tensor(path.targets), times, cubic)
    elif isinstance(path, FollowPath):
        if entity_positions is None or path.entity not in entity_positions:
            raise ValueError(f"camera.path.entity: {path.entity!r} has no trajectory")
        pos = entity_positions[path.entity].float()
        if path.smoothing > 0:
            a = 1.0 - path.smoothing
            smoothed = [pos[0]]
            for k in range(1, T):
                smoothed.append(smoothed[-1] + a * (pos[k] - smoothed[-1]))
            pos = torch.stack(smoothed)
        # Look at a fixed height above the ground under the entity; keep the offset from it.
        target = pos.clone()
        target[:, 2] = path.look_height
        eye = target + torch.tensor(path.offset)
    else:  # pragma: no cover - the spec's union is exhaustive
        raise TypeError(f"unknown camera path {type(path).__name__}")

    if camera.K is not None:
        K = torch.tensor(camera.K, dtype=torch.float32)
    else:
        K = intrinsics(width, height, camera.fov_deg)
    return CameraFrames(
        K=K.expand(T, 3, 3).clone(),
        viewmats=look_at(eye.float(), target.float()),
        width=width,
        height=height,
        near=camera.near,
        far=camera.far,
    )
