"""Scenes: the strict specification, the builder API, YAML/JSON files and built-in scenes."""

from .builtin import BUILTIN_SCENES, builtin_scene, list_builtin_scenes
from .io import SceneError, load_scene, save_scene, scene_from_dict, scene_to_dict
from .spec import (
    AmassMotion,
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
    Environment,
    FollowPath,
    Gaussians,
    GenerationOptions,
    Human,
    KeyframedPath,
    Keyframes,
    Material,
    Mesh,
    Motion,
    OrbitPath,
    PhysicsOptions,
    Plane,
    Point,
    Pose,
    Scene,
    Sphere,
    Spot,
    StaticPath,
)

__all__ = [
    "BUILTIN_SCENES", "AmassMotion", "Ambient", "Appearance", "Box", "Camera", "Capsule",
    "Cylinder", "Deformation", "Directional", "DollyPath", "Entity", "Environment", "FollowPath",
    "Gaussians", "GenerationOptions", "Human", "KeyframedPath", "Keyframes", "Material", "Mesh",
    "Motion", "OrbitPath", "PhysicsOptions", "Plane", "Point", "Pose", "Scene", "SceneError",
    "Sphere", "Spot", "StaticPath", "builtin_scene", "list_builtin_scenes", "load_scene",
    "save_scene", "scene_from_dict", "scene_to_dict",
]
