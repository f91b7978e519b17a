"""Rotations and rigid transforms on torch tensors. Quaternions are (w, x, y, z)."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["quat_multiply", "quat_normalize", "quat_slerp", "quat_to_matrix", "transform_points",
           "axis_angle_to_quat", "interpolate_quats", "matrix_to_quat"]


def quat_normalize(q: Tensor) -> Tensor:
    """Unit quaternions [..., 4]."""
    return q / q.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def quat_to_matrix(q: Tensor) -> Tensor:
    """Rotation matrices [..., 3, 3] from quaternions [..., 4] (w, x, y, z)."""
    w, x, y, z = quat_normalize(q).unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(*q.shape[:-1], 3, 3)


def quat_multiply(a: Tensor, b: Tensor) -> Tensor:
    """Hamilton product ``a * b`` [..., 4] (rotation b first, then a)."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        dim=-1,
    )


def axis_angle_to_quat(axis_angle: Tensor) -> Tensor:
    """Quaternions [..., 4] from rotation vectors [..., 3] (axis times angle in radians)."""
    angle = axis_angle.norm(dim=-1, keepdim=True)
    half = angle / 2
    scale = torch.where(angle > 1e-8, torch.sin(half) / angle.clamp_min(1e-12), 0.5 - angle**2 / 48)
    return torch.cat([torch.cos(half), axis_angle * scale], dim=-1)


def quat_slerp(a: Tensor, b: Tensor, u: Tensor) -> Tensor:
    """Spherical interpolation between unit quaternions a and b [..., 4] at fractions u [...]."""
    a, b = quat_normalize(a), quat_normalize(b)
    dot = (a * b).sum(-1)
    b = torch.where(dot[..., None] < 0, -b, b)
    dot = dot.abs().clamp(max=1.0)
    theta = torch.acos(dot)
    s = torch.sin(theta)
    u = u[..., None]
    near = (s < 1e-6)[..., None]
    th, sn = theta[..., None], s[..., None].clamp_min(1e-12)
    wa = torch.where(near, 1 - u, torch.sin((1 - u) * th) / sn)
    wb = torch.where(near, u, torch.sin(u * th) / sn)
    return quat_normalize(wa * a + wb * b)


def interpolate_quats(times: list[float], quats: Tensor, t: Tensor) -> Tensor:
    """Slerp between keyframed quaternions [K, 4] at query times [T] -> [T, 4]."""
    quats = torch.as_tensor(quats, dtype=torch.float32)
    K = len(times)
    if K == 1:
        return quat_normalize(quats[:1]).expand(t.shape[0], 4).clone()
    kt = torch.tensor(times, dtype=torch.float32)
    tc = t.clamp(kt[0], kt[-1])
    i = torch.searchsorted(kt, tc, right=True).clamp(1, K - 1) - 1
    u = (tc - kt[i]) / (kt[i + 1] - kt[i])
    return quat_slerp(quats[i], quats[i + 1], u)


def transform_points(points: Tensor, quats: Tensor, positions: Tensor) -> Tensor:
    """Applies per-frame rigid transforms to local points.

    Args:
        points: [V, 3] local coordinates.
        quats: [T, 4] rotations; positions: [T, 3] translations.
    Returns:
        [T, V, 3] world coordinates.
    """
    R = quat_to_matrix(quats)
    return torch.einsum("tij,vj->tvi", R, points) + positions[:, None, :]


def matrix_to_quat(R: Tensor) -> Tensor:
    """Unit quaternions (w >= 0) of rotation matrices.  R: [B, 3, 3] -> [B, 4].

    Uses the branch with the largest diagonal combination for each matrix (Shepperd's method),
    so the result is accurate for every rotation.
    """
    m = R.reshape(-1, 3, 3)
    m00, m11, m22 = m[:, 0, 0], m[:, 1, 1], m[:, 2, 2]
    cand = torch.stack(
        [
            torch.stack([1 + m00 + m11 + m22, m[:, 2, 1] - m[:, 1, 2],
                         m[:, 0, 2] - m[:, 2, 0], m[:, 1, 0] - m[:, 0, 1]], -1),
            torch.stack([m[:, 2, 1] - m[:, 1, 2], 1 + m00 - m11 - m22,
                         m[:, 0, 1] + m[:, 1, 0], m[:, 0, 2] + m[:, 2, 0]], -1),
            torch.stack([m[:, 0, 2] - m[:, 2, 0], m[:, 0, 1] + m[:, 1, 0],
                         1 - m00 + m11 - m22, m[:, 1, 2] + m[:, 2, 1]], -1),
            torch.stack([m[:, 1, 0] - m[:, 0, 1], m[:, 0, 2] + m[:, 2, 0],
                         m[:, 1, 2] + m[:, 2, 1], 1 - m00 - m11 + m22], -1),
        ],
        dim=1,
    )  # [B, 4 branches, 4]; branch j has 4 q_j^2 in slot j
    best = torch.stack([cand[:, j, j] for j in range(4)], -1).argmax(-1)
    q = cand[torch.arange(m.shape[0], device=m.device), best]
    q = q / q.norm(dim=-1, keepdim=True)
    return torch.where(q[:, :1] < 0, -q, q)
