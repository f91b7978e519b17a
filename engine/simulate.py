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
from pathlib import Path

import torch
from torch import Tensor
from tqdm.auto import tqdm

from rendiff.scenes.spec import (
    AmassMotion,
    Cloth,
    Deformation,
    Entity,
    Gaussians,
    Human,
    JointTargets,
    Keyframes,
    Motion,
    Plane,
    Robot,
    Scene,
)

from .camera import interpolate_points
from .camera_paths import camera_frames
from .geometry import collider, entity_uvs, local_mesh, texture_of
from .lighting import trajectory_lights
from .trajectory import GaussianTrack, HumanTrack, MeshTrack, RigidTrack, RobotTrack, Trajectory
from .transforms import interpolate_quats, quat_multiply, quat_normalize, quat_to_matrix

__all__ = ["semantic_classes", "simulate"]

log = logging.getLogger(__name__)


def semantic_classes(scene: Scene) -> list[str]:
    """Class names by id (id = index + 1): the 24 SMPL body parts first (fixed ids 1-24), then
    every other entity label in scene order."""
    from .body import SMPL_JOINT_NAMES  # the 24 parts are named after their joints

    names = [f"body/{p}" for p in SMPL_JOINT_NAMES]
    for e in scene.entities:
        if isinstance(e.geometry, Human):
            continue
        if e.semantic_label not in names:
            names.append(e.semantic_label)
    return names


def _static_track(e: Entity, T: int) -> RigidTrack:
    pos = torch.tensor(e.pose.position, dtype=torch.float32).expand(T, 3).clone()
    q = quat_normalize(torch.tensor(e.pose.rotation, dtype=torch.float32)).expand(T, 4).clone()
    return RigidTrack(pos, q, torch.zeros(T, 3), torch.zeros(T, 3))


def _keyframed_track(anim: Keyframes, times: Tensor) -> RigidTrack:
    pos = interpolate_points(anim.times, torch.tensor(anim.positions), times,
                             anim.interpolation == "cubic")
    if anim.rotations is not None:
        q = interpolate_quats(anim.times, torch.tensor(anim.rotations), times)
    else:
        q = torch.tensor([1.0, 0, 0, 0]).expand(times.shape[0], 4).clone()
    vel = torch.zeros_like(pos)
    if times.shape[0] > 1:
        vel = torch.gradient(pos, spacing=(times,), dim=0)[0]
    return RigidTrack(pos, q, vel, torch.zeros_like(pos))


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
    return e is not ground and e.animation is None and collider(e.geometry) is not None


def _body_desc(e: Entity):
    """A rigid entity as a :class:`rendiff.engine.physics.RigidBodyDesc`."""
    from .physics import RigidBodyDesc

    desc = dict(name=e.name, position=e.pose.position, quat=e.pose.rotation,
                linear_velocity=e.velocity, angular_velocity=e.angular_velocity,
                density=e.material.density, mass=e.material.mass,
                friction=e.material.friction, restitution=e.material.restitution,
                static=not e.dynamic, **collider(e.geometry))
    return RigidBodyDesc(**desc)


def _physics(scene: Scene, times: Tensor, progress: bool) -> tuple[dict[str, RigidTrack], list,
                                                                   dict]:
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
        ground_friction=ground.material.friction if ground is not None else 0.5,
        ground_restitution=ground.material.restitution if ground is not None else 0.0,
        solver=scene.physics.solver,
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


def _robot(e: Entity, traj, iid: int, sid: int) -> tuple[MeshTrack, RobotTrack, RigidTrack]:
    """A robot's mesh, joints and root track from its physics trajectory."""
    from .robots import posed_vertices, robot_mesh

    verts, faces, vertex_link, albedo = robot_mesh(traj.visuals, e.appearance.color)
    world = posed_vertices(verts, vertex_link, traj.link_positions, traj.link_quats)
    mesh = MeshTrack(e.name, iid, sid, world, faces, albedo, e.appearance.specular,
                     e.appearance.roughness)
    track = RobotTrack(
        e.name, traj.joint_names, traj.joint_kinds, traj.lower, traj.upper, traj.q, traj.qd,
        traj.targets, traj.link_names, traj.link_positions, traj.link_quats,
        traj.link_linear_velocity, traj.link_angular_velocity, vertex_link)
    root = RigidTrack(traj.link_positions[:, 0].clone(), traj.link_quats[:, 0].clone(),
                      traj.link_linear_velocity[:, 0].clone(),
                      traj.link_angular_velocity[:, 0].clone())
    return mesh, track, root


def _procedural_dddm(anim: Deformation, cloud):
    """Writes a procedural motion as DDDM coefficients (one Fourier term at the given
    frequency), so the built-in deformations exercise the same evaluation path as fitted ones."""
    from .deformation import DDDM

    n = cloud.means.shape[0]
    L = 2
    d = DDDM.zeros(n, L)
    p = cloud.means
    lo, hi = p[:, 2].min(), p[:, 2].max()
    h = ((p[:, 2] - lo) / (hi - lo).clamp_min(1e-6))
    A = anim.amplitude * L  # the 1/L in the DDDM formula
    d.time_scale = float(anim.frequency)
    if anim.procedural == "wobble":
        d.sin[:, 1, 0] = A * h * h
        d.cos[:, 1, 1] = A * 0.5 * h * h
    elif anim.procedural == "twist":
        # small rotation about z that grows with height: dq ~ (0, 0, 0, theta/2); positions follow
        theta = anim.amplitude * 4 * h
        d.sin[:, 1, 6] = L * theta / 2
        d.sin[:, 1, 0] = -L * theta * p[:, 1]
        d.sin[:, 1, 1] = L * theta * p[:, 0]
    else:  # breathe: radial pulsing about the centroid
        c = p.mean(0)
        d.sin[:, 1, 0:3] = A * (p - c)
    return d


def _entity_cloud(e: Entity, seed: int):
    """A Gaussians entity's cloud in its local frame: its .ply file or its sampled primitive."""
    from .gaussians import from_primitive, load_ply

    g = e.geometry
    assert isinstance(g, Gaussians)
    if g.path is not None:
        return load_ply(g.path)
    kw = {"half_extents": g.radius} if g.shape == "box" else {"radius": g.radius}
    cloud = from_primitive(g.shape, g.count, seed=seed, color=e.appearance.color,
                           opacity=0.95, **kw)
    # Discs as wide as the sample spacing (not half of it) so random samples close the
    # surface: no holes through which the background's depth and normals show.
    cloud.scales = cloud.scales * 2.0
    return cloud


def _gaussian_track(e: Entity, times: Tensor, root: RigidTrack, iid: int, sid: int,
                    seed: int) -> GaussianTrack:
    cloud = _entity_cloud(e, seed)
    T = times.shape[0]
    if isinstance(e.animation, Deformation):
        from .deformation import DDDM, deform

        dddm = (DDDM.load(e.animation.path) if e.animation.path is not None
                else _procedural_dddm(e.animation, cloud))
        frames = deform(cloud, dddm, times)
    else:
        frames = [cloud] * T
    R = quat_to_matrix(root.quats)  # [T,3,3]
    means = torch.stack([f.means for f in frames])
    quats = torch.stack([f.quats for f in frames])
    colors = torch.stack([f.colors() for f in frames])
    means = torch.einsum("tij,tnj->tni", R, means) + root.positions[:, None]
    quats = quat_multiply(root.quats[:, None].expand_as(quats), quats)
    return GaussianTrack(e.name, iid, sid, means, quats, cloud.scales, cloud.opacities, colors,
                         e.appearance.specular, e.appearance.roughness)


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


def _deformables(scene: Scene, times: Tensor, progress: bool) -> dict:
    """Runs every cloth (Newton VBD) and MPM body, with the ground and the static rigid
    primitives as colliders. Returns, by entity name, ``(trajectory, rest)``: a
    ``ClothTrajectory`` and None, or an ``MPMTrajectory`` and the cloud's rest world quaternions
    with its local cloud."""
    import dataclasses

    import numpy as np

    cloths = [e for e in scene.entities if isinstance(e.geometry, Cloth)]
    blobs = [(i, e) for i, e in enumerate(scene.entities)
             if isinstance(e.geometry, Gaussians) and e.geometry.mpm is not None]
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
        ground_friction=ground.material.friction if ground is not None else 0.5,
        cloth_iterations=o.cloth_iterations, mpm_cell_size=o.mpm_cell_size,
        mpm_domain=o.mpm_domain, mpm_cfl=o.mpm_cfl)
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
        cloud = _entity_cloud(e, scene.seed + idx)
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


def _deformable_track(e: Entity, entry: tuple, iid: int, sid: int
                      ) -> tuple[MeshTrack | GaussianTrack, RigidTrack]:
    """A cloth's mesh or an MPM body's Gaussians from its simulation, and a root track (the
    vertices' or particles' centroid, unrotated)."""
    from .deformables import deform_covariances

    traj, rest = entry
    color = torch.tensor(e.appearance.color, dtype=torch.float32)
    if rest is None:
        points, vel = traj.vertices, traj.velocities
        track = MeshTrack(e.name, iid, sid, traj.vertices, traj.faces,
                          color.expand(points.shape[1], 3).clone(), e.appearance.specular,
                          e.appearance.roughness)
    else:
        quats0, cloud = rest
        points, vel = traj.particles, traj.particle_velocities
        quats, scales = deform_covariances(quats0, cloud.scales, traj.deformation)
        T = points.shape[0]
        track = GaussianTrack(e.name, iid, sid, traj.means, quats, cloud.scales,
                              cloud.opacities, cloud.colors().expand(T, -1, -1).clone(),
                              e.appearance.specular, e.appearance.roughness,
                              frame_scales=scales)
    T = points.shape[0]
    root = RigidTrack(points.mean(1), torch.tensor([1.0, 0, 0, 0]).expand(T, 4).clone(),
                      vel.mean(1), torch.zeros(T, 3))
    return track, root


def _human(e: Entity, times: Tensor, scene: Scene, iid: int, sid0: int, cache: dict):
    from . import motion as motion_lib
    from .body import BodyModel

    g = e.geometry
    assert isinstance(g, Human)
    key = (g.body_model, g.gender)
    if key not in cache:
        cache[key] = BodyModel(g.body_model, gender=g.gender)
    model = cache[key]
    T = times.shape[0]
    anim = e.animation
    betas = torch.zeros(10)
    if g.betas:
        betas[: len(g.betas)] = torch.tensor(g.betas)
    if isinstance(anim, AmassMotion):
        mot = motion_lib.load_amass(anim.path, scene.fps, body=model)
        start = int(round(anim.start * scene.fps))
        if start + T > mot.frames:
            log.warning("%s: the AMASS clip %s has %d frames at %g fps from start %g s, the "
                        "scene %d: the last %d frames hold its last pose", e.name,
                        Path(anim.path).name, max(mot.frames - start, 0), scene.fps,
                        anim.start, T, start + T - max(mot.frames, start))
        mot = mot.slice(start, start + T)
    else:
        name = anim.name if isinstance(anim, Motion) else "idle"
        # Only a walk travels; the other motions stay in place unless given a path.
        speed = anim.speed if isinstance(anim, Motion) and name == "walk" else 0.0
        mot = getattr(motion_lib, name)(frames=T, fps=scene.fps, speed=speed, body=model,
                                        betas=betas)
        if isinstance(anim, Motion) and anim.path is not None:
            mot = motion_lib.follow_path(mot, torch.tensor(anim.path), anim.speed)
    posed = model.pose(mot.global_orient[:T], mot.body_pose[:T], betas, mot.transl[:T])
    # The entity pose places the whole motion in the world.
    R = quat_to_matrix(torch.tensor(e.pose.rotation, dtype=torch.float32))
    t = torch.tensor(e.pose.position, dtype=torch.float32)

    def place(x: Tensor) -> Tensor:
        return x @ R.T + t

    verts = place(posed.vertices)
    albedo = torch.tensor(e.appearance.color, dtype=torch.float32).expand(verts.shape[1], 3)
    track = MeshTrack(e.name, iid, sid0, verts, model.faces, albedo.clone(),
                      e.appearance.specular, e.appearance.roughness,
                      part_labels=model.part_labels + 1)
    joints = place(posed.joints)
    pelvis = joints[:, 0]
    vel = torch.gradient(pelvis, spacing=(times,), dim=0)[0] if T > 1 else torch.zeros_like(pelvis)
    root = RigidTrack(pelvis, torch.tensor([1.0, 0, 0, 0]).expand(T, 4).clone(), vel,
                      torch.zeros_like(pelvis))
    human = HumanTrack(e.name, joints, place(posed.coco17), place(posed.openpose18), model.kind)
    return track, root, human


def _attach_textures(scene: Scene, tracks: list[MeshTrack]) -> None:
    """Gives each mesh track of a textured entity its texture and per-corner UVs."""
    entities = {e.name: e for e in scene.entities}
    images: dict = {}
    for m in tracks:
        e = entities.get(m.name)
        tex = texture_of(e.appearance, images) if e is not None else None
        if tex is not None:
            m.uvs, m.texture = entity_uvs(e).to(torch.float32), tex


def simulate(scene: Scene, progress: bool = True) -> Trajectory:
    """Simulates the scene: physics for dynamic bodies, keyframes, SMPL motion, Gaussian
    deformation; then evaluates the camera at every frame.

    Args:
        scene: a validated scene.
        progress: show progress bars for long steps.
    Returns:
        The :class:`Trajectory` of every entity, light and camera.
    """
    t0 = time.perf_counter()
    torch.manual_seed(scene.seed)
    T = scene.frames
    times = torch.arange(T, dtype=torch.float32) / scene.fps
    classes = semantic_classes(scene)
    rigid, contacts, robot_trajs = _physics(scene, times, progress)
    deformed = _deformables(scene, times, progress)
    meshes, gaussians, humans, robots = [], [], [], []
    body_cache: dict = {}
    skins: dict = {}  # human name -> (skinned MeshTrack, BodyModel), for clouds bound to skin
    bound: list[tuple[int, int, int]] = []  # clouds with bind_to: done once their parents are
    for idx, e in enumerate(scene.entities):
        iid = idx + 1
        sid = classes.index(e.semantic_label) + 1 if not isinstance(e.geometry, Human) else 0
        g = e.geometry
        if isinstance(g, Human):
            track, root, human = _human(e, times, scene, iid, sid, body_cache)
            skins[e.name] = (track, body_cache[(g.body_model, g.gender)])
            if g.gaussians is not None:
                from .binding import avatar_track

                gaussians.append(avatar_track(e, track, skins[e.name][1], scene.seed + idx))
            else:
                meshes.append(track)
            humans.append(human)
            rigid[e.name] = root
            continue
        if isinstance(g, Robot):
            track, robot, root = _robot(e, robot_trajs[e.name], iid, sid)
            if track.vertices.shape[1]:
                meshes.append(track)
            robots.append(robot)
            rigid[e.name] = root
            continue
        if e.name in deformed:
            track, root = _deformable_track(e, deformed[e.name], iid, sid)
            (meshes if isinstance(track, MeshTrack) else gaussians).append(track)
            rigid[e.name] = root
            continue
        if isinstance(g, Gaussians) and g.bind_to is not None:
            bound.append((idx, iid, sid))
            continue
        if e.name not in rigid:
            if isinstance(e.animation, Keyframes):
                rigid[e.name] = _keyframed_track(e.animation, times)
            else:
                rigid[e.name] = _static_track(e, T)
        root = rigid[e.name]
        if isinstance(g, Gaussians):
            gaussians.append(_gaussian_track(e, times, root, iid, sid, scene.seed + idx))
            continue
        local = local_mesh(g)
        R = quat_to_matrix(root.quats)
        verts = torch.einsum("tij,vj->tvi", R, local.verts) + root.positions[:, None]
        albedo = torch.tensor(e.appearance.color, dtype=torch.float32).expand(
            local.verts.shape[0], 3).clone()
        meshes.append(MeshTrack(e.name, iid, sid, verts, local.faces, albedo,
                                e.appearance.specular, e.appearance.roughness))
    if bound:
        from .binding import bound_tracks

        gaussians += bound_tracks(scene, bound, times, rigid, skins, scene.seed)
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
    traj.timings["simulate"] = time.perf_counter() - t0
    return traj
