"""Conditioners: control-image encodings, guidance encoders, latent conditioning, pipelines."""

from .controls import CONTROL_LAYERS, control_image, control_images

__all__ = ["CONTROL_LAYERS", "control_image", "control_images"]
