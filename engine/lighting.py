"""Lights over time: a scene's lights evaluated at one frame.

A light may be keyframed (:class:`rendiff.scenes.spec.LightKeyframes`: intensity, colour,
direction, position, SH coefficients) and a point or spot light may ``follow`` an entity. The
simulation evaluates every light at every frame into plain :class:`LightState` records
(positions and directions in the world) on the :class:`Trajectory`, so shading and shadow maps
need not know about time or the scene file. Evaluation is deterministic and needs only the
scene's lights and the entities' root tracks.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

import torch

from rendiff.scenes.spec import Point, Spot

from .trajectory import LightState, RigidTrack
from .transforms import quat_to_matrix

__all__ = ["light_at", "light_state", "trajectory_lights"]


def _segment(times: Sequence[float], t: float, smooth: bool) -> tuple[int, int, float]:
    """Keyframes (i, j) around time t and the blend s in [0, 1] from i to j."""
    j = bisect.bisect_right(times, t)
    if j == 0:
        return 0, 0, 0.0
    if j == len(times):
        return j - 1, j - 1, 0.0
    i = j - 1
    s = (t - times[i]) / (times[j] - times[i])
    if smooth:
        s = s * s * (3.0 - 2.0 * s)
    return i, j, s


def _lerp(a: Sequence[float], b: Sequence[float], s: float) -> tuple[float, ...]:
    return tuple(x + s * (y - x) for x, y in zip(a, b, strict=True))


def _unit(d: Sequence[float]) -> tuple[float, ...]:
    n = math.sqrt(sum(c * c for c in d))
    return tuple(c / n for c in d)


def _slerp(a: Sequence[float], b: Sequence[float], s: float) -> tuple[float, ...]:
    """Unit vector a fraction s along the great circle from a to b (a, b any lengths)."""
    a, b = _unit(a), _unit(b)
    cos = max(-1.0, min(1.0, sum(x * y for x, y in zip(a, b, strict=True))))
    angle = math.acos(cos)
    if angle < 1e-6 or math.pi - angle < 1e-6:  # equal, or opposite (no unique circle)
        return a if s < 0.5 else b
    w0, w1 = math.sin((1 - s) * angle), math.sin(s * angle)
    return _unit([w0 * x + w1 * y for x, y in zip(a, b, strict=True)])


def light_at(light, time: float, carrier: tuple[torch.Tensor, torch.Tensor] | None = None):
    """The light's state at ``time`` seconds: a static copy (``animation`` and ``follow`` cleared).

    Args:
        light: a light of :mod:`rendiff.scenes.spec`.
        time: seconds from the clip's start.
        carrier: for a light that follows an entity, that entity's (position [3], rotation
            matrix [3, 3]) at this time; its position and direction are then carried from the
            entity's frame into the world.
    Returns:
        A light of the same class.
    """
    update: dict = {"animation": None}
    anim = light.animation
    if anim is not None:
        i, j, s = _segment(anim.times, time, anim.interpolation == "smooth")
        if anim.intensity is not None:
            a, b = anim.intensity[i], anim.intensity[j]
            update["intensity"] = a + s * (b - a)
        if anim.color is not None:
            update["color"] = tuple(min(1.0, max(0.0, c))
                                    for c in _lerp(anim.color[i], anim.color[j], s))
        if anim.position is not None:
            update["position"] = _lerp(anim.position[i], anim.position[j], s)
        if anim.direction is not None:
            update["direction"] = _slerp(anim.direction[i], anim.direction[j], s)
        if anim.sh is not None:
            update["sh"] = [_lerp(p, q, s) for p, q in zip(anim.sh[i], anim.sh[j], strict=True)]
    if carrier is not None and isinstance(light, Point | Spot):
        pos, R = carrier
        local = torch.tensor(update.get("position", light.position), dtype=torch.float32)
        update["position"] = tuple((R @ local + pos).tolist())
        if isinstance(light, Spot):
            d = torch.tensor(update.get("direction", light.direction), dtype=torch.float32)
            update["direction"] = tuple((R @ d).tolist())
        update["follow"] = None
    return light.model_copy(update=update)


def _carrier(track: RigidTrack, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    return track.positions[k].float(), quat_to_matrix(track.quats[k].float())


def light_state(light) -> LightState:
    """A static scene light (no animation, no ``follow``: see :func:`light_at`) as the
    renderer's :class:`LightState`."""
    def vec(name: str):
        value = getattr(light, name, None)
        return None if value is None else tuple(float(c) for c in value)

    sh = getattr(light, "sh", None)
    return LightState(
        type=light.type, color=tuple(float(c) for c in light.color),
        intensity=float(light.intensity), position=vec("position"), direction=vec("direction"),
        angle_deg=getattr(light, "angle_deg", None), softness=getattr(light, "softness", None),
        shadows=bool(getattr(light, "shadows", False)),
        sh=None if sh is None else tuple(tuple(float(c) for c in row) for row in sh))


def trajectory_lights(lights: Sequence, times: torch.Tensor,
                      rigid: dict[str, RigidTrack]) -> list[list[LightState]]:
    """Every light of a scene at every frame (``times`` [T] seconds), in scene order: keyframes
    evaluated and lights that ``follow`` an entity carried by its root track in ``rigid``.
    A light that never changes is one object repeated over the frames."""
    fixed = {i: light_state(li) for i, li in enumerate(lights)
             if li.animation is None and getattr(li, "follow", None) is None}
    for li in lights:
        follow = getattr(li, "follow", None)
        if follow is not None and follow not in rigid:
            raise ValueError(f"light follows {follow!r}, which has no track in the trajectory")
    out = []
    for k in range(times.shape[0]):
        t = float(times[k])
        frame = []
        for i, li in enumerate(lights):
            if i in fixed:
                frame.append(fixed[i])
                continue
            follow = getattr(li, "follow", None)
            carrier = _carrier(rigid[follow], k) if follow is not None else None
            frame.append(light_state(light_at(li, t, carrier)))
        out.append(frame)
    return out
