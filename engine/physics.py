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
- Robots. A :class:`RobotDesc` goes into the same model through Newton's ``add_urdf`` /
  ``add_mjcf`` (so its links collide with every other body), fixed to the world or floating.
  Each one-DoF joint gets a position drive (``joint_target_ke`` / ``joint_target_kd``) whose
  target is written into ``Control.joint_target_q`` before every physics step from the
  robot's keyframes. Joint coordinates are read back with ``newton.eval_ik``.
  XPBD works on body poses and treats a drive as a compliant position constraint (compliance
  1 / ke, damping time kd / ke; damping only slows it), so what limits it is its own residual:
  with 4 iterations at 240 Hz the shipped arm rings about a pose by up to 0.09 rad (decaying
  over seconds) and sags 0.02 rad under gravity, whatever ke above ~1e3. With robots present
  XPBD therefore runs :data:`ROBOT_ITERATIONS` = 16 iterations: 0.006 rad from the target at
  rest, and the joints themselves give way by up to 2 cm / 0.07 rad at the paddle while the arm
  swings at 3 rad/s (3 mm / 0.01 rad at rest), so link poses differ from FK(q) by that much.
  Rate helps as dt^2 (480 Hz / 4 iterations is as good as 240 Hz / 16). ``SolverSteel`` works
  in joint coordinates: link poses are FK(q) exactly, a joint holds its target to gravity
  torque / ke (3e-4 rad at ke = 1e4, as a PD drive should) and the built-in robot scene runs
  faster than with XPBD at 16 iterations (3.0 s against 4.6 s). An articulation's contacts
  share its Steel constraint rows (32 by default, too few: the arm then passed through what it
  pushed), so with robots Steel gets 256.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import warp as wp

from rendiff import defaults
from rendiff.kernels.warp_cpu import init_warp

# No start-up banner or per-module "load on device" lines on stdout; warnings and errors remain.
wp.config.quiet = True
wp.config.log_level = wp.LOG_WARNING

import newton  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import Tensor  # noqa: E402

from .robots import (  # noqa: E402
    RobotFile,
    RobotVisual,
    check_names,
    read_robot_file,
    shipped_robot,
    target_table,
    urdf_without_meshes,
)

__all__ = [
    "SHAPES",
    "SOLVERS",
    "PhysicsError",
    "PhysicsSettings",
    "RigidBodyDesc",
    "RigidTrajectory",
    "RobotDesc",
    "RobotTrajectory",
    "init_warp",
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

ROBOT_ITERATIONS = 16
"""XPBD iterations per step in a scene with robots (see the module notes)."""


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
class RobotDesc:
    """An articulated robot from a URDF or MJCF file, driven by joint-position targets.

    The file's root link is placed at ``position`` / ``quat`` and welded to the world
    (``fixed_base``) or left free. Every one-DoF joint (revolute, continuous, prismatic; MJCF
    hinge, slide) gets a position drive of stiffness ``stiffness`` [N m/rad or N/m] and damping
    ``damping`` [N m s/rad or N s/m]; its target follows ``targets`` (joint name -> [(time [s],
    value [rad or m]), ...]) and otherwise holds the joint's initial position, ``initial_q``
    or 0. ``friction`` and ``restitution`` apply to the links' collision shapes.
    """

    name: str
    path: str
    format: str = "urdf"  # 'urdf' | 'mjcf'
    position: tuple[float, float, float] = (0.0, 0.0, 0.0)  # root link origin, world [m]
    quat: tuple[float, float, float, float] = (1.0, 0.0, 0.0, 0.0)  # (w, x, y, z)
    fixed_base: bool = True
    initial_q: dict[str, float] = field(default_factory=dict)
    targets: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    interpolation: str = "smooth"  # one of robots.INTERPOLATIONS
    stiffness: float = 1.0e4
    damping: float = 0.0
    friction: float = 0.5
    restitution: float = 0.0
    self_collisions: bool = False


@dataclass
class RobotTrajectory:
    """Per-frame state of one robot. D one-DoF joints in Newton's order (depth first from the
    root), L links in Newton's body order (the root first).

    Revolute joint angles are unwrapped over time (they may leave (-pi, pi]). Link poses are
    link-frame origins; link velocities follow :class:`RigidTrajectory` (centre of mass, world).
    """

    name: str
    joint_names: list[str]
    joint_kinds: list[str]  # 'revolute' | 'prismatic'
    lower: Tensor  # [D] float32 joint limits [rad or m]
    upper: Tensor  # [D]
    q: Tensor  # [T, D] float32 joint positions [rad or m]
    qd: Tensor  # [T, D] float32 joint velocities [rad/s or m/s]
    targets: Tensor  # [T, D] float32 drive targets at each frame
    link_names: list[str]
    link_positions: Tensor  # [T, L, 3] float32, world [m]
    link_quats: Tensor  # [T, L, 4] float32 (w, x, y, z)
    link_linear_velocity: Tensor  # [T, L, 3] float32, centre of mass, world [m/s]
    link_angular_velocity: Tensor  # [T, L, 3] float32, world [rad/s]
    visuals: list[RobotVisual] = field(default_factory=list)


@dataclass
class PhysicsSettings:
    """How to simulate: rate, gravity, ground, solver, fail-safe limits."""

    rate_hz: float = defaults.PHYSICS_RATE_HZ  # steps per second (whole steps per video frame)
    gravity: tuple[float, float, float] = defaults.GRAVITY  # [m/s^2]
    ground: bool = True
    ground_height: float = 0.0  # [m]
    ground_friction: float = defaults.GROUND_FRICTION
    ground_restitution: float = 0.0
    solver: str = defaults.PHYSICS_SOLVER  # one of SOLVERS
    device: str = "cpu"
    iterations: int | None = None  # XPBD position / Steel PGS iterations per step; None: 4,
    # or ROBOT_ITERATIONS for XPBD when there are robots
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
    which the solver first pushed, [s]), ``a`` (body name, ``robot/link`` for a robot's link; the
    earlier body in input order, robots after bodies), ``b`` (the other body's name, or
    ``'ground'``), ``position`` (world point midway between the
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
    robots: list[RobotTrajectory] = field(default_factory=list)


class PhysicsError(RuntimeError):
    """The simulation produced a non-finite, too fast or escaping body; names body and frame."""


def _check_inputs(
    bodies: list[RigidBodyDesc], settings: PhysicsSettings, robots: list[RobotDesc]
) -> None:
    if settings.solver not in SOLVERS:
        raise ValueError(f"unknown solver {settings.solver!r}; choose one of {SOLVERS}")
    if not settings.rate_hz > 0:
        raise ValueError(f"rate_hz must be > 0, got {settings.rate_hz}")
    names = [b.name for b in bodies] + [r.name for r in robots]
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
    for r in robots:
        if r.format not in ("urdf", "mjcf"):
            raise ValueError(f"robot {r.name!r}: format must be 'urdf' or 'mjcf', not {r.format!r}")
        if not r.stiffness >= 0 or not r.damping >= 0:
            raise ValueError(f"robot {r.name!r}: stiffness and damping must be >= 0")
        for joint, keys in r.targets.items():
            times = [float(k[0]) for k in keys]
            if not keys or any(b <= a for a, b in zip(times, times[1:], strict=False)):
                raise ValueError(f"robot {r.name!r}: targets of joint {joint!r} need keyframes "
                                 "with strictly increasing times")


def xform(position: tuple, quat_wxyz: tuple) -> wp.transform:
    w, x, y, z = (float(v) for v in quat_wxyz)
    norm = math.sqrt(w * w + x * x + y * y + z * z)
    if not norm > 0:
        raise ValueError(f"quaternion {quat_wxyz} has zero norm")
    return wp.transform(
        wp.vec3(*(float(p) for p in position)), wp.quat(x / norm, y / norm, z / norm, w / norm)
    )


def add_shape(
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


@dataclass
class _Robot:
    """Where a robot landed in the Newton model.

    ``bodies`` [L] are its links' Newton bodies; ``coords`` [D] / ``dofs`` [D] index its one-DoF
    joints in ``joint_q`` / ``joint_qd``; ``initial`` [D] are their initial positions.
    """

    desc: RobotDesc
    file: RobotFile
    link_names: list[str]
    bodies: np.ndarray
    joint_names: list[str]
    joint_kinds: list[str]
    coords: np.ndarray
    dofs: np.ndarray
    initial: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    visuals: list[RobotVisual]
    articulations: list[int]


def _file_name(label: str, names: list[str] | tuple[str, ...]) -> str:
    """The file's name for a Newton label such as ``arm/elbow`` or ``arm/worldbody/a/elbow``
    (Newton prefixes the robot and, for MJCF, the body path, and turns '-' into '_')."""
    last = label.rsplit("/", 1)[-1]
    if last in names:
        return last
    return next((n for n in names if n.replace("-", "_") == last), last)


_VISUAL_SHAPES = {
    newton.GeoType.SPHERE: "sphere",
    newton.GeoType.BOX: "box",
    newton.GeoType.CAPSULE: "capsule",
    newton.GeoType.CYLINDER: "cylinder",
    newton.GeoType.CONE: "cone",
    newton.GeoType.ELLIPSOID: "ellipsoid",
    newton.GeoType.MESH: "mesh",
    newton.GeoType.CONVEX_MESH: "mesh",
}


def _one_line(err: BaseException) -> str:
    return " ".join(f"{type(err).__name__}: {err}".split())


def _import_robot(builder: newton.ModelBuilder, desc: RobotDesc) -> _Robot:
    """Add ``desc``'s links, joints, drives and shapes to ``builder``."""
    info = read_robot_file(desc.path, desc.format)
    where = f"robot {desc.name!r} ({Path(info.path).name})"
    b0, j0, s0 = builder.body_count, builder.joint_count, builder.shape_count
    a0 = builder.articulation_count
    kwargs = dict(xform=xform(desc.position, desc.quat), floating=not desc.fixed_base,
                  enable_self_collisions=desc.self_collisions)
    try:
        if info.format == "urdf":
            builder.add_urdf(urdf_without_meshes(info) if info.meshes else info.path, **kwargs)
        else:
            builder.add_mjcf(info.path, parse_mujoco_options=False, **kwargs)
    except Exception as err:
        raise ValueError(f"{where}: Newton cannot import it: {_one_line(err)}") from err
    links = [_file_name(lb, info.links) for lb in builder.body_label[b0:]]
    for ref in info.meshes:
        _add_urdf_mesh(builder, desc, info, b0 + links.index(ref.link), ref, s0)

    names, kinds, coords, dofs = [], [], [], []
    for j in range(j0, builder.joint_count):
        kind = builder.joint_type[j]
        if kind not in (newton.JointType.REVOLUTE, newton.JointType.PRISMATIC):
            continue
        names.append(_file_name(builder.joint_label[j], info.dof_joints))
        kinds.append("revolute" if kind == newton.JointType.REVOLUTE else "prismatic")
        coords.append(builder.joint_q_start[j])
        dofs.append(builder.joint_qd_start[j])
    try:
        check_names(desc.initial_q, names)
        check_names(desc.targets, names)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None
    lower = np.array([builder.joint_limit_lower[d] for d in dofs], dtype=np.float64)
    upper = np.array([builder.joint_limit_upper[d] for d in dofs], dtype=np.float64)
    initial = np.array([float(desc.initial_q.get(n, 0.0)) for n in names], dtype=np.float64)
    checks = [(n, "initial position", v) for n, v in desc.initial_q.items()]
    checks += [(n, f"target at t={t:g} s", v) for n, keys in desc.targets.items() for t, v in keys]
    for n, what, v in checks:
        i = names.index(n)
        if not lower[i] - 1e-9 <= v <= upper[i] + 1e-9:
            raise ValueError(f"{where}: joint {n!r} {what} {v:g} is outside its limits "
                             f"[{lower[i]:.4g}, {upper[i]:.4g}]")
    for i, (c, d) in enumerate(zip(coords, dofs, strict=True)):
        builder.joint_q[c] = initial[i]
        builder.joint_target_q[c] = initial[i]
        builder.joint_target_ke[d] = float(desc.stiffness)
        builder.joint_target_kd[d] = float(desc.damping)
        builder.joint_target_mode[d] = int(newton.JointTargetMode.POSITION)
    for s in range(s0, builder.shape_count):
        if builder.shape_flags[s] & newton.ShapeFlags.COLLIDE_SHAPES:
            builder.shape_material_mu[s] = float(desc.friction)
            builder.shape_material_restitution[s] = float(desc.restitution)
    return _Robot(desc, info, links, np.arange(b0, builder.body_count), names, kinds,
                  np.asarray(coords, np.int64), np.asarray(dofs, np.int64), initial, lower, upper,
                  _robot_visuals(builder, s0, b0), list(range(a0, builder.articulation_count)))


def _add_urdf_mesh(builder: newton.ModelBuilder, desc: RobotDesc, info: RobotFile, body: int,
                   ref, first_shape: int) -> None:
    """Add a URDF ``<mesh>`` (read here, see :func:`urdf_without_meshes`) to ``body``: a drawn
    mesh for a visual, a convex hull for a collision, following Newton's URDF conventions
    (colliders are hidden when the file has visuals; an ``<inertial>`` fixes the link's mass)."""
    from .meshes import load_mesh

    mesh = load_mesh(ref.path)
    verts = mesh.verts.numpy().astype(np.float32) * np.asarray(ref.scale, np.float32)
    faces = mesh.faces.numpy().astype(np.int32).reshape(-1)
    xform = wp.transform(wp.vec3(*ref.position), wp.quat_rpy(*ref.rpy))
    if ref.role == "visual":
        cfg = newton.ModelBuilder.ShapeConfig(density=0.0, is_visible=True,
                                              has_shape_collision=False,
                                              has_particle_collision=False)
        builder.add_shape_mesh(body, xform=xform, cfg=cfg, color=ref.color,
                               mesh=newton.Mesh(verts, faces, compute_inertia=False))
        return
    density = 0.0 if ref.link in info.inertial_links else builder.default_shape_cfg.density
    cfg = newton.ModelBuilder.ShapeConfig(density=density, mu=desc.friction,
                                          restitution=desc.restitution,
                                          is_visible=not info.has_visuals)
    hull = newton.Mesh(verts, faces, compute_inertia=False).compute_convex_hull()
    shape = builder.add_shape_convex_hull(body, xform=xform, cfg=cfg,
                                          mesh=newton.Mesh(hull.vertices, hull.indices))
    if not desc.self_collisions:
        for other in range(first_shape, shape):
            if builder.shape_flags[other] & newton.ShapeFlags.COLLIDE_SHAPES:
                builder.add_shape_collision_filter_pair(other, shape)


def _robot_visuals(builder: newton.ModelBuilder, first_shape: int, first_body: int) -> list:
    """The drawn shapes (Newton's VISIBLE flag) of the bodies from ``first_body`` on."""
    palette = getattr(newton.ModelBuilder, "_shape_palette_color", None)
    out = []
    for s in range(first_shape, builder.shape_count):
        body = builder.shape_body[s]
        kind = _VISUAL_SHAPES.get(builder.shape_type[s])
        drawn = builder.shape_flags[s] & newton.ShapeFlags.VISIBLE
        if body < first_body or kind is None or not drawn:
            continue
        tf = builder.shape_transform[s]
        p, q = tf.p, tf.q
        color = tuple(float(c) for c in builder.shape_color[s])
        if palette is not None and np.allclose(color, palette(s)):
            color = None  # Newton's stand-in colour: the file gives none
        verts = faces = None
        if kind == "mesh":
            src = builder.shape_source[s]
            verts = np.asarray(src.vertices, np.float32).reshape(-1, 3)
            faces = np.asarray(src.indices, np.int64).reshape(-1, 3)
        out.append(RobotVisual(
            link=body - first_body, shape=kind,
            size=tuple(float(v) for v in builder.shape_scale[s]),
            position=(float(p[0]), float(p[1]), float(p[2])),
            quat=(float(q[3]), float(q[0]), float(q[1]), float(q[2])),
            color=color, mesh_verts=verts, mesh_faces=faces))
    return out


class _NewtonScene:
    """A built Newton model with its solver, collision pipeline and double-buffered states.

    ``body_index`` [B] maps each description to its Newton body (-1 for static bodies);
    ``shape_owner`` [S] maps each Newton shape to its description (-1 for the ground), robot
    links counting on after the bodies (see ``names``); ``robots`` says where each robot went.
    """

    def __init__(self, bodies: list[RigidBodyDesc], settings: PhysicsSettings,
                 robots: list[RobotDesc] | None = None):
        robots = list(robots or [])
        _check_inputs(bodies, settings, robots)
        self.device = wp.get_device(settings.device)
        with wp.ScopedDevice(self.device):
            self._build(bodies, settings, robots)

    def _build(self, bodies: list[RigidBodyDesc], settings: PhysicsSettings,
               robots: list[RobotDesc]) -> None:
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
            pose = xform(desc.position, desc.quat)
            if desc.static:
                add_shape(builder, -1, desc, pose, cfg)
                body_index.append(-1)
            else:
                body = builder.add_body(xform=pose, label=desc.name)
                add_shape(builder, body, desc, None, cfg)
                if desc.mass is not None:
                    _set_mass(builder, body, float(desc.mass))
                body_index.append(body)
            shape_owner.append(i)
        self.names = [b.name for b in bodies]
        self.robots: list[_Robot] = []
        for desc in robots:
            s0, b0 = builder.shape_count, builder.body_count
            robot = _import_robot(builder, desc)
            link0 = len(self.names)
            for s in range(s0, builder.shape_count):
                shape_owner.append(link0 + max(builder.shape_body[s] - b0, 0))
            self.names += [f"{desc.name}/{link}" for link in robot.link_names]
            self.robots.append(robot)
        self.model = builder.finalize()
        self.body_index = np.asarray(body_index, dtype=np.int64)
        self.shape_owner = np.asarray(shape_owner, dtype=np.int64)
        self.shape_body = self.model.shape_body.numpy().copy()

        iterations = settings.iterations
        if iterations is None:
            iterations = ROBOT_ITERATIONS if robots and settings.solver == "xpbd" else 4
        if settings.solver == "xpbd":
            self.solver = newton.solvers.SolverXPBD(
                self.model, iterations=iterations, enable_restitution=True
            )
            # Sticky matching keeps contact anchors across steps, which is what lets XPBD's
            # position-level friction hold a body still on a slope.
            self.pipeline = newton.CollisionPipeline(self.model, contact_matching="sticky")
        else:
            # an articulation's contacts share its constraint rows (default 32 per world)
            rows = {"articulation_constraint_max": 256} if robots else {}
            self.solver = newton.solvers.SolverSteel(
                self.model, iterations=iterations, enable_restitution=True, **rows
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
        if self.robots:
            # links start where their initial joint positions put them
            arts = [a for r in self.robots for a in r.articulations]
            self.robot_articulations = wp.array(arts, dtype=wp.int32)
            newton.eval_fk(self.model, self.model.joint_q, self.model.joint_qd, self.state_0,
                           indices=self.robot_articulations)
            self.joint_q = wp.zeros_like(self.model.joint_q)
            self.joint_qd = wp.zeros_like(self.model.joint_qd)
            self.target_q = self.model.joint_target_q.numpy().astype(np.float32)

    def _set_initial_velocity(self, bodies: list[RigidBodyDesc]) -> None:
        """Write initial twists into both the maximal (XPBD) and joint (Steel) coordinates.

        Each dynamic body has its own free joint, whose ``joint_qd`` is the same (v_com, omega)
        world twist as ``body_qd``.
        """
        dynamic = [i for i, d in enumerate(bodies) if not d.static]
        if not dynamic:
            return
        qd = np.array([(*bodies[i].linear_velocity, *bodies[i].angular_velocity)
                       for i in dynamic], dtype=np.float32)
        index = self.body_index[dynamic]
        body_qd = self.state_0.body_qd.numpy()
        body_qd[index] = qd
        self.state_0.body_qd.assign(body_qd)
        joint_of = {int(c): j for j, c in enumerate(self.model.joint_child.numpy())}
        start = self.model.joint_qd_start.numpy()
        joint_qd = self.state_0.joint_qd.numpy()
        for k, body in enumerate(index):
            j = start[joint_of[int(body)]]
            joint_qd[j:j + 6] = qd[k]
        self.state_0.joint_qd.assign(joint_qd)

    def set_targets(self, values: list[np.ndarray]) -> None:
        """Write each robot's joint targets ([D] per robot) into the control."""
        for robot, v in zip(self.robots, values, strict=True):
            self.target_q[robot.coords] = v
        self.control.joint_target_q.assign(self.target_q)

    def robot_joints(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each robot's joint positions and velocities ([D], [D]) in the current state."""
        newton.eval_ik(self.model, self.state_0, self.joint_q, self.joint_qd,
                       indices=self.robot_articulations)
        q, qd = self.joint_q.numpy(), self.joint_qd.numpy()
        return [(q[r.coords].astype(np.float64), qd[r.dofs].astype(np.float64))
                for r in self.robots]

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


def _check_contacts(scene: _NewtonScene, frame: int, time: float) -> None:
    """Raise PhysicsError when the last step found more contacts than Newton's buffer holds:
    the rest are dropped, bodies then pass through each other or fly apart (measured: 1,000
    overlapping spheres ask for 499,500 contacts of 55,000, and have flown apart by the frame's
    end, so every step is checked: one read of a counter)."""
    wanted = int(scene.contacts.rigid_contact_count.numpy()[0])
    capacity = len(scene.contacts.rigid_contact_shape0)
    if wanted > capacity:
        raise PhysicsError(
            f"too many contacts at frame {frame} (t={time:.3f} s): {wanted} for a buffer of "
            f"{capacity}, the rest would be dropped and bodies pass through each other; too "
            "many bodies touch at once (do dynamic bodies start inside each other?)")


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


class _RobotRecorder:
    """Per-frame joint and link state of every robot, plus the targets fed to its drives."""

    def __init__(self, scene: _NewtonScene, frames: int, fps: float, steps: int, dt: float):
        self.scene = scene
        frame_times = np.arange(frames, dtype=np.float64) / fps
        step_times = (np.arange((frames - 1) * steps, dtype=np.float64) + 1.0) * dt
        self.step_targets, self.frame_targets = [], []
        for r in scene.robots:
            d = r.desc
            self.step_targets.append(
                target_table(d.targets, r.joint_names, r.initial, step_times, d.interpolation))
            self.frame_targets.append(
                target_table(d.targets, r.joint_names, r.initial, frame_times, d.interpolation))
        self.q = [np.zeros((frames, len(r.joint_names))) for r in scene.robots]
        self.qd = [np.zeros((frames, len(r.joint_names))) for r in scene.robots]
        self.body_q = [np.zeros((frames, len(r.bodies), 7)) for r in scene.robots]
        self.body_qd = [np.zeros((frames, len(r.bodies), 6)) for r in scene.robots]

    def drive(self, step: int) -> None:
        """Set the drive targets of global physics step ``step`` (0-based)."""
        self.scene.set_targets([t[step] for t in self.step_targets])

    def sample(self, k: int, settings: PhysicsSettings, fps: float) -> None:
        """Store frame k (the current state) and check the links as bodies are checked."""
        body_q = self.scene.state_0.body_q.numpy()
        body_qd = self.scene.state_0.body_qd.numpy()
        for i, (r, (q, qd)) in enumerate(zip(self.scene.robots, self.scene.robot_joints(),
                                             strict=True)):
            self.body_q[i][k] = body_q[r.bodies]
            self.body_qd[i][k] = body_qd[r.bodies]
            _check_state([f"{r.desc.name}/{n}" for n in r.link_names], self.body_q[i][k],
                         self.body_qd[i][k], k, k / fps, settings)
            revolute = np.array([kind == "revolute" for kind in r.joint_kinds], dtype=bool)
            ref = self.q[i][k - 1] if k > 0 else r.initial
            turns = np.round((ref - q) / (2.0 * math.pi))
            self.q[i][k] = np.where(revolute, q + 2.0 * math.pi * turns, q)
            self.qd[i][k] = qd

    def result(self) -> list[RobotTrajectory]:
        out = []
        for i, r in enumerate(self.scene.robots):
            bq = self.body_q[i]
            quat = np.concatenate([bq[..., 6:7], bq[..., 3:6]], axis=-1)
            out.append(RobotTrajectory(
                name=r.desc.name, joint_names=list(r.joint_names),
                joint_kinds=list(r.joint_kinds),
                lower=torch.from_numpy(r.lower).float(), upper=torch.from_numpy(r.upper).float(),
                q=torch.from_numpy(self.q[i]).float(), qd=torch.from_numpy(self.qd[i]).float(),
                targets=torch.from_numpy(self.frame_targets[i]).float(),
                link_names=list(r.link_names),
                link_positions=torch.from_numpy(bq[..., :3]).float(),
                link_quats=torch.from_numpy(quat).float(),
                link_linear_velocity=torch.from_numpy(self.body_qd[i][..., :3]).float(),
                link_angular_velocity=torch.from_numpy(self.body_qd[i][..., 3:]).float(),
                visuals=r.visuals))
        return out


def simulate_rigid(
    bodies: list[RigidBodyDesc],
    settings: PhysicsSettings,
    fps: float,
    frames: int,
    progress: Callable[[int], None] | None = None,
    robots: list[RobotDesc] | None = None,
) -> RigidTrajectory:
    """Simulate rigid bodies and robots with Newton and sample them at ``fps``.

    Args:
        bodies: body descriptions; their order is the body axis B of the result.
        settings: physics rate, gravity, ground, solver and fail-safe limits.
        fps: video frame rate; frame k is the state at time k / fps.
        frames: number of frames T >= 1 returned, frame 0 being the initial state, so the
            simulation covers (T - 1) / fps seconds.
        progress: called with k after frame k (1 .. T-1) has been computed.
        robots: articulated robots in the same world (their links collide with the bodies).

    Returns:
        RigidTrajectory with tensors [T], [T, B, 3], [T, B, 4], contact events and one
        :class:`RobotTrajectory` per robot.

    Raises:
        PhysicsError: a body or link became non-finite, faster than ``settings.max_speed`` or
            farther than ``settings.max_distance``; the message names it and the frame.
        ValueError: invalid descriptions or settings; robot files Newton cannot import, unknown
            joint names, joint positions or targets outside the joint limits.
    """
    if frames < 1 or not fps > 0:
        raise ValueError(f"need frames >= 1 and fps > 0, got frames={frames}, fps={fps}")
    names = [b.name for b in bodies]
    scene = _NewtonScene(bodies, settings, robots)
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
    recorder = _ContactRecorder(scene, scene.names, dt) if settings.record_contacts else None
    arms = _RobotRecorder(scene, frames, fps, steps, dt) if scene.robots else None

    with wp.ScopedDevice(scene.device):
        for k in range(frames):
            if k > 0:
                for s in range(steps):
                    if arms is not None:
                        arms.drive((k - 1) * steps + s)
                    if recorder is not None:
                        recorder.remember()
                    scene.step(dt)
                    _check_contacts(scene, k, ((k - 1) * steps + s + 1) * dt)
                    if recorder is not None:
                        recorder.scan(k, ((k - 1) * steps + s + 1) * dt)
            if dynamic.size:
                q[k, dynamic] = scene.state_0.body_q.numpy()[index]
                qd[k, dynamic] = scene.state_0.body_qd.numpy()[index]
            _check_state(names, q[k], qd[k], k, k / fps, settings)
            if arms is not None:
                arms.sample(k, settings, fps)
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
        robots=arms.result() if arms is not None else [],
    )


def warmup(solver: str | None = None) -> None:
    """Compiles (and caches in ``~/.cache/warp``) the kernels a typical scene needs: every
    primitive shape, a mesh and the shipped robot arm on a ground plane for two frames, with
    ``solver`` (None: every solver in :data:`SOLVERS`; the built-in robot scene uses Steel). Run
    once at install time so the first real simulation does not pay Warp's compilation."""
    if solver is None:
        for name in SOLVERS:
            warmup(name)
        return
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
    arm = RobotDesc("arm", str(shipped_robot("rendiff_arm")), position=(-1.0, 0.0, 0.0),
                    targets={"shoulder": [(0.0, 0.0), (0.1, 0.2)]})
    simulate_rigid(bodies, PhysicsSettings(solver=solver), fps=30.0, frames=2, robots=[arm])
