"""Draw clip ``index`` of a data-set spec: a seed, a :class:`~rendiff.Scene`, and a flat record of
every drawn value (for the data set's Parquet index).

Each clip has its own 63-bit seed, a hash of the master seed and the index, so clips can be
drawn in any order, on any machine, in any process. Within a clip every parameter draws from
its own stream, seeded by the clip seed and the parameter's name (``objects.3.scale``): editing
one distribution in a spec changes that parameter only, and clip ``i`` keeps everything else.
"""

from __future__ import annotations

import colorsys
import functools
import hashlib
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rendiff.scenes.io import load_scene
from rendiff.scenes.spec import (
    Ambient,
    Appearance,
    Box,
    Camera,
    Capsule,
    Cylinder,
    Deformation,
    Directional,
    DollyPath,
    Entity,
    FollowPath,
    Gaussians,
    Human,
    Material,
    Motion,
    OrbitPath,
    PhysicsOptions,
    Plane,
    Pose,
    Scene,
    Sphere,
    StaticPath,
)

from .spec import RANDOMIZABLE, Choice, Const, DatasetSpec, Dist, Uniform

__all__ = ["ClipDraw", "clip_seed", "dataset_categories", "dataset_classes", "sample_clip"]

Param = float | int | str | bool

_TUBE = 0.15  # tube radius of a Gaussian torus (the engine's default)
_GAP = 0.01  # extra clearance (m) between stacked bounding spheres


@dataclass
class ClipDraw:
    """One drawn clip: ``scene`` (``scene.seed == seed``) and ``params``, every drawn value keyed
    by a dotted name (``"objects.2.type"``, ``"lights.0.elevation_deg"``, ``"camera.path"``)."""

    index: int
    seed: int
    scene: Scene
    params: dict[str, Param] = field(default_factory=dict)


def clip_seed(master_seed: int, index: int) -> int:
    """The seed of clip ``index``: a 63-bit non-negative hash (BLAKE2b) of the master seed and the
    index. Stable across processes, machines and Python versions."""
    if isinstance(master_seed, bool) or not isinstance(master_seed, int) or master_seed < 0:
        raise ValueError(f"master seed must be a non-negative integer, got {master_seed!r}")
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise ValueError(f"clip index must be a non-negative integer, got {index!r}")
    h = hashlib.blake2b(f"{master_seed}/{index}".encode(), digest_size=8, person=b"rendiff.clip")
    return int.from_bytes(h.digest(), "little") >> 1


class _Draws:
    """Draws and records parameters; each key has its own stream seeded by (clip seed, key)."""

    def __init__(self, seed: int):
        self.seed = seed
        self.params: dict[str, Param] = {}

    def rng(self, key: str) -> random.Random:
        h = hashlib.blake2b(f"{self.seed}/{key}".encode(), digest_size=8,
                            person=b"rendiff.param")
        return random.Random(int.from_bytes(h.digest(), "little"))

    def __call__(self, key: str, dist: Dist) -> Any:
        value = dist.sample(self.rng(key))
        self.record(key, value)
        return value

    def uniform(self, key: str, lo: float, hi: float) -> float:
        return self(key, Uniform(lo, hi))

    def record(self, key: str, value: Any) -> None:
        if isinstance(value, tuple):  # an RGB colour
            for c, v in zip("rgb", value, strict=True):
                self.params[f"{key}.{c}"] = float(v)
        else:
            self.params[key] = value


# --------------------------------------------------------------------------------------------
# Shared pieces


def _hsv(d: _Draws, spec: DatasetSpec, key: str) -> tuple[float, float, float]:
    c = spec.colors
    return colorsys.hsv_to_rgb(d(f"{key}.hue", c.hue), d(f"{key}.saturation", c.saturation),
                               d(f"{key}.value", c.value))


def _appearance(d: _Draws, spec: DatasetSpec, key: str,
                color: tuple[float, float, float] | None = None) -> Appearance:
    m = spec.materials
    return Appearance(color=color if color is not None else _hsv(d, spec, key),
                      roughness=d(f"{key}.roughness", m.roughness),
                      specular=d(f"{key}.specular", m.specular))


def _material(d: _Draws, spec: DatasetSpec, key: str, mass: float | None = None,
              density: float | None = None) -> Material:
    """Drawn friction and restitution; density too unless given (static bodies keep theirs)."""
    m = spec.materials
    density = d(f"{key}.density", m.density) if density is None else density
    return Material(density=density, mass=mass,
                    friction=d(f"{key}.friction", m.friction),
                    restitution=d(f"{key}.restitution", m.restitution))


def _background(d: _Draws, spec: DatasetSpec) -> tuple[float, float, float]:
    return tuple(d(f"background.{c}", spec.colors.background) for c in "rgb")  # type: ignore


def _ground_look(d: _Draws, spec: DatasetSpec, key: str) -> tuple[Material, Appearance]:
    g = spec.ground
    value, tint = d(f"{key}.value", g.value), d(f"{key}.tint", g.tint)
    hue = colorsys.hsv_to_rgb(d(f"{key}.hue", spec.colors.hue),
                              d(f"{key}.saturation", spec.colors.saturation), 1.0)
    color = tuple(value * ((1.0 - tint) + tint * h) for h in hue)
    return (Material(friction=d(f"{key}.friction", g.friction),
                     restitution=d(f"{key}.restitution", g.restitution)),
            Appearance(color=color, roughness=d(f"{key}.roughness", g.roughness), specular=0.05))


def _add_ground(scene: Scene, d: _Draws, spec: DatasetSpec) -> None:
    material, appearance = _ground_look(d, spec, "ground")
    side = d("ground.size", spec.ground.size)
    scene.add(Plane(size=(side, side)), Pose(), material, appearance, name="ground",
              label="ground")


def _kelvin_rgb(kelvin: float) -> tuple[float, float, float]:
    """Approximate colour of a black body: Planck's law at 610, 550 and 465 nm, relative to
    6500 K (white), scaled so the largest channel is 1."""
    def planck(t: float) -> list[float]:
        return [lam ** -5 / math.expm1(0.014388 / (lam * t)) for lam in (610e-9, 550e-9, 465e-9)]

    rgb = [a / b for a, b in zip(planck(kelvin), planck(6500.0), strict=True)]
    top = max(rgb)
    return tuple(min(1.0, c / top) for c in rgb)  # type: ignore[return-value]


def _lights(scene: Scene, d: _Draws, spec: DatasetSpec) -> None:
    li = spec.lights
    lights: list[Any] = [Ambient(intensity=d("lights.ambient", li.ambient))]
    for i in range(d("lights.count", li.count)):
        k = f"lights.{i}"
        az = math.radians(d(f"{k}.azimuth_deg", li.azimuth_deg))
        el = math.radians(d(f"{k}.elevation_deg", li.elevation_deg))
        # light coming from (az, el), travelling towards the scene
        direction = (-math.cos(az) * math.cos(el), -math.sin(az) * math.cos(el), -math.sin(el))
        if li.color is not None:
            color = d(f"{k}.color", li.color)
        else:
            color = _kelvin_rgb(d(f"{k}.temperature_k", li.temperature_k))
        lights.append(Directional(direction=direction, color=color,
                                  intensity=d(f"{k}.intensity", li.intensity),
                                  shadows=d(f"{k}.shadows", li.shadows)))
    scene.lights = lights


def _physics(scene: Scene, d: _Draws, spec: DatasetSpec) -> None:
    p = spec.physics
    scene.physics = PhysicsOptions(rate_hz=d("physics.rate_hz", p.rate_hz),
                                   gravity=(0.0, 0.0, -d("physics.gravity", p.gravity)),
                                   solver=d("physics.solver", p.solver))


def _scaled(dist: Dist, k: float) -> Dist:
    return dist if k == 1.0 else Uniform(dist.lo * k, dist.hi * k)  # type: ignore[attr-defined]


_ORBIT_ETC = Choice(("static", "orbit", "dolly"))


def _camera(d: _Draws, spec: DatasetSpec, target: tuple[float, float, float],
            distance: Dist, height: Dist, path: Dist, follow: str | None,
            look_height: float) -> Camera:
    """A camera looking at ``target`` from ``distance`` (horizontal) at eye ``height``; the
    spec's camera fields override the family defaults given here."""
    c = spec.camera
    dist = d("camera.distance", distance if c.distance is None else c.distance)
    h = d("camera.height", height if c.height is None else c.height)
    az_deg = d("camera.azimuth_deg", c.azimuth_deg)
    fov = d("camera.fov_deg", c.fov_deg)
    kind = (path if c.path is None else c.path).sample(d.rng("camera.path"))
    if kind == "follow" and follow is None:
        kind = "static"  # nothing to follow
    d.record("camera.path", kind)
    az = math.radians(az_deg)
    dx, dy = dist * math.cos(az), dist * math.sin(az)
    eye = (target[0] + dx, target[1] + dy, h)
    if kind == "static":
        p: Any = StaticPath(eye=eye, target=target)
    elif kind == "orbit":
        p = OrbitPath(target=target, radius=dist, height=h - target[2], start_deg=az_deg,
                      degrees=d("camera.orbit_deg", c.orbit_deg))
    elif kind == "dolly":
        k = d("camera.dolly", c.dolly)
        end = tuple(t + (e - t) * k for e, t in zip(eye, target, strict=True))
        p = DollyPath(start=eye, end=end, target=target)
    else:
        assert follow is not None
        d.record("camera.follow", follow)
        p = FollowPath(entity=follow, offset=(dx, dy, h - look_height), look_height=look_height,
                       smoothing=d("camera.smoothing", c.smoothing))
    return Camera(fov_deg=fov, path=p)


# --------------------------------------------------------------------------------------------
# Scene families


def _shape(kind: str, s: float) -> tuple[Any, float]:
    """The geometry of a ``kind`` object at scale ``s`` and its bounding-sphere radius."""
    if kind == "sphere":
        return Sphere(radius=0.1 * s), 0.1 * s
    if kind == "box":
        size = (0.2 * s, 0.18 * s, 0.16 * s)
        return Box(size=size), 0.5 * math.sqrt(sum(x * x for x in size))
    if kind == "capsule":
        return Capsule(radius=0.06 * s, length=0.18 * s), (0.06 + 0.09) * s
    return Cylinder(radius=0.09 * s, height=0.2 * s), math.hypot(0.09, 0.1) * s


def _stack(x: float, y: float, r: float, gap: float,
           placed: list[tuple[float, float, float, float]]) -> float:
    """The lowest centre height >= ``r + gap`` at which a sphere of radius ``r`` at (x, y) keeps
    ``gap`` (plus a margin) from every placed (x, y, z, r) sphere: it rests on what is under it."""
    z = r + gap
    moved = True
    while moved:
        moved = False
        for px, py, pz, pr in placed:
            need = r + pr + max(gap, _GAP)
            d2 = (x - px) ** 2 + (y - py) ** 2
            if d2 < need * need and abs(z - pz) < (dz := math.sqrt(need * need - d2)) - 1e-9:
                z = pz + dz
                moved = True
    return z


def _uniform_axis(rng: random.Random) -> tuple[float, float, float]:
    z = rng.uniform(-1.0, 1.0)
    phi = rng.uniform(0.0, 2 * math.pi)
    s = math.sqrt(max(0.0, 1.0 - z * z))
    return (s * math.cos(phi), s * math.sin(phi), z)


def _falling_objects(scene: Scene, d: _Draws, spec: DatasetSpec) -> None:
    o = spec.objects
    n = d("objects.count", o.count)
    spread = d("objects.spread", o.spread)
    placed: list[tuple[float, float, float, float]] = []
    names = []
    for i in range(n):
        k = f"objects.{i}"
        kind = d(f"{k}.type", o.type)
        geom, r = _shape(kind, d(f"{k}.scale", o.scale))
        x, y = d.uniform(f"{k}.x", -spread, spread), d.uniform(f"{k}.y", -spread, spread)
        z = _stack(x, y, r, d(f"{k}.height", o.height), placed)
        placed.append((x, y, z, r))
        d.record(f"{k}.z", z)
        rpy = (d(f"{k}.roll_deg", o.tilt_deg), d(f"{k}.pitch_deg", o.tilt_deg),
               d.uniform(f"{k}.yaw_deg", 0.0, 360.0))
        spin = d(f"{k}.spin", o.spin)
        omega = tuple(spin * a for a in _uniform_axis(d.rng(f"{k}.spin_axis")))
        for c, w in zip("xyz", omega, strict=True):
            d.record(f"{k}.spin_{c}", w)
        name = f"{kind}_{i}"
        names.append(name)
        scene.add(geom, Pose.from_euler((x, y, z), rpy), _material(d, spec, k),
                  _appearance(d, spec, k), name=name, dynamic=True, label=kind,
                  angular_velocity=omega)
    grow = max(1.0, spread / 0.4)  # keep a wider spread in view
    scene.camera = _camera(d, spec, (0.0, 0.0, 0.25), _scaled(Uniform(1.8, 2.6), grow),
                           Uniform(0.9, 1.6), _ORBIT_ETC, names[0] if names else None, 0.25)


def _dist_to_polyline(p: tuple[float, float], pts: list[tuple[float, float]]) -> float:
    best = math.inf
    for (ax, ay), (bx, by) in zip(pts, pts[1:], strict=False):
        vx, vy = bx - ax, by - ay
        t = max(0.0, min(1.0, ((p[0] - ax) * vx + (p[1] - ay) * vy) / (vx * vx + vy * vy or 1)))
        best = min(best, math.hypot(p[0] - ax - t * vx, p[1] - ay - t * vy))
    return best


def _walking_human(scene: Scene, d: _Draws, spec: DatasetSpec) -> None:
    h = spec.human
    motion = d("human.motion", h.motion)
    nb = d("human.num_betas", h.num_betas)
    betas = [d(f"human.betas.{j}", h.betas) for j in range(nb)]
    ground_path = [(0.0, 0.0), (0.0, 0.0)]
    path = None
    if motion == "walk":
        half = d("human.path_length", h.path_length) / 2
        bend = d("human.bend", h.bend)
        heading = math.radians(d("human.heading_deg", h.heading_deg))
        c, s = math.cos(heading), math.sin(heading)
        path = [(c * x - s * y, s * x + c * y) for x, y in ((-half, 0.0), (0.0, bend),
                                                             (half, 0.0))]
        ground_path = path
    color = d("human.color", h.color) if h.color is not None else None
    scene.add(Human(betas=betas), Pose(), appearance=_appearance(d, spec, "human", color),
              name="person", animation=Motion(name=motion, speed=d("human.speed", h.speed),
                                              path=path))
    # static boxes resting on the ground, clear of the body's path and of each other
    boxes: list[tuple[float, float, float]] = []
    for i in range(d("human.props", h.props)):
        k = f"human.props.{i}"
        size = d(f"{k}.size", h.prop_size)
        rng = d.rng(f"{k}.position")
        reach = 2.5 + size
        for _ in range(200):
            x, y = rng.uniform(-reach, reach), rng.uniform(-reach, reach)
            clear = _dist_to_polyline((x, y), ground_path) > 0.6 + 0.87 * size
            if clear and all(math.hypot(x - bx, y - by) > 0.87 * (size + bs) + 0.05
                             for bx, by, bs in boxes):
                break
        else:
            continue  # no room: this prop is left out (its params say so)
        boxes.append((x, y, size))
        d.record(f"{k}.x", x)
        d.record(f"{k}.y", y)
        scene.add(Box(size=(size, size, size)), Pose(position=(x, y, size / 2)),
                  appearance=_appearance(d, spec, k), name=f"box_{i}", label="box")
    d.record("human.props_placed", len(boxes))
    follow = Const("follow") if motion == "walk" else _ORBIT_ETC
    scene.camera = _camera(d, spec, (0.0, 0.0, 0.9), Uniform(2.4, 3.4), Uniform(1.0, 1.8),
                           follow, "person", 0.9)


def _dynamic_gaussians(scene: Scene, d: _Draws, spec: DatasetSpec) -> None:
    g = spec.gaussians
    shape = d("gaussians.shape", g.shape)
    radius = d("gaussians.radius", g.radius)
    amp = d("gaussians.amplitude", g.amplitude)
    bound = {"sphere": radius, "box": radius * math.sqrt(3.0), "torus": radius + _TUBE}[shape]
    z = bound * (1.0 + amp) + amp + d("gaussians.height", g.height)
    d.record("gaussians.z", z)
    rpy = (d("gaussians.roll_deg", g.tilt_deg), d("gaussians.pitch_deg", g.tilt_deg), 0.0)
    scene.add(Gaussians(shape=shape, count=d("gaussians.count", g.count), radius=radius),
              Pose.from_euler((0.0, 0.0, z), rpy), appearance=_appearance(d, spec, "gaussians"),
              name="blob", label="gaussians",
              animation=Deformation(procedural=d("gaussians.procedural", g.procedural),
                                    amplitude=amp,
                                    frequency=d("gaussians.frequency", g.frequency)))
    scene.camera = _camera(d, spec, (0.0, 0.0, z), Uniform(2.2, 3.2), Uniform(0.8, 1.6),
                           _ORBIT_ETC, "blob", z)


_FAMILIES = {"falling_objects": _falling_objects, "walking_human": _walking_human,
             "dynamic_gaussians": _dynamic_gaussians}


# --------------------------------------------------------------------------------------------
# Base scenes


@functools.lru_cache(maxsize=8)
def _load_base(path: str, mtime_ns: int) -> Scene:
    return load_scene(path)


def _reach(e: Entity) -> float:
    """A radius about the entity's origin that holds it (its kind's, from the engine)."""
    from rendiff.engine.entities import kind_of  # torch: only once a clip is drawn

    return kind_of(e.geometry).bound_radius(e.geometry)


def _from_base(spec: DatasetSpec, d: _Draws) -> Scene:
    assert spec.base is not None
    scene = _load_base(spec.base, Path(spec.base).stat().st_mtime_ns).model_copy(deep=True)
    apply = set(spec.randomize if spec.randomize is not None else RANDOMIZABLE)
    return _randomize_scene(scene, spec, d, apply)


def _randomize_scene(scene: Scene, spec: DatasetSpec, d: _Draws, apply: set[str]) -> Scene:
    """Draws the sections in ``apply`` for an existing scene (its entities are kept)."""
    from rendiff.engine.entities import kind_of  # torch: only once a clip is drawn

    things = [e for e in scene.entities if kind_of(e.geometry).thing]
    for e in scene.entities:
        k = f"entities.{e.name}"
        if not kind_of(e.geometry).thing:
            if "ground" in apply:
                material, appearance = _ground_look(d, spec, k)
                e.material, e.appearance = material, appearance
            continue
        rigid = kind_of(e.geometry).shape
        if "materials" in apply:
            if rigid:
                e.material = _material(d, spec, k, mass=e.material.mass,
                                       density=None if e.dynamic else e.material.density)
            color = e.appearance.color if "colors" not in apply else None
            e.appearance = _appearance(d, spec, k, color)
        elif "colors" in apply:
            e.appearance = e.appearance.model_copy(update={"color": _hsv(d, spec, k)})
    if "colors" in apply:
        scene.background = _background(d, spec)
    if "lights" in apply:
        _lights(scene, d, spec)
    if "physics" in apply:
        _physics(scene, d, spec)
    if "camera" in apply:
        if things:
            pos = [e.pose.position for e in things]
            target = tuple(sum(p[j] for p in pos) / len(pos) for j in range(3))
            reach = max(math.dist(p, target) + _reach(e) for p, e in zip(pos, things,
                                                                               strict=True))
        else:
            target, reach = (0.0, 0.0, 0.3), 1.0
        follow = next((e.name for e in things if kind_of(e.geometry).person), None) or next(
            (e.name for e in things if e.dynamic or e.animation is not None), None) or (
            things[0].name if things else None)
        scene.camera = _camera(d, spec, target, _scaled(Uniform(1.8, 2.6), max(1.0, reach)),
                               Uniform(0.8, 1.8), _ORBIT_ETC, follow, target[2])
    return scene


# --------------------------------------------------------------------------------------------


def _robot_arm(scene: Scene, d: _Draws, spec: DatasetSpec) -> None:
    """rendiff's 4-DoF arm sweeping through 3 objects (the built-in ``robot_arm`` scene, its
    sweep and object placement drawn from the clip's stream), with drawn colours and materials
    and a camera around the arm's workspace."""
    from rendiff.scenes.builtin import robot_arm

    b = robot_arm(seed=d.rng("robot_arm.scene").randrange(2**31))
    scene.physics = b.physics
    for e in b.entities:
        if not isinstance(e.geometry, Plane):
            scene.entities.append(e)
    _randomize_scene(scene, spec, d, {"colors", "materials"})
    target = (0.12, 0.05, 0.2)
    scene.camera = _camera(d, spec, target, Uniform(1.2, 1.8), Uniform(0.6, 1.2), _ORBIT_ETC,
                           "arm", target[2])


_FAMILIES["robot_arm"] = _robot_arm


# every entity label a generator can draw, by family (ground first)
_FAMILY_LABELS = {
    "falling_objects": ("sphere", "box", "capsule", "cylinder"),
    "walking_human": ("box",),  # props; the person's pixels carry the 24 body-part ids
    "dynamic_gaussians": ("gaussians",),
    "robot_arm": ("robot", "box", "cylinder", "sphere"),
}


def dataset_classes(spec: DatasetSpec) -> list[str]:
    """The data set's semantic class table (id = index + 1), fixed before any clip is drawn so
    that an id means the same class in every clip and every data set from the same spec
    family: the 24 SMPL body parts (ids 1-24, as in every render), ``ground``, then the labels
    the spec's scene families can draw, then a base scene's labels in scene order."""
    from rendiff.engine.body import SMPL_JOINT_NAMES

    names = [f"body/{p}" for p in SMPL_JOINT_NAMES] + ["ground"]
    extra: list[str] = []
    for kind in spec.kinds:
        if kind == "base":
            base = _load_base(spec.base, Path(spec.base).stat().st_mtime_ns)
            extra += [e.semantic_label for e in base.entities if not isinstance(e.geometry,
                                                                               Human)]
        else:
            extra += list(_FAMILY_LABELS[kind])
    for label in extra:
        if label not in names:
            names.append(label)
    return names


def dataset_categories(spec: DatasetSpec) -> list[str]:
    """The data set's COCO category table (id = index + 1): ``person`` when people can occur,
    then every other thing class (no body parts, no ground)."""
    people = "walking_human" in spec.kinds or (
        "base" in spec.kinds and any(isinstance(e.geometry, Human) for e in _load_base(
            spec.base, Path(spec.base).stat().st_mtime_ns).entities))
    things = [c for c in dataset_classes(spec) if not c.startswith("body/") and c != "ground"]
    return (["person"] if people else []) + things


def sample_clip(spec: DatasetSpec, index: int) -> ClipDraw:
    """Draws clip ``index`` of ``spec``: its seed (:func:`clip_seed`), its scene (with the spec's
    frames, fps and size, ``scene.seed`` = the clip seed) and every drawn value in ``params``.
    The same spec and index give an identical scene in any process."""
    seed = clip_seed(spec.seed, index)
    d = _Draws(seed)
    kind = "base" if spec.generator is None else d("generator", spec.generator)
    d.record("generator", kind)
    name = f"{spec.name}_{index:06d}"
    if kind == "base":
        scene = _from_base(spec, d)
        scene.name = name
        scene.seed = seed
        scene.frames, scene.fps, scene.size = spec.frames, spec.fps, spec.size
    else:
        scene = Scene(name=name, seed=seed, frames=spec.frames, fps=spec.fps, size=spec.size)
        scene.background = _background(d, spec)
        _add_ground(scene, d, spec)
        _FAMILIES[kind](scene, d, spec)
        _lights(scene, d, spec)
        _physics(scene, d, spec)
    scene.description = f"{spec.name} clip {index} ({kind}), seed {seed}"
    return ClipDraw(index=index, seed=seed, scene=scene, params=d.params)
