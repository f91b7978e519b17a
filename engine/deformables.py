"""Deformable bodies: cloth through Newton's VBD solver, and MPM continua carrying Gaussians.

Like :mod:`rendiff.engine.physics`, this module takes plain descriptions (:class:`ClothDesc`,
:class:`rendiff.engine.mpm.MPMBodyDesc`, static colliders as
:class:`rendiff.engine.physics.RigidBodyDesc`) and returns per-frame states sampled at the video
frame rate; the scene layer (``rendiff.engine.simulator``) converts its spec into them.

Cloth (:func:`simulate_cloth`). Newton 1.8 ships several cloth solvers; on CPU, measured on a
17 x 17 sheet dropped on a box: ``SolverVBD`` (vertex block descent, its main cloth solver)
drapes it and rests it on the box top at one ``thickness`` (the particle radius) above the
surface; ``SolverXPBD`` with springs blows up as soon as the sheet touches a static box (the
same sheet falls freely and lands on the ground plane without trouble), so VBD it is. A cloth is
a triangle grid (``add_cloth_mesh``: one membrane element per triangle, one bending element per
inner edge); pinned vertices get zero mass, which Newton treats as kinematic. The ground plane
and the scene's static bodies are Newton collision shapes of the same model (VBD mixes
friction coefficients as ``sqrt(mu_cloth mu_shape)``; ``mu_cloth`` is one value per model, the
cloths' mean). Moving rigid bodies are not in it: cloth and rigid bodies do not act on each
other, nor cloth and MPM material. The cloth steps at the physics rate
(``dt = 1 / (fps * round(rate_hz / fps))``), running the collision pipeline and then the solver
each step, and swapping Newton's two states. On CPU a step costs about 20-30 ms below a few
thousand vertices, nearly all of it Python-side kernel launches.

MPM (:func:`simulate_mpm`): :mod:`rendiff.engine.mpm` (our own Warp kernels; why is said
there). Each body's particles fill its shape (:func:`fill_particles`); its Gaussians are
carried as tracers, and each Gaussian's covariance at frame k is ``F_k Sigma_0 F_k^T``
(:func:`deform_covariances`), ``F_k`` its deformation gradient. The step is the CFL limit
(elastic wave speed plus the fastest particle at the start of the frame) times ``cfl``; a frame
takes a whole number of steps.

Fail-safe: after every frame each cloth vertex, MPM particle and Gaussian is checked; a NaN or
inf, a speed above ``max_speed`` or a coordinate beyond ``max_distance`` raises
:class:`rendiff.engine.physics.PhysicsError` naming the body and the frame, in one line. MPM
particles cannot leave the MPM domain: they are clamped into it (and stop on that axis), and the
number of clamps is reported.

Determinism: Warp runs CPU kernels serially, so the same inputs give bit-identical trajectories
on CPU (tested).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import warp as wp
from torch import Tensor

from rendiff import defaults

from .mpm import MPMBodyDesc, MPMCollider, MPMModel, MPMSolver, MPMState
from .physics import PhysicsError, RigidBodyDesc

__all__ = [
    "ClothDesc",
    "ClothTrajectory",
    "DeformableSettings",
    "MPMTrajectory",
    "cloth_grid",
    "covariances",
    "deform_covariances",
    "fill_particles",
    "simulate_cloth",
    "simulate_mpm",
    "warmup",
]


@dataclass
class ClothDesc:
    """One cloth: a triangle mesh in the world with its material and pinned vertices."""

    name: str
    vertices: np.ndarray  # [V, 3] float, initial (= rest) positions, world [m]
    faces: np.ndarray  # [F, 3] int
    density: float = 0.2  # [kg/m^2]
    stretch_stiffness: float = 1.0e4  # Newton tri_ke = tri_ka
    bend_stiffness: float = 0.05  # Newton edge_ke
    damping: float = 0.01  # Newton tri_kd
    friction: float = 0.5
    thickness: float = 0.005  # collision radius of each vertex [m]
    pinned: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # [K] int
    velocity: tuple[float, float, float] = (0.0, 0.0, 0.0)  # initial [m/s]


@dataclass
class DeformableSettings:
    """How to simulate cloth and MPM: rates, gravity, ground, grid, fail-safe limits."""

    rate_hz: float = defaults.PHYSICS_RATE_HZ  # cloth steps per second (whole steps per frame)
    gravity: tuple[float, float, float] = defaults.GRAVITY  # [m/s^2]
    ground: bool = True
    ground_height: float = 0.0  # [m]
    ground_friction: float = defaults.GROUND_FRICTION
    cloth_iterations: int = defaults.CLOTH_ITERATIONS  # VBD iterations per step
    cloth_contact_stiffness: float = 1.0e4  # Newton soft_contact_ke [N/m]
    mpm_cell_size: float = defaults.MPM_CELL_SIZE  # [m]
    mpm_domain: tuple[tuple[float, float, float], tuple[float, float, float]] | None = None
    mpm_cfl: float = 0.4
    max_speed: float = 100.0  # fail-safe [m/s]
    max_distance: float = 1000.0  # fail-safe [m]
    device: str = "cpu"


@dataclass
class ClothTrajectory:
    """Per-frame state of one cloth (frame k at time k / fps, frame 0 the initial state)."""

    name: str
    vertices: Tensor  # [T, V, 3] float32, world [m]
    velocities: Tensor  # [T, V, 3] float32 [m/s]
    faces: Tensor  # [F, 3] int64


@dataclass
class MPMTrajectory:
    """Per-frame state of one MPM body: its particles and the Gaussians it carries."""

    name: str
    particles: Tensor  # [T, P, 3] float32 positions, world [m]
    particle_velocities: Tensor  # [T, P, 3] float32 [m/s]
    means: Tensor  # [T, N, 3] float32 Gaussian centres, world [m]
    velocities: Tensor  # [T, N, 3] float32 Gaussian velocities [m/s]
    deformation: Tensor  # [T, N, 3, 3] float32 each Gaussian's deformation gradient F
    clamped: int = 0  # particles + Gaussians clamped into the domain over the run (all bodies)
    steps: int = 0  # MPM steps taken over the run
    timings: dict[str, float] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# geometry helpers


def cloth_grid(size: tuple[float, float], resolution: tuple[int, int]) -> tuple[np.ndarray,
                                                                                 np.ndarray]:
    """A flat rectangular cloth in the local XY plane, centred on the origin, facing +Z.

    Returns:
        vertices [(nx + 1) (ny + 1), 3] float64, vertex ``iy * (nx + 1) + ix`` at
        ``(-sx/2 + ix sx/nx, -sy/2 + iy sy/ny, 0)``; faces [2 nx ny, 3] int64, counter-clockwise
        seen from +Z, each cell split along alternating diagonals (no preferred fold direction).
    """
    nx, ny = int(resolution[0]), int(resolution[1])
    xs = np.linspace(-size[0] / 2, size[0] / 2, nx + 1)
    ys = np.linspace(-size[1] / 2, size[1] / 2, ny + 1)
    gx, gy = np.meshgrid(xs, ys, indexing="xy")
    verts = np.stack([gx.ravel(), gy.ravel(), np.zeros(gx.size)], 1)
    faces = []
    for iy in range(ny):
        for ix in range(nx):
            a, b = iy * (nx + 1) + ix, iy * (nx + 1) + ix + 1
            c, d = a + nx + 1, b + nx + 1
            if (ix + iy) % 2 == 0:
                faces += [(a, b, d), (a, d, c)]
            else:
                faces += [(a, b, c), (b, d, c)]
    return verts, np.asarray(faces, dtype=np.int64)


def fill_particles(kind: str, spacing: float, *, radius: float = 0.0, tube: float = 0.15,
                   half_extents: tuple[float, float, float] | None = None,
                   points: np.ndarray | None = None) -> np.ndarray:
    """Particles on a regular lattice of ``spacing`` filling a shape (local frame, centred).

    Shapes: ``'box'`` (``half_extents``), ``'sphere'`` (``radius``), ``'torus'`` (``radius`` to
    the tube's centre in the XY plane, ``tube``), ``'hull'`` (the convex hull of ``points``
    [M, 3], e.g. a 3DGS cloud's centres). Each particle stands for ``spacing ** 3`` of volume;
    lattice points sit at cell centres, so a box of side ``n * spacing`` gets exactly n^3.

    Returns:
        [P, 3] float64 positions.
    """
    if not spacing > 0:
        raise ValueError(f"fill_particles: spacing must be > 0, got {spacing}")
    if kind == "box":
        h = np.broadcast_to(np.asarray(half_extents if half_extents is not None else radius,
                                       dtype=np.float64), (3,))
        lo, hi = -h, h
    elif kind in ("sphere", "torus"):
        r = radius + (tube if kind == "torus" else 0.0)
        lo, hi = np.array([-r, -r, -(tube if kind == "torus" else r)]), None
        hi = -lo
    elif kind == "hull":
        if points is None or len(points) < 4:
            raise ValueError("fill_particles('hull'): needs at least 4 points")
        pts = np.asarray(points, dtype=np.float64)
        lo, hi = pts.min(0), pts.max(0)
    else:
        raise ValueError(f"fill_particles: unknown shape {kind!r} (box, sphere, torus, hull)")
    counts = np.maximum(np.round((hi - lo) / spacing).astype(int), 1)
    axes = [lo[a] + (hi[a] - lo[a]) * (np.arange(counts[a]) + 0.5) / counts[a] for a in range(3)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    if kind == "sphere":
        grid = grid[np.linalg.norm(grid, axis=1) <= radius]
    elif kind == "torus":
        ring = np.hypot(grid[:, 0], grid[:, 1]) - radius
        grid = grid[ring**2 + grid[:, 2] ** 2 <= tube**2]
    elif kind == "hull":
        from scipy.spatial import Delaunay

        grid = grid[Delaunay(pts).find_simplex(grid) >= 0]
    if len(grid) == 0:
        raise ValueError(f"fill_particles({kind!r}): the shape is smaller than one particle "
                         f"spacing ({spacing} m)")
    return grid


def covariances(quats: Tensor, scales: Tensor) -> Tensor:
    """Gaussian covariances ``R S^2 R^T`` from (w, x, y, z) quaternions [N, 4] and standard
    deviations [N, 3]. Returns [N, 3, 3] (float64 for float64 input)."""
    from .transforms import quat_to_matrix

    R = quat_to_matrix(quats / quats.norm(dim=-1, keepdim=True))
    M = R * scales[..., None, :]
    return M @ M.transpose(-1, -2)


def deform_covariances(quats: Tensor, scales: Tensor, F: Tensor) -> tuple[Tensor, Tensor]:
    """Quaternions and scales of the deformed covariances ``F R S^2 R^T F^T`` (PhysGaussian).

    Args:
        quats: [N, 4] (w, x, y, z) rest rotations.
        scales: [N, 3] rest standard deviations.
        F: [N, 3, 3] or [T, N, 3, 3] deformation gradients.

    Returns:
        quats [..., N, 4] and scales [..., N, 3] (float32) with ``covariances(q, s) = F Sigma F^T``
        up to float rounding: the singular vectors and values of ``F R S`` (a proper rotation is
        kept by flipping the last singular vector pair where needed).
    """
    from .transforms import matrix_to_quat, quat_to_matrix

    R = quat_to_matrix((quats / quats.norm(dim=-1, keepdim=True)).double())
    M = F.double() @ (R * scales.double()[..., None, :])
    U, S, _ = torch.linalg.svd(M)
    flip = torch.linalg.det(U) < 0
    U = torch.where(flip[..., None, None], U * torch.tensor([1.0, 1.0, -1.0],
                                                           dtype=U.dtype), U)
    q = matrix_to_quat(U.reshape(-1, 3, 3)).reshape(*U.shape[:-2], 4)
    return q.float(), S.float()


# --------------------------------------------------------------------------------------------
# fail-safe


def _check_points(names: list[str], owner: np.ndarray, x: np.ndarray, v: np.ndarray, frame: int,
                  fps: float, settings: DeformableSettings, what: str) -> None:
    """Raise PhysicsError for the first body owning a non-finite, too fast or too far point.

    owner: [N] body index of each point; x, v: [N, 3] positions and velocities.
    """
    if x.size == 0:
        return
    where = f"at frame {frame} (t={frame / fps:.3f} s)"
    bad = ~(np.isfinite(x).all(axis=1) & np.isfinite(v).all(axis=1))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        body = int(owner[i])
        count = int(bad[owner == body].sum())
        verb = "starts with" if frame == 0 else "has"
        raise PhysicsError(f"{what} {names[body]!r} {verb} NaN/inf positions or velocities "
                           f"{where} ({count} {'point' if count == 1 else 'points'})")
    speed = np.linalg.norm(v, axis=1)
    if (speed > settings.max_speed).any():
        i = int(np.argmax(speed))
        raise PhysicsError(
            f"{what} {names[int(owner[i])]!r} moves at {speed[i]:.1f} m/s {where}, above "
            f"max_speed {settings.max_speed} m/s (exploding: too stiff for the time step?)")
    reach = np.abs(x).max(axis=1)
    if (reach > settings.max_distance).any():
        i = int(np.argmax(reach))
        raise PhysicsError(
            f"{what} {names[int(owner[i])]!r} left the simulation bounds {where}: "
            f"|coordinate| = {reach[i]:.1f} m > max_distance {settings.max_distance} m")


# --------------------------------------------------------------------------------------------
# cloth (Newton VBD)


def _check_cloth(c: ClothDesc) -> None:
    v = np.asarray(c.vertices)
    f = np.asarray(c.faces)
    if v.ndim != 2 or v.shape[1] != 3 or len(v) < 3:
        raise ValueError(f"cloth {c.name!r}: vertices must be [V >= 3, 3], got {v.shape}")
    if f.ndim != 2 or f.shape[1] != 3 or len(f) == 0 or f.min() < 0 or f.max() >= len(v):
        raise ValueError(f"cloth {c.name!r}: faces must be [F, 3] indices into its {len(v)} "
                         "vertices")
    pins = np.asarray(c.pinned, dtype=np.int64)
    if pins.size and (pins.min() < 0 or pins.max() >= len(v)):
        raise ValueError(f"cloth {c.name!r}: pinned vertex out of range 0..{len(v) - 1}")
    if not (c.density > 0 and c.thickness > 0 and c.stretch_stiffness > 0):
        raise ValueError(f"cloth {c.name!r}: density, thickness and stretch_stiffness must be > 0")


class _ClothScene:
    """A Newton model of the cloths, the ground and the static colliders, with VBD and states."""

    def __init__(self, cloths: list[ClothDesc], colliders: list[RigidBodyDesc],
                 settings: DeformableSettings):
        import newton

        from .physics import add_shape, xform

        builder = newton.ModelBuilder(gravity=tuple(float(g) for g in settings.gravity))
        if settings.ground:
            builder.add_ground_plane(height=settings.ground_height,
                                     cfg=newton.ModelBuilder.ShapeConfig(
                                         mu=settings.ground_friction))
        for desc in colliders:
            cfg = newton.ModelBuilder.ShapeConfig(density=0.0, mu=desc.friction)
            add_shape(builder, -1, desc, xform(desc.position, desc.quat), cfg)
        self.ranges = []
        for c in cloths:
            start = builder.particle_count
            builder.add_cloth_mesh(
                pos=wp.vec3(0.0, 0.0, 0.0), rot=wp.quat_identity(), scale=1.0,
                vel=wp.vec3(*(float(u) for u in c.velocity)),
                vertices=[wp.vec3(*(float(u) for u in p)) for p in np.asarray(c.vertices)],
                indices=[int(i) for i in np.asarray(c.faces).reshape(-1)],
                density=float(c.density), tri_ke=float(c.stretch_stiffness),
                tri_ka=float(c.stretch_stiffness), tri_kd=float(c.damping),
                edge_ke=float(c.bend_stiffness), edge_kd=0.0,
                particle_radius=float(c.thickness), label=c.name)
            for i in np.asarray(c.pinned, dtype=np.int64):
                builder.particle_mass[start + int(i)] = 0.0
                builder.particle_flags[start + int(i)] &= ~int(newton.ParticleFlags.ACTIVE)
            self.ranges.append((start, builder.particle_count))
        builder.color(include_bending=True)
        self.model = builder.finalize(device=settings.device)
        self.model.soft_contact_ke = float(settings.cloth_contact_stiffness)
        self.model.soft_contact_kd = 1.0e-2
        self.model.soft_contact_mu = float(np.mean([c.friction for c in cloths]))
        self.solver = newton.solvers.SolverVBD(self.model, iterations=settings.cloth_iterations)
        self.pipeline = newton.CollisionPipeline(self.model)
        self.contacts = self.pipeline.contacts()
        self.control = self.model.control()
        self.state_0, self.state_1 = self.model.state(), self.model.state()

    def step(self, dt: float) -> None:
        self.state_0.clear_forces()
        self.pipeline.collide(self.state_0, self.contacts)
        self.solver.step(self.state_0, self.state_1, self.control, self.contacts, dt)
        self.state_0, self.state_1 = self.state_1, self.state_0


def simulate_cloth(
    cloths: list[ClothDesc],
    settings: DeformableSettings,
    fps: float,
    frames: int,
    colliders: list[RigidBodyDesc] | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[ClothTrajectory]:
    """Simulate cloths with Newton's VBD solver over a ground plane and static colliders.

    Args:
        cloths: cloth descriptions (vertices in the world).
        settings: rate, gravity, ground, iterations and fail-safe limits.
        fps: video frame rate; frame k is the state at k / fps.
        frames: number of frames T >= 1 (frame 0 is the initial state).
        colliders: static bodies the cloth lies on (their ``static`` flag is not looked at).
        progress: called with k after frame k (1 .. T-1).

    Returns:
        One :class:`ClothTrajectory` per cloth, in input order.

    Raises:
        PhysicsError: a vertex became non-finite, too fast or too far (names cloth and frame).
        ValueError: malformed descriptions.
    """
    if frames < 1 or not fps > 0:
        raise ValueError(f"need frames >= 1 and fps > 0, got frames={frames}, fps={fps}")
    if not cloths:
        return []
    for c in cloths:
        _check_cloth(c)
    names = [c.name for c in cloths]
    if len(set(names)) != len(names):
        raise ValueError(f"cloth names must be unique: {names}")
    device = wp.get_device(settings.device)
    with wp.ScopedDevice(device):
        scene = _ClothScene(cloths, list(colliders or []), settings)
        steps = max(1, round(settings.rate_hz / fps))
        dt = 1.0 / (fps * steps)
        n = scene.model.particle_count
        owner = np.zeros(n, dtype=np.int64)
        for i, (a, b) in enumerate(scene.ranges):
            owner[a:b] = i
        q = np.zeros((frames, n, 3), dtype=np.float32)
        qd = np.zeros((frames, n, 3), dtype=np.float32)
        for k in range(frames):
            if k > 0:
                for _ in range(steps):
                    scene.step(dt)
            q[k] = scene.state_0.particle_q.numpy()
            qd[k] = scene.state_0.particle_qd.numpy()
            _check_points(names, owner, q[k], qd[k], k, fps, settings, "cloth")
            if progress is not None and k > 0:
                progress(k)
    return [ClothTrajectory(c.name, torch.from_numpy(q[:, a:b].copy()),
                            torch.from_numpy(qd[:, a:b].copy()),
                            torch.as_tensor(np.asarray(c.faces), dtype=torch.int64))
            for c, (a, b) in zip(cloths, scene.ranges, strict=True)]


# --------------------------------------------------------------------------------------------
# MPM


def _mpm_colliders(colliders: list[RigidBodyDesc]) -> list[MPMCollider]:
    out = []
    for c in colliders:
        if c.shape == "box":
            out.append(MPMCollider("box", c.position, c.quat, half_extents=c.half_extents,
                                   friction=c.friction))
        elif c.shape == "sphere":
            out.append(MPMCollider("sphere", c.position, c.quat, radius=c.radius,
                                   friction=c.friction))
        else:
            warnings.warn(f"MPM material does not collide with {c.shape} {c.name!r} (only boxes "
                          "and spheres are MPM colliders)", stacklevel=3)
    return out


def _auto_domain(bodies: list[MPMBodyDesc], settings: DeformableSettings):
    """The grid box: the bodies' bounds 0.3 m wider on each side, and higher by 0.3 m plus the
    height their initial speed could carry them (v^2 / 2g), down to just below the ground."""
    pts = np.concatenate([np.asarray(b.particles).reshape(-1, 3) for b in bodies])
    speed = 0.0
    for b in bodies:
        p = np.asarray(b.particles).reshape(-1, 3)
        reach = float(np.linalg.norm(p - p.mean(0), axis=1).max())
        speed = max(speed, float(np.linalg.norm(b.velocity))
                    + float(np.linalg.norm(b.angular_velocity)) * reach)
    g = max(float(np.linalg.norm(settings.gravity)), 1e-6)
    rise = min(speed**2 / (2 * g), 5.0)
    lo, hi = pts.min(0) - 0.3, pts.max(0) + np.array([0.3, 0.3, 0.3 + rise])
    dx = settings.mpm_cell_size
    if settings.ground:
        lo[2] = min(lo[2], settings.ground_height) - 3 * dx
        hi[2] = max(hi[2], settings.ground_height + 8 * dx)
    return tuple(float(v) for v in lo), tuple(float(v) for v in hi)


def _mpm_frame_dt(model: MPMModel, state: MPMState, fps: float, cfl: float) -> tuple[int, float]:
    """Steps in the coming frame and their length: the CFL limit at the frame's fastest speed."""
    v = state.v.numpy()
    vmax = float(np.sqrt((v.astype(np.float64) ** 2).sum(1).max())) if len(v) else 0.0
    limit = model.stable_dt(cfl, vmax if np.isfinite(vmax) else 0.0)
    steps = max(1, math.ceil(1.0 / (fps * limit) - 1e-9))
    return steps, 1.0 / (fps * steps)


def simulate_mpm(
    bodies: list[MPMBodyDesc],
    settings: DeformableSettings,
    fps: float,
    frames: int,
    colliders: list[RigidBodyDesc] | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[MPMTrajectory]:
    """Simulate MPM bodies (one shared grid) and the Gaussians they carry.

    Args:
        bodies: MPM body descriptions (particles and Gaussian means in the world).
        settings: gravity, ground, grid (``mpm_cell_size``, ``mpm_domain``, ``mpm_cfl``) and
            fail-safe limits.
        fps: video frame rate; frame k is the state at k / fps.
        frames: number of frames T >= 1 (frame 0 is the initial state).
        colliders: static obstacles; boxes and spheres collide with the material, other shapes
            are left out with a warning.
        progress: called with k after frame k (1 .. T-1).

    Returns:
        One :class:`MPMTrajectory` per body, in input order.

    Raises:
        PhysicsError: a particle or Gaussian became non-finite or too fast (names body and
            frame).
        ValueError: malformed descriptions, or a body that starts outside the domain.
    """
    if frames < 1 or not fps > 0:
        raise ValueError(f"need frames >= 1 and fps > 0, got frames={frames}, fps={fps}")
    if not bodies:
        return []
    t0 = time.perf_counter()
    domain = settings.mpm_domain or _auto_domain(bodies, settings)
    model = MPMModel.build(
        bodies, domain, settings.mpm_cell_size, gravity=settings.gravity,
        ground=settings.ground, ground_height=settings.ground_height,
        ground_friction=settings.ground_friction,
        colliders=_mpm_colliders(list(colliders or [])), device=settings.device)
    solver = MPMSolver(model)
    s0, s1 = model.state(), model.state()
    P, N = model.particle_count, model.tracer_count
    x = np.zeros((frames, P, 3), dtype=np.float32)
    v = np.zeros((frames, P, 3), dtype=np.float32)
    tx = np.zeros((frames, N, 3), dtype=np.float32)
    tv = np.zeros((frames, N, 3), dtype=np.float32)
    tF = np.zeros((frames, N, 3, 3), dtype=np.float32)
    total = 0
    for k in range(frames):
        if k > 0:
            steps, dt = _mpm_frame_dt(model, s0, fps, settings.mpm_cfl)
            for _ in range(steps):
                solver.step(s0, s1, dt)
                s0, s1 = s1, s0
            total += steps
        x[k], v[k] = s0.x.numpy(), s0.v.numpy()
        tx[k], tv[k], tF[k] = s0.tx.numpy(), s0.tv.numpy(), s0.tF.numpy()
        _check_points(model.names, model.particle_body, x[k], v[k], k, fps, settings,
                      "MPM body")
        _check_points(model.names, model.tracer_body, tx[k], tv[k], k, fps, settings,
                      "MPM body")
        if progress is not None and k > 0:
            progress(k)
    clamped = int(s0.clamped.numpy()[0])
    elapsed = time.perf_counter() - t0
    out = []
    for i, b in enumerate(bodies):
        p, t = model.particle_body == i, model.tracer_body == i
        out.append(MPMTrajectory(
            b.name, torch.from_numpy(x[:, p]), torch.from_numpy(v[:, p]),
            torch.from_numpy(tx[:, t]), torch.from_numpy(tv[:, t]), torch.from_numpy(tF[:, t]),
            clamped=clamped, steps=total, timings={"mpm": elapsed}))
    return out


def warmup() -> None:
    """Compiles (and caches in ``~/.cache/warp``) the cloth and MPM kernels: a tiny cloth on a
    box and a tiny block of each MPM material for two frames."""
    verts, faces = cloth_grid((0.2, 0.2), (2, 2))
    box = RigidBodyDesc("box", "box", half_extents=(0.05, 0.05, 0.05), position=(0, 0, 0.05),
                        static=True)
    settings = DeformableSettings(mpm_cell_size=0.05)
    simulate_cloth([ClothDesc("cloth", verts + [0, 0, 0.2], faces)], settings, 30.0, 2, [box])
    pts = fill_particles("box", 0.025, half_extents=(0.05, 0.05, 0.05)) + [1.0, 0.0, 0.3]
    bodies = [MPMBodyDesc(m, pts + [0.5 * i, 0, 0], 0.025**3, m, tracers=pts[:4] + [0.5 * i, 0, 0])
              for i, m in enumerate(("elastic", "sand", "plasticine"))]
    simulate_mpm(bodies, settings, 30.0, 2, [box])
