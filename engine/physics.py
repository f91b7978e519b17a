"""Rigid-body physics through Newton, NVIDIA's Warp-based engine.

:func:`simulate_rigid` takes plain body descriptions, builds a Newton model from them
(builder -> model -> state -> solver, Newton's own lifecycle), steps it at a fixed physics rate and
samples poses, velocities and contact events at the video frame rate. The scene layer converts its
own spec into :class:`RigidBodyDesc` / :class:`PhysicsSettings`; nothing here knows about scenes.

What Newton 1.8 does, found by reading its source and measuring on CPU (it decides the defaults):

- Solver. ``SolverXPBD`` (the default here) handles free rigid bodies, stacks and friction on
  CPU. It ignores restitution unless constructed with ``enable_restitution=True``; then a
  velocity pass after the position solve reflects the approach speed: a ball dropped from
  1.25 m with e = 0.7 touches the ground within a step of sqrt(2h/g), leaves at 0.706 x its
  impact speed and rises to within 2 % of e^2 h at 240 Hz. ``SolverSteel`` (``'steel'``;
  experimental, projected Gauss-Seidel in joint coordinates) bounces as high but resolves the
  impact speculatively, so at 240 Hz the ball turns round about 1.3 cm above the ground (up to
  one step's travel); it holds static friction without any creep, but is several times slower
  than XPBD on CPU and compiles another ~85 s of kernels on first use. Both solvers average the
  two shapes' friction and restitution coefficients arithmetically (mu 0.4 on 0.6 acts as 0.5).
- Friction creep. With the default collision pipeline XPBD lets a box creep down a slope it
  should stick to (9 mm/s at 15 degrees, mu = 0.5), because its friction is limited by each
  iteration's incremental normal correction and the contact points are regenerated every step.
  ``CollisionPipeline(contact_matching="sticky")`` keeps contact anchors across steps; with it
  the box moves 0.1 mm in 1.5 s, sliding still follows g (sin - mu cos) within 3 %, and stacks
  are unchanged. Sticky matching is marked experimental in Newton; it also sorts contacts
  (``deterministic=True``).
- Stepping. The physics rate is rounded so that a whole number of steps fits one video frame
  (``steps = max(1, round(rate_hz / fps))``, ``dt = 1 / (fps * steps)``); frames then fall exactly
  on physics steps and frame k is the state at time k / fps. Each step runs the collision
  pipeline, then the solver, then swaps the two states.
- Contacts. ``CollisionPipeline.collide`` fills ``Contacts`` with body-frame support points, a
  normal from shape 0 to shape 1 and per-shape thickness (effective radius + margin); the signed
  separation is ``n . (p1 - p0) - (thickness0 + thickness1)``. Contacts are generated up to
  ``rigid_gap`` (10 cm) before the surfaces meet, so a contact's presence does not mean touching.
  The solver's ``CONTACT_F`` observable (``solver.observables(...)``) gives the force on shape 0's
  body per contact; here a pair touches in a step when the solver pushed on it. XPBD computes
  that force from its position solve only (restitution's velocity pass is left out), so its
  magnitude is not a physical impulse (7 N s reported for a 20.5 N s bounce); the events record
  the geometric depth and the closing speed instead.
- Quaternions. Warp stores (x, y, z, w); this module's API uses (w, x, y, z) and converts at the
  boundary. Body velocities follow Newton's convention: centre-of-mass velocity and angular
  velocity, both in the world frame.
- Determinism. Warp runs CPU kernels serially in launch order, so the same inputs give
  bit-identical trajectories on CPU (tested). GPUs may reorder atomic sums.
- Cost. Each step is about 35 Warp kernel launches, whose Python-side launch overhead dominates
  small scenes on CPU. First use compiles Newton's kernels (about 80 s for XPBD + collision on
  2 cores, 30-40 s more for box and mesh narrow phases and mesh inertia); they are cached under
  ``~/.cache/warp``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import warp as wp

# No start-up banner or per-module "load on device" lines on stdout; warnings and errors remain.
wp.config.quiet = True
wp.config.log_level = wp.LOG_WARNING

import newton  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import Tensor  # noqa: E402

__all__ = [
    "SHAPES",
    "SOLVERS",
    "PhysicsError",
    "PhysicsSettings",
    "RigidBodyDesc",
    "RigidTrajectory",
    "simulate_rigid",
    "warmup",
]

SOLVERS = ("xpbd", "steel")
"""Newton solvers :func:`simulate_rigid` can run, by :attr:`PhysicsSettings.solver` name."""

SHAPES = ("sphere", "box", "capsule", "cylinder", "mesh")
"""Shapes a :class:`RigidBodyDesc` can have."""

_RELEASE_TIME = 0.02
"""A pair that has been free of contact forces this long [s] counts as separated again, so the
next force starts a new touch event (a resting contact whose force flickers does not)."""

GROUND = "ground"


@dataclass
class RigidBodyDesc:
    """One rigid body: geometry, initial pose and velocity, material.

    Primitive axes follow Newton: capsules and cylinders lie along their local Z axis.
    A ``'mesh'`` body collides, and weighs, as the convex hull of ``mesh_verts``.
    """

    name: str
    shape: str  # 'sphere' | 'box' | 'capsule' | 'cylinder' | 'mesh'
    radius: float = 0.0  # sphere, capsule, cylinder [m]
    half_extents: tuple[float, float, float] = (0.0, 0.0, 0.0)  # box [m]
    half_height: float = 0.0  # capsule, cylinder: half length of the axis segment [m]
    mesh_verts: np.ndarray | None = None  # [V, 3] float, body frame [m]
    mesh_faces: np.ndarray | None = None  # [F, 3] int
    position: tuple[float, float, float] = (0.0, 0.0, 0.0)  # body origin, world [m]
    quat: tuple[float, float, float, float] = (1.0, 0.0, 0.0, 0.0)  # (w, x, y, z)
    linear_velocity: tuple[float, float, float] = (0.0, 0.0, 0.0)  # centre of mass, world [m/s]
    angular_velocity: tuple[float, float, float] = (0.0, 0.0, 0.0)  # world [rad/s]
    density: float = 1000.0  # [kg/m^3]
    mass: float | None = None  # [kg]; overrides density (inertia scaled to match)
    friction: float = 0.5
    restitution: float = 0.0
    static: bool = False


@dataclass
class PhysicsSettings:
    """How to simulate: rate, gravity, ground, solver, fail-safe limits."""

    rate_hz: float = 240.0  # physics rate, rounded to a whole number of steps per video frame
    gravity: tuple[float, float, float] = (0.0, 0.0, -9.81)  # [m/s^2]
    ground: bool = True
    ground_height: float = 0.0  # [m]
    ground_friction: float = 0.5
    ground_restitution: float = 0.0
    solver: str = "xpbd"  # one of SOLVERS
    device: str = "cpu"
    iterations: int = 4  # XPBD position iterations / Steel PGS iterations per step
    max_speed: float = 200.0  # fail-safe: linear speed above this raises PhysicsError [m/s]
    max_distance: float = 1000.0  # fail-safe: |coordinate| above this raises PhysicsError [m]
    record_contacts: bool = True  # scan contacts every step for touch events


@dataclass
class RigidTrajectory:
    """Per-frame rigid-body state; frame k is at ``times[k] = k / fps``, frame 0 the initial state.

    Bodies are in input order, static bodies included (constant pose, zero velocity).
    ``contacts`` holds one event each time a pair of bodies starts touching (the solver pushes
    on it after at least ``_RELEASE_TIME`` without doing so), in time order, as a dict:
    ``frame`` (first frame whose state includes the touch), ``time`` (end of the physics step in
    which the solver first pushed, [s]), ``a`` (body name; the earlier body in input order),
    ``b`` (the other body's name, or ``'ground'``), ``position`` (world point midway between the
    two surfaces at the contact pushed hardest, [m]), ``normal`` (unit, from a towards b),
    ``depth`` (penetration after that step, >= 0, [m]) and ``approach_speed`` (closing speed of
    the two surfaces along the normal at the start of that step, >= 0, [m/s]).
    """

    names: list[str]
    times: Tensor  # [T] float32 [s]
    positions: Tensor  # [T, B, 3] float32, body origin, world [m]
    quats: Tensor  # [T, B, 4] float32 (w, x, y, z)
    linear_velocity: Tensor  # [T, B, 3] float32, centre of mass, world [m/s]
    angular_velocity: Tensor  # [T, B, 3] float32, world [rad/s]
    contacts: list[dict] = field(default_factory=list)


class PhysicsError(RuntimeError):
    """The simulation produced a non-finite, too fast or escaping body; names body and frame."""


def _check_inputs(bodies: list[RigidBodyDesc], settings: PhysicsSettings) -> None:
    if settings.solver not in SOLVERS:
        raise ValueError(f"unknown solver {settings.solver!r}; choose one of {SOLVERS}")
    if not settings.rate_hz > 0:
        raise ValueError(f"rate_hz must be > 0, got {settings.rate_hz}")
    names = [b.name for b in bodies]
    if len(set(names)) != len(names) or GROUND in names:
        raise ValueError(f"body names must be unique and not {GROUND!r}: {names}")
    for b in bodies:
        if b.shape not in SHAPES:
            raise ValueError(f"body {b.name!r}: unknown shape {b.shape!r}; choose one of {SHAPES}")
        if b.shape in ("sphere", "capsule", "cylinder") and not b.radius > 0:
            raise ValueError(f"body {b.name!r}: {b.shape} needs radius > 0")
        if b.shape in ("capsule", "cylinder") and not b.half_height > 0:
            raise ValueError(f"body {b.name!r}: {b.shape} needs half_height > 0")
        if b.shape == "box" and not min(b.half_extents) > 0:
            raise ValueError(f"body {b.name!r}: box needs half_extents > 0")
        if b.shape == "mesh" and (b.mesh_verts is None or b.mesh_faces is None):
            raise ValueError(f"body {b.name!r}: mesh needs mesh_verts and mesh_faces")
        if not b.static and not (b.mass if b.mass is not None else b.density) > 0:
            raise ValueError(f"body {b.name!r}: a dynamic body needs mass or density > 0")


def _xform(position: tuple, quat_wxyz: tuple) -> wp.transform:
    w, x, y, z = (float(v) for v in quat_wxyz)
    norm = math.sqrt(w * w + x * x + y * y + z * z)
    if not norm > 0:
        raise ValueError(f"quaternion {quat_wxyz} has zero norm")
    return wp.transform(
        wp.vec3(*(float(p) for p in position)), wp.quat(x / norm, y / norm, z / norm, w / norm)
    )


def _add_shape(
    builder: newton.ModelBuilder,
    body: int,
    desc: RigidBodyDesc,
    xform: wp.transform | None,
    cfg: newton.ModelBuilder.ShapeConfig,
) -> int:
    """Add ``desc``'s collision shape to ``body`` (-1: static, placed at ``xform``)."""
    kw = {"xform": xform, "cfg": cfg, "label": desc.name}
    if desc.shape == "sphere":
        return builder.add_shape_sphere(body, radius=desc.radius, **kw)
    if desc.shape == "box":
        hx, hy, hz = (float(h) for h in desc.half_extents)
        return builder.add_shape_box(body, hx=hx, hy=hy, hz=hz, **kw)
    if desc.shape == "capsule":
        return builder.add_shape_capsule(
            body, radius=desc.radius, half_height=desc.half_height, **kw
        )
    if desc.shape == "cylinder":
        return builder.add_shape_cylinder(
            body, radius=desc.radius, half_height=desc.half_height, **kw
        )
    source = newton.Mesh(
        np.asarray(desc.mesh_verts, np.float32),
        np.asarray(desc.mesh_faces, np.int32).reshape(-1),
        compute_inertia=False,
    ).compute_convex_hull()
    hull = newton.Mesh(source.vertices, source.indices)  # closed hull: Newton computes its inertia
    return builder.add_shape_convex_hull(body, mesh=hull, **kw)


def _set_mass(builder: newton.ModelBuilder, body: int, mass: float) -> None:
    """Rescale a body's density-derived mass and inertia to ``mass`` (uniform density scaling)."""
    scale = mass / builder.body_mass[body]
    inertia = np.array(builder.body_inertia[body], dtype=np.float64).reshape(3, 3) * scale
    builder.body_mass[body] = mass
    builder.body_inv_mass[body] = 1.0 / mass
    builder.body_inertia[body] = wp.mat33(*inertia.ravel())
    builder.body_inv_inertia[body] = wp.mat33(*np.linalg.inv(inertia).ravel())


def _quat_rotate(q_xyzw: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate vectors ``v`` [N, 3] by unit quaternions ``q_xyzw`` [N, 4]."""
    u, w = q_xyzw[:, :3], q_xyzw[:, 3:4]
    t = 2.0 * np.cross(u, v)
    return v + w * t + np.cross(u, t)


class _NewtonScene:
    """A built Newton model with its solver, collision pipeline and double-buffered states.

    ``body_index`` [B] maps each description to its Newton body (-1 for static bodies);
    ``shape_owner`` [S] maps each Newton shape to its description (-1 for the ground).
    """

    def __init__(self, bodies: list[RigidBodyDesc], settings: PhysicsSettings):
        _check_inputs(bodies, settings)
        self.device = wp.get_device(settings.device)
        with wp.ScopedDevice(self.device):
            self._build(bodies, settings)

    def _build(self, bodies: list[RigidBodyDesc], settings: PhysicsSettings) -> None:
        builder = newton.ModelBuilder(gravity=tuple(float(g) for g in settings.gravity))
        shape_owner = []
        if settings.ground:
            ground_cfg = newton.ModelBuilder.ShapeConfig(
                mu=settings.ground_friction, restitution=settings.ground_restitution
            )
            builder.add_ground_plane(height=settings.ground_height, cfg=ground_cfg)
            shape_owner.append(-1)
        body_index = []
        for i, desc in enumerate(bodies):
            cfg = newton.ModelBuilder.ShapeConfig(
                density=0.0 if desc.static else desc.density,
                mu=desc.friction,
                restitution=desc.restitution,
            )
            pose = _xform(desc.position, desc.quat)
            if desc.static:
                _add_shape(builder, -1, desc, pose, cfg)
                body_index.append(-1)
            else:
                body = builder.add_body(xform=pose, label=desc.name)
                _add_shape(builder, body, desc, None, cfg)
                if desc.mass is not None:
                    _set_mass(builder, body, float(desc.mass))
                body_index.append(body)
            shape_owner.append(i)
        self.model = builder.finalize()
        self.body_index = np.asarray(body_index, dtype=np.int64)
        self.shape_owner = np.asarray(shape_owner, dtype=np.int64)
        self.shape_body = self.model.shape_body.numpy().copy()

        if settings.solver == "xpbd":
            self.solver = newton.solvers.SolverXPBD(
                self.model, iterations=settings.iterations, enable_restitution=True
            )
            # Sticky matching keeps contact anchors across steps, which is what lets XPBD's
            # position-level friction hold a body still on a slope.
            self.pipeline = newton.CollisionPipeline(self.model, contact_matching="sticky")
        else:
            self.solver = newton.solvers.SolverSteel(
                self.model, iterations=settings.iterations, enable_restitution=True
            )
            self.pipeline = newton.CollisionPipeline(self.model)
        self.contacts = self.pipeline.contacts()
        self.observables = None
        if settings.record_contacts:
            self.observables = self.solver.observables(
                {self.solver.ObservableKind.CONTACT_F}, contacts=self.contacts
            )
        self.control = self.model.control()
        self.state_0 = self.model.state()
        self.state_1 = self.model.state()
        self._set_initial_velocity(bodies)

    def _set_initial_velocity(self, bodies: list[RigidBodyDesc]) -> None:
        """Write initial twists into both the maximal (XPBD) and joint (Steel) coordinates.

        Each dynamic body is one free joint in input order, whose ``joint_qd`` is the same
        (v_com, omega) world twist as ``body_qd``.
        """
        dynamic = [d for d in bodies if not d.static]
        if not dynamic:
            return
        qd = np.array(
            [(*d.linear_velocity, *d.angular_velocity) for d in dynamic], dtype=np.float32
        )
        self.state_0.body_qd.assign(qd)
        self.state_0.joint_qd.assign(qd.reshape(-1))

    def step(self, dt: float) -> None:
        """Advance one physics step: collide, solve, swap states."""
        self.state_0.clear_forces()
        self.pipeline.collide(self.state_0, self.contacts)
        self.solver.step(
            self.state_0,
            self.state_1,
            self.control,
            self.contacts,
            dt,
            observables=self.observables,
        )
        self.state_0, self.state_1 = self.state_1, self.state_0


class _ContactRecorder:
    """Turns Newton's per-step contact buffers into touch events between named bodies.

    A pair of shapes is active in a step when the solver pushed on any of its contacts (nonzero
    normal force in the ``CONTACT_F`` observable); it starts touching when it becomes active after
    :data:`_RELEASE_TIME` or more without being active. Call :meth:`remember` before each step
    and :meth:`scan` after it.
    """

    def __init__(self, scene: _NewtonScene, names: list[str], dt: float):
        self.scene = scene
        self.names = names
        self.n_shapes = len(scene.shape_owner)
        self.release_steps = max(1, math.ceil(_RELEASE_TIME / dt))
        self.body_com = scene.model.body_com.numpy().astype(np.float64)  # [N, 3] body frame
        self.pair_keys = np.zeros(0, dtype=np.int64)  # sorted keys min_shape * S + max_shape
        self.pair_last = np.zeros(0, dtype=np.int64)  # step each pair was last active
        self.step = 0
        self.prev_q = self.prev_qd = None
        self.events: list[dict] = []

    def remember(self) -> None:
        """Copy the pose and twist the coming step starts from (the solver reuses the buffers)."""
        self.prev_q = self.scene.state_0.body_q.numpy().astype(np.float64)
        self.prev_qd = self.scene.state_0.body_qd.numpy().astype(np.float64)

    def scan(self, frame: int, time: float) -> None:
        """Record pairs that started touching in the step just taken (state_0 is its result)."""
        self.step += 1
        recent = self.step - self.pair_last <= self.release_steps
        self.pair_keys, self.pair_last = self.pair_keys[recent], self.pair_last[recent]
        c = self.scene.contacts
        n = int(c.rigid_contact_count.numpy()[0])
        if n == 0:
            return
        shape0 = c.rigid_contact_shape0.numpy()[:n].astype(np.int64)
        shape1 = c.rigid_contact_shape1.numpy()[:n].astype(np.int64)
        normal = c.rigid_contact_normal.numpy()[:n].astype(np.float64)
        force = self.scene.observables.contact_f.numpy()[:n, :3]
        push = np.abs(np.einsum("ij,ij->i", force, normal))
        active = push > 0.0
        if not active.any():
            return
        keys = np.minimum(shape0, shape1) * self.n_shapes + np.maximum(shape0, shape1)
        active_keys = np.unique(keys[active])
        pos = np.searchsorted(self.pair_keys, active_keys)
        known = pos < len(self.pair_keys)
        known[known] = self.pair_keys[pos[known]] == active_keys[known]
        self.pair_last[pos[known]] = self.step
        new = active_keys[~known]
        if new.size == 0:
            return
        self.pair_keys = np.concatenate([self.pair_keys, new])
        self.pair_last = np.concatenate([self.pair_last, np.full(new.size, self.step)])
        order = np.argsort(self.pair_keys)
        self.pair_keys, self.pair_last = self.pair_keys[order], self.pair_last[order]

        # one representative contact per new pair: the one the solver pushed hardest
        cand = np.flatnonzero(active & np.isin(keys, new))
        cand = cand[np.lexsort((-push[cand], keys[cand]))]
        first = np.ones(cand.size, dtype=bool)
        first[1:] = keys[cand[1:]] != keys[cand[:-1]]
        i = cand[first]
        s0, s1, nrm = shape0[i], shape1[i], normal[i]
        body_q = self.scene.state_0.body_q.numpy().astype(np.float64)
        p0 = self._to_world(body_q, s0, c.rigid_contact_point0.numpy()[i])
        p1 = self._to_world(body_q, s1, c.rigid_contact_point1.numpy()[i])
        m0 = c.rigid_contact_margin0.numpy()[i, None].astype(np.float64)
        m1 = c.rigid_contact_margin1.numpy()[i, None].astype(np.float64)
        sep = np.einsum("ij,ij->i", nrm, p1 - p0) - (m0 + m1)[:, 0]
        mid = 0.5 * (p0 + nrm * m0 + p1 - nrm * m1)
        v0 = self._point_velocity(self.prev_q, self.prev_qd, s0, mid)
        v1 = self._point_velocity(self.prev_q, self.prev_qd, s1, mid)
        closing = np.einsum("ij,ij->i", v1 - v0, nrm)
        a, b = self.scene.shape_owner[s0], self.scene.shape_owner[s1]
        swap = (a == -1) | ((b != -1) & (b < a))  # name a body first, the ground last
        a, b = np.where(swap, b, a), np.where(swap, a, b)
        nrm = np.where(swap[:, None], -nrm, nrm)
        for k in range(i.size):
            self.events.append(
                {
                    "frame": frame,
                    "time": time,
                    "a": self.names[a[k]],
                    "b": GROUND if b[k] == -1 else self.names[b[k]],
                    "position": tuple(mid[k].tolist()),
                    "normal": tuple(nrm[k].tolist()),
                    "depth": max(0.0, -float(sep[k])),
                    "approach_speed": max(0.0, -float(closing[k])),
                }
            )

    def _to_world(self, body_q: np.ndarray, shape: np.ndarray, point: np.ndarray) -> np.ndarray:
        """Body-frame contact points [N, 3] -> world (static shapes' points are already world)."""
        body = self.scene.shape_body[shape]
        out = point.astype(np.float64)
        moving = body >= 0
        q = body_q[body[moving]]
        out[moving] = q[:, :3] + _quat_rotate(q[:, 3:], out[moving])
        return out

    def _point_velocity(
        self, q: np.ndarray, qd: np.ndarray, shape: np.ndarray, point: np.ndarray
    ) -> np.ndarray:
        """World velocities [N, 3] of the material points of ``shape`` [N] at ``point`` [N, 3].

        q: [bodies, 7] poses and qd: [bodies, 6] twists (v_com, omega) to evaluate them with.
        """
        body = self.scene.shape_body[shape]
        out = np.zeros_like(point)
        moving = body >= 0
        q, qd = q[body[moving]], qd[body[moving]]
        com = q[:, :3] + _quat_rotate(q[:, 3:], self.body_com[body[moving]])
        out[moving] = qd[:, :3] + np.cross(qd[:, 3:], point[moving] - com)
        return out


def _check_state(
    names: list[str],
    q: np.ndarray,
    qd: np.ndarray,
    frame: int,
    time: float,
    settings: PhysicsSettings,
) -> None:
    """Raise PhysicsError for the first body that is non-finite, too fast or too far.

    q: [B, 7] pose (position, quaternion), qd: [B, 6] twist (linear, angular).
    """
    where = f"at frame {frame} (t={time:.3f} s)"
    bad = ~(np.isfinite(q).all(axis=1) & np.isfinite(qd).all(axis=1))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        others = int(bad.sum()) - 1
        also = f" ({others} other bodies too)" if others else ""
        what = "starts with a NaN/inf pose or velocity" if frame == 0 else "became NaN/inf"
        raise PhysicsError(f"body {names[i]!r} {what} {where}{also}")
    speed = np.linalg.norm(qd[:, :3], axis=1)
    if (speed > settings.max_speed).any():
        i = int(np.argmax(speed))
        raise PhysicsError(
            f"body {names[i]!r} moves at {speed[i]:.1f} m/s {where}, above max_speed "
            f"{settings.max_speed} m/s (exploding contact or too large a time step?)"
        )
    reach = np.abs(q[:, :3]).max(axis=1)
    if (reach > settings.max_distance).any():
        i = int(np.argmax(reach))
        raise PhysicsError(
            f"body {names[i]!r} left the simulation bounds {where}: |coordinate| = "
            f"{reach[i]:.1f} m > max_distance {settings.max_distance} m"
        )


def _static_pose(desc: RigidBodyDesc) -> np.ndarray:
    """Newton pose [7] (position, quaternion x y z w) of a static body."""
    w, x, y, z = np.asarray(desc.quat, dtype=np.float64) / np.linalg.norm(desc.quat)
    return np.array([*desc.position, x, y, z, w], dtype=np.float64)


def simulate_rigid(
    bodies: list[RigidBodyDesc],
    settings: PhysicsSettings,
    fps: float,
    frames: int,
    progress: Callable[[int], None] | None = None,
) -> RigidTrajectory:
    """Simulate rigid bodies with Newton and sample them at ``fps``.

    Args:
        bodies: body descriptions; their order is the body axis B of the result.
        settings: physics rate, gravity, ground, solver and fail-safe limits.
        fps: video frame rate; frame k is the state at time k / fps.
        frames: number of frames T >= 1 returned, frame 0 being the initial state, so the
            simulation covers (T - 1) / fps seconds.
        progress: called with k after frame k (1 .. T-1) has been computed.

    Returns:
        RigidTrajectory with tensors [T], [T, B, 3], [T, B, 4] and contact events.

    Raises:
        PhysicsError: a body became non-finite, faster than ``settings.max_speed`` or farther than
            ``settings.max_distance``; the message names the body and the frame.
        ValueError: invalid descriptions or settings.
    """
    if frames < 1 or not fps > 0:
        raise ValueError(f"need frames >= 1 and fps > 0, got frames={frames}, fps={fps}")
    names = [b.name for b in bodies]
    scene = _NewtonScene(bodies, settings)
    steps = max(1, round(settings.rate_hz / fps))
    dt = 1.0 / (fps * steps)

    n = len(bodies)
    q = np.zeros((frames, n, 7), dtype=np.float64)
    qd = np.zeros((frames, n, 6), dtype=np.float64)
    static = scene.body_index < 0
    for i in np.flatnonzero(static):
        q[:, i] = _static_pose(bodies[i])
    dynamic = np.flatnonzero(~static)
    index = scene.body_index[dynamic]
    recorder = _ContactRecorder(scene, names, dt) if settings.record_contacts else None

    with wp.ScopedDevice(scene.device):
        for k in range(frames):
            if k > 0:
                for s in range(steps):
                    if recorder is not None:
                        recorder.remember()
                    scene.step(dt)
                    if recorder is not None:
                        recorder.scan(k, ((k - 1) * steps + s + 1) * dt)
            if dynamic.size:
                q[k, dynamic] = scene.state_0.body_q.numpy()[index]
                qd[k, dynamic] = scene.state_0.body_qd.numpy()[index]
            _check_state(names, q[k], qd[k], k, k / fps, settings)
            if progress is not None and k > 0:
                progress(k)

    quat_wxyz = np.concatenate([q[..., 6:7], q[..., 3:6]], axis=-1)
    return RigidTrajectory(
        names=names,
        times=torch.arange(frames, dtype=torch.float64).div(fps).float(),
        positions=torch.from_numpy(q[..., :3]).float(),
        quats=torch.from_numpy(quat_wxyz).float(),
        linear_velocity=torch.from_numpy(qd[..., :3]).float(),
        angular_velocity=torch.from_numpy(qd[..., 3:]).float(),
        contacts=recorder.events if recorder is not None else [],
    )


def warmup(solver: str = "xpbd") -> None:
    """Compiles (and caches in ``~/.cache/warp``) the kernels a typical scene needs: every
    primitive shape and a mesh on a ground plane for two frames. Run once at install time so the
    first real simulation does not pay Warp's one-time compilation."""
    tri = np.array([[0, 0, 0], [0.1, 0, 0], [0, 0.1, 0], [0, 0, 0.1]], dtype=np.float32)
    faces = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]], dtype=np.int64)
    bodies = [
        RigidBodyDesc("sphere", "sphere", radius=0.1, position=(0, 0, 0.3)),
        RigidBodyDesc("box", "box", half_extents=(0.1, 0.1, 0.1), position=(0.5, 0, 0.3)),
        RigidBodyDesc("capsule", "capsule", radius=0.05, half_height=0.1, position=(1, 0, 0.3)),
        RigidBodyDesc("cylinder", "cylinder", radius=0.1, half_height=0.1,
                      position=(1.5, 0, 0.3)),
        RigidBodyDesc("mesh", "mesh", mesh_verts=tri, mesh_faces=faces, position=(2, 0, 0.3)),
    ]
    simulate_rigid(bodies, PhysicsSettings(solver=solver), fps=30.0, frames=2)
