"""Built-in scenes. Each is a function of a seed that returns a plain :class:`Scene`, so
``rendiff scenes --show NAME`` prints it as YAML to copy and edit."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from .spec import (
    MPM,
    Ambient,
    Appearance,
    AvatarGaussians,
    Box,
    Camera,
    Capsule,
    Cloth,
    Cylinder,
    Deformation,
    Directional,
    FollowPath,
    Gaussians,
    Human,
    JointTargets,
    Material,
    Motion,
    OrbitPath,
    PhysicsOptions,
    Plane,
    Pose,
    Robot,
    Scene,
    Sphere,
    StaticPath,
)

__all__ = ["BUILTIN_SCENES", "builtin_scene", "list_builtin_scenes"]


@dataclass(frozen=True)
class _Builtin:
    description: str
    build: Callable[[int], Scene]


def _ground(scene: Scene, color=(0.55, 0.55, 0.52), size=(12.0, 12.0), checker=None) -> None:
    """A static ground plane; ``checker`` (two colours) tiles it with 0.25 m squares."""
    scene.add(Plane(size=size), Pose(), Material(friction=0.6, restitution=0.4),
              Appearance(color=color, roughness=0.9, specular=0.05, checker=checker,
                         texture_scale=0.25 if checker else 1.0), name="ground", label="ground")


def _lights(scene: Scene, direction=(-0.5, 0.35, -1.0)) -> None:
    scene.add_light(Ambient(intensity=0.3))
    scene.add_light(Directional(direction=direction, intensity=0.75, shadows=True))


def _clear_height(x: float, y: float, z: float, radius: float,
                  placed: list[tuple[tuple[float, float, float], float]],
                  gap: float = 0.01) -> float:
    """The lowest height from ``z`` up at which a body held by a sphere of ``radius`` at
    (x, y) keeps ``gap`` from every placed one (centre, radius): bodies start apart, so physics
    has nothing to push out on its first step."""
    moved = True
    while moved:
        moved = False
        for (px, py, pz), pr in placed:
            need = radius + pr + gap
            d2 = (x - px) ** 2 + (y - py) ** 2
            if d2 < need * need and abs(z - pz) < math.sqrt(need * need - d2) - 1e-9:
                z = pz + math.sqrt(need * need - d2)
                moved = True
    return z


def falling_objects(seed: int = 0) -> Scene:
    """Rigid primitives dropped onto a ground plane, seen by a static camera."""
    rng = random.Random(seed)
    scene = Scene(name="falling_objects", seed=seed, frames=32, fps=16.0,
                  description="Rigid bodies of several shapes dropped onto a ground plane.")
    _ground(scene)  # plain: the default model was trained on plain floors
    # each shape with the radius of a sphere about its centre that holds it (half its diagonal)
    shapes = [(Sphere(radius=0.12), 0.12),
              (Box(size=(0.22, 0.22, 0.22)), 0.11 * math.sqrt(3)),
              (Capsule(radius=0.07, length=0.2), 0.07 + 0.1),
              (Cylinder(radius=0.1, height=0.2), math.hypot(0.1, 0.1)),
              (Sphere(radius=0.09), 0.09),
              (Box(size=(0.3, 0.15, 0.1)), 0.5 * math.sqrt(0.3**2 + 0.15**2 + 0.1**2))]
    palette = [(0.85, 0.25, 0.2), (0.2, 0.55, 0.85), (0.95, 0.75, 0.2), (0.3, 0.75, 0.35),
               (0.7, 0.35, 0.8), (0.9, 0.5, 0.2)]
    placed: list[tuple[tuple[float, float, float], float]] = []
    for i, (geom, radius) in enumerate(shapes):
        x, y = rng.uniform(-0.35, 0.35), rng.uniform(-0.35, 0.35)
        pos = (x, y, _clear_height(x, y, 0.35 + 0.15 * i, radius, placed))
        placed.append((pos, radius))
        rpy = (rng.uniform(0, 90), rng.uniform(0, 90), rng.uniform(0, 180))
        scene.add(geom, Pose.from_euler(pos, rpy),
                  Material(density=600.0, friction=0.5, restitution=0.45),
                  Appearance(color=palette[i], roughness=0.45, specular=0.35),
                  name=f"{geom.type}_{i}", dynamic=True, label=geom.type,
                  velocity=(0.0, 0.0, 0.0),
                  angular_velocity=(rng.uniform(-2, 2), rng.uniform(-2, 2), 0.0))
    _lights(scene)
    scene.camera = Camera(fov_deg=40.0, path=StaticPath(eye=(1.5, -1.7, 1.1),
                                                        target=(0.0, 0.0, 0.3)))
    return scene


def walking_human(seed: int = 0) -> Scene:
    """An SMPL body walking along a gentle curve, followed by the camera."""
    rng = random.Random(seed)
    scene = Scene(name="walking_human", seed=seed, frames=32, fps=16.0,
                  description="An SMPL body walking along a curve; the camera follows it.")
    _ground(scene, color=(0.45, 0.5, 0.45), size=(20.0, 20.0))
    bend = rng.uniform(-0.6, 0.6)
    scene.add(Human(), Pose(),
              appearance=Appearance(color=(0.75, 0.6, 0.5), roughness=0.7, specular=0.1),
              name="person", animation=Motion(name="walk", speed=1.1,
                                              path=[(-1.5, 0.0), (0.0, bend), (1.5, 0.0)]))
    scene.add(Box(size=(0.4, 0.4, 0.4)), Pose(position=(0.6, 1.2, 0.2)),
              appearance=Appearance(color=(0.3, 0.45, 0.8)), name="crate", label="box")
    _lights(scene, direction=(-0.3, 0.6, -1.0))
    scene.camera = Camera(fov_deg=50.0, path=FollowPath(entity="person",
                                                        offset=(0.3, -3.2, 0.5),
                                                        look_height=0.9, smoothing=0.5))
    return scene


def dynamic_gaussians(seed: int = 0) -> Scene:
    """A Gaussian cloud deforming over time (Gaussian-Flow DDDM) under an orbiting camera."""
    scene = Scene(name="dynamic_gaussians", seed=seed, frames=32, fps=16.0,
                  description="A Gaussian torus wobbling (DDDM deformation), orbiting camera.")
    _ground(scene, color=(0.5, 0.5, 0.55))
    scene.add(Gaussians(shape="torus", count=6000, radius=0.45),
              Pose.from_euler((0.0, 0.0, 0.75), (60.0, 0.0, 0.0)),
              appearance=Appearance(color=(0.9, 0.45, 0.25), roughness=0.5, specular=0.3),
              name="blob", label="gaussians",
              animation=Deformation(procedural="wobble", amplitude=0.12, frequency=1.0))
    _lights(scene)
    scene.camera = Camera(fov_deg=45.0, path=OrbitPath(target=(0.0, 0.0, 0.6), radius=2.8,
                                                       height=0.9, start_deg=-90.0, degrees=120.0))
    return scene


def gaussian_avatar(seed: int = 0) -> Scene:
    """A Gaussian avatar walks past a tumbling box drawn by a Gaussian cloud bound to it.

    The avatar is one Gaussian per SMPL triangle, bound to it and so skinned with the body."""
    rng = random.Random(seed)
    scene = Scene(name="gaussian_avatar", seed=seed, frames=32, fps=16.0,
                  description="A Gaussian avatar walking (one Gaussian per SMPL triangle, "
                              "skinned) and a falling box drawn by a Gaussian cloud bound to it.")
    _ground(scene, color=(0.5, 0.52, 0.48), size=(20.0, 20.0))
    bend = rng.uniform(-0.4, 0.4)
    scene.add(Human(gaussians=AvatarGaussians(per_triangle=1, colors="clothes")), Pose(),
              appearance=Appearance(color=(0.8, 0.62, 0.5), roughness=0.7, specular=0.1),
              name="avatar", animation=Motion(name="walk", speed=1.1,
                                              path=[(-1.4, 0.0), (0.0, bend), (1.4, 0.0)]))
    scene.add(Box(size=(0.3, 0.3, 0.3)), Pose.from_euler((0.5, 1.0, 1.3), (20.0, 35.0, 0.0)),
              Material(density=400.0, friction=0.5, restitution=0.4),
              Appearance(color=(0.3, 0.45, 0.8), roughness=0.5, specular=0.3),
              name="crate", dynamic=True, label="box",
              angular_velocity=(rng.uniform(-3, 3), rng.uniform(-3, 3), 1.0))
    # The crate's look is a Gaussian shell 5 mm outside it: the box is the physics proxy.
    scene.add(Gaussians(shape="box", count=6000, radius=0.155, bind_to="crate"),
              appearance=Appearance(color=(0.95, 0.7, 0.2), roughness=0.4, specular=0.4),
              name="crate_splats", label="gaussians")
    _lights(scene, direction=(-0.3, 0.6, -1.0))
    scene.camera = Camera(fov_deg=50.0, path=FollowPath(entity="avatar",
                                                        offset=(0.3, -3.2, 0.5),
                                                        look_height=0.9, smoothing=0.5))
    return scene


_ARM_UP = {"shoulder": 0.3, "elbow": 0.6, "wrist_pitch": 0.4}
_ARM_SWEEP = {"shoulder": 0.952, "elbow": 1.391, "wrist_pitch": 0.799}
"""The shipped arm's paddle hanging straight down, its lower edge 3.5 cm above the ground and its
middle 0.40 m from the base axis (two-link inverse kinematics, elbow up)."""


def robot_arm(seed: int = 0) -> Scene:
    """A 4-DoF arm (rendiff's own URDF) sweeping its paddle through objects on the ground."""
    from rendiff.engine.robots import shipped_robot

    rng = random.Random(seed)
    # Steel (joint coordinates) holds the joints exactly and tracks the targets to ~1e-3 rad;
    # XPBD lets a driven chain sag and wobble by ~0.01 rad (see rendiff.engine.physics).
    scene = Scene(name="robot_arm", seed=seed, frames=40, fps=16.0,
                  description="A 4-DoF arm reaches down and sweeps its paddle through a box, a "
                              "cylinder and a ball on the ground.",
                  physics=PhysicsOptions(solver="steel"))
    _ground(scene, color=(0.52, 0.54, 0.56))
    start, end = -1.3 + rng.uniform(-0.1, 0.1), 1.15 + rng.uniform(-0.1, 0.1)
    keys = {"base_yaw": [(0.4, start), (1.8, end)]}
    for joint in _ARM_UP:
        keys[joint] = [(0.0, _ARM_UP[joint]), (0.4, _ARM_SWEEP[joint]),
                       (1.85, _ARM_SWEEP[joint]), (2.4, _ARM_UP[joint])]
    scene.add(Robot(urdf=str(shipped_robot("rendiff_arm")), joints={"base_yaw": start, **_ARM_UP}),
              Pose(), Material(friction=0.6, restitution=0.1),
              Appearance(color=(0.8, 0.8, 0.8), roughness=0.5, specular=0.3),
              name="arm", label="robot",
              animation=JointTargets(targets=keys, interpolation="linear"))
    objects = [(Box(size=(0.08, 0.08, 0.08)), 0.04, (0.85, 0.25, 0.2), "box"),
               (Cylinder(radius=0.045, height=0.1), 0.05, (0.2, 0.5, 0.85), "cylinder"),
               (Sphere(radius=0.05), 0.05, (0.95, 0.8, 0.2), "sphere")]
    for i, (geom, z, color, label) in enumerate(objects):
        yaw = -0.75 + 0.6 * i + rng.uniform(-0.1, 0.1)
        r = 0.40 + rng.uniform(-0.02, 0.02)
        pos = (r * math.cos(yaw), r * math.sin(yaw), z)
        scene.add(geom, Pose.from_euler(pos, (0.0, 0.0, math.degrees(yaw))),
                  Material(density=300.0, friction=0.4, restitution=0.2),
                  Appearance(color=color, roughness=0.5, specular=0.3),
                  name=f"{label}_{i}", dynamic=True, label=label)
    _lights(scene, direction=(-0.4, 0.5, -1.0))
    scene.camera = Camera(fov_deg=42.0, path=StaticPath(eye=(1.3, -0.7, 0.9),
                                                        target=(0.12, 0.05, 0.2)))
    return scene


def cloth_and_jelly(seed: int = 0) -> Scene:
    """A cloth drapes over a box while an elastic Gaussian jelly bounces and sand slumps (MPM)."""
    rng = random.Random(seed)
    scene = Scene(name="cloth_and_jelly", seed=seed, frames=32, fps=16.0,
                  description="A cloth falls and drapes over a box; beside it an elastic "
                              "Gaussian jelly cube bounces (MPM) and a block of sand collapses "
                              "into a pile.")
    _ground(scene, color=(0.55, 0.56, 0.52))
    scene.add(Box(size=(0.3, 0.3, 0.3)), Pose(position=(0.0, 0.0, 0.15)),
              Material(friction=0.6), Appearance(color=(0.35, 0.45, 0.7), roughness=0.6),
              name="table", label="box")
    # 1 cm thick, so that the box's edges stay under the sheet between its 3 cm vertices
    scene.add(Cloth(size=(0.7, 0.7), resolution=(24, 24), area_density=0.2, thickness=0.01),
              Pose.from_euler((0.0, 0.0, 0.45), (0.0, 0.0, rng.uniform(10.0, 35.0))),
              Material(friction=0.6),
              Appearance(color=(0.85, 0.3, 0.25), roughness=0.8, specular=0.05),
              name="cloth", label="cloth")
    jelly = MPM(model="elastic", youngs_modulus=3.0e4, poisson_ratio=0.3)
    scene.add(Gaussians(shape="box", radius=0.07, count=3000, mpm=jelly),
              Pose.from_euler((0.45, -0.2, 0.4), (rng.uniform(-20.0, 20.0), 30.0, 0.0)),
              Material(density=1000.0, friction=0.5),
              Appearance(color=(0.35, 0.8, 0.35), roughness=0.3, specular=0.5),
              name="jelly", label="jelly", angular_velocity=(0.0, 0.0, 2.0))
    sand = MPM(model="sand", youngs_modulus=1.0e5, friction_deg=30.0)
    scene.add(Gaussians(shape="box", radius=0.09, count=4000, mpm=sand),
              Pose(position=(0.3, 0.3, 0.095)), Material(density=1600.0, friction=0.6),
              Appearance(color=(0.85, 0.7, 0.4), roughness=0.9, specular=0.05),
              name="sand", label="sand")
    _lights(scene, direction=(-0.4, 0.45, -1.0))
    scene.camera = Camera(fov_deg=45.0, path=StaticPath(eye=(0.45, -1.35, 1.05),
                                                        target=(0.18, 0.05, 0.12)))
    return scene


BUILTIN_SCENES: dict[str, _Builtin] = {
    "falling_objects": _Builtin(falling_objects.__doc__ or "", falling_objects),
    "walking_human": _Builtin(walking_human.__doc__ or "", walking_human),
    "dynamic_gaussians": _Builtin(dynamic_gaussians.__doc__ or "", dynamic_gaussians),
    "robot_arm": _Builtin(robot_arm.__doc__ or "", robot_arm),
    "gaussian_avatar": _Builtin(gaussian_avatar.__doc__ or "", gaussian_avatar),
    "cloth_and_jelly": _Builtin(cloth_and_jelly.__doc__ or "", cloth_and_jelly),
}


def list_builtin_scenes() -> dict[str, str]:
    """Name -> one-line description of every built-in scene."""
    return {k: v.description.strip().splitlines()[0] for k, v in BUILTIN_SCENES.items()}


def builtin_scene(name: str, seed: int = 0) -> Scene:
    """The built-in scene called ``name``, built with ``seed``."""
    if name not in BUILTIN_SCENES:
        raise KeyError(f"no built-in scene {name!r}; built-in scenes: {sorted(BUILTIN_SCENES)}")
    return BUILTIN_SCENES[name].build(seed)
