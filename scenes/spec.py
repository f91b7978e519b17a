"""The scene specification: what exists, how it moves, how it is seen.

One strict pydantic model tree serves the Python API and the YAML/JSON scene files alike. Every
model forbids unknown fields, so a misspelt key is an error that names its path rather than a
silently ignored setting. Geometry (with pose), physics material and appearance are separate
fields of an entity, as in Genesis' ``add_entity(morph, material, surface)``.

Units are metres, seconds and radians (angles in scene files are degrees where the field name says
``_deg``); the world is right-handed with +Z up; quaternions are (w, x, y, z).
"""

from __future__ import annotations

import difflib
import math
import warnings
from importlib import import_module
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from rendiff import defaults

__all__ = [
    "Ambient",
    "AmassMotion",
    "Appearance",
    "AvatarGaussians",
    "Box",
    "Camera",
    "Capsule",
    "Cloth",
    "Cylinder",
    "DeformableOptions",
    "Deformation",
    "Directional",
    "DollyPath",
    "Entity",
    "Environment",
    "FollowPath",
    "Gaussians",
    "GenerationOptions",
    "Human",
    "JointTargets",
    "Keyframes",
    "KeyframedPath",
    "LightKeyframes",
    "MPM",
    "Material",
    "Mesh",
    "Motion",
    "OrbitPath",
    "PhysicsOptions",
    "Plane",
    "Point",
    "Pose",
    "Robot",
    "Scene",
    "Sphere",
    "Spot",
    "StaticPath",
]

#: Bounds on magnitudes, where a larger one cannot be meaningful and would overflow the float32
#: the engine computes in (3.4e38, reached by squares and products long before): a coordinate,
#: offset or angle within a million (metres or degrees; float32 resolves 6 cm at 1e6 m), any
#: other positive quantity (sizes, masses, Young's moduli of 2e11 Pa, speeds) at most 1e12.
MAX_COORD = 1e6
MAX_QUANTITY = 1e12

#: Bounds on the work a scene asks for, checked at validation so a typo fails at once instead of
#: hanging or exhausting memory (each is far past what a 2-core machine or a GPU finishes in a day):
#: physics or MPM steps over the clip; frames x width x height (rendered layers take ~84 bytes per
#: pixel and frame, so 5e8 is ~40 GB: 240 frames at 1080p fit); frames x simulated points
#: (cloth vertices, Gaussians, MPM particles: ~24-40 GB of trajectories at 1e9); MPM particles
#: per scene (as ``Gaussians.count``) and grid nodes of an explicit ``mpm_domain`` (512^3).
MAX_SIM_STEPS = 10_000_000
MAX_PIXEL_FRAMES = 500_000_000
MAX_POINT_FRAMES = 1_000_000_000
MAX_MPM_PARTICLES = 5_000_000
MAX_MPM_NODES = 512**3


def check_clip_budget(frames: int, size: tuple[int, int], fps: float,
                      rate_hz: float | None) -> None:
    """Refuses a clip whose layers (frames x width x height) or physics steps (``rate_hz`` per
    second of video, None when not known yet) exceed ``MAX_PIXEL_FRAMES`` / ``MAX_SIM_STEPS``;
    the error names the fields (scenes and data-set specs share it)."""
    w, h = size
    if frames * w * h > MAX_PIXEL_FRAMES:
        raise ValueError(f"frames x size: {frames} frames of {w}x{h} are {frames * w * h:.2e} "
                         f"pixel-frames (at most {MAX_PIXEL_FRAMES:.0e}, ~40 GB of layers); "
                         "render fewer frames or a smaller size")
    if rate_hz is None:
        return
    steps = (frames - 1) * max(1, round(rate_hz / fps))
    if steps > MAX_SIM_STEPS:
        raise ValueError(f"fps: {frames} frames at {fps:g} fps and physics.rate_hz {rate_hz:g} "
                         f"need {steps:.2e} physics steps (at most {MAX_SIM_STEPS:.0e}); raise "
                         "fps or lower rate_hz or frames")


Coord = Annotated[float, Field(ge=-MAX_COORD, le=MAX_COORD)]
Vec2 = tuple[Coord, Coord]
Vec3 = tuple[Coord, Coord, Coord]
Quat = tuple[Coord, Coord, Coord, Coord]
Unit = Annotated[float, Field(ge=0.0, le=1.0)]
RGB = tuple[Unit, Unit, Unit]
PosFloat = Annotated[float, Field(gt=0.0, le=MAX_QUANTITY)]
NonNeg = Annotated[float, Field(ge=0.0, le=MAX_QUANTITY)]


class _Strict(BaseModel):
    # allow_inf_nan=False: every number of a scene is finite (NaN or inf are refused, naming the
    # field), so none reaches a camera matrix, a light or the physics as NaN
    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False,
                              allow_inf_nan=False)


def _check_asset(path: str, info: ValidationInfo) -> str:
    """Resolves an asset path (relative to the scene file's folder, else the working folder) to
    an absolute one, so a resolved scene written elsewhere still finds it; checks it exists."""
    ctx = info.context or {}
    p = Path(path).expanduser()
    if not p.is_absolute():
        p = Path(ctx.get("base_dir") or Path.cwd()) / p
    p = p.resolve()
    if ctx.get("check_assets", True) and not p.exists():
        raise ValueError(f"file not found: {path!r} (looked for {p})")
    return str(p)


AssetPath = Annotated[str, AfterValidator(_check_asset)]


def _asset_message(err: Exception, path: str) -> str:
    """An asset loader's error as a field message: the file's name, not its full path twice."""
    text = str(err)
    for prefix in (f"{path}: ", f"{Path(path).resolve()}: "):
        text = text.removeprefix(prefix)
    return f"{Path(path).name!r}: {text}"


def _check_with(check, path: str) -> None:
    """Runs an engine loader's check on an asset file at validation; its error names the file."""
    try:
        check(path)
    except (ValueError, OSError) as err:
        raise ValueError(_asset_message(err, path)) from None


def _loads_with(module: str, function: str) -> AfterValidator:
    """Field metadata: where assets are checked, the engine's own loader (or its check) reads
    the file at validation, so a file it cannot use is a one-line error naming the field."""
    def check(path: str, info: ValidationInfo) -> str:
        if (info.context or {}).get("check_assets", True):
            _check_with(getattr(import_module(module), function), path)
        return path
    return AfterValidator(check)


# --------------------------------------------------------------------------------------------
# Geometry (shape and, for humans and clouds, their own model)


class Sphere(_Strict):
    """A sphere of the given radius centred on the entity's origin."""

    type: Literal["sphere"] = "sphere"
    radius: PosFloat = 0.1


class Box(_Strict):
    """A box with the given full side lengths (x, y, z), centred on the entity's origin."""

    type: Literal["box"] = "box"
    size: tuple[PosFloat, PosFloat, PosFloat] = (0.2, 0.2, 0.2)


class Capsule(_Strict):
    """A capsule along local Z: a cylinder of ``length`` capped by two hemispheres."""

    type: Literal["capsule"] = "capsule"
    radius: PosFloat = 0.05
    length: PosFloat = 0.2


class Cylinder(_Strict):
    """A capped cylinder along local Z of the given radius and full height."""

    type: Literal["cylinder"] = "cylinder"
    radius: PosFloat = 0.1
    height: PosFloat = 0.2


class Plane(_Strict):
    """A finite rectangle in the local XY plane facing +Z; as a static body, an infinite ground."""

    type: Literal["plane"] = "plane"
    size: tuple[PosFloat, PosFloat] = (10.0, 10.0)


class Mesh(_Strict):
    """A triangle mesh read from a file (.obj, .ply, .stl, .off, .glb)."""

    type: Literal["mesh"] = "mesh"
    path: Annotated[AssetPath, _loads_with("rendiff.engine.meshes", "load_mesh")]
    scale: PosFloat | tuple[PosFloat, PosFloat, PosFloat] = 1.0


CLOTH_PINS = ("corners", "x0", "x1", "y0", "y1", "x0y0", "x1y0", "x0y1", "x1y1")
"""Named cloth vertices to pin: all four corners, a whole edge (``x0`` is the edge at local -x),
or one corner (``x0y0`` ... ``x1y1`` at local (-x, -y), (+x, -y), (-x, +y), (+x, +y))."""


class Cloth(_Strict):
    """A rectangular cloth, always simulated (Newton's VBD solver, see
    ``rendiff.engine.deformables``): ``size`` (x, y) metres in the local XY plane, centred on
    the entity's origin and facing +Z, cut into ``resolution`` (x, y) cells of two triangles
    each. ``pinned`` vertices stay where they start: named (:data:`CLOTH_PINS`) or by index
    ``iy * (nx + 1) + ix``.

    Its sheet: ``area_density`` [kg/m^2], membrane ``stretch_stiffness`` (Newton's ``tri_ke`` =
    ``tri_ka``), ``bend_stiffness`` (``edge_ke``), ``damping`` (``tri_kd``) and the collision
    ``thickness`` [m] (it rests this far above what it lies on); the entity's material gives its
    friction."""

    type: Literal["cloth"] = "cloth"
    size: tuple[PosFloat, PosFloat] = (1.0, 1.0)
    resolution: tuple[Annotated[int, Field(ge=1, le=512)], Annotated[int, Field(ge=1, le=512)]] = (
        24, 24)
    pinned: list[Annotated[int, Field(ge=0)] | str] = Field(default_factory=list)
    area_density: PosFloat = 0.2
    stretch_stiffness: PosFloat = 1.0e4
    bend_stiffness: NonNeg = 0.05
    damping: NonNeg = 0.01
    thickness: Annotated[float, Field(gt=0.0, le=0.1)] = 0.005

    @model_validator(mode="after")
    def _pins_exist(self) -> Cloth:
        count = (self.resolution[0] + 1) * (self.resolution[1] + 1)
        for i, p in enumerate(self.pinned):
            if isinstance(p, int) and p >= count:
                raise ValueError(f"pinned[{i}]: vertex {p} does not exist (the cloth has {count})")
            if isinstance(p, str) and p not in CLOTH_PINS:
                raise ValueError(f"pinned[{i}]: no vertices called {p!r}; name one of "
                                 f"{', '.join(CLOTH_PINS)} or give a vertex index")
        return self


class MPM(_Strict):
    """Simulates a :class:`Gaussians` cloud as a continuum with the Material Point Method
    (``rendiff.engine.mpm``): particles fill the cloud's shape and its Gaussians ride on the
    flow, each one's covariance deformed by the local deformation gradient (PhysGaussian).

    ``model``: ``elastic`` (fixed-corotated; a jelly bounces back), ``sand`` (Drucker-Prager
    plasticity with internal friction angle ``friction_deg``, default 30; it spreads into a pile)
    or ``plasticine`` (von Mises plasticity, ``yield_stress`` [Pa], default 1 kPa; a dent
    stays). The entity's material gives the density and the friction against the ground and
    static boxes and spheres."""

    model: Literal["elastic", "sand", "plasticine"] = "elastic"
    youngs_modulus: PosFloat = 5.0e4
    poisson_ratio: Annotated[float, Field(ge=0.0, le=0.45)] = 0.3
    friction_deg: Annotated[float, Field(gt=0.0, lt=90.0)] | None = None
    yield_stress: PosFloat | None = None

    @model_validator(mode="after")
    def _model_fields(self) -> MPM:
        if self.friction_deg is not None and self.model != "sand":
            raise ValueError(f"friction_deg: only sand has an internal friction angle, not "
                             f"{self.model}")
        if self.yield_stress is not None and self.model != "plasticine":
            raise ValueError(f"yield_stress: only plasticine has a yield stress, not {self.model}")
        return self



class Gaussians(_Strict):
    """A 3D Gaussian cloud: a 3DGS ``.ply`` file, or ``count`` Gaussians sampled on a
    primitive's surface (``radius`` is the sphere's or torus' radius, or the box's half side).

    ``bind_to`` names another entity the cloud rides on. On a rigid entity (a physics body, a
    keyframed or static one, a cloud, a robot's root link) the cloud's points are in that
    entity's local frame, the cloud's own ``pose`` places it there, and it moves and turns with
    it. On a human, the cloud is given in the body's rest frame (its T-pose, Z-up, before the
    human's pose) and each Gaussian sticks to its nearest triangle of the skin, following the
    skinning (see ``rendiff.engine.binding``).

    ``mpm`` simulates the cloud as an elastic, sand or plasticine body (:class:`MPM`)."""

    type: Literal["gaussians"] = "gaussians"
    path: Annotated[AssetPath, _loads_with("rendiff.engine.gaussians", "check_ply")] | None = None
    shape: Literal["sphere", "box", "torus"] | None = "sphere"
    count: Annotated[int, Field(ge=1, le=5_000_000)] = 4000
    radius: PosFloat = 0.3
    bind_to: Annotated[str, Field(min_length=1)] | None = None
    mpm: MPM | None = None


    @model_validator(mode="after")
    def _one_source(self) -> Gaussians:
        if self.path is not None:
            if self.shape is not None:  # guarded: the assignment re-runs this validator
                self.shape = None
        elif self.shape is None:
            raise ValueError("give either 'path' (a 3DGS .ply file) or 'shape'")
        return self


class AvatarGaussians(_Strict):
    """Draws a human as a Gaussian avatar instead of a triangle mesh: ``per_triangle`` flat
    Gaussians on every triangle of its SMPL surface, each bound to its triangle (barycentric
    point plus ``offset`` metres along the normal, rotation from the triangle's frame) and so
    moving with the skinning, as in GaussianAvatars / SplattingAvatar. ``colors``: ``clothes``
    (shirt, trousers and shoes over the entity's colour as skin), ``parts`` (one colour per SMPL
    body part) or ``uniform`` (the entity's colour)."""

    per_triangle: Annotated[int, Field(ge=1, le=16)] = 1
    colors: Literal["clothes", "parts", "uniform"] = "clothes"
    offset: Annotated[float, Field(ge=-0.05, le=0.05)] = 0.0
    opacity: Annotated[float, Field(gt=0.0, le=1.0)] = 0.95


class Human(_Strict):
    """An SMPL body. ``body_model`` is a folder or file of real SMPL files; None uses the
    ``RENDIFF_SMPL_PATH`` environment variable, then the shipped stand-in body. ``gaussians``
    draws it as a Gaussian avatar (:class:`AvatarGaussians`) rather than a mesh."""

    type: Literal["human"] = "human"
    body_model: AssetPath | None = None
    gender: Literal["neutral", "male", "female"] = "neutral"
    #: SMPL shape coefficients, in standard deviations of its shape space (|beta| <= 10)
    betas: Annotated[list[Annotated[float, Field(ge=-10.0, le=10.0)]],
                     Field(max_length=10)] = Field(default_factory=list)
    gaussians: AvatarGaussians | None = None

    @model_validator(mode="after")
    def _usable_body_model(self, info: ValidationInfo) -> Human:
        """The SMPL file the body_model folder or file gives for this gender, read through the
        restricted unpickler now rather than half-way through a render."""
        if self.body_model is not None and (info.context or {}).get("check_assets", True):
            from rendiff.engine.body import body_model_path, load_model_data

            try:
                found, _ = body_model_path(self.body_model, self.gender)
                load_model_data(found)
            except (ValueError, OSError) as err:
                raise ValueError(f"body_model: {_asset_message(err, self.body_model)}") \
                    from None
        return self



class Robot(_Strict):
    """An articulated robot from a URDF (``urdf``) or MJCF (``mjcf``) file, simulated by physics.

    The entity's pose places the file's root link; ``fixed_base`` welds it to the world. ``joints``
    gives initial joint positions [rad or m] by joint name (others start at 0). Every one-DoF
    joint has a position drive (Newton's joint target drive) of ``stiffness`` and ``damping``;
    a :class:`JointTargets` animation moves its targets, else each joint holds its initial
    position. ``stiffness`` [N m/rad or N/m] and ``damping`` are Newton's ``joint_target_ke`` /
    ``joint_target_kd``; the ``steel`` solver follows them as a PD drive, XPBD as a stiff
    constraint (see ``rendiff.engine.physics``). ``self_collisions`` lets links of the robot
    collide with each other. Links are drawn from the file's visual shapes in the file's colours
    (the entity's colour where it gives none); the whole robot is one instance, labelled with the
    entity's ``label`` (default ``robot``). The robot's tip (end effector) is the point
    ``tip_offset`` [m] in the frame of link ``tip`` (default: the file's last link), tracked per
    frame with that link's orientation (``RobotTrack.tip_positions`` / ``tip_quats``, and
    ``tip`` in the data sets' annotations).
    """

    type: Literal["robot"] = "robot"
    urdf: AssetPath | None = None
    mjcf: AssetPath | None = None
    fixed_base: bool = True
    joints: dict[str, float] = Field(default_factory=dict)
    stiffness: PosFloat = 1.0e4
    damping: NonNeg = 0.0
    self_collisions: bool = False
    tip: str | None = None  # link whose frame carries the tip; None: the file's last link
    tip_offset: Vec3 = (0.0, 0.0, 0.0)  # the tip in that link's frame [m]

    @model_validator(mode="after")
    def _one_file(self, info: ValidationInfo) -> Robot:
        if (self.urdf is None) == (self.mjcf is None):
            raise ValueError("give exactly one of 'urdf' and 'mjcf' (the robot's description file)")
        if (info.context or {}).get("check_assets", True):
            from rendiff.engine.robots import check_names

            try:
                known = self.description().dof_joints
            except ValueError as err:  # a malformed file: name the field, then the file
                raise ValueError(f"{self.format}: {err}") from None
            try:
                check_names(self.joints, known)
            except ValueError as err:
                bad = next(n for n in self.joints if n not in known)
                raise ValueError(f"joints.{bad}: {err}") from None
            if self.tip is not None:
                links = self.description().links
                if self.tip not in links:
                    close = difflib.get_close_matches(self.tip, list(links), n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    raise ValueError(f"tip: {self.tip!r} is not a link of {self.path}{hint}; "
                                     f"links: {', '.join(links)}")
        return self

    @property
    def path(self) -> str:
        """The description file."""
        return self.urdf if self.urdf is not None else self.mjcf  # type: ignore[return-value]

    @property
    def format(self) -> str:
        """``'urdf'`` or ``'mjcf'``."""
        return "urdf" if self.urdf is not None else "mjcf"

    def description(self):
        """The file's links and joints (:class:`rendiff.engine.robots.RobotFile`); raises a
        one-line ValueError for a malformed file."""
        from rendiff.engine.robots import read_robot_file

        return read_robot_file(self.path, self.format)


Geometry = Annotated[
    Sphere | Box | Capsule | Cylinder | Plane | Mesh | Gaussians | Human | Robot | Cloth,
    Field(discriminator="type"),
]


class Pose(_Strict):
    """Placement in the world: position in metres, rotation as a unit quaternion (w, x, y, z)."""

    position: Vec3 = (0.0, 0.0, 0.0)
    rotation: Quat = (1.0, 0.0, 0.0, 0.0)

    @field_validator("rotation")
    @classmethod
    def _unit(cls, q: Quat) -> Quat:
        n = math.sqrt(sum(c * c for c in q))
        if not n > 1e-8:
            raise ValueError("quaternion (w, x, y, z) must not be zero")
        return q

    @classmethod
    def from_euler(cls, position: Vec3 = (0.0, 0.0, 0.0), rpy_deg: Vec3 = (0, 0, 0)) -> Pose:
        """Pose from roll, pitch, yaw in degrees (rotations about X, then Y, then Z)."""
        r, p, y = (math.radians(a) / 2 for a in rpy_deg)
        cr, sr, cp, sp, cy, sy = (
            math.cos(r), math.sin(r), math.cos(p), math.sin(p), math.cos(y), math.sin(y)
        )
        q = (
            cr * cp * cy + sr * sp * sy,
            sr * cp * cy - cr * sp * sy,
            cr * sp * cy + sr * cp * sy,
            cr * cp * sy - sr * sp * cy,
        )
        return cls(position=position, rotation=q)


class Material(_Strict):
    """Physics material. ``mass`` overrides ``density`` when given."""

    density: PosFloat = 1000.0
    mass: PosFloat | None = None
    friction: NonNeg = 0.5
    restitution: Unit = 0.3


#: The largest texture side accepted (a PNG header can claim 30000x30000 and more).
MAX_TEXTURE_SIDE = 8192


def _check_image(path: str | None, info: ValidationInfo) -> str | None:
    """An image file Pillow can read (checked only where assets are checked)."""
    if path is None or not (info.context or {}).get("check_assets", True):
        return path
    from PIL import Image, UnidentifiedImageError

    name = Path(path).name
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                size = im.size
                im.verify()
    except Image.DecompressionBombError as err:
        raise ValueError(f"{name!r}: too large a texture ({err}); at most {MAX_TEXTURE_SIDE} "
                         "pixels a side") from None
    except (OSError, UnidentifiedImageError, SyntaxError) as err:
        raise ValueError(f"not an image file Pillow can read: {name!r} ({err})") from None
    if max(size) > MAX_TEXTURE_SIDE:
        raise ValueError(f"{name!r}: {size[0]}x{size[1]} pixels is too large a texture (at most "
                         f"{MAX_TEXTURE_SIDE} a side)")
    return path


class Appearance(_Strict):
    """Surface appearance: albedo colour or texture, Blinn-Phong roughness and specular strength.

    ``texture`` (a PNG/JPG image) or ``checker`` (two colours, a procedural checkerboard) replaces
    ``color`` as the albedo, sampled at the surface's UV coordinates (values used as stored, like
    ``color``). One texture tile (the whole image, or one checker square) spans ``texture_scale``
    UV units. UVs: on planes, metres from the plane's (-x, -y) corner along its local x and y;
    on boxes, 0..1 across each face (upright on the sides); equirectangular on spheres;
    cylindrical on cylinders (planar on their caps) and capsules; from the file for meshes (an
    OBJ's ``vt``; a textured mesh file without UVs is an error at render time). Image textures
    repeat and are sampled bilinearly, with v = 0 at the image's bottom row (the OBJ convention).
    """

    color: RGB = (0.7, 0.7, 0.7)
    roughness: Unit = 0.6
    specular: Unit = 0.2
    texture: Annotated[AssetPath | None, AfterValidator(_check_image)] = None
    checker: tuple[RGB, RGB] | None = None
    texture_scale: PosFloat = 1.0

    @model_validator(mode="after")
    def _one_texture(self) -> Appearance:
        if self.texture is not None and self.checker is not None:
            raise ValueError("give at most one of 'texture' (an image file) and 'checker'")
        return self

    @property
    def textured(self) -> bool:
        """Whether the albedo comes from a texture (an image or a checker) rather than colour."""
        return self.texture is not None or self.checker is not None


# --------------------------------------------------------------------------------------------
# Animation (motion not produced by physics)


class Keyframes(_Strict):
    """Kinematic keyframes: the entity's pose at given times, interpolated in between
    (positions linearly or with Catmull-Rom splines, rotations by slerp)."""

    type: Literal["keyframes"] = "keyframes"
    times: list[NonNeg]
    positions: list[Vec3]
    rotations: list[Quat] | None = None
    interpolation: Literal["linear", "cubic"] = "linear"

    @model_validator(mode="after")
    def _lengths(self) -> Keyframes:
        if len(self.times) < 1:
            raise ValueError("needs at least one keyframe")
        if any(b <= a for a, b in zip(self.times, self.times[1:], strict=False)):
            raise ValueError("times must be strictly increasing")
        if len(self.positions) != len(self.times):
            raise ValueError(f"{len(self.positions)} positions for {len(self.times)} times")
        if self.rotations is not None and len(self.rotations) != len(self.times):
            raise ValueError(f"{len(self.rotations)} rotations for {len(self.times)} times")
        return self


class Motion(_Strict):
    """A built-in procedural body motion, optionally walked along a path of ground waypoints."""

    type: Literal["motion"] = "motion"
    name: Literal["walk", "wave", "jump", "turn", "idle"] = "walk"
    speed: PosFloat = 1.2
    path: list[Vec2] | None = None

    @model_validator(mode="after")
    def _walkable(self) -> Motion:
        if self.path is not None:
            if len(self.path) < 2:
                raise ValueError(f"path: needs at least 2 waypoints, got {len(self.path)} (or "
                                 "leave it out to walk in place)")
            length = sum(math.dist(a, b) for a, b in zip(self.path, self.path[1:], strict=False))
            if length < 1e-6:
                raise ValueError("path: its waypoints are all the same point")
        return self


class AmassMotion(_Strict):
    """An AMASS-style ``.npz`` sequence (poses, trans, betas, mocap_framerate)."""

    type: Literal["amass"] = "amass"
    path: Annotated[AssetPath, _loads_with("rendiff.engine.motion", "check_amass")]
    start: NonNeg = 0.0


class Deformation(_Strict):
    """Gaussian-Flow deformation (DDDM) of a Gaussian cloud: coefficients from an ``.npz`` file,
    or a procedural motion written in DDDM coefficients (``wobble``, ``twist``, ``breathe``)."""

    type: Literal["dddm"] = "dddm"
    path: AssetPath | None = None
    procedural: Literal["wobble", "twist", "breathe"] | None = "wobble"
    amplitude: NonNeg | None = 0.1  # procedural only (None with a path)
    frequency: PosFloat | None = 1.0  # procedural only (None with a path)

    @model_validator(mode="after")
    def _one_source(self) -> Deformation:
        if self.path is not None:
            if self.procedural is not None and "procedural" in self.model_fields_set:
                raise ValueError("give either 'path' (DDDM coefficients) or 'procedural', not both")
            for name in ("amplitude", "frequency"):
                if name in self.model_fields_set and getattr(self, name) is not None:
                    raise ValueError(f"{name}: only a procedural deformation takes it; the "
                                     "'path' file holds its own coefficients")
            # the procedural defaults mean nothing with a file: cleared, so a saved scene does
            # not show settings that were never used (each assignment re-runs this)
            for name in ("procedural", "amplitude", "frequency"):
                if getattr(self, name) is not None:
                    setattr(self, name, None)
        else:
            for name in ("amplitude", "frequency"):
                if getattr(self, name) is None:
                    raise ValueError(f"{name}: a procedural deformation needs it")
        return self


class JointTargets(_Strict):
    """Keyframed targets for a robot's joint drives: ``targets`` maps a joint name to
    ``[[time, value], ...]`` (seconds; radians or metres), times increasing. Between keyframes the
    target moves linearly or ``smooth`` (easing in and out, stopping on each keyframe); before the
    first and after the last it holds that keyframe. Joints not named hold their initial position.
    """

    type: Literal["joint_targets"] = "joint_targets"
    targets: dict[str, list[tuple[NonNeg, float]]]
    interpolation: Literal["linear", "smooth"] = "smooth"

    @model_validator(mode="after")
    def _keys(self) -> JointTargets:
        for joint, keys in self.targets.items():
            if not keys:
                raise ValueError(f"targets.{joint}: needs at least one [time, value] keyframe")
            times = [t for t, _ in keys]
            if any(b <= a for a, b in zip(times, times[1:], strict=False)):
                raise ValueError(f"targets.{joint}: times must be strictly increasing")
        return self


Animation = Annotated[
    Keyframes | Motion | AmassMotion | Deformation | JointTargets, Field(discriminator="type")
]


class Entity(_Strict):
    """Something in the scene. ``dynamic`` entities are moved by physics from their initial pose
    and velocity; others are static colliders or follow their ``animation``."""

    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")]
    geometry: Geometry
    pose: Pose = Field(default_factory=Pose)
    material: Material = Field(default_factory=Material)
    appearance: Appearance = Field(default_factory=Appearance)
    dynamic: bool = False
    velocity: Vec3 = (0.0, 0.0, 0.0)
    angular_velocity: Vec3 = (0.0, 0.0, 0.0)
    animation: Animation | None = None
    label: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Entity:
        g, a = self.geometry, self.animation
        self._check_deformable(g, a)
        if self.dynamic and isinstance(g, Human | Gaussians):
            raise ValueError(f"dynamic: a {g.type} cannot be a rigid physics body")
        if self.dynamic and a is not None:
            raise ValueError("animation: a dynamic entity is moved by physics; remove one of them")
        if isinstance(a, Motion | AmassMotion) and not isinstance(g, Human):
            raise ValueError(f"animation: '{a.type}' drives a human, not a {g.type}")
        if isinstance(g, Gaussians) and g.bind_to is not None and isinstance(a, Keyframes):
            raise ValueError("animation: a cloud with 'bind_to' moves with the entity it is bound "
                             "to; remove its keyframes")
        if isinstance(a, Deformation) and not isinstance(g, Gaussians):
            raise ValueError(f"animation: 'dddm' deforms a Gaussian cloud, not a {g.type}")
        if isinstance(g, Plane) and self.dynamic:
            raise ValueError("dynamic: a plane can only be static")
        if self.appearance.textured and not isinstance(g, Sphere | Box | Capsule | Cylinder
                                                      | Plane | Mesh):
            raise ValueError(f"appearance: a {g.type} has no UVs; 'texture' and 'checker' need "
                             "a primitive or a mesh file")
        if isinstance(a, JointTargets) and not isinstance(g, Robot):
            raise ValueError(f"animation: 'joint_targets' drives a robot, not a {g.type}")
        if isinstance(g, Robot):
            self._check_robot(g, a)
        return self

    def _check_deformable(self, g: object, a: Animation | None) -> None:
        mpm = isinstance(g, Gaussians) and g.mpm is not None
        if not (mpm or isinstance(g, Cloth)):
            return
        what = "an MPM body" if mpm else "a cloth"
        if self.dynamic:
            raise ValueError(f"dynamic: {what} is always simulated; leave 'dynamic' out")
        if a is not None:
            raise ValueError(f"animation: {what} is moved by its simulation, not by '{a.type}'")
        if mpm and g.bind_to is not None:
            raise ValueError("geometry.bind_to: an MPM body moves by itself; remove 'bind_to'")

    def _check_robot(self, g: Robot, a: Animation | None) -> None:
        if self.dynamic:
            raise ValueError("dynamic: a robot is always simulated (its joints are driven); "
                             "leave 'dynamic' out")
        if a is not None and not isinstance(a, JointTargets):
            raise ValueError(f"animation: a robot moves by 'joint_targets', not '{a.type}'")
        if any(self.velocity) or any(self.angular_velocity):
            raise ValueError("velocity: a robot starts at rest; leave 'velocity' and "
                             "'angular_velocity' out")
        if isinstance(a, JointTargets) and Path(g.path).is_file():
            from rendiff.engine.robots import check_names

            try:
                known = g.description().dof_joints
            except ValueError as err:
                raise ValueError(f"geometry.{g.format}: {err}") from None
            for joint in a.targets:
                try:
                    check_names([joint], known)
                except ValueError as err:
                    raise ValueError(f"animation.targets.{joint}: {err}") from None

    @property
    def semantic_label(self) -> str:
        """The class name used for the semantic layer."""
        return self.label or self.geometry.type


# --------------------------------------------------------------------------------------------
# Lights


class LightKeyframes(_Strict):
    """A light's animation: its ``intensity``, ``color``, ``direction`` (directional and spot
    lights), ``position`` (point and spot lights) or ``sh`` coefficients (environment lights)
    at given ``times`` [s], each list as long as ``times``. Between keyframes values move
    ``linear``-ly or ``smooth``-ly (easing in and out of each keyframe); directions turn at a
    constant rate along the great circle (slerp); before the first and after the last keyframe a
    value holds. Properties not keyframed keep the light's own fields."""

    times: list[NonNeg]
    intensity: list[NonNeg] | None = None
    color: list[RGB] | None = None
    direction: list[Vec3] | None = None
    position: list[Vec3] | None = None
    sh: list[Annotated[list[Vec3], Field(min_length=9, max_length=9)]] | None = None
    interpolation: Literal["linear", "smooth"] = "linear"

    @model_validator(mode="after")
    def _lengths(self) -> LightKeyframes:
        if not self.times:
            raise ValueError("times: needs at least one keyframe")
        for a, b in zip(self.times, self.times[1:], strict=False):
            if b <= a:
                raise ValueError(f"times: must be strictly increasing (got {a!r} then {b!r})")
        keyed = self.keyed()
        if not keyed:
            raise ValueError("nothing is keyframed: give intensity, color, direction, position "
                             "or sh")
        for name, values in keyed.items():
            if len(values) != len(self.times):
                raise ValueError(f"{name}: {len(values)} values for {len(self.times)} times")
        for i, d in enumerate(self.direction or []):
            if not math.sqrt(sum(c * c for c in d)) > 1e-9:
                raise ValueError(f"direction[{i}]: must not be zero")
        return self

    def keyed(self) -> dict[str, list]:
        """The keyframed properties by name."""
        names = ("intensity", "color", "direction", "position", "sh")
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}


_ANIMATABLE = {
    "ambient": {"intensity", "color"},
    "environment": {"intensity", "color", "sh"},
    "directional": {"intensity", "color", "direction"},
    "point": {"intensity", "color", "position"},
    "spot": {"intensity", "color", "position", "direction"},
}


class _Light(_Strict):
    color: RGB = (1.0, 1.0, 1.0)
    intensity: NonNeg = 1.0
    animation: LightKeyframes | None = None

    @model_validator(mode="after")
    def _animatable(self) -> _Light:
        kind = getattr(self, "type", "")
        for name in (self.animation.keyed() if self.animation is not None else ()):
            if name not in _ANIMATABLE.get(kind, ()):
                raise ValueError(f"animation.{name}: a {kind} light has no {name} to animate")
        return self


class Ambient(_Light):
    """Uniform light from every direction."""

    type: Literal["ambient"] = "ambient"
    intensity: NonNeg = 0.3


class Environment(_Light):
    """Spherical-harmonics environment light: 9 RGB coefficients (degree 2, world frame)."""

    type: Literal["environment"] = "environment"
    sh: Annotated[list[tuple[float, float, float]], Field(min_length=9, max_length=9)]


class Directional(_Light):
    """Sunlight travelling along ``direction`` (world frame)."""

    type: Literal["directional"] = "directional"
    direction: Vec3 = (-0.4, 0.3, -1.0)
    shadows: bool = True


class Point(_Light):
    """A point light with inverse-square falloff (intensity is the irradiance at 1 m).

    With ``follow`` (an entity's name) the light is carried by that entity: ``position`` (and
    position keyframes) are offsets in the entity's frame, moved with it every frame."""

    type: Literal["point"] = "point"
    position: Vec3 = (0.0, 0.0, 3.0)
    shadows: bool = False
    follow: str | None = None


class Spot(_Light):
    """A spot light: a point light limited to a cone with a soft edge.

    With ``follow`` (an entity's name) the light is carried by that entity, a headlight:
    ``position`` and ``direction`` (and their keyframes) are in the entity's frame."""

    type: Literal["spot"] = "spot"
    position: Vec3 = (0.0, 0.0, 3.0)
    direction: Vec3 = (0.0, 0.0, -1.0)
    angle_deg: Annotated[float, Field(gt=0.0, lt=180.0)] = 30.0
    softness: Unit = 0.2
    shadows: bool = False
    follow: str | None = None


Light = Annotated[Ambient | Environment | Directional | Point | Spot, Field(discriminator="type")]


# --------------------------------------------------------------------------------------------
# Camera


def _check_looks_somewhere(eye: tuple, target: tuple, name: str) -> None:
    """A camera whose eye sits on its target has no viewing direction (every frame blank)."""
    if math.dist(eye, target) < 1e-6:
        raise ValueError(f"{name}: the camera is at its target {tuple(target)}: it would look "
                         "nowhere (every frame blank); move it away")


class StaticPath(_Strict):
    """A fixed camera at ``eye`` looking at ``target``."""

    type: Literal["static"] = "static"
    eye: Vec3 = (3.0, -3.0, 2.0)
    target: Vec3 = (0.0, 0.0, 0.3)

    @model_validator(mode="after")
    def _looks_somewhere(self) -> StaticPath:
        _check_looks_somewhere(self.eye, self.target, "eye")
        return self


class OrbitPath(_Strict):
    """A camera circling ``target`` at ``radius`` and ``height`` above it, sweeping
    ``degrees`` over the clip, starting at azimuth ``start_deg`` (0 = +X)."""

    type: Literal["orbit"] = "orbit"
    target: Vec3 = (0.0, 0.0, 0.3)
    radius: PosFloat = 3.0
    height: Coord = 1.5
    start_deg: Coord = -90.0
    degrees: Coord = 90.0


class DollyPath(_Strict):
    """A camera moving in a straight line from ``start`` to ``end`` while looking at ``target``."""

    type: Literal["dolly"] = "dolly"
    start: Vec3 = (3.0, -3.0, 1.5)
    end: Vec3 = (2.0, -2.0, 1.0)
    target: Vec3 = (0.0, 0.0, 0.3)

    @model_validator(mode="after")
    def _looks_somewhere(self) -> DollyPath:
        _check_looks_somewhere(self.start, self.target, "start")
        _check_looks_somewhere(self.end, self.target, "end")
        return self


class KeyframedPath(_Strict):
    """Camera keyframes (eye and target per time), interpolated linearly or by Catmull-Rom."""

    type: Literal["keyframes"] = "keyframes"
    times: list[NonNeg]
    eyes: list[Vec3]
    targets: list[Vec3]
    interpolation: Literal["linear", "cubic"] = "cubic"

    @model_validator(mode="after")
    def _lengths(self) -> KeyframedPath:
        if not self.times:
            raise ValueError("needs at least one keyframe")
        if any(b <= a for a, b in zip(self.times, self.times[1:], strict=False)):
            raise ValueError("times must be strictly increasing")
        if not len(self.eyes) == len(self.targets) == len(self.times):
            raise ValueError("times, eyes and targets must have the same length")
        for k, (eye, target) in enumerate(zip(self.eyes, self.targets, strict=True)):
            _check_looks_somewhere(eye, target, f"eyes[{k}]")
        return self


class FollowPath(_Strict):
    """A camera that follows an entity, keeping ``offset`` from it and looking at it."""

    type: Literal["follow"] = "follow"
    entity: str
    offset: Vec3 = (0.5, -3.0, 1.2)
    look_height: Coord = 0.9
    smoothing: Unit = 0.0


CameraPath = Annotated[
    StaticPath | OrbitPath | DollyPath | KeyframedPath | FollowPath, Field(discriminator="type")
]


class Camera(_Strict):
    """A pinhole camera: vertical field of view, or intrinsics ``K`` in pixels (which must match
    the scene size), and a path over time. The up direction is world +Z."""

    fov_deg: Annotated[float, Field(gt=1.0, lt=179.0)] = 45.0
    K: tuple[Vec3, Vec3, Vec3] | None = None
    near: PosFloat = 0.05
    far: PosFloat = 100.0
    path: CameraPath = Field(default_factory=StaticPath)

    @model_validator(mode="after")
    def _range(self) -> Camera:
        if self.far <= self.near:
            raise ValueError(f"far ({self.far}) must be greater than near ({self.near})")
        return self


# --------------------------------------------------------------------------------------------
# Engine options


class DeformableOptions(_Strict):
    """Cloth and MPM settings. Cloth steps at the physics ``rate_hz`` with ``cloth_iterations``
    VBD iterations per step. MPM bodies share one grid of ``mpm_cell_size`` spacing over
    ``mpm_domain`` (min corner, max corner; None: around the bodies, 0.3 m wider on each side
    and 0.3 m plus the height their initial speed could reach above them) and are filled with
    ``mpm_particles_per_cell`` particles per cell along each axis; the MPM step is ``mpm_cfl``
    times the CFL limit. Particles are clamped into the domain."""

    cloth_iterations: Annotated[int, Field(ge=1, le=200)] = defaults.CLOTH_ITERATIONS
    mpm_cell_size: Annotated[float, Field(ge=0.002, le=1.0)] = defaults.MPM_CELL_SIZE
    mpm_domain: tuple[Vec3, Vec3] | None = None
    mpm_particles_per_cell: Annotated[int, Field(ge=1, le=4)] = 2
    mpm_cfl: Annotated[float, Field(gt=0.0, le=1.0)] = 0.4

    @model_validator(mode="after")
    def _domain(self) -> DeformableOptions:
        if self.mpm_domain is not None:
            lo, hi = self.mpm_domain
            if not all(h - lo_ >= 4 * self.mpm_cell_size for lo_, h in zip(lo, hi, strict=True)):
                raise ValueError("mpm_domain: the max corner must be at least 4 cells beyond the "
                                 "min corner on every axis")
        return self


class PhysicsOptions(_Strict):
    """Physics settings: the physics rate is independent of the video frame rate."""

    rate_hz: Annotated[float, Field(ge=30.0, le=20000.0)] = defaults.PHYSICS_RATE_HZ
    gravity: Vec3 = defaults.GRAVITY
    solver: Literal["xpbd", "steel"] = defaults.PHYSICS_SOLVER
    deformables: DeformableOptions = Field(default_factory=DeformableOptions)


class GenerationOptions(_Strict):
    """Video generation: ``model`` is a local folder in diffusers format (None = the shipped
    default model); ``maps`` the control layers fed to it, with optional per-map weights."""

    model: AssetPath | None = None
    steps: Annotated[int, Field(ge=1, le=1000)] | None = None  # None: the model's default
    scheduler: Literal["ddim", "euler", "dpm"] = defaults.SCHEDULER
    maps: list[str] | None = None
    weights: dict[str, Unit] = Field(default_factory=dict)
    reference: AssetPath | None = None
    window: Annotated[int, Field(ge=2, le=256)] = defaults.WINDOW
    overlap: Annotated[int, Field(ge=0)] = defaults.OVERLAP


    @model_validator(mode="after")
    def _window(self) -> GenerationOptions:
        if self.overlap >= self.window:
            raise ValueError(
                f"overlap ({self.overlap}) must be smaller than window ({self.window})")
        return self


class Scene(_Strict):
    """A whole scene: entities, lights, camera, clip length and size, seed, engine options.

    Build it in Python (``Scene(name=...)`` then :meth:`add`, :meth:`add_light`) or load it from
    YAML/JSON with :func:`rendiff.load_scene`.
    """

    name: Annotated[str, Field(min_length=1)] = "scene"
    description: str = ""
    seed: Annotated[int, Field(ge=0, lt=2**63)] = 0
    frames: Annotated[int, Field(ge=1, le=100_000)] = 32
    fps: Annotated[float, Field(gt=0.0, le=1000.0)] = 16.0
    size: tuple[Annotated[int, Field(ge=8, le=8192)], Annotated[int, Field(ge=8, le=8192)]] = (
        128,
        128,
    )
    background: RGB = (0.05, 0.05, 0.07)
    entities: list[Entity] = Field(default_factory=list)
    lights: list[Light] = Field(default_factory=list)
    camera: Camera = Field(default_factory=Camera)
    physics: PhysicsOptions = Field(default_factory=PhysicsOptions)
    generation: GenerationOptions = Field(default_factory=GenerationOptions)

    @model_validator(mode="after")
    def _references(self) -> Scene:
        names = [e.name for e in self.entities]
        seen: set[str] = set()
        for i, n in enumerate(names):
            if n in seen:
                raise ValueError(f"entities[{i}].name: duplicate entity name {n!r}")
            seen.add(n)
        path = self.camera.path
        if isinstance(path, FollowPath) and path.entity not in seen:
            raise ValueError(f"camera.path.entity: no entity named {path.entity!r}")
        for i, light in enumerate(self.lights):
            follow = getattr(light, "follow", None)
            if follow is not None and follow not in seen:
                raise ValueError(f"lights[{i}].follow: no entity named {follow!r}")
        self._check_bindings()
        self._check_budget()
        if self.camera.K is not None:
            (fx, _, cx), (_, fy, cy), _ = self.camera.K
            if fx <= 0 or fy <= 0:
                raise ValueError("camera.K: focal lengths must be positive")
        return self

    def _check_budget(self) -> None:
        """The work the scene asks for stays within the ``MAX_*`` bounds above."""
        check_clip_budget(self.frames, self.size, self.fps, self.physics.rate_hz)
        o = self.physics.deformables
        if o.mpm_domain is not None:
            nodes = math.prod(math.ceil((hi - lo) / o.mpm_cell_size) + 1
                              for lo, hi in zip(*o.mpm_domain, strict=True))
            if nodes > MAX_MPM_NODES:
                raise ValueError(f"physics.deformables.mpm_domain: {nodes:.2e} grid nodes at "
                                 f"mpm_cell_size {o.mpm_cell_size:g} (at most "
                                 f"{MAX_MPM_NODES:.2e}); "
                                 "shrink the domain or use larger cells")
        points, particles = 0, 0.0
        spacing = o.mpm_cell_size / o.mpm_particles_per_cell
        for i, e in enumerate(self.entities):
            g = e.geometry
            if isinstance(g, Cloth):
                points += (g.resolution[0] + 1) * (g.resolution[1] + 1)
            elif isinstance(g, Gaussians):
                if g.path is None:
                    points += g.count
                if g.mpm is not None:
                    if g.path is None:  # a .ply's particles depend on its points: not counted
                        r = g.radius
                        volume = {"sphere": 4 / 3 * math.pi * r**3, "box": 8 * r**3,
                                  "torus": 2 * math.pi**2 * r * 0.15**2}[g.shape or "sphere"]
                        particles += volume / spacing**3
                    self._check_mpm_steps(i, g.mpm, e.material.density, o)
        if particles > MAX_MPM_PARTICLES:
            raise ValueError(f"entities: the MPM bodies fill {particles:.2e} particles at "
                             f"mpm_cell_size {o.mpm_cell_size:g} and mpm_particles_per_cell "
                             f"{o.mpm_particles_per_cell} (at most {MAX_MPM_PARTICLES:.0e}); "
                             "use smaller bodies or larger cells")
        points += int(particles)
        if self.frames * points > MAX_POINT_FRAMES:
            raise ValueError(f"frames: {self.frames} frames of {points:,} simulated points (cloth "
                             f"vertices, Gaussians, MPM particles) are {self.frames * points:.2e} "
                             f"point-frames (at most {MAX_POINT_FRAMES:.0e}); fewer frames or "
                             "points")

    def _check_mpm_steps(self, i: int, mpm: MPM, density: float, o: DeformableOptions) -> None:
        """The explicit MPM step at rest (CFL limit of the elastic wave speed,
        ``rendiff.engine.mpm``) leaves the clip within ``MAX_SIM_STEPS``."""
        E, nu = mpm.youngs_modulus, mpm.poisson_ratio
        mu, lam = E / (2 * (1 + nu)), E * nu / ((1 + nu) * (1 - 2 * nu))
        dt = o.mpm_cfl * o.mpm_cell_size / math.sqrt((lam + 2 * mu) / density)
        total = (self.frames - 1) * math.ceil(1.0 / (self.fps * dt))
        if total > MAX_SIM_STEPS:
            raise ValueError(f"entities[{i}].geometry.mpm: youngs_modulus {E:g} Pa at density "
                             f"{density:g} kg/m^3 needs MPM steps of {dt:.1e} s, {total:.2e} over "
                             f"the clip (at most {MAX_SIM_STEPS:.0e}); a softer or denser "
                             "material, larger mpm_cell_size or fewer frames")

    def _check_bindings(self) -> None:
        """``Gaussians.bind_to``: a known entity, not the cloud itself, no cycle, and no DDDM
        deformation on a cloud bound to a human's skin."""
        by_name = {e.name: e for e in self.entities}
        for i, e in enumerate(self.entities):
            target = getattr(e.geometry, "bind_to", None)
            if target is None:
                continue
            where = f"entities[{i}].geometry.bind_to"
            if target == e.name:
                raise ValueError(f"{where}: a cloud cannot be bound to itself ({e.name!r})")
            if target not in by_name:
                raise ValueError(f"{where}: no entity named {target!r}")
            chain = [e.name, target]
            while (nxt := getattr(by_name[chain[-1]].geometry, "bind_to", None)) is not None:
                if nxt in chain:
                    raise ValueError(f"{where}: bindings form a cycle "
                                     f"({' -> '.join([*chain[chain.index(nxt):], nxt])})")
                chain.append(nxt)
            if isinstance(by_name[target].geometry, Human) and isinstance(e.animation,
                                                                          Deformation):
                raise ValueError(f"{where}: a cloud bound to a human's skin follows the "
                                 "skinning; remove its 'dddm' animation")

    # ---- builder API --------------------------------------------------------------------

    def add(
        self,
        geometry: Sphere | Box | Capsule | Cylinder | Plane | Mesh | Gaussians | Human | Robot
        | Cloth,
        pose: Pose | None = None,
        material: Material | None = None,
        appearance: Appearance | None = None,
        *,
        name: str | None = None,
        dynamic: bool = False,
        velocity: Vec3 = (0.0, 0.0, 0.0),
        angular_velocity: Vec3 = (0.0, 0.0, 0.0),
        animation: Keyframes | Motion | AmassMotion | Deformation | JointTargets | None = None,
        label: str | None = None,
    ) -> Entity:
        """Add an entity; geometry, pose, physics material and appearance are separate arguments.
        Returns the validated entity (its ``name`` defaults to ``<type>_<index>``)."""
        entity = Entity(
            name=name or f"{geometry.type}_{len(self.entities)}",
            geometry=geometry,
            pose=pose or Pose(),
            material=material or Material(),
            appearance=appearance or Appearance(),
            dynamic=dynamic,
            velocity=velocity,
            angular_velocity=angular_velocity,
            animation=animation,
            label=label,
        )
        self.entities = [*self.entities, entity]
        return entity

    def add_light(self, light: Ambient | Environment | Directional | Point | Spot) -> None:
        """Add a light."""
        self.lights = [*self.lights, light]

    def entity(self, name: str) -> Entity:
        """The entity called ``name``."""
        for e in self.entities:
            if e.name == name:
                return e
        raise KeyError(f"no entity named {name!r}; entities: {[e.name for e in self.entities]}")

    @property
    def width(self) -> int:
        return self.size[0]

    @property
    def height(self) -> int:
        return self.size[1]

    @property
    def duration(self) -> float:
        """Seconds from the first frame to the last."""
        return (self.frames - 1) / self.fps
