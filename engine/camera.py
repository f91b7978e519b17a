"""Pinhole cameras over a clip (the scene file's camera paths: :mod:`.camera_paths`).

OpenCV convention: x right, y down, z forward; ``K`` [3, 3] in pixels; ``viewmat`` [4, 4]
world-to-camera (gsplat's viewmats). World up is +Z.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["CameraFrames", "intrinsics", "look_at", "interpolate_points"]


@dataclass
class CameraFrames:
    """A camera over a clip."""

    K: Tensor  # [T, 3, 3] float32 intrinsics in pixels
    viewmats: Tensor  # [T, 4, 4] float32 world-to-camera
    width: int
    height: int
    near: float
    far: float

    def __len__(self) -> int:
        return self.viewmats.shape[0]

    def resized(self, width: int, height: int) -> CameraFrames:
        """The same cameras seeing the same view at another image size: focal lengths and
        principal point scaled by ``width / self.width`` and ``height / self.height``."""
        K = self.K.clone()
        K[:, 0, :] *= width / self.width
        K[:, 1, :] *= height / self.height
        return CameraFrames(K, self.viewmats, int(width), int(height), self.near, self.far)

    def to(self, device: torch.device | str) -> CameraFrames:
        """The same cameras with ``K`` and ``viewmats`` on ``device``."""
        return CameraFrames(self.K.to(device), self.viewmats.to(device), self.width, self.height,
                            self.near, self.far)

    @property
    def centers(self) -> Tensor:
        """[T, 3] camera centres in world coordinates."""
        R = self.viewmats[:, :3, :3]
        t = self.viewmats[:, :3, 3]
        return -(R.transpose(1, 2) @ t[..., None])[..., 0]

    def project(self, points: Tensor) -> tuple[Tensor, Tensor]:
        """Projects world points [T, N, 3] to pixels [T, N, 2] and camera z [T, N]."""
        # one [N, 3] x [3, 3] product per frame (not N broadcast 3 x 3 products)
        pc = points @ self.viewmats[:, :3, :3].transpose(1, 2) + self.viewmats[:, None, :3, 3]
        z = pc[..., 2]
        xy = pc[..., :2] / z[..., None].clamp_min(1e-6)
        uv = xy @ self.K[:, :2, :2].transpose(1, 2) + self.K[:, None, :2, 2]
        return uv, z

    def as_dict(self) -> dict:
        """Per-frame intrinsics and extrinsics as plain lists (for metadata.json)."""
        return {
            "width": self.width,
            "height": self.height,
            "near": self.near,
            "far": self.far,
            "convention": "OpenCV (x right, y down, z forward); viewmat = world-to-camera",
            "K": self.K.tolist(),
            "viewmats": self.viewmats.tolist(),
        }


def intrinsics(width: int, height: int, fov_deg: float) -> Tensor:
    """``K`` [3, 3] for a vertical field of view, principal point at the image centre."""
    f = 0.5 * height / math.tan(math.radians(fov_deg) / 2)
    return torch.tensor(
        [[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]], dtype=torch.float32
    )


def look_at(eye: Tensor, target: Tensor, up: Tensor | None = None) -> Tensor:
    """World-to-camera matrices [..., 4, 4] for cameras at ``eye`` [..., 3] looking at
    ``target`` [..., 3] with world ``up`` (+Z) pointing up in the image."""
    eye = torch.as_tensor(eye, dtype=torch.float32)
    target = torch.as_tensor(target, dtype=torch.float32)
    if up is None:
        up = torch.tensor([0.0, 0.0, 1.0])
    up = torch.as_tensor(up, dtype=torch.float32).expand_as(eye)
    fwd = target - eye
    fwd = fwd / fwd.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    right = torch.cross(fwd, up, dim=-1)
    # Looking straight up or down: any right vector perpendicular to fwd will do.
    degenerate = right.norm(dim=-1, keepdim=True) < 1e-6
    alt = torch.cross(fwd, torch.tensor([0.0, 1.0, 0.0]).expand_as(fwd), dim=-1)
    right = torch.where(degenerate, alt, right)
    right = right / right.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    down = torch.cross(fwd, right, dim=-1)
    R = torch.stack([right, down, fwd], dim=-2)  # rows: camera axes in world
    t = -(R @ eye[..., None])[..., 0]
    M = torch.zeros(*eye.shape[:-1], 4, 4, dtype=torch.float32)
    M[..., :3, :3] = R
    M[..., :3, 3] = t
    M[..., 3, 3] = 1.0
    return M


def interpolate_points(
    times: list[float], points: Tensor, t: Tensor, cubic: bool = False
) -> Tensor:
    """Piecewise-linear or Catmull-Rom interpolation of keyframed points.

    Args:
        times: K increasing keyframe times.
        points: [K, D] keyframe values.
        t: [T] query times (clamped to the keyframe range).
    Returns:
        [T, D] interpolated values.
    """
    points = torch.as_tensor(points, dtype=torch.float32)
    K = len(times)
    if K == 1:
        return points[:1].expand(t.shape[0], -1).clone()
    kt = torch.tensor(times, dtype=torch.float32)
    tc = t.clamp(kt[0], kt[-1])
    i = torch.searchsorted(kt, tc, right=True).clamp(1, K - 1) - 1
    u = ((tc - kt[i]) / (kt[i + 1] - kt[i]))[:, None]
    p1, p2 = points[i], points[i + 1]
    if not cubic:
        return p1 + (p2 - p1) * u
    p0 = points[(i - 1).clamp_min(0)]
    p3 = points[(i + 2).clamp_max(K - 1)]
    u2, u3 = u * u, u * u * u
    return 0.5 * (
        2 * p1 + (p2 - p0) * u + (2 * p0 - 5 * p1 + 4 * p2 - p3) * u2
        + (3 * p1 - p0 - 3 * p2 + p3) * u3
    )
