"""One handler per entity kind: what each kind of scene entity becomes in the simulation.

A single router (:func:`kind_of`, Genesis' pattern; the handlers are registered once, with
:func:`register`) maps each geometry class of :mod:`rendiff.scenes.spec` to an
:class:`EntityKind` that knows everything kind-specific the engine and the data-set tools ask:
its fixed mesh in the entity's frame, its rigid collider for physics, its box size and bounding
radius, whether its class ids come from SMPL body parts, and how it becomes tracks on the
:class:`~rendiff.engine.trajectory.Trajectory`. A new geometry kind adds its spec class and one
handler here; no other module branches on the geometry's type.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from rendiff.scenes.spec import (
    AmassMotion,
    Appearance,
    Box,
    Capsule,
    Cloth,
    Cylinder,
    Deformation,
    Entity,
    Gaussians,
    Human,
    Keyframes,
    Mesh,
    Motion,
    Plane,
    Robot,
    Scene,
    Sphere,
)

from . import meshes
from .binding import (
    avatar_colors,
    bind_to_surface,
    compose_rigid,
    face_parts,
    rest_vertices,
    surface_gaussians,
)
from .camera import interpolate_points
from .gaussians import splat_normals
from .textures import CheckerTexture, ImageTexture, Texture, load_image
from .trajectory import GaussianTrack, HumanTrack, MeshTrack, RigidTrack, RobotTrack
from .transforms import interpolate_quats, quat_multiply, quat_normalize, quat_to_matrix

__all__ = ["Context", "EntityKind", "EntityTracks", "avatar_track", "bound_tracks",
           "entity_cloud", "entity_uvs", "kind_of", "register", "texture_of"]

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# The router


@dataclass
class EntityTracks:
    """What one entity contributes to a trajectory: its root track and, by kind, a mesh, a
    Gaussian cloud, a skeleton and a robot's joints."""

    root: RigidTrack
    mesh: MeshTrack | None = None
    gaussians: GaussianTrack | None = None
    human: HumanTrack | None = None
    robot: RobotTrack | None = None


@dataclass
class Context:
    """What the handlers share while one scene is simulated: the scene and its frame times, the
    root tracks made so far (physics' among them), the solvers' per-entity results and caches."""

    scene: Scene
    times: Tensor  # [T] seconds
    classes: list[str]  # semantic class names (id = index + 1)
    rigid: dict[str, RigidTrack]  # root tracks by entity name: physics', then every entity's
    robots: dict = field(default_factory=dict)  # robot name -> its physics trajectory
    deformed: dict = field(default_factory=dict)  # cloth / MPM name -> (trajectory, rest)
    bodies: dict = field(default_factory=dict)  # (body model, gender) -> BodyModel
    skins: dict = field(default_factory=dict)  # human name -> (skinned MeshTrack, BodyModel)

    def semantic_id(self, e: Entity) -> int:
        return self.classes.index(e.semantic_label) + 1

    def root(self, e: Entity) -> RigidTrack:
        """The entity's root track: from physics when it has one, else its keyframes, else its
        pose held still (recorded in ``rigid``)."""
        if e.name not in self.rigid:
            if isinstance(e.animation, Keyframes):
                self.rigid[e.name] = keyframed_track(e.animation, self.times)
            else:
                self.rigid[e.name] = static_track(e, self.times.shape[0])
        return self.rigid[e.name]


class EntityKind:
    """The handler of one kind of entity (defaults: a kind with no fixed mesh, no collider)."""

    #: class ids per SMPL body part (1-24) rather than from the entity's label
    parts: bool = False
    #: its shape changes from frame to frame (a body, cloth, a robot's links), so a 3D box that
    #: fits frame 0 need not fit later frames
    deforms: bool = False
    #: the entry of the data set's BOX_DEFINITIONS its 3D box follows
    box_definition: str = "mesh"
    #: a person (COCO category "person", keypoints)
    person: bool = False
    #: a countable object ("thing"), as opposed to stuff such as the ground
    thing: bool = True
    #: a fixed shape (primitive or mesh file): rigid, placed and moved as one body
    shape: bool = False

    def solver(self, geom) -> str | None:
        """The deformable solver that simulates it: "cloth", "mpm", or None."""
        return None

    def local_mesh(self, geom) -> meshes.TriMesh | None:
        """The shape's triangle mesh in its entity's frame (None: not one fixed mesh)."""
        return None

    def collider(self, geom) -> dict | None:
        """Its fields of a :class:`rendiff.engine.physics.RigidBodyDesc` (``shape`` and sizes),
        or None when it is not a rigid collider."""
        return None

    def size(self, geom) -> Tensor | None:
        """Its box size [3] (float64 metres) in its own frame, known without simulating it, else
        None (measured from the simulated geometry)."""
        return None

    def bound_radius(self, geom) -> float:
        """A radius about its origin that holds it (for placing entities apart)."""
        return 0.5

    def tracks(self, e: Entity, idx: int, ctx: Context) -> EntityTracks | None:
        """Its tracks over the clip, or None to be made after every other entity (a cloud
        bound to another entity)."""
        raise NotImplementedError(f"no handler makes tracks of a {type(e.geometry).__name__}")


_KINDS: dict[type, EntityKind] = {}


def register(*geometry_classes: type):
    """Class decorator: the handler of entities with these geometry classes."""
    def wrap(cls: type[EntityKind]) -> type[EntityKind]:
        for g in geometry_classes:
            _KINDS[g] = cls()
        return cls
    return wrap


def kind_of(geometry) -> EntityKind:
    """The handler of a geometry (an instance of a :mod:`rendiff.scenes.spec` geometry class)."""
    for cls in type(geometry).__mro__:
        if cls in _KINDS:
            return _KINDS[cls]
    raise TypeError(f"no entity handler is registered for {type(geometry).__name__}")


# --------------------------------------------------------------------------------------------
# Fixed shapes: primitives, planes and mesh files, rigid (physics, keyframes or still)


class _Shape(EntityKind):
    box_definition = "primitive"
    shape = True

    def tracks(self, e: Entity, idx: int, ctx: Context) -> EntityTracks:
        root = ctx.root(e)
        local = self.local_mesh(e.geometry)
        R = quat_to_matrix(root.quats)
        verts = torch.einsum("tij,vj->tvi", R, local.verts) + root.positions[:, None]
        albedo = torch.tensor(e.appearance.color, dtype=torch.float32).expand(
            local.verts.shape[0], 3).clone()
        return EntityTracks(root, mesh=MeshTrack(e.name, idx + 1, ctx.semantic_id(e), verts,
                                                 local.faces, albedo, e.appearance.specular,
                                                 e.appearance.roughness))


@register(Sphere)
class _Sphere(_Shape):
    def local_mesh(self, g: Sphere) -> meshes.TriMesh:
        return meshes.sphere(g.radius, subdivisions=3)

    def collider(self, g: Sphere) -> dict:
        return dict(shape="sphere", radius=g.radius)

    def size(self, g: Sphere) -> Tensor:
        return torch.full((3,), 2.0 * g.radius, dtype=torch.float64)

    def bound_radius(self, g: Sphere) -> float:
        return g.radius


@register(Box)
class _Box(_Shape):
    def local_mesh(self, g: Box) -> meshes.TriMesh:
        return meshes.box(tuple(s / 2 for s in g.size))

    def collider(self, g: Box) -> dict:
        return dict(shape="box", half_extents=tuple(s / 2 for s in g.size))

    def size(self, g: Box) -> Tensor:
        return torch.tensor(g.size, dtype=torch.float64)

    def bound_radius(self, g: Box) -> float:
        return 0.5 * math.sqrt(sum(x * x for x in g.size))


@register(Capsule)
class _Capsule(_Shape):
    def local_mesh(self, g: Capsule) -> meshes.TriMesh:
        return meshes.capsule(g.radius, g.length / 2)

    def collider(self, g: Capsule) -> dict:
        return dict(shape="capsule", radius=g.radius, half_height=g.length / 2)

    def size(self, g: Capsule) -> Tensor:
        return torch.tensor([2 * g.radius, 2 * g.radius, g.length + 2 * g.radius],
                            dtype=torch.float64)

    def bound_radius(self, g: Capsule) -> float:
        return g.radius + g.length / 2


@register(Cylinder)
class _Cylinder(_Shape):
    def local_mesh(self, g: Cylinder) -> meshes.TriMesh:
        return meshes.cylinder(g.radius, g.height / 2)

    def collider(self, g: Cylinder) -> dict:
        return dict(shape="cylinder", radius=g.radius, half_height=g.height / 2)

    def size(self, g: Cylinder) -> Tensor:
        return torch.tensor([2 * g.radius, 2 * g.radius, g.height], dtype=torch.float64)

    def bound_radius(self, g: Cylinder) -> float:
        return math.hypot(g.radius, g.height / 2)


@register(Plane)
class _Plane(_Shape):
    thing = False
    shape = False
    def local_mesh(self, g: Plane) -> meshes.TriMesh:
        return meshes.plane(*g.size)

    def size(self, g: Plane) -> Tensor:
        return torch.tensor([g.size[0], g.size[1], 0.0], dtype=torch.float64)


@register(Mesh)
class _MeshFile(_Shape):
    box_definition = "mesh"

    def local_mesh(self, g: Mesh) -> meshes.TriMesh:
        mesh = meshes.load_mesh(g.path)
        verts = mesh.verts * torch.as_tensor(g.scale, dtype=torch.float32)
        return meshes.TriMesh(verts, mesh.faces, meshes.vertex_normals(verts, mesh.faces),
                              mesh.uvs)

    def collider(self, g: Mesh) -> dict:
        m = self.local_mesh(g)
        return dict(shape="mesh", mesh_verts=m.verts.numpy(), mesh_faces=m.faces.numpy())


# --------------------------------------------------------------------------------------------
# People, robots, cloth and Gaussian clouds


@register(Human)
class _Human(EntityKind):
    parts = True
    person = True
    deforms = True
    box_definition = "human"

    def bound_radius(self, g: Human) -> float:
        return 1.0

    def tracks(self, e: Entity, idx: int, ctx: Context) -> EntityTracks:
        g = e.geometry
        mesh, root, human = human_tracks(e, ctx.times, ctx.scene, idx + 1, 0, ctx.bodies)
        model = ctx.bodies[(g.body_model, g.gender)]
        ctx.skins[e.name] = (mesh, model)
        ctx.rigid[e.name] = root
        if g.gaussians is not None:
            return EntityTracks(root, gaussians=avatar_track(e, mesh, model, ctx.scene.seed + idx),
                                human=human)
        return EntityTracks(root, mesh=mesh, human=human)


@register(Robot)
class _Robot(EntityKind):
    deforms = True

    def tracks(self, e: Entity, idx: int, ctx: Context) -> EntityTracks:
        mesh, robot, root = robot_tracks(e, ctx.robots[e.name], idx + 1, ctx.semantic_id(e))
        ctx.rigid[e.name] = root
        return EntityTracks(root, mesh=mesh if mesh.vertices.shape[1] else None, robot=robot)


@register(Cloth)
class _Cloth(EntityKind):
    deforms = True

    def solver(self, g: Cloth) -> str:
        return "cloth"

    def tracks(self, e: Entity, idx: int, ctx: Context) -> EntityTracks:
        mesh, root = deformable_track(e, ctx.deformed[e.name], idx + 1, ctx.semantic_id(e))
        ctx.rigid[e.name] = root
        return EntityTracks(root, mesh=mesh)


@register(Gaussians)
class _Gaussians(EntityKind):
    box_definition = "gaussians"

    def solver(self, g: Gaussians) -> str | None:
        return "mpm" if g.mpm is not None else None

    def bound_radius(self, g: Gaussians) -> float:
        return g.radius * 1.8

    def tracks(self, e: Entity, idx: int, ctx: Context) -> EntityTracks | None:
        g = e.geometry
        if e.name in ctx.deformed:  # an MPM body
            cloud, root = deformable_track(e, ctx.deformed[e.name], idx + 1, ctx.semantic_id(e))
            ctx.rigid[e.name] = root
            return EntityTracks(root, gaussians=cloud)
        if g.bind_to is not None:
            return None  # after its parent: bound_tracks
        root = ctx.root(e)
        cloud = gaussian_track(e, ctx.times, root, idx + 1, ctx.semantic_id(e),
                               ctx.scene.seed + idx)
        return EntityTracks(root, gaussians=cloud)


# --------------------------------------------------------------------------------------------
# Tracks


def static_track(e: Entity, T: int) -> RigidTrack:
    pos = torch.tensor(e.pose.position, dtype=torch.float32).expand(T, 3).clone()
    q = quat_normalize(torch.tensor(e.pose.rotation, dtype=torch.float32)).expand(T, 4).clone()
    return RigidTrack(pos, q, torch.zeros(T, 3), torch.zeros(T, 3))


def keyframed_track(anim: Keyframes, times: Tensor) -> RigidTrack:
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


def robot_tracks(e: Entity, traj, iid: int, sid: int) -> tuple[MeshTrack, RobotTrack, RigidTrack]:
    """A robot's mesh, joints and root track from its physics trajectory."""
    from .robots import posed_vertices, robot_mesh

    verts, faces, vertex_link, albedo = robot_mesh(traj.visuals, e.appearance.color)
    world = posed_vertices(verts, vertex_link, traj.link_positions, traj.link_quats)
    mesh = MeshTrack(e.name, iid, sid, world, faces, albedo, e.appearance.specular,
                     e.appearance.roughness)
    g = e.geometry
    tip = g.tip if g.tip is not None else traj.link_names[-1]
    if tip not in traj.link_names:
        raise ValueError(f"entity {e.name!r}: tip: {tip!r} is not one of its links "
                         f"{traj.link_names}")
    i = traj.link_names.index(tip)
    offset = torch.tensor(g.tip_offset, dtype=torch.float32)
    tip_quats = traj.link_quats[:, i].clone()
    tip_positions = traj.link_positions[:, i] + quat_to_matrix(tip_quats) @ offset
    track = RobotTrack(
        e.name, traj.joint_names, traj.joint_kinds, traj.lower, traj.upper, traj.q, traj.qd,
        traj.targets, traj.link_names, traj.link_positions, traj.link_quats,
        traj.link_linear_velocity, traj.link_angular_velocity, vertex_link, tip_link=tip,
        tip_offset=tuple(float(c) for c in g.tip_offset), tip_positions=tip_positions,
        tip_quats=tip_quats)
    root = RigidTrack(traj.link_positions[:, 0].clone(), traj.link_quats[:, 0].clone(),
                      traj.link_linear_velocity[:, 0].clone(),
                      traj.link_angular_velocity[:, 0].clone())
    return mesh, track, root


def procedural_dddm(anim: Deformation, cloud):
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


def entity_cloud(e: Entity, seed: int):
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


def gaussian_track(e: Entity, times: Tensor, root: RigidTrack, iid: int, sid: int,
                    seed: int) -> GaussianTrack:
    cloud = entity_cloud(e, seed)
    T = times.shape[0]
    if isinstance(e.animation, Deformation):
        from .deformation import DDDM, deform

        dddm = (DDDM.load(e.animation.path) if e.animation.path is not None
                else procedural_dddm(e.animation, cloud))
        frames = deform(cloud, dddm, times)
    else:
        frames = [cloud] * T
    R = quat_to_matrix(root.quats)  # [T,3,3]
    means = torch.stack([f.means for f in frames])
    quats = torch.stack([f.quats for f in frames])
    colors = torch.stack([f.colors() for f in frames])
    means = torch.einsum("tij,tnj->tni", R, means) + root.positions[:, None]
    quats = quat_multiply(root.quats[:, None].expand_as(quats), quats)
    normals = splat_normals(cloud.means, cloud.quats, cloud.scales)
    return GaussianTrack(e.name, iid, sid, means, quats, cloud.scales, cloud.opacities, colors,
                         e.appearance.specular, e.appearance.roughness, normals=normals)


def deformable_track(e: Entity, entry: tuple, iid: int, sid: int
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


def human_tracks(e: Entity, times: Tensor, scene: Scene, iid: int, sid0: int, cache: dict):
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


def betas_of(geometry) -> Tensor:
    betas = torch.zeros(10)
    if geometry.betas:
        betas[: len(geometry.betas)] = torch.tensor(geometry.betas)
    return betas


def avatar_track(entity, mesh: MeshTrack, model, seed: int) -> GaussianTrack:
    """A human entity drawn as a Gaussian avatar: Gaussians bound to the triangles of its
    skinned SMPL surface (``mesh``, as :func:`rendiff.simulate` builds it), configured by the
    entity's ``geometry.gaussians`` (:class:`rendiff.scenes.AvatarGaussians`).

    The track carries the mesh's name, instance id and per-Gaussian body-part semantic ids
    (``part_labels``, 1..24, from the part of each Gaussian's triangle).
    """
    spec = entity.geometry.gaussians
    faces = mesh.faces.long()
    parts = face_parts(model.part_labels.cpu(), faces)
    rgb = avatar_colors(parts, spec.colors, entity.appearance.color, seed=seed)
    binding, cloud = surface_gaussians(
        rest_vertices(model, betas_of(entity.geometry)), faces, spec.per_triangle, colors=rgb,
        offset=spec.offset, opacity=spec.opacity)
    means, quats = binding.pose(mesh.vertices)
    T = means.shape[0]
    return GaussianTrack(mesh.name, mesh.instance_id, mesh.semantic_id, means, quats,
                         cloud.scales, cloud.opacities, cloud.colors().expand(T, -1, 3).clone(),
                         mesh.specular, mesh.roughness, part_labels=parts[binding.face] + 1)


def bound_tracks(scene, pending: list[tuple[int, int, int]], times: Tensor,
                 rigid: dict[str, RigidTrack], skins: dict, seed: int) -> list[GaussianTrack]:
    """Tracks of the Gaussian clouds bound to other entities (``Gaussians.bind_to``).

    Parents are done before their children (a cloud may ride on a cloud that rides on a box);
    each bound cloud's root track is added to ``rigid``.

    Args:
        scene: the validated scene (bindings checked: known, not self, no cycles).
        pending: (entity index, instance id, semantic id) of each bound cloud.
        times: Tensor  # [T] frame times
        rigid: root tracks by entity name (parents' already there); updated in place.
        skins: human name -> (its skinned :class:`MeshTrack`, its ``BodyModel``).
        seed: the scene's seed (each cloud samples with ``seed + entity index``).
    """
    out: list[GaussianTrack] = []
    todo = list(pending)
    while todo:
        ready = [p for p in todo if scene.entities[p[0]].geometry.bind_to in rigid]
        if not ready:
            names = [scene.entities[p[0]].name for p in todo]
            raise ValueError(f"bind_to: cannot resolve the parents of {names}")
        for p in ready:
            todo.remove(p)
            idx, iid, sid = p
            e = scene.entities[idx]
            parent = e.geometry.bind_to
            T = times.shape[0]
            if parent in skins:
                mesh, model = skins[parent]
                track = gaussian_track(e, times, static_track(e, T), iid, sid, seed + idx)
                rest = rest_vertices(model, betas_of(scene.entity(parent).geometry))
                binding = bind_to_surface(track.means[0], track.quats[0], rest, mesh.faces)
                track.means, track.quats = binding.pose(mesh.vertices)
                centre = track.means.mean(1)
                vel = (torch.gradient(centre, spacing=(times,), dim=0)[0] if T > 1
                       else torch.zeros_like(centre))
                rigid[e.name] = RigidTrack(centre, torch.tensor([1.0, 0, 0, 0]).expand(T, 4)
                                           .clone(), vel, torch.zeros_like(centre))
            else:
                root = compose_rigid(rigid[parent], torch.tensor(e.pose.position),
                                     torch.tensor(e.pose.rotation))
                rigid[e.name] = root
                track = gaussian_track(e, times, root, iid, sid, seed + idx)
            out.append(track)
    return out


# --------------------------------------------------------------------------------------------
# Appearance


def entity_uvs(entity: Entity) -> Tensor:
    """Texture coordinates [F, 3, 2] per face corner of the entity's mesh, in the face order the
    simulation uses (see :mod:`rendiff.engine.meshes` for each shape's convention).

    Raises:
        ValueError: a mesh file without texture coordinates, or a shape without UVs.
    """
    g = entity.geometry
    mesh = kind_of(g).local_mesh(g)
    if mesh is not None and mesh.uvs is not None:
        return mesh.uvs
    if g.type == "mesh":
        raise ValueError(f"entity {entity.name!r}: appearance.texture: mesh file "
                         f"{Path(g.path).name!r} has no texture coordinates (OBJ 'vt')")
    raise ValueError(f"entity {entity.name!r}: appearance: a {g.type} has no texture coordinates")


def texture_of(appearance: Appearance, images: dict[str, Tensor] | None = None) -> Texture | None:
    """The appearance's texture, or None where its albedo is a plain colour. ``images`` caches
    loaded image files by path."""
    if appearance.checker is not None:
        return CheckerTexture(torch.tensor(appearance.checker, dtype=torch.float32),
                              appearance.texture_scale)
    if appearance.texture is None:
        return None
    if images is None:
        images = {}
    if appearance.texture not in images:
        images[appearance.texture] = load_image(appearance.texture)
    return ImageTexture(images[appearance.texture], appearance.texture_scale)
