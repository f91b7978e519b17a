"""Randomised variants of the built-in scenes, for training data: object count, shapes, sizes,
colours and materials, light direction and strength, camera placement and path, human motion and
body colour, Gaussian shape and deformation. Every draw comes from one seed, so a clip is
reproduced from its seed alone."""

from __future__ import annotations

import math
import random

from .spec import (
    Ambient,
    Appearance,
    Box,
    Camera,
    Capsule,
    Cylinder,
    Deformation,
    Directional,
    DollyPath,
    FollowPath,
    Gaussians,
    Human,
    Material,
    Motion,
    OrbitPath,
    Plane,
    Pose,
    Scene,
    Sphere,
    StaticPath,
)

__all__ = ["KINDS", "random_scene"]

KINDS = ("falling_objects", "walking_human", "dynamic_gaussians")


def _color(rng: random.Random) -> tuple[float, float, float]:
    h = rng.random()
    s = rng.uniform(0.35, 0.9)
    v = rng.uniform(0.45, 0.95)
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]


def _lights(scene: Scene, rng: random.Random) -> None:
    az = rng.uniform(0, 2 * math.pi)
    elev = rng.uniform(math.radians(35), math.radians(75))
    d = (-math.cos(az) * math.cos(elev), -math.sin(az) * math.cos(elev), -math.sin(elev))
    warm = rng.uniform(-0.1, 0.1)
    scene.add_light(Ambient(intensity=rng.uniform(0.2, 0.4)))
    scene.add_light(Directional(direction=d, intensity=rng.uniform(0.5, 0.85),
                                color=(1.0, 1.0 - abs(warm), 1.0 - max(warm, 0) * 2)))


def _ground(scene: Scene, rng: random.Random) -> None:
    g = rng.uniform(0.3, 0.7)
    tint = _color(rng)
    color = tuple(0.7 * g + 0.3 * c * g for c in tint)
    scene.add(Plane(size=(16.0, 16.0)), Pose(),
              Material(friction=rng.uniform(0.4, 0.9), restitution=rng.uniform(0.1, 0.5)),
              Appearance(color=color, roughness=0.9, specular=0.05), name="ground",
              label="ground")


def _camera_around(rng: random.Random, target, dist: float, height: float) -> Camera:
    az = rng.uniform(0, 2 * math.pi)
    eye = (target[0] + dist * math.cos(az), target[1] + dist * math.sin(az), height)
    kind = rng.choice(["static", "orbit", "dolly"])
    fov = rng.uniform(38, 55)
    if kind == "static":
        return Camera(fov_deg=fov, path=StaticPath(eye=eye, target=target))
    if kind == "orbit":
        return Camera(fov_deg=fov, path=OrbitPath(
            target=target, radius=dist, height=height - target[2],
            start_deg=math.degrees(az), degrees=rng.uniform(-60, 60)))
    k = rng.uniform(0.7, 0.9)
    end = (target[0] + (eye[0] - target[0]) * k, target[1] + (eye[1] - target[1]) * k,
           target[2] + (eye[2] - target[2]) * k)
    return Camera(fov_deg=fov, path=DollyPath(start=eye, end=end, target=target))


def _falling(scene: Scene, rng: random.Random) -> None:
    n = rng.randint(2, 7)
    for i in range(n):
        kind = rng.choice(["sphere", "box", "capsule", "cylinder"])
        s = rng.uniform(0.7, 1.4)
        geom = {"sphere": Sphere(radius=0.1 * s), "box": Box(size=(0.2 * s, 0.18 * s, 0.16 * s)),
                "capsule": Capsule(radius=0.06 * s, length=0.18 * s),
                "cylinder": Cylinder(radius=0.09 * s, height=0.2 * s)}[kind]
        pos = (rng.uniform(-0.4, 0.4), rng.uniform(-0.4, 0.4), 0.3 + 0.18 * i)
        rpy = (rng.uniform(0, 180), rng.uniform(0, 180), rng.uniform(0, 360))
        scene.add(geom, Pose.from_euler(pos, rpy),
                  Material(density=rng.uniform(300, 1500), friction=rng.uniform(0.3, 0.9),
                           restitution=rng.uniform(0.1, 0.6)),
                  Appearance(color=_color(rng), roughness=rng.uniform(0.2, 0.9),
                             specular=rng.uniform(0.0, 0.6)),
                  name=f"{kind}_{i}", dynamic=True, label=kind,
                  angular_velocity=(rng.uniform(-3, 3), rng.uniform(-3, 3), rng.uniform(-1, 1)))
    scene.camera = _camera_around(rng, (0.0, 0.0, 0.25), rng.uniform(1.8, 2.6),
                                  rng.uniform(0.9, 1.6))


def _human(scene: Scene, rng: random.Random) -> None:
    motion = rng.choice(["walk", "walk", "wave", "jump", "turn"])
    path = None
    if motion == "walk":
        bend = rng.uniform(-0.8, 0.8)
        heading = rng.uniform(0, 2 * math.pi)
        c, s = math.cos(heading), math.sin(heading)
        pts = [(-1.5, 0.0), (0.0, bend), (1.5, 0.0)]
        path = [(c * x - s * y, s * x + c * y) for x, y in pts]
    scene.add(Human(betas=[rng.uniform(-1.5, 1.5) for _ in range(3)]), Pose(),
              appearance=Appearance(color=_color(rng), roughness=rng.uniform(0.5, 0.9),
                                    specular=rng.uniform(0.0, 0.3)),
              name="person", animation=Motion(name=motion, speed=rng.uniform(0.8, 1.4),
                                              path=path))
    for i in range(rng.randint(0, 2)):
        scene.add(Box(size=(rng.uniform(0.2, 0.5),) * 3),
                  Pose(position=(rng.uniform(-2, 2), rng.uniform(-2, 2), 0.15)),
                  appearance=Appearance(color=_color(rng)), name=f"box_{i}", label="box")
    if motion == "walk":
        scene.camera = Camera(fov_deg=rng.uniform(40, 55), path=FollowPath(
            entity="person", offset=(rng.uniform(-1, 1), rng.uniform(-3.5, -2.5),
                                     rng.uniform(0.2, 0.8)),
            look_height=0.9, smoothing=0.5))
    else:
        scene.camera = _camera_around(rng, (0.0, 0.0, 0.9), rng.uniform(2.4, 3.4),
                                      rng.uniform(1.0, 1.8))


def _gaussians(scene: Scene, rng: random.Random) -> None:
    shape = rng.choice(["sphere", "box", "torus"])
    r = rng.uniform(0.3, 0.5)
    z = rng.uniform(0.5, 0.9)
    scene.add(Gaussians(shape=shape, count=rng.choice([3000, 5000, 8000]), radius=r),
              Pose.from_euler((0.0, 0.0, z), (rng.uniform(0, 90), rng.uniform(0, 90), 0.0)),
              appearance=Appearance(color=_color(rng), roughness=rng.uniform(0.3, 0.8),
                                    specular=rng.uniform(0.0, 0.5)),
              name="blob", label="gaussians",
              animation=Deformation(procedural=rng.choice(["wobble", "twist", "breathe"]),
                                    amplitude=rng.uniform(0.05, 0.15),
                                    frequency=rng.uniform(0.5, 1.5)))
    scene.camera = _camera_around(rng, (0.0, 0.0, z), rng.uniform(2.2, 3.2),
                                  rng.uniform(0.8, 1.6))


def random_scene(kind: str, seed: int, frames: int = 16, fps: float = 12.0,
                 size: tuple[int, int] = (128, 128)) -> Scene:
    """A random variant of the built-in scene ``kind`` drawn from ``seed``."""
    if kind not in KINDS:
        raise ValueError(f"unknown scene kind {kind!r}; expected one of {KINDS}")
    rng = random.Random(f"{kind}:{seed}")
    scene = Scene(name=f"{kind}_r{seed}", seed=seed, frames=frames, fps=fps, size=size,
                  background=tuple(rng.uniform(0.02, 0.25) for _ in range(3)))
    _ground(scene, rng)
    {"falling_objects": _falling, "walking_human": _human, "dynamic_gaussians": _gaussians}[kind](
        scene, rng)
    _lights(scene, rng)
    return scene
