"""Conditioners: control-image encodings, guidance encoders, latent conditioning, the video
diffusion pipeline, its training and its metrics.

The control images are imported eagerly; everything built on diffusers loads on first use
(importing diffusers costs seconds), e.g. ``rendiff.conditioners.RendiffVideoPipeline``.
"""

from rendiff._source_tree import claim

claim(globals())  # first: under a bare name (a shell in the repository root) step aside

from importlib import import_module

from .controls import CONTROL_LAYERS, control_image, control_images

_LAZY = {
    "RendiffVideoPipeline": "pipeline", "RendiffVideoPipelineOutput": "pipeline",
    "build_pipeline": "pipeline", "PRESETS": "pipeline", "INJECTIONS": "pipeline",
    "SpatioTemporalUNet": "models", "build_vae": "models", "vae_encode_video": "models",
    "vae_decode_video": "models", "GuidanceEncoder": "guidance",
    "resolve_control_weights": "guidance", "LatentControlEncoder": "latent",
    "TrainConfig": "train", "train": "train", "load_trained": "train",
    "write_synthetic_clips": "train", "l1": "metrics", "psnr": "metrics", "ssim": "metrics",
    "warping_error": "metrics", "evaluate_video": "metrics",
    "AnimateDiffSpec": "pretrained", "load_spec": "pretrained",
    "load_animatediff": "pretrained", "generate_animatediff": "pretrained",
    "score_clip": "metrics", "WanVACESpec": "wan_vace", "load_wan_vace": "wan_vace",
    "generate_wan_vace": "wan_vace", "CosmosTransferSpec": "cosmos_transfer",
    "load_cosmos_transfer": "cosmos_transfer", "generate_cosmos_transfer": "cosmos_transfer",
    "MapRefiner": "refiner",
}

__all__ = ["CONTROL_LAYERS", "control_image", "control_images", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
