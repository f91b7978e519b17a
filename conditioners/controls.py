"""Control images: each rendered layer in the frozen encoding a video model is conditioned on.

The encodings themselves live in :mod:`rendiff.kernels.encodings` (documented there); this module
maps :class:`~rendiff.engine.layers.Layer` to them, for the model and for the ``maps/`` videos.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from torch import Tensor

from rendiff.engine.layers import Layer, Layers
from rendiff.io.video import to_uint8
from rendiff.kernels.encodings import (
    depth_to_control,
    flow_to_color,
    ids_to_color,
    inverse_depth_range,
    normal_to_control,
    shading_to_control,
)

__all__ = ["CONTROL_LAYERS", "control_image", "control_image_uint8", "control_images"]

#: Smallest flow magnitude (pixels) that the flow control image shows at full saturation.
FLOW_MIN_NORM = 1.0

#: Layers that can condition generation (the RGB render is the target, not a control).
CONTROL_LAYERS = (Layer.DEPTH, Layer.NORMAL, Layer.SEMANTIC, Layer.INSTANCE, Layer.POSE,
                  Layer.SHADING, Layer.ALBEDO, Layer.FLOW, Layer.ALPHA)


def control_image(layer: Layer | str, data: Tensor) -> Tensor:
    """One layer of a whole clip to its control image [T, H, W, 3] float32 in [0, 1].

    Normalisations (inverse depth range, flow magnitude) are taken over the whole clip so the
    encoding does not flicker from frame to frame."""
    layer = Layer(layer)
    if layer == Layer.DEPTH:
        return depth_to_control(data)[..., None].expand(*data.shape, 3).contiguous()
    if layer == Layer.NORMAL:
        return normal_to_control(data)
    if layer in (Layer.SEMANTIC, Layer.INSTANCE):
        return ids_to_color(data)
    if layer in (Layer.FLOW, Layer.FLOW_BACKWARD):
        return flow_to_color(data, max_norm=_flow_norm(data))
    if layer in (Layer.SHADING, Layer.ALPHA):
        return shading_to_control(data)
    if layer in (Layer.RGB, Layer.ALBEDO, Layer.POSE):
        return data.clamp(0, 1).float()
    raise ValueError(f"no control encoding for layer {layer.value!r}")


def _flow_norm(data: Tensor) -> float:
    # a floor on the normaliser: a static clip stays white instead of blowing float noise
    # (~1e-4 px) up to full colour
    peak = float(data.norm(dim=-1).max()) if data.numel() else 0.0
    return max(peak, FLOW_MIN_NORM)


def control_image_uint8(layer: Layer | str, data: Tensor, chunk: int = 4) -> np.ndarray:
    """:func:`control_image` as uint8 [T, H, W, 3] (:func:`rendiff.io.video.to_uint8`, what
    videos and contact sheets take), encoded ``chunk`` frames at a time with the whole clip's
    normalisation: the same bytes as converting the whole float clip, without holding it (a
    720p clip's depth map is 0.2 GB of float32 before its temporaries)."""
    layer = Layer(layer)
    T = data.shape[0]
    out = np.empty((T, *data.shape[1:3], 3), dtype=np.uint8)
    if layer == Layer.DEPTH:
        inv_range = inverse_depth_range(data)

        def encode(part: Tensor) -> Tensor:
            if inv_range is None:
                return torch.zeros(*part.shape, 3, device=part.device)
            return depth_to_control(part, inv_range=inv_range)[..., None].expand(*part.shape, 3)
    elif layer in (Layer.FLOW, Layer.FLOW_BACKWARD):
        norm = _flow_norm(data)

        def encode(part: Tensor) -> Tensor:
            return flow_to_color(part, max_norm=norm)
    else:
        def encode(part: Tensor) -> Tensor:
            return control_image(layer, part)
    with torch.no_grad():
        for a in range(0, T, max(1, chunk)):
            part = encode(data[a:a + chunk])
            out[a:a + part.shape[0]] = to_uint8(part)
    return out


def control_images(layers: Layers, which: Iterable[Layer | str] | None = None) -> dict[str, Tensor]:
    """Control images of a clip keyed by layer name, for every requested layer (default: every
    control layer that was rendered)."""
    names = [Layer(w) for w in which] if which is not None else [
        layer for layer in CONTROL_LAYERS if layer in layers]
    missing = [n.value for n in names if n not in layers]
    if missing:
        raise ValueError(f"layers not rendered: {missing}; rendered: {[k.value for k in layers]}")
    with torch.no_grad():
        return {n.value: control_image(n, layers[n]) for n in names}
