"""rendiff: simulate a scene, render exact control maps, generate video conditioned on them.

A script reads::

    import rendiff
    scene = rendiff.builtin_scene("falling_objects")      # or rendiff.Scene(...) + scene.add(...)
    traj = rendiff.simulate(scene)
    layers = rendiff.render(traj)
    video = rendiff.generate(layers, options=scene.generation, seed=scene.seed)
    rendiff.save("out", layers, video, scene=scene)
"""

# The names below load on first use (PEP 562): ``import rendiff``, the CLI's help and its
# listings do not pay for torch and diffusers, and a small submodule such as
# ``rendiff._source_tree`` imports without the whole package (it runs while another library can be
# half-way through its own imports). ``from rendiff import X`` and ``rendiff.X`` behave as before.

import os
from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

# Thread policy (docs/design-notes.md "Threads"): torch's OpenMP threads sleep instead of
# spin-waiting between parallel regions, so a run beside another CPU-bound job is not several
# times slower; the user's own setting wins. OpenMP reads this when torch loads it, so it takes
# effect when rendiff is imported before torch (the CLI, the data-set workers, `import rendiff`
# first in a script).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

try:
    __version__ = version("rendiff")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

_EXPORTS = {
    "Layer": "rendiff.engine",
    "Layers": "rendiff.engine",
    "Trajectory": "rendiff.engine",
    "render": "rendiff.engine",
    "simulate": "rendiff.engine",
    "AmassMotion": "rendiff.scenes",
    "Ambient": "rendiff.scenes",
    "Appearance": "rendiff.scenes",
    "AvatarGaussians": "rendiff.scenes",
    "Box": "rendiff.scenes",
    "Camera": "rendiff.scenes",
    "Capsule": "rendiff.scenes",
    "PhysicsOptions": "rendiff.scenes",
    "MPM": "rendiff.scenes",
    "GenerationOptions": "rendiff.scenes",
    "DeformableOptions": "rendiff.scenes",
    "Cloth": "rendiff.scenes",
    "Cylinder": "rendiff.scenes",
    "Deformation": "rendiff.scenes",
    "Directional": "rendiff.scenes",
    "DollyPath": "rendiff.scenes",
    "Entity": "rendiff.scenes",
    "Environment": "rendiff.scenes",
    "FollowPath": "rendiff.scenes",
    "Gaussians": "rendiff.scenes",
    "Human": "rendiff.scenes",
    "JointTargets": "rendiff.scenes",
    "KeyframedPath": "rendiff.scenes",
    "Keyframes": "rendiff.scenes",
    "LightKeyframes": "rendiff.scenes",
    "Material": "rendiff.scenes",
    "Mesh": "rendiff.scenes",
    "Motion": "rendiff.scenes",
    "OrbitPath": "rendiff.scenes",
    "Plane": "rendiff.scenes",
    "Point": "rendiff.scenes",
    "Pose": "rendiff.scenes",
    "Robot": "rendiff.scenes",
    "Scene": "rendiff.scenes",
    "SceneError": "rendiff.scenes",
    "Sphere": "rendiff.scenes",
    "Spot": "rendiff.scenes",
    "StaticPath": "rendiff.scenes",
    "builtin_scene": "rendiff.scenes",
    "list_builtin_scenes": "rendiff.scenes",
    "load_scene": "rendiff.scenes",
    "save_scene": "rendiff.scenes",
    "ModelError": "rendiff.api",
    "condition": "rendiff.api",
    "generate": "rendiff.api",
    "save": "rendiff.api",
    "load_trajectory": "rendiff.io.trajectory",
    "save_trajectory": "rendiff.io.trajectory",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value  # later look-ups do not come back here
        return value
    raise AttributeError(f"module 'rendiff' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))

