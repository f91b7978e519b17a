"""simulate(): a scene in, per-frame state of everything out.

Each entity becomes a root transform per frame (static, keyframed, or from physics) and either a
triangle mesh over time (primitives, mesh files, SMPL bodies) or a Gaussian cloud over time
(3DGS files or sampled clouds, deformed by Gaussian-Flow's DDDM).

A robot is one entity: one :class:`MeshTrack` (all its links' visual shapes, one instance id and
the entity's semantic label) whose vertices follow their links, a :class:`RobotTrack` with its
joint positions and link poses, and its root link as the entity's :class:`RigidTrack`.
"""

from __future__ import annotations

import logging
import time

import torch
from torch import Tensor
from tqdm.auto import tqdm

from rendiff import defaults
from rendiff.scenes.spec import (
    Cloth,
    Entity,
    JointTargets,
    Plane,
    Robot,
    Scene,
)

from .camera_paths import camera_frames
from .entities import Context, bound_tracks, entity_cloud, entity_uvs, kind_of, texture_of
from .lighting import trajectory_lights
from .trajectory import MeshTrack, RigidTrack, Trajectory, map_tensors
from .transforms import quat_multiply, quat_normalize, quat_to_matrix

__all__ = ["semantic_classes", "simulate"]

log = logging.getLogger(__name__)


def semantic_classes(scene: Scene) -> list[str]:
    """Class names by id (id = index + 1): the 24 SMPL body parts first (fixed ids 1-24), then
    every other entity label in scene order."""
    from .body import SMPL_JOINT_NAMES  # the 24 parts are named after their joints

    names = [f"body/{p}" for p in SMPL_JOINT_NAMES]
    for e in scene.entities:
        if kind_of(e.geometry).parts:
            continue
        if e.semantic_label not in names:
            names.append(e.semantic_label)
    return names


def _robot_desc(e: Entity):
    from .physics import RobotDesc

    g = e.geometry
    assert isinstance(g, Robot)
    a = e.animation
    targets = ({joint: [tuple(k) for k in keys] for joint, keys in a.targets.items()}
               if isinstance(a, JointTargets) else {})
    return RobotDesc(
        name=e.name, path=g.path, format=g.format, position=e.pose.position,
        quat=e.pose.rotation, fixed_base=g.fixed_base, initial_q=dict(g.joints), targets=targets,
        interpolation=a.interpolation if isinstance(a, JointTargets) else "smooth",
        stiffness=g.stiffness, damping=g.damping, friction=e.material.friction,
        restitution=e.material.restitution, self_collisions=g.self_collisions)


def _ground_entity(scene: Scene) -> Entity | None:
    """The first static plane facing +Z: physics' infinite ground."""
    for e in scene.entities:
        if isinstance(e.geometry, Plane) and not e.dynamic:
            up = quat_to_matrix(torch.tensor(e.pose.rotation, dtype=torch.float32))[:, 2]
            if float(up[2]) > 0.999:
                return e
    return None


def _is_body(e: Entity, ground: Entity | None) -> bool:
    """Whether an entity is a rigid body (dynamic, or a static collider) for physics."""
    # a fixed shape has a collider (kind.collider); asked without building it (a mesh file's
    # collider reads the file)
    return e is not ground and e.animation is None and kind_of(e.geometry).shape


def _body_desc(e: Entity):
    """A rigid entity as a :class:`rendiff.engine.physics.RigidBodyDesc`."""
    from .physics import RigidBodyDesc

    desc = dict(name=e.name, position=e.pose.position, quat=e.pose.rotation,
                linear_velocity=e.velocity, angular_velocity=e.angular_velocity,
                density=e.material.density, mass=e.material.mass,
                friction=e.material.friction, restitution=e.material.restitution,
                static=not e.dynamic, **kind_of(e.geometry).collider(e.geometry))
    return RigidBodyDesc(**desc)


def _physics(scene: Scene, times: Tensor, progress: bool,
             device: str = "cpu") -> tuple[dict[str, RigidTrack], list, dict]:
    """Runs Newton on every dynamic entity and robot, with static primitives as colliders.
    Returns root tracks by entity name, contact events and robot trajectories by name."""
    from .physics import PhysicsSettings, simulate_rigid

    robots = [_robot_desc(e) for e in scene.entities if isinstance(e.geometry, Robot)]
    dynamic = [e for e in scene.entities if e.dynamic]
    if not dynamic and not robots:
        return {}, [], {}
    ground = _ground_entity(scene)
    bodies = [_body_desc(e) for e in scene.entities if _is_body(e, ground)]
    settings = PhysicsSettings(
        rate_hz=scene.physics.rate_hz, gravity=scene.physics.gravity,
        ground=ground is not None,
        ground_height=float(ground.pose.position[2]) if ground is not None else 0.0,
        ground_friction=(ground.material.friction if ground is not None
                         else defaults.GROUND_FRICTION),
        ground_restitution=ground.material.restitution if ground is not None else 0.0,
        solver=scene.physics.solver, device=device,
    )
    T = times.shape[0]
    bar = tqdm(total=T, desc="physics", unit="frame", disable=not progress, leave=False)
    try:
        traj = simulate_rigid(bodies, settings, fps=scene.fps, frames=T,
                              progress=lambda k: bar.update(1), robots=robots)
    finally:
        bar.close()
    tracks = {}
    for i, name in enumerate(traj.names):
        tracks[name] = RigidTrack(traj.positions[:, i].float(), traj.quats[:, i].float(),
                                  traj.linear_velocity[:, i].float(),
                                  traj.angular_velocity[:, i].float())
    return tracks, list(traj.contacts), {r.name: r for r in traj.robots}


def _cloth_pins(g: Cloth) -> list[int]:
    """Indices of a cloth's pinned vertices (named and numbered), sorted, without repeats."""
    nx, ny = g.resolution
    at = {"x0": 0, "x1": nx, "y0": 0, "y1": ny}
    out: set[int] = set()
    for p in g.pinned:
        if isinstance(p, int):
            out.add(p)
            continue
        if p == "corners":
            cells = [(ix, iy) for ix in (0, nx) for iy in (0, ny)]
        elif len(p) == 4:
            cells = [(at[p[:2]], at[p[2:]])]
        elif p.startswith("x"):
            cells = [(at[p], iy) for iy in range(ny + 1)]
        else:
            cells = [(ix, at[p]) for ix in range(nx + 1)]
        out.update(iy * (nx + 1) + ix for ix, iy in cells)
    return sorted(out)


def _place(e: Entity, local: Tensor) -> Tensor:
    """Points [N, 3] in an entity's frame, placed in the world by its pose (float64)."""
    q = quat_normalize(torch.tensor(e.pose.rotation, dtype=torch.float64))
    return local.double() @ quat_to_matrix(q).T + torch.tensor(e.pose.position,
                                                               dtype=torch.float64)


def _deformables(scene: Scene, times: Tensor, progress: bool, device: str = "cpu") -> dict:
    """Runs every cloth (Newton VBD) and MPM body, with the ground and the static rigid
    primitives as colliders. Returns, by entity name, ``(trajectory, rest)``: a
    ``ClothTrajectory`` and None, or an ``MPMTrajectory`` and the cloud's rest world quaternions
    with its local cloud."""
    import dataclasses

    import numpy as np

    solver = [kind_of(e.geometry).solver(e.geometry) for e in scene.entities]
    cloths = [e for e, s in zip(scene.entities, solver, strict=True) if s == "cloth"]
    blobs = [(i, e) for i, (e, s) in enumerate(zip(scene.entities, solver, strict=True))
             if s == "mpm"]
    if not cloths and not blobs:
        return {}
    from .deformables import (
        ClothDesc,
        DeformableSettings,
        cloth_grid,
        fill_particles,
        simulate_cloth,
        simulate_mpm,
    )
    from .mpm import MPMBodyDesc

    ground = _ground_entity(scene)
    colliders = [_body_desc(e) for e in scene.entities if _is_body(e, ground) and not e.dynamic]
    o = scene.physics.deformables
    settings = DeformableSettings(
        rate_hz=scene.physics.rate_hz, gravity=scene.physics.gravity, ground=ground is not None,
        ground_height=float(ground.pose.position[2]) if ground is not None else 0.0,
        ground_friction=(ground.material.friction if ground is not None
                         else defaults.GROUND_FRICTION),
        cloth_iterations=o.cloth_iterations, mpm_cell_size=o.mpm_cell_size,
        mpm_domain=o.mpm_domain, mpm_cfl=o.mpm_cfl, device=device)
    T = times.shape[0]
    out: dict = {}
    descs = []
    for e in cloths:
        g = e.geometry
        verts, faces = cloth_grid(g.size, g.resolution)
        descs.append(ClothDesc(
            e.name, _place(e, torch.from_numpy(verts)).numpy(), faces, density=g.area_density,
            stretch_stiffness=g.stretch_stiffness, bend_stiffness=g.bend_stiffness,
            damping=g.damping, friction=e.material.friction, thickness=g.thickness,
            pinned=np.asarray(_cloth_pins(g), dtype=np.int64), velocity=e.velocity))
    if descs:
        bar = tqdm(total=T, desc="cloth", unit="frame", disable=not progress, leave=False)
        try:
            for tr in simulate_cloth(descs, settings, scene.fps, T, colliders,
                                     progress=lambda k: bar.update(1)):
                out[tr.name] = (tr, None)
        finally:
            bar.close()
    if not blobs:
        return out
    spacing = o.mpm_cell_size / o.mpm_particles_per_cell
    bodies, rest = [], {}
    for idx, e in blobs:
        g, m = e.geometry, e.geometry.mpm
        cloud = entity_cloud(e, scene.seed + idx)
        if g.path is not None:
            local = fill_particles("hull", spacing, points=cloud.means.numpy())
        elif g.shape == "box":
            local = fill_particles("box", spacing, half_extents=(g.radius,) * 3)
        else:  # a torus' tube is from_primitive's default, 0.15 m
            local = fill_particles(g.shape, spacing, radius=g.radius, tube=0.15)
        q = quat_normalize(torch.tensor(e.pose.rotation, dtype=torch.float32))
        rest[e.name] = (quat_multiply(q.expand_as(cloud.quats), cloud.quats), cloud)
        bodies.append(MPMBodyDesc(
            e.name, _place(e, torch.from_numpy(local)).numpy(), spacing**3, material=m.model,
            density=e.material.density, youngs_modulus=m.youngs_modulus,
            poisson_ratio=m.poisson_ratio,
            friction_deg=m.friction_deg if m.friction_deg is not None else 30.0,
            yield_stress=m.yield_stress if m.yield_stress is not None else 1.0e3,
            velocity=e.velocity, angular_velocity=e.angular_velocity,
            tracers=_place(e, cloud.means).numpy()))
    # One grid holds every MPM body: its contact friction averages the bodies' with the
    # ground's or the collider's (as Newton averages two rigid shapes' coefficients).
    mu = float(np.mean([e.material.friction for _, e in blobs]))
    mpm_settings = dataclasses.replace(settings,
                                       ground_friction=(settings.ground_friction + mu) / 2)
    mpm_colliders = [dataclasses.replace(c, friction=(c.friction + mu) / 2) for c in colliders]
    bar = tqdm(total=T, desc="mpm", unit="frame", disable=not progress, leave=False)
    try:
        for tr in simulate_mpm(bodies, mpm_settings, scene.fps, T, mpm_colliders,
                               progress=lambda k: bar.update(1)):
            out[tr.name] = (tr, rest[tr.name])
    finally:
        bar.close()
    return out


def _attach_textures(scene: Scene, tracks: list[MeshTrack]) -> None:
    """Gives each mesh track of a textured entity its texture and per-corner UVs."""
    entities = {e.name: e for e in scene.entities}
    images: dict = {}
    for m in tracks:
        e = entities.get(m.name)
        tex = texture_of(e.appearance, images) if e is not None else None
        if tex is not None:
            m.uvs, m.texture = entity_uvs(e).to(torch.float32), tex


def simulate(scene: Scene, progress: bool = True,
             device: torch.device | str | None = None) -> Trajectory:
    """Simulates the scene: physics for dynamic bodies, keyframes, SMPL motion, Gaussian
    deformation; then evaluates the camera and the lights at every frame.

    Args:
        scene: a validated scene.
        progress: show progress bars for long steps.
        device: where the physics, cloth and MPM solvers run (Newton / Warp) and where the
            trajectory's tensors end up ("cpu", "cuda"; None: the CPU). The render step renders
            on the trajectory's device unless told otherwise. On CUDA the solvers' floating-
            point order differs from the CPU's, so trajectories agree to rounding, not bit for
            bit.
    Returns:
        The :class:`Trajectory` of every entity, light and camera.
    """
    dev = torch.device(device if device is not None else "cpu")
    t0 = time.perf_counter()
    torch.manual_seed(scene.seed)
    T = scene.frames
    times = torch.arange(T, dtype=torch.float32) / scene.fps
    classes = semantic_classes(scene)
    rigid, contacts, robot_trajs = _physics(scene, times, progress, str(dev))
    deformed = _deformables(scene, times, progress, str(dev))
    ctx = Context(scene, times, classes, rigid, robots=robot_trajs, deformed=deformed)
    meshes, gaussians, humans, robots = [], [], [], []
    bound: list[tuple[int, int, int]] = []  # clouds with bind_to: done once their parents are
    for idx, e in enumerate(scene.entities):
        out = kind_of(e.geometry).tracks(e, idx, ctx)
        if out is None:
            bound.append((idx, idx + 1, ctx.semantic_id(e)))
            continue
        rigid[e.name] = out.root
        meshes += [out.mesh] if out.mesh is not None else []
        gaussians += [out.gaussians] if out.gaussians is not None else []
        humans += [out.human] if out.human is not None else []
        robots += [out.robot] if out.robot is not None else []
    if bound:
        gaussians += bound_tracks(scene, bound, times, rigid, ctx.skins, scene.seed)
    positions = {name: tr.positions for name, tr in rigid.items()}
    cams = camera_frames(scene.camera, scene.width, scene.height, times, positions)
    for name, tr in rigid.items():
        bad = ~torch.isfinite(tr.positions).all(-1)
        if bool(bad.any()):
            k = int(bad.nonzero()[0])
            raise RuntimeError(f"entity {name!r}: position is not finite at frame {k}")
    _attach_textures(scene, meshes)
    traj = Trajectory(
        times, float(scene.fps), cams, rigid, meshes, gaussians, humans, contacts, classes,
        robots=robots, deformables={k: v[0] for k, v in deformed.items()},
        entity_names=[e.name for e in scene.entities],
        background=tuple(float(c) for c in scene.background),
        lights=trajectory_lights(scene.lights, times, rigid))
    # contiguous tracks: the same bits render the same, however they were computed (an einsum's
    # strides) or read back from a trajectory file
    traj = map_tensors(traj, lambda t: t.to(dev).contiguous())
    traj.timings["simulate"] = time.perf_counter() - t0
    return traj
