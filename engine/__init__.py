"""The deterministic layer: simulation (physics, bodies, Gaussians), cameras and rendering."""

from rendiff._source_tree import claim

claim(globals())  # first: under a bare name (a shell in the repository root) step aside

from .camera import CameraFrames, intrinsics, look_at
from .camera_paths import camera_frames
from .layers import LAYER_DOCS, Layer, Layers
from .renderer import render
from .simulator import simulate
from .trajectory import LightState, Trajectory

__all__ = ["LAYER_DOCS", "CameraFrames", "Layer", "Layers", "LightState", "Trajectory",
           "camera_frames", "intrinsics", "look_at", "render", "simulate"]
