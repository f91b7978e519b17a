"""The data that flows from simulation to rendering: per-frame tracks of everything that moves.

:class:`Trajectory` is the one contract between :func:`rendiff.simulate` and
:func:`rendiff.render`: it holds every entity's state per frame (root transforms, meshes,
Gaussian clouds, skeletons, robots), the cameras, the lights as they are at each frame and the
background, and no scene specification: the renderer reads nothing else. These types live here,
apart from the simulation that fills them, so that every stage can import them without importing
the simulator.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from .camera import CameraFrames

if TYPE_CHECKING:
    from .textures import Texture

__all__ = ["GaussianTrack", "HumanTrack", "LightState", "MeshTrack", "RigidTrack", "RobotTrack",
           "Trajectory", "map_tensors", "to_device"]


def map_tensors(obj: Any, fn: Callable[[Tensor], Tensor]) -> Any:
    """``obj`` with ``fn`` applied to every tensor in it: tensors, and lists, tuples, dicts and
    dataclasses of them, recursively (a dataclass is rebuilt with ``dataclasses.replace``, so
    one that derives fields in ``__post_init__`` derives them again from the new ones).
    Anything else is returned as it is."""
    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if isinstance(obj, list):
        return [map_tensors(x, fn) for x in obj]
    if isinstance(obj, tuple) and not hasattr(obj, "_fields"):
        return tuple(map_tensors(x, fn) for x in obj)
    if isinstance(obj, dict):
        return {k: map_tensors(v, fn) for k, v in obj.items()}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        changes = {f.name: map_tensors(getattr(obj, f.name), fn)
                   for f in dataclasses.fields(obj) if f.init}
        return dataclasses.replace(obj, **changes)
    return obj


def to_device(obj: Any, device: torch.device | str) -> Any:
    """``obj`` with every tensor in it on ``device`` (see :func:`map_tensors`)."""
    return map_tensors(obj, lambda t: t.to(device))


@dataclass
class RigidTrack:
    """An entity's root transform over the clip."""

    positions: Tensor  # [T, 3]
    quats: Tensor  # [T, 4] (w, x, y, z)
    linear_velocity: Tensor  # [T, 3] world, m/s
    angular_velocity: Tensor  # [T, 3] world, rad/s


@dataclass
class MeshTrack:
    """A triangle mesh over the clip, in world coordinates."""

    name: str
    instance_id: int
    semantic_id: int
    vertices: Tensor  # [T, V, 3]
    faces: Tensor  # [F, 3] int64
    albedo: Tensor  # [V, 3] in [0, 1]
    specular: float
    roughness: float
    part_labels: Tensor | None = None  # [V] semantic ids per vertex (SMPL parts), else None
    uvs: Tensor | None = None  # [F, 3, 2] texture coordinates per face corner, with ``texture``
    texture: Texture | None = None  # albedo texture (rendiff.engine.textures), else None


@dataclass
class GaussianTrack:
    """A Gaussian cloud over the clip, in world coordinates."""

    name: str
    instance_id: int
    semantic_id: int
    means: Tensor  # [T, N, 3]
    quats: Tensor  # [T, N, 4]
    scales: Tensor  # [N, 3]
    opacities: Tensor  # [N]
    colors: Tensor  # [T, N, 3] RGB in [0, 1]
    specular: float
    roughness: float
    part_labels: Tensor | None = None  # [N] semantic ids per Gaussian (an avatar's SMPL parts)
    frame_scales: Tensor | None = None  # [T, N, 3] per-frame scales of a deforming cloud (MPM:
    # the singular values of F R S), else None and ``scales`` hold at every frame
    normals: Tensor | None = None  # [N, 3] each Gaussian's unit normal in its own frame
    # (rendiff.engine.gaussians.splat_normals), else None: its shortest axis

    def scales_at(self, k: int) -> Tensor:
        """Standard deviations [N, 3] of the Gaussians at frame k."""
        return self.scales if self.frame_scales is None else self.frame_scales[k]


@dataclass
class HumanTrack:
    """Skeleton of an SMPL body over the clip (world coordinates)."""

    name: str
    joints: Tensor  # [T, 24, 3]
    coco17: Tensor  # [T, 17, 3]
    openpose18: Tensor  # [T, 18, 3]
    body_model: str  # 'smpl' or 'standin'


@dataclass
class RobotTrack:
    """A robot's joints and links over the clip. D one-DoF joints, L links (the root first), in
    Newton's order; the robot's :class:`MeshTrack` has the same name, and ``vertex_link`` says
    which link moves each of its vertices."""

    name: str
    joint_names: list[str]
    joint_kinds: list[str]  # 'revolute' | 'prismatic'
    lower: Tensor  # [D] joint limits [rad or m]
    upper: Tensor  # [D]
    q: Tensor  # [T, D] joint positions [rad or m]
    qd: Tensor  # [T, D] joint velocities [rad/s or m/s]
    targets: Tensor  # [T, D] drive targets
    link_names: list[str]
    link_positions: Tensor  # [T, L, 3] link frame origins, world [m]
    link_quats: Tensor  # [T, L, 4] (w, x, y, z)
    link_linear_velocity: Tensor  # [T, L, 3] centre of mass, world [m/s]
    link_angular_velocity: Tensor  # [T, L, 3] world [rad/s]
    vertex_link: Tensor  # [V] int64 link index of each vertex of the robot's MeshTrack
    tip_link: str = ""  # the link that carries the tip (end effector)
    tip_offset: tuple[float, float, float] = (0.0, 0.0, 0.0)  # the tip in that link's frame [m]
    tip_positions: Tensor | None = None  # [T, 3] the tip, world [m]
    tip_quats: Tensor | None = None  # [T, 4] (w, x, y, z) the tip link's orientation


@dataclass(frozen=True)
class LightState:
    """One light at one frame: where it is and what it emits, nothing left to evaluate (no
    keyframes, no entity it follows). ``type`` names the kind as scene files do."""

    type: str  # "ambient" | "environment" | "directional" | "point" | "spot"
    color: tuple[float, float, float]
    intensity: float
    position: tuple[float, float, float] | None = None  # world [m]: point, spot
    direction: tuple[float, float, float] | None = None  # world, any length: directional, spot
    angle_deg: float | None = None  # spot: full cone angle
    softness: float | None = None  # spot: fraction of the half-angle that fades
    shadows: bool = False  # directional, point, spot
    sh: tuple[tuple[float, float, float], ...] | None = None  # environment: 9 SH coefficients

    @property
    def radiance(self) -> tuple[float, float, float]:
        return tuple(c * self.intensity for c in self.color)  # type: ignore[return-value]


@dataclass
class Trajectory:
    """Everything the renderer needs, per frame, and nothing of the scene file it came from:
    the contract between :func:`rendiff.simulate` and :func:`rendiff.render`. ``times[k] =
    k / fps``; every tensor lives on one device (:attr:`device`)."""

    times: Tensor  # [T]
    fps: float
    cameras: CameraFrames
    rigid: dict[str, RigidTrack] = field(default_factory=dict)  # root transform by entity name
    meshes: list[MeshTrack] = field(default_factory=list)
    gaussians: list[GaussianTrack] = field(default_factory=list)
    humans: list[HumanTrack] = field(default_factory=list)
    contacts: list[dict] = field(default_factory=list)
    semantic_classes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    robots: list[RobotTrack] = field(default_factory=list)
    deformables: dict = field(default_factory=dict)  # entity name -> ClothTrajectory or
    # MPMTrajectory (rendiff.engine.deformables): cloth vertex and MPM particle states per frame
    entity_names: list[str] = field(default_factory=list)  # instance id i -> entity_names[i-1]
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)  # RGB behind everything
    lights: list[list[LightState]] = field(default_factory=list)  # per frame, in scene order

    @property
    def frames(self) -> int:
        return int(self.times.shape[0])

    @property
    def device(self) -> torch.device:
        return self.times.device

    def to(self, device: torch.device | str) -> Trajectory:
        """The trajectory with every tensor on ``device`` (tracks, cameras, textures, the
        deformables' states); itself when it is there already."""
        if torch.device(device) == self.device:
            return self
        return to_device(self, device)
