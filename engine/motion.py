"""Body motions as SMPL parameters per frame: procedural walk / wave / jump / turn / idle,
AMASS sequences, resampling, and walking along a path.

A :class:`Motion` holds smplx's parameters in SMPL's own Y-up frame -- exactly what
:meth:`rendiff.engine.body.BodyModel.pose` takes; the posed body comes out in rendiff's Z-up world
(SMPL +Y -> world +Z, see :mod:`rendiff.engine.body`). Every procedural motion stands on the
world ground plane z = 0, starts with its pelvis above the world origin and faces world +X.

smplx rotates the body about the root joint's rest position J0 (which depends on the shape) and
then adds ``transl``. Rotating or re-placing a motion as a whole therefore needs J0; a Motion
carries it in ``pelvis`` so that :func:`follow_path` and the AMASS conversion are exact.

Procedural motions are kinematic but grounded: legs are placed by analytic two-bone inverse
kinematics on the actual body's bone lengths, so stance feet stay put on the ground (heel strike,
flat foot and toe-off roll about the heel and the ball of the foot). They take the body model and
shape they are meant for (default: the default :class:`BodyModel` with mean shape).

AMASS (``load_amass``): AMASS stores SMPL-H parameters in a Z-up world -- smplx's output for its
``root_orient`` / ``trans`` is already Z-up (ground = XY plane), as the AMASS notebooks and the
smplx Blender add-on describe. Here the world rotation is applied after skinning instead, so the
loader moves it out of the root: ``R = Rx(-90) R_amass`` and
``transl = Rx(-90) (J0 + trans) - J0``; the posed body lands exactly where AMASS puts it.
Only the body joints are used (the first 22 of SMPL-H / SMPL-X = root + 21); SMPL's two hand
joints are left at rest. ``poses`` of width 72 are taken as SMPL's 24 joints directly.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d
from scipy.spatial.transform import Rotation
from smplx.vertex_ids import vertex_ids as SMPLX_VERTEX_IDS
from torch import Tensor

from .body import SMPL_JOINT_NAMES, SMPL_TO_WORLD, BodyModel, smpl_to_world, world_to_smpl
from .transforms import axis_angle_to_quat, quat_slerp

__all__ = ["Motion", "walk", "wave", "jump", "turn", "idle", "check_amass", "load_amass",
           "follow_path",
           "resample", "facing_rotation"]

GRAVITY = 9.81
_J = {n: i for i, n in enumerate(SMPL_JOINT_NAMES)}


@dataclass
class Motion:
    """SMPL parameters over time, in SMPL's Y-up frame (feed them to ``BodyModel.pose``)."""

    global_orient: Tensor  # [T, 3] float32 axis-angle root rotation
    body_pose: Tensor  # [T, 69] float32 axis-angle rotations of joints 1..23
    transl: Tensor  # [T, 3] float32 smplx translation
    betas: Tensor  # [10] float32 shape the motion was made for
    fps: float
    pelvis: Tensor = field(default_factory=lambda: torch.zeros(3))  # [3] rest root joint J0
    """Where smplx rotates the body about (the shaped template's root joint, SMPL frame); zeros
    is exact only for a body whose root joint sits at the origin."""

    @property
    def frames(self) -> int:
        return int(self.global_orient.shape[0])

    def slice(self, start: int, stop: int) -> Motion:
        """Frames ``start`` to ``stop`` (exclusive); frames past the end hold the last pose."""
        idx = torch.arange(start, stop).clamp(0, self.frames - 1)
        return replace(self, global_orient=self.global_orient[idx],
                       body_pose=self.body_pose[idx], transl=self.transl[idx])

    def root_world(self) -> Tensor:
        """World position [T, 3] of the root (pelvis) joint."""
        return smpl_to_world(self.pelvis + self.transl)


def facing_rotation(yaw: Tensor | float) -> Tensor:
    """Root rotation (axis-angle, SMPL frame) [..., 3] that makes a rest body face the world
    direction at angle ``yaw`` from +X towards +Y (0 = facing +X)."""
    yaw = torch.as_tensor(yaw, dtype=torch.float32)
    return torch.stack([torch.zeros_like(yaw), yaw + math.pi / 2, torch.zeros_like(yaw)], -1)


# ----------------------------------------------------------------------------------------------
# The body a procedural motion is built for.


@dataclass(frozen=True)
class _Rig:
    """Rest geometry (SMPL frame) of one body shape, as the motion builders need it."""

    joints: np.ndarray  # [24, 3]
    sole: float  # lowest rest vertex height (y)
    heel_z: tuple[float, float]  # z of the left / right heel vertex
    betas: Tensor  # [10]

    @property
    def pelvis(self) -> np.ndarray:
        return self.joints[0]

    def stand_height(self) -> float:
        """Pelvis height above the ground with straight legs."""
        return float(self.joints[0, 1] - self.sole)


@functools.lru_cache(maxsize=4)
def _default_body(env: str | None) -> BodyModel:
    return BodyModel()


def _rig(body: BodyModel | None, betas: Tensor | None) -> _Rig:
    """The rest geometry of ``body`` (default: the default body) with shape ``betas``."""
    if body is None:
        body = _default_body(os.environ.get("RENDIFF_SMPL_PATH"))
    b = torch.zeros(10) if betas is None else torch.as_tensor(betas, dtype=torch.float32)
    b = torch.nn.functional.pad(b, (0, max(0, 10 - b.shape[-1])))[:10]
    with torch.no_grad():
        v, j = body.shaped(b)
    v, j = v.double().cpu().numpy(), j.double().cpu().numpy()
    ids = SMPLX_VERTEX_IDS["smplh"]
    return _Rig(j, float(v[:, 1].min()), (float(v[ids["LHeel"], 2]), float(v[ids["RHeel"], 2])),
                b)


# ----------------------------------------------------------------------------------------------
# Rotation helpers (numpy / scipy, float64): per-frame rotations as scipy Rotation stacks.


def _axis_rotation(angles, axis: int) -> Rotation:
    """Rotations [T] by ``angles`` [T] (or a scalar, giving one) about a coordinate axis."""
    a = np.atleast_1d(np.asarray(angles, np.float64))
    rv = np.zeros((a.shape[0], 3))
    rv[:, axis] = a
    return Rotation.from_rotvec(rv)


def _rx(a) -> Rotation:
    return _axis_rotation(a, 0)


def _ry(a) -> Rotation:
    return _axis_rotation(a, 1)


def _rz(a) -> Rotation:
    return _axis_rotation(a, 2)


def _ease(x: np.ndarray) -> np.ndarray:
    """Minimum-jerk 0 -> 1 ramp (zero velocity and acceleration at both ends)."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * x * (10.0 - 15.0 * x + 6.0 * x * x)


def _soft_min(values: list[np.ndarray], tau: float) -> np.ndarray:
    """A smooth lower bound of the element-wise minimum."""
    v = np.stack(values)
    m = v.min(0)
    return m - tau * np.log(np.exp(-(v - m) / tau).sum(0))


def _assemble(rig: _Rig, T: int, fps: float, root: Rotation, pelvis_pos: np.ndarray,
              local: dict[int, Rotation]) -> Motion:
    """Builds a Motion from a root rotation and pelvis position in the walking frame (SMPL axes,
    facing +Z, ground at y = 0) and per-joint local rotations; then turns it to face world +X
    (a quarter turn about the vertical through the origin)."""
    q = _ry(np.full(T, math.pi / 2))
    body = np.zeros((T, 23, 3))
    for j, r in local.items():
        body[:, j - 1] = r.as_rotvec()
    pelvis_pos = q.apply(pelvis_pos)
    return Motion(
        global_orient=torch.tensor((q * root).as_rotvec(), dtype=torch.float32),
        body_pose=torch.tensor(body.reshape(T, 69), dtype=torch.float32),
        transl=torch.tensor(pelvis_pos - rig.pelvis, dtype=torch.float32),
        betas=rig.betas.clone(),
        fps=float(fps),
        pelvis=torch.tensor(rig.pelvis, dtype=torch.float32),
    )


# ----------------------------------------------------------------------------------------------
# Legs: feet on the ground, analytic two-bone IK.


def _leg_ik(rig: _Rig, side: str, pelvis_pos: np.ndarray, root: Rotation, ankle: np.ndarray,
            foot: Rotation) -> tuple[Rotation, Rotation, Rotation]:
    """Hip, knee and ankle local rotations [T] that put the ankle joint at ``ankle`` [T, 3] with
    the foot at world orientation ``foot`` [T]. The hip flexes (about X) and abducts (about Z),
    the knee bends about X; a target out of reach is approached along the same direction."""
    j = rig.joints
    hip, knee, ank = (j[_J[f"{side}_{n}"]] for n in ("hip", "knee", "ankle"))
    t0, s0 = knee - hip, ank - knee
    hip_w = pelvis_pos + root.apply(np.broadcast_to(hip - rig.pelvis, pelvis_pos.shape).copy())
    d = root.inv().apply(ankle - hip_w)
    mt, ms = np.hypot(t0[1], t0[2]), np.hypot(s0[1], s0[2])
    at, as_ = math.atan2(t0[2], t0[1]), math.atan2(s0[2], s0[1])
    c = 0.5 * ((d * d).sum(1) - t0 @ t0 - s0 @ s0) - t0[0] * s0[0]
    wrap = (at - as_ + math.pi) % (2 * math.pi) - math.pi
    beta = wrap + np.arccos(np.clip(c / (mt * ms), -1.0, 1.0))
    leg = t0 + _rx(beta).apply(np.broadcast_to(s0, d.shape).copy())
    d = d * (np.linalg.norm(leg, axis=1) / np.linalg.norm(d, axis=1))[:, None]
    zp = d[:, 2]
    yp = -np.sqrt(np.maximum(leg[:, 1] ** 2 + leg[:, 2] ** 2 - zp**2, 0.0))
    alpha = np.arctan2(zp, yp) - np.arctan2(leg[:, 2], leg[:, 1])
    theta = np.arctan2(d[:, 1], d[:, 0]) - np.arctan2(yp, leg[:, 0])
    r_hip = _rz(theta) * _rx(alpha)
    r_knee = _rx(beta)
    r_ankle = (root * r_hip * r_knee).inv() * foot
    return r_hip, r_knee, r_ankle


def _max_pelvis_height(rig: _Rig, side: str, pelvis_xz: np.ndarray, root: Rotation,
                       ankle: np.ndarray, slack: float = 0.985) -> np.ndarray:
    """Highest pelvis y [T] at which the leg still reaches ``ankle`` with a slightly bent
    knee (leg length times ``slack``)."""
    j = rig.joints
    hip, knee, ank = (j[_J[f"{side}_{n}"]] for n in ("hip", "knee", "ankle"))
    reach = slack * np.linalg.norm(hip - ank)
    off = root.apply(np.broadcast_to(hip - rig.pelvis, ankle.shape).copy())
    dx = pelvis_xz[:, 0] + off[:, 0] - ankle[:, 0]
    dz = pelvis_xz[:, 1] + off[:, 2] - ankle[:, 2]
    return ankle[:, 1] + np.sqrt(np.maximum(reach**2 - dx**2 - dz**2, 1e-4)) - off[:, 1]


def _foot_points(rig: _Rig, side: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rest ankle, heel contact and ball contact points (SMPL frame) of one foot."""
    j = rig.joints
    ank = j[_J[f"{side}_ankle"]]
    ball = j[_J[f"{side}_foot"]]
    heel_z = rig.heel_z[0 if side == "left" else 1]
    return ank, np.array([ank[0], rig.sole, heel_z]), np.array([ball[0], rig.sole, ball[2]])


def _planted_ankle(rig: _Rig, side: str, flat: np.ndarray, pitch: np.ndarray) -> np.ndarray:
    """Ankle position [T, 3] for a foot planted with its flat-foot ankle at ``flat`` [T, 3] and
    pitched by ``pitch`` [T] (about X; > 0 toes down): toes-up rolls about the heel,
    toes-down about the ball of the foot."""
    ank, heel, ball = _foot_points(rig, side)
    pivot = np.where((pitch < 0)[:, None], heel - ank, ball - ank)
    return flat + pivot + _rx(pitch).apply(-pivot)


# ----------------------------------------------------------------------------------------------
# Upper body helpers.


def _arms_down(T: int, swing_l, swing_r, elbow_l, elbow_r, lower: float = 1.25
               ) -> dict[int, Rotation]:
    """Shoulder / elbow / hand rotations for arms hanging at the sides, swung forward by
    ``swing_*`` radians (about X) and bent at the elbow by ``elbow_*`` radians."""
    sl, sr = np.broadcast_to(swing_l, (T,)), np.broadcast_to(swing_r, (T,))
    el, er = np.broadcast_to(elbow_l, (T,)), np.broadcast_to(elbow_r, (T,))
    return {
        _J["left_shoulder"]: _rx(-sl) * _rz(np.full(T, -lower)),
        _J["right_shoulder"]: _rx(-sr) * _rz(np.full(T, lower)),
        _J["left_elbow"]: _ry(-el),
        _J["right_elbow"]: _ry(er),
        _J["left_hand"]: _rz(np.full(T, -0.25)),
        _J["right_hand"]: _rz(np.full(T, 0.25)),
    }


def _spine(T: int, yaw, roll, lean) -> dict[int, Rotation]:
    """Spread a torso yaw / roll / forward lean [T] over spine1..3 (about Y, Z, X)."""
    yaw, roll, lean = (np.broadcast_to(np.asarray(a, float), (T,)) / 3 for a in (yaw, roll, lean))
    r = _ry(yaw) * _rz(roll) * _rx(lean)
    return {_J["spine1"]: r, _J["spine2"]: r, _J["spine3"]: r}


def _standing(rig: _Rig, T: int, pelvis_drop=0.0, root: Rotation | None = None
              ) -> tuple[np.ndarray, Rotation, dict[int, Rotation]]:
    """A body standing with its feet flat at their rest places: pelvis position [T, 3], root
    rotation and leg rotations, the pelvis lowered by ``pelvis_drop`` [T] (knees bend)."""
    root = Rotation.identity(T) if root is None else root
    h = rig.stand_height() - 0.01 - np.broadcast_to(pelvis_drop, (T,))
    pos = np.stack([np.zeros(T), h, np.zeros(T)], 1)
    local: dict[int, Rotation] = {}
    for side in ("left", "right"):
        ank, _, _ = _foot_points(rig, side)
        target = np.broadcast_to(
            [ank[0] - rig.pelvis[0], ank[1] - rig.sole, ank[2] - rig.pelvis[2]], (T, 3)).copy()
        hip, knee, ankle = _leg_ik(rig, side, pos, root, target, Rotation.identity(T))
        local |= {_J[f"{side}_hip"]: hip, _J[f"{side}_knee"]: knee, _J[f"{side}_ankle"]: ankle}
    return pos, root, local


# ----------------------------------------------------------------------------------------------
# Procedural motions.


def walk(frames: int, fps: float, speed: float = 1.2, stride: float | None = None,
         body: BodyModel | None = None, betas: Tensor | None = None) -> Motion:
    """A steady walk along world +X at ``speed`` m/s, starting with the pelvis above the origin.

    The gait: 62% stance per foot with heel strike, flat foot and toe-off; the pelvis bobs
    (as high as straight-ish legs allow), sways over the stance foot, rotates and drops on the
    swing side; the chest counter-rotates, arms swing opposite to the legs with bent elbows, the
    head keeps looking ahead. Stance feet do not slide.

    Args:
        frames, fps: clip length and frame rate.
        speed: walking speed in m/s (a natural walk is 0.6 to 1.8).
        stride: length of one gait cycle (two steps) in metres; default scales with leg length
            and the square root of speed (1.25 m at 1.2 m/s for an adult).
        body, betas: the body and shape the legs are fitted to (default body, mean shape).
    Returns:
        A :class:`Motion` of ``frames`` frames.
    """
    rig = _rig(body, betas)
    T = frames
    t = np.arange(T) / fps
    leg = float(np.linalg.norm(rig.joints[_J["left_hip"]] - rig.joints[_J["left_ankle"]]))
    if stride is None:
        stride = 1.58 * leg * math.sqrt(max(speed, 1e-3) / 1.2)
    period = stride / max(speed, 1e-6)
    duty, heel_end, toe_start = 0.62, 0.12, 0.55
    pitch_strike, pitch_off, clearance = -0.28, 0.55, 0.06
    amp = min(1.0, speed / 1.2)
    cycles = t / period
    phase = {"left": cycles % 1.0, "right": (cycles + 0.5) % 1.0}
    # Pelvis: forward motion, sway over the stance foot, yaw with the swinging leg, swing-side drop.
    ul = phase["left"]
    yaw = -0.08 * amp * np.cos(2 * math.pi * ul)
    roll = 0.05 * amp * np.cos(2 * math.pi * (ul - duty / 2))
    sway = 0.02 * np.cos(2 * math.pi * (ul - duty / 2))
    root = _ry(yaw) * _rz(roll)
    ankles, pitches, toes = {}, {}, {}
    for side, off in (("left", 0.0), ("right", 0.5)):
        ank, _, _ = _foot_points(rig, side)
        u = phase[side]
        k = np.floor(cycles + off)  # the plant (step) this foot is on or leaving

        def flat(kk, ank=ank, off=off):
            return np.stack([np.full(T, ank[0] - rig.pelvis[0]), np.full(T, ank[1] - rig.sole),
                             speed * (kk - off + duty / 2) * period + ank[2] - rig.pelvis[2]], 1)

        stance = u < duty
        s = np.where(stance, u / duty, (u - duty) / (1 - duty))

        def stance_pitch(s):
            return np.where(s < heel_end, pitch_strike * (1 - _ease(s / heel_end)),
                            np.where(s < toe_start, 0.0,
                                     pitch_off * _ease((s - toe_start) / (1 - toe_start))))

        p_st = stance_pitch(s)
        a_st = _planted_ankle(rig, side, flat(k), p_st)
        a_off = _planted_ankle(rig, side, flat(k), np.full(T, pitch_off))
        a_on = _planted_ankle(rig, side, flat(k + 1), np.full(T, pitch_strike))
        e = _ease(s)
        a_sw = a_off + (a_on - a_off) * e[:, None]
        a_sw[:, 1] += clearance * np.sin(math.pi * s) ** 2 * 1.6
        p_sw = pitch_off + (pitch_strike - pitch_off) * _ease(s * 1.3)
        ankles[side] = np.where(stance[:, None], a_st, a_sw)
        pitches[side] = np.where(stance, p_st, p_sw)
        toes[side] = np.where(stance, -np.clip(p_st, 0, None),
                              -pitch_off * (1 - _ease(s * 2.0)))
    pelvis_xz = np.stack([sway, speed * t], 1)
    limits = [_max_pelvis_height(rig, s, pelvis_xz, root, ankles[s]) for s in ("left", "right")]
    height = _soft_min(limits + [np.full(T, rig.stand_height() - 0.015)], tau=0.012)
    pos = np.stack([sway, height, speed * t], 1)
    local: dict[int, Rotation] = {}
    for side in ("left", "right"):
        hip, knee, ankle = _leg_ik(rig, side, pos, root, ankles[side], _rx(pitches[side]))
        local |= {_J[f"{side}_hip"]: hip, _J[f"{side}_knee"]: knee, _J[f"{side}_ankle"]: ankle,
                  _J[f"{side}_foot"]: _rx(toes[side])}
    local |= _spine(T, -1.6 * yaw, -roll, 0.06 * amp)
    local[_J["neck"]] = _ry(0.3 * yaw) * _rx(np.full(T, -0.03 * amp))
    local[_J["head"]] = _ry(0.3 * yaw)
    arm = 0.38 * amp
    swing_l = -arm * np.cos(2 * math.pi * phase["left"])
    swing_r = -arm * np.cos(2 * math.pi * phase["right"])
    local |= _arms_down(T, swing_l, swing_r, 0.3 + 0.35 * np.clip(swing_l, 0, None),
                        0.3 + 0.35 * np.clip(swing_r, 0, None))
    return _assemble(rig, T, fps, root, pos, local)


def idle(frames: int, fps: float, speed: float = 0.0, body: BodyModel | None = None,
         betas: Tensor | None = None) -> Motion:
    """Standing in place: slow breathing, a little weight shift and head movement.

    ``speed`` is accepted so that every procedural motion shares one call signature; an idle
    body does not travel (use :func:`follow_path` to move it)."""
    rig = _rig(body, betas)
    T = frames
    t = np.arange(T) / fps
    breathe = np.sin(2 * math.pi * 0.25 * t)
    shift = np.sin(2 * math.pi * 0.1 * t)
    pos, root, local = _standing(rig, T, pelvis_drop=0.005 * (1 + shift))
    local |= _spine(T, 0.02 * shift, 0.0, 0.02 * breathe)
    local[_J["head"]] = _ry(0.1 * np.sin(2 * math.pi * 0.07 * t)) * _rx(0.03 * breathe)
    local |= _arms_down(T, 0.03 * breathe, 0.03 * breathe, 0.2, 0.2)
    return _assemble(rig, T, fps, root, pos, local)


def wave(frames: int, fps: float, speed: float = 0.0, hand: str = "right",
         frequency: float = 1.6, body: BodyModel | None = None,
         betas: Tensor | None = None) -> Motion:
    """Standing and waving one hand above the shoulder: the arm rises (first 0.8 s), the
    forearm swings side to side at ``frequency`` Hz, and the arm comes down again in the last
    0.8 s of clips longer than 2 s.

    ``speed`` is accepted so that every procedural motion shares one call signature; waving is
    done in place (use :func:`follow_path` to move it)."""
    if hand not in ("left", "right"):
        raise ValueError(f"hand must be 'left' or 'right', got {hand!r}")
    rig = _rig(body, betas)
    T = frames
    t = np.arange(T) / fps
    dur = T / fps
    # The upper arm rises before the elbow bends, and the elbow straightens before it falls.
    arm_up, elbow_up = _ease(t / 0.5), _ease((t - 0.3) / 0.5)
    if dur > 2.0:
        arm_up = arm_up * (1 - _ease((t - (dur - 0.5)) / 0.5))
        elbow_up = elbow_up * (1 - _ease((t - (dur - 0.8)) / 0.5))
    pos, root, local = _standing(rig, T)
    local |= _spine(T, 0.0, 0.0, 0.02)
    local |= _arms_down(T, 0.0, 0.0, 0.2, 0.2)
    sgn = 1.0 if hand == "left" else -1.0  # mirror: rotations about Y and Z flip sign
    lower, lift = 1.25, 0.35  # arm down at the side; raised a little above horizontal
    side_swing = 0.35 * np.sin(2 * math.pi * frequency * t) * elbow_up
    shoulder = _rz(sgn * (-lower * (1 - arm_up) + lift * arm_up)) * _rx(-0.25 * arm_up)
    elbow = _rz(sgn * (1.45 * elbow_up + side_swing)) * _ry(-sgn * 0.2 * (1 - elbow_up))
    local[_J[f"{hand}_shoulder"]] = shoulder
    local[_J[f"{hand}_elbow"]] = elbow
    local[_J[f"{hand}_hand"]] = _rz(np.zeros(T))
    local[_J["head"]] = _ry(-sgn * 0.15 * arm_up)
    return _assemble(rig, T, fps, root, pos, local)


def jump(frames: int, fps: float, speed: float = 0.0, height: float = 0.25,
         period: float | None = None, body: BodyModel | None = None,
         betas: Tensor | None = None) -> Motion:
    """Two-footed jumps, repeated every ``period`` seconds: stand, crouch with the arms swinging
    back, push off onto the toes, a ballistic flight (gravity 9.81) of the given pelvis
    ``height`` with the legs tucked a little, a toes-first landing absorbed by the knees, recover.

    Args:
        frames, fps: clip length and frame rate.
        speed: average forward travel in m/s (0 = in place); the body moves only in the air.
        height: rise of the pelvis above its take-off height, metres.
        period: seconds per jump; default: one jump's own length (about 2.2 s).
        body, betas: the body and shape the legs are fitted to.
    """
    rig = _rig(body, betas)
    T = frames
    t = np.arange(T) / fps
    v0 = math.sqrt(2 * GRAVITY * height)
    flight = 2 * v0 / GRAVITY
    t_crouch, t_push, t_off = 0.35, 0.75, 0.95
    t_land = t_off + flight
    t_absorb, t_end = t_land + 0.22, t_land + 0.65
    period = t_end + 0.1 if period is None else max(period, t_end)
    n = np.floor(t / period)
    tc = t - n * period
    crouch, absorb, toe_rise = 0.20, 0.14, 0.55
    stand = rig.stand_height() - 0.01
    # Pelvis height through one jump: crouch, push-off (leaving at v0), ballistic flight,
    # landing absorbed by the knees, recovery.
    drop = np.where(tc < t_crouch, 0.0, crouch * _ease((tc - t_crouch) / (t_push - t_crouch)))
    ankle_l, _, _ = _foot_points(rig, "left")
    rise = float(_planted_ankle(rig, "left", ankle_l[None] - [0, rig.sole, 0],
                                np.array([toe_rise]))[0, 1] - (ankle_l[1] - rig.sole))
    h_push0, h_push1 = stand - crouch, stand + rise - 0.01
    tau = np.clip((tc - t_push) / (t_off - t_push), 0, 1)
    dt_push = t_off - t_push
    h_push = _hermite(h_push0, h_push1, 0.0, v0 * dt_push, tau)
    tf = np.clip(tc - t_off, 0, flight)
    h_fly = h_push1 + v0 * tf - 0.5 * GRAVITY * tf**2
    tau_a = np.clip((tc - t_land) / (t_absorb - t_land), 0, 1)
    h_abs = _hermite(h_push1, stand - absorb, -v0 * (t_absorb - t_land), 0.0, tau_a)
    h_rec = stand - absorb * (1 - _ease((tc - t_absorb) / (t_end - t_absorb)))
    height_t = np.select(
        [tc < t_push, tc < t_off, tc < t_land, tc < t_absorb],
        [stand - drop, h_push, h_fly, h_abs], h_rec)
    # Forward travel happens in the air only.
    hop = speed * period
    air = np.clip((tc - t_off) / flight, 0, 1)
    x_fwd = hop * (n + air)
    pitch = np.select(
        [tc < t_push, tc < t_off, tc < t_land, tc < t_absorb],
        [np.zeros(T), toe_rise * _ease(tau), toe_rise * np.ones(T),
         toe_rise * (1 - _ease(tau_a))], np.zeros(T))
    tuck = 0.12 * np.sin(math.pi * np.clip((tc - t_off) / flight, 0, 1))
    pos = np.stack([np.zeros(T), height_t, x_fwd], 1)
    lean = np.select([tc < t_push, tc < t_off, tc < t_land, tc < t_absorb],
                     [0.45 * drop / crouch, 0.45 * (1 - _ease(tau)), 0.05 * np.ones(T),
                      0.3 * _ease(tau_a)], 0.3 * (1 - _ease((tc - t_absorb) / (t_end - t_absorb))))
    root = _rx(0.4 * lean)
    local: dict[int, Rotation] = {}
    in_air = (tc >= t_off) & (tc < t_land)
    lift = pos - np.stack([np.zeros(T), np.full(T, h_push1), hop * n], 1)
    lift[:, 1] += tuck
    for side in ("left", "right"):
        ank, _, _ = _foot_points(rig, side)
        ground = np.stack([np.full(T, ank[0] - rig.pelvis[0]), np.full(T, ank[1] - rig.sole),
                           ank[2] - rig.pelvis[2] + hop * n], 1)
        take_off = _planted_ankle(rig, side, ground, np.full(T, toe_rise))
        ground[:, 2] += hop * (tc >= t_land)
        planted = _planted_ankle(rig, side, ground, np.clip(pitch, 0, None))
        target = np.where(in_air[:, None], take_off + lift, planted)
        hip, knee, ankle = _leg_ik(rig, side, pos, root, target, _rx(pitch))
        local |= {_J[f"{side}_hip"]: hip, _J[f"{side}_knee"]: knee, _J[f"{side}_ankle"]: ankle,
                  _J[f"{side}_foot"]: _rx(-np.clip(pitch, 0, None) * (~in_air))}
    local |= _spine(T, 0.0, 0.0, 0.6 * lean)
    local[_J["neck"]] = _rx(-0.5 * lean)
    swing = np.select([tc < t_push, tc < t_off, tc < t_land],
                      [-0.7 * drop / crouch, -0.7 + 2.2 * _ease(tau),
                       1.5 - 1.3 * _ease((tc - t_off) / flight)], 0.2 * (1 - _ease(tau_a)))
    local |= _arms_down(T, swing, swing, 0.25, 0.25)
    return _assemble(rig, T, fps, root, pos, local)


def _hermite(p0: float, p1: float, m0: float, m1: float, u: np.ndarray) -> np.ndarray:
    """Cubic Hermite curve from p0 to p1 with end tangents m0, m1 (per unit u)."""
    u2, u3 = u * u, u * u * u
    return ((2 * u3 - 3 * u2 + 1) * p0 + (u3 - 2 * u2 + u) * m0 + (-2 * u3 + 3 * u2) * p1
            + (u3 - u2) * m1)


def turn(frames: int, fps: float, speed: float = 0.0, angle: float = math.pi,
         duration: float | None = None, body: BodyModel | None = None,
         betas: Tensor | None = None) -> Motion:
    """Turning on the spot by ``angle`` radians (positive = to the left, counter-clockwise seen
    from above), over ``duration`` seconds (default: the middle 80% of the clip), head leading.
    The feet pivot in place with slightly bent knees.

    ``speed`` is accepted so that every procedural motion shares one call signature; the turn
    is done in place."""
    rig = _rig(body, betas)
    T = frames
    t = np.arange(T) / fps
    total = T / fps
    duration = 0.8 * total if duration is None else duration
    start = 0.5 * (total - duration)
    u = _ease((t - start) / max(duration, 1e-6))
    du = np.gradient(u, t) if T > 1 else np.zeros(T)
    yaw = angle * u
    pos, root, local = _standing(rig, T, pelvis_drop=0.03 * np.sin(math.pi * u))
    local |= _spine(T, 0.25 * angle * du * duration / 4, 0.0, 0.03)
    local[_J["head"]] = _ry(0.2 * angle * du * duration / 4)
    local |= _arms_down(T, 0.0, 0.0, 0.25, 0.25)
    # The whole standing body turns about the vertical through its pelvis; the feet pivot.
    return _assemble(rig, T, fps, _ry(yaw) * root, pos, local)


# ----------------------------------------------------------------------------------------------
# Resampling, AMASS, paths.


def _quat_to_axis_angle(q: Tensor) -> Tensor:
    """Rotation vectors [..., 3] from unit quaternions [..., 4] (w, x, y, z)."""
    q = torch.where(q[..., :1] < 0, -q, q)
    xyz = q[..., 1:]
    s = xyz.norm(dim=-1, keepdim=True)
    angle = 2 * torch.atan2(s, q[..., :1])
    scale = torch.where(s > 1e-8, angle / s.clamp_min(1e-12), 2.0 / q[..., :1].clamp_min(1e-12))
    return xyz * scale


def _resample_arrays(rotvecs: Tensor, transl: Tensor, fps_in: float, fps_out: float
                     ) -> tuple[Tensor, Tensor]:
    """Rotations [N, J, 3] (slerp) and translations [N, 3] (lerp) from fps_in to fps_out,
    covering the same time span (frames at k / fps_out up to the last input time)."""
    n = rotvecs.shape[0]
    span = (n - 1) / fps_in
    m = int(math.floor(span * fps_out + 1e-6)) + 1
    x = torch.arange(m, dtype=torch.float64) * (fps_in / fps_out)
    i0 = x.floor().long().clamp(0, n - 1)
    i1 = (i0 + 1).clamp(max=n - 1)
    u = (x - i0.double()).float()
    q = axis_angle_to_quat(rotvecs.float())
    qs = quat_slerp(q[i0], q[i1], u[:, None].expand(m, q.shape[1]))
    tr = transl[i0] + (transl[i1] - transl[i0]) * u[:, None].to(transl.dtype)
    return _quat_to_axis_angle(qs), tr


def resample(motion: Motion, fps: float) -> Motion:
    """The same motion at another frame rate: joint rotations slerped, translation lerped."""
    rot = torch.cat([motion.global_orient[:, None], motion.body_pose.reshape(-1, 23, 3)], 1)
    rot, tr = _resample_arrays(rot, motion.transl, motion.fps, fps)
    return replace(motion, global_orient=rot[:, 0].contiguous(),
                   body_pose=rot[:, 1:].reshape(-1, 69).contiguous(), transl=tr.float(),
                   fps=float(fps))


def check_amass(path: str | os.PathLike) -> None:
    """What :func:`load_amass` needs of an AMASS ``.npz``, checked without posing anything
    (scene validation): readable without pickles, ``poses`` [N, 72 | 156 | 165] (or
    ``root_orient`` + ``pose_body``), ``trans`` [N, 3], a frame rate in [1, 10000] Hz, all
    finite, N >= 1. Raises ``ValueError`` naming the file and the key."""
    _read_amass(path)


def _read_amass(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], float]:
    """The arrays of an AMASS ``.npz`` and its frame rate, checked as :func:`check_amass`
    describes."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a folder, not an AMASS .npz file")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise ValueError(f"{path}: holds Python objects (pickles); an AMASS file holds "
                             "arrays only, and rendiff never unpickles one") from None
        raise ValueError(f"{path}: not a readable .npz ({e})") from None
    except (OSError, EOFError) as e:
        raise ValueError(f"{path}: not a readable .npz ({e})") from None
    if "root_orient" in data and "pose_body" in data:
        n = len(data["root_orient"])
        shapes = {"root_orient": (n, 3), "pose_body": (n, None)}
    elif "poses" in data:
        n = len(data["poses"])
        if data["poses"].ndim != 2 or data["poses"].shape[1] not in (72, 156, 165):
            raise ValueError(f"{path}: poses has shape {data['poses'].shape}, expected "
                             "[N, 72 | 156 | 165] axis-angle")
        shapes = {"poses": (n, None)}
    else:
        raise ValueError(f"{path}: no 'poses' (nor 'root_orient' + 'pose_body'); keys: "
                         f"{', '.join(sorted(data)) or 'none'}")
    if "trans" not in data:
        raise ValueError(f"{path}: no 'trans' (root translation [N, 3])")
    shapes["trans"] = (n, 3)
    if n < 1:
        raise ValueError(f"{path}: holds no frames")
    for key, (rows, cols) in shapes.items():
        a = data[key]
        if a.ndim != 2 or a.shape[0] != rows or (cols is not None and a.shape[1] != cols):
            raise ValueError(f"{path}: {key} has shape {a.shape}, expected "
                             f"[{rows}, {cols if cols is not None else '...'}]")
        if not np.issubdtype(a.dtype, np.number) or not np.isfinite(a).all():
            raise ValueError(f"{path}: {key} holds non-numbers, NaN or inf")
    rate_key = next((k for k in ("mocap_framerate", "mocap_frame_rate") if k in data), None)
    if rate_key is None:
        raise ValueError(f"{path}: no mocap_framerate / mocap_frame_rate")
    try:
        rate = float(data[rate_key])
    except (TypeError, ValueError):
        rate = float("nan")
    if not 1 <= rate <= 10_000:  # NaN fails this too
        raise ValueError(f"{path}: {rate_key} must be a frame rate in [1, 10000], got {rate}")
    return data, rate


def load_amass(path: str | os.PathLike, fps: float, body: BodyModel | None = None) -> Motion:
    """Reads an AMASS-style ``.npz`` and resamples it to ``fps``.

    Keys: ``poses`` [N, 72 | 156 | 165] axis-angle (SMPL, SMPL-H or SMPL-X ordering; the first
    22 joints are the body), or ``root_orient`` [N, 3] + ``pose_body`` [N, 63]; ``trans`` [N, 3];
    ``betas`` [>= 10] (only the first 10 are kept); ``mocap_framerate`` or ``mocap_frame_rate``.
    AMASS is Z-up; the result is converted to this module's convention (see the module doc) with
    the root joint of ``body`` (default: the default body) for these betas.
    """
    data, src_fps = _read_amass(path)
    if "root_orient" in data and "pose_body" in data:
        root = data["root_orient"]
        joints21 = data["pose_body"][:, :63]
        hands = np.zeros((len(root), 6))
    else:
        poses = data["poses"]
        root = poses[:, :3]
        if poses.shape[1] == 72:
            joints21, hands = poses[:, 3:66], poses[:, 66:72]
        else:
            joints21, hands = poses[:, 3:66], np.zeros((len(poses), 6))
    betas = torch.zeros(10)
    if "betas" in data:
        b = torch.as_tensor(np.asarray(data["betas"], np.float32).reshape(-1)[:10])
        betas[: len(b)] = b
    rot = torch.tensor(np.concatenate([root, joints21, hands], 1), dtype=torch.float32)
    rot, trans = _resample_arrays(rot.reshape(len(rot), 24, 3),
                                  torch.tensor(data["trans"], dtype=torch.float64), src_fps, fps)
    rig = _rig(body, betas)
    j0 = torch.tensor(rig.pelvis, dtype=torch.float64)
    to_smpl = SMPL_TO_WORLD.double().T
    go = Rotation.from_matrix(to_smpl.numpy()) * Rotation.from_rotvec(rot[:, 0].double().numpy())
    transl = (j0 + trans) @ to_smpl.T - j0
    return Motion(
        global_orient=torch.tensor(go.as_rotvec(), dtype=torch.float32),
        body_pose=rot[:, 1:].reshape(-1, 69).float().contiguous(),
        transl=transl.float(),
        betas=betas,
        fps=float(fps),
        pelvis=j0.float(),
    )


def _smooth_polyline(points: np.ndarray, rounds: int = 4) -> np.ndarray:
    """Chaikin corner cutting that keeps the end points: a smooth curve through the corners'
    neighbourhood, so the body turns gradually instead of snapping at a waypoint."""
    for _ in range(rounds):
        if len(points) < 3:
            break
        a, b = points[:-1], points[1:]
        q, r = 0.75 * a + 0.25 * b, 0.25 * a + 0.75 * b
        mid = np.stack([q, r], 1).reshape(-1, points.shape[1])[1:-1]
        points = np.concatenate([points[:1], mid, points[-1:]])
    return points


def follow_path(motion: Motion, waypoints: Tensor, speed: float | None = None) -> Motion:
    """Bends a motion that travels along world +X (such as :func:`walk`) onto a ground path,
    facing the direction of travel.

    The motion's forward progress (its pelvis' world x since frame 0) becomes distance along the
    path, its sideways sway stays sideways, its height stays height (plus the path's z if
    given). With ``speed`` set, the distance along the path is ``speed * t`` instead. The path
    is the polyline through the waypoints with its corners rounded; the body stops at its end
    (so give the motion about ``length / speed`` seconds). Feet can slip a little in tight turns.

    Args:
        motion: the motion to bend.
        waypoints: [K, 2] (x, y) or [K, 3] (x, y, z) world points, K >= 2.
        speed: metres per second along the path; None keeps the motion's own progress.
    """
    wp = np.asarray(torch.as_tensor(waypoints, dtype=torch.float64))
    if wp.ndim != 2 or wp.shape[0] < 2 or wp.shape[1] not in (2, 3):
        raise ValueError(f"waypoints must be [K>=2, 2 or 3], got {tuple(wp.shape)}")
    if wp.shape[1] == 2:
        wp = np.concatenate([wp, np.zeros((len(wp), 1))], 1)
    curve = _smooth_polyline(wp)
    seg = np.linalg.norm(np.diff(curve[:, :2], axis=0), axis=1)
    keep = np.r_[True, seg > 1e-9]
    curve = curve[keep]
    arc = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(curve[:, :2], axis=0), axis=1))]
    root = motion.root_world().double().numpy()
    T = motion.frames
    if speed is None:
        s = root[:, 0] - root[0, 0]
    else:
        s = speed * np.arange(T) / motion.fps
    s = np.clip(s, 0.0, arc[-1])
    px = np.interp(s, arc, curve[:, 0])
    py = np.interp(s, arc, curve[:, 1])
    pz = np.interp(s, arc, curve[:, 2])
    # Heading from the smoothed tangent (finite difference along the arc).
    h = 0.05
    tx = np.interp(np.minimum(s + h, arc[-1]), arc, curve[:, 0]) - np.interp(
        np.maximum(s - h, 0), arc, curve[:, 0])
    ty = np.interp(np.minimum(s + h, arc[-1]), arc, curve[:, 1]) - np.interp(
        np.maximum(s - h, 0), arc, curve[:, 1])
    heading = np.unwrap(np.arctan2(ty, tx))
    heading = gaussian_filter1d(heading, sigma=max(1.0, 0.05 * motion.fps), mode="nearest")
    lateral = root[:, 1] - root[0, 1]
    new_root = np.stack([px - np.sin(heading) * lateral, py + np.cos(heading) * lateral,
                         root[:, 2] + pz], 1)
    spin = Rotation.from_rotvec(np.outer(heading, [0.0, 1.0, 0.0]))
    go = spin * Rotation.from_rotvec(motion.global_orient.double().numpy())
    pelvis_smpl = world_to_smpl(torch.tensor(new_root))
    return replace(
        motion,
        global_orient=torch.tensor(go.as_rotvec(), dtype=torch.float32),
        transl=(pelvis_smpl - motion.pelvis.double()).float(),
    )
