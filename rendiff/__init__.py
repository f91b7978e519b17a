"""rendiff: simulate a scene, render exact control maps, generate video conditioned on them.

A script reads::

    import rendiff
    scene = rendiff.builtin_scene("falling_objects")      # or rendiff.Scene(...) + scene.add(...)
    traj = rendiff.simulate(scene)
    layers = rendiff.render(traj)
    video = rendiff.generate(layers)
    rendiff.save("out", layers, video)
"""

from importlib.metadata import PackageNotFoundError, version

from rendiff.engine import Layer, Layers, Trajectory, render, simulate
from rendiff.scenes import (
    AmassMotion,
    Ambient,
    Appearance,
    AvatarGaussians,
    Box,
    Camera,
    Capsule,
    Cylinder,
    Deformation,
    Directional,
    DollyPath,
    Entity,
    Environment,
    FollowPath,
    Gaussians,
    Human,
    JointTargets,
    KeyframedPath,
    Keyframes,
    LightKeyframes,
    Material,
    Mesh,
    Motion,
    OrbitPath,
    Plane,
    Point,
    Pose,
    Robot,
    Scene,
    SceneError,
    Sphere,
    Spot,
    StaticPath,
    builtin_scene,
    list_builtin_scenes,
    load_scene,
    save_scene,
)

from .api import ModelError, condition, generate, save

try:
    __version__ = version("rendiff")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "AmassMotion",
    "Ambient",
    "Appearance",
    "AvatarGaussians",
    "Box",
    "Camera",
    "Capsule",
    "Cylinder",
    "Deformation",
    "Directional",
    "DollyPath",
    "Entity",
    "Environment",
    "FollowPath",
    "Gaussians",
    "Human",
    "JointTargets",
    "KeyframedPath",
    "Keyframes",
    "LightKeyframes",
    "Layer",
    "Layers",
    "Material",
    "Mesh",
    "ModelError",
    "Motion",
    "OrbitPath",
    "Plane",
    "Point",
    "Pose",
    "Robot",
    "Scene",
    "SceneError",
    "Sphere",
    "Spot",
    "StaticPath",
    "Trajectory",
    "__version__",
    "builtin_scene",
    "condition",
    "generate",
    "list_builtin_scenes",
    "load_scene",
    "render",
    "save",
    "save_scene",
    "simulate",
]
