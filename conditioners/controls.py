"""Control images: each rendered layer in the frozen encoding a video model is conditioned on.

The encodings themselves live in :mod:`rendiff.kernels.encodings` (documented there); this module
maps :class:`~rendiff.engine.layers.Layer` to them, for the model and for the ``maps/`` videos.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import numpy as np
import torch
from torch import Tensor

from rendiff.engine.layers import Layer, Layers
from rendiff.io.video import to_uint8
from rendiff.kernels._dispatch import use_warp_cpu
from rendiff.kernels.encodings import (
    FAR_FLOOR,
    colour_wheel,
    depth_to_control,
    flow_to_color,
    ids_to_color,
    inverse_depth_range,
    normal_to_control,
    palette,
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
    """The clip's flow normaliser: its largest magnitude, computed as the encoding computes each
    pixel's (``sqrt(u * u + v * v)``; ``Tensor.norm`` can round the other way by one ulp and draw
    the largest flow at 0.75 of its colour), never below ``FLOW_MIN_NORM``: a static clip stays
    white instead of blowing float noise (~1e-4 px) up to full colour."""
    peak = 0.0
    if data.numel():
        u, v = data[..., 0].float(), data[..., 1].float()
        peak = float((u * u).add_(v * v).sqrt_().max())
    return max(peak, FLOW_MIN_NORM)


def control_image_uint8(layer: Layer | str, data: Tensor, chunk: int = 4) -> np.ndarray:
    """:func:`control_image` as uint8 [T, H, W, 3] (:func:`rendiff.io.video.to_uint8`, what
    videos and contact sheets take), with the whole clip's normalisation, never holding the
    float clip (a 720p clip's depth map is 0.2 GB of float32 before its temporaries).

    On CPU tensors the compiled kernels (``rendiff.kernels.warp_cpu``, unless
    ``RENDIFF_CPU_KERNELS=torch``) encode straight to uint8 in one pass, the same bytes (flow:
    Warp's atan2 for torch's, so a pixel at a rounding boundary may differ by a level);
    otherwise the encodings run ``chunk`` frames at a time, the same bytes as converting the
    whole float clip."""
    layer = Layer(layer)
    if use_warp_cpu(data.device) and data.dim() >= 1:
        out = _compiled_uint8(layer, data)
        if out is not None:
            return out.numpy()
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


@functools.cache
def _palette_uint8() -> Tensor:
    return torch.from_numpy(to_uint8(palette()))


def _compiled_uint8(layer: Layer, data: Tensor) -> Tensor | None:
    """:func:`control_image_uint8` through the compiled CPU kernels; None for what they do not
    take (other dtypes), which then goes through the torch encodings."""
    from rendiff.kernels import warp_cpu

    floating = data.dtype == torch.float32
    if layer == Layer.DEPTH and floating:
        return warp_cpu.depth_uint8(data, warp_cpu.inverse_depth_range(data), FAR_FLOOR)
    if layer == Layer.NORMAL and floating:
        return warp_cpu.normal_uint8(data)
    if layer in (Layer.SEMANTIC, Layer.INSTANCE) and data.dtype == torch.int32:
        return warp_cpu.ids_uint8(data, _palette_uint8())
    if layer in (Layer.FLOW, Layer.FLOW_BACKWARD) and floating:
        return warp_cpu.flow_uint8(data, colour_wheel(), min_norm=FLOW_MIN_NORM)
    if layer in (Layer.SHADING, Layer.ALPHA) and floating:
        return warp_cpu.clamp_uint8(data, grey=True)
    if layer in (Layer.RGB, Layer.ALBEDO, Layer.POSE) and floating:
        return warp_cpu.clamp_uint8(data)
    return None


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
