"""Control maps encoded a few frames at a time or by the compiled kernels (what rendiff.save
writes) are byte for byte the whole clip's float encoding converted to uint8: the clip-wide
normalisations (inverse-depth range, flow magnitude) are taken over the whole clip first."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import rendiff
from rendiff import Layer
from rendiff.conditioners.controls import CONTROL_LAYERS, control_image, control_image_uint8
from rendiff.io.video import to_uint8
from rendiff.kernels import _dispatch
from rendiff.kernels.encodings import depth_to_control, inverse_depth_range


@pytest.fixture(scope="module")
def layers():
    scene = rendiff.builtin_scene("walking_human").model_copy(update={"frames": 5,
                                                                      "size": (40, 28)})
    return rendiff.render(rendiff.simulate(scene, progress=False), progress=False)


@pytest.mark.parametrize(("kernels", "chunk"),
                         [("torch", 1), ("torch", 2), ("torch", 4), ("torch", 16), ("warp", 4)])
def test_chunked_maps_equal_the_whole_clip_encoding(layers, monkeypatch, kernels, chunk):
    """The torch encodings chunk by chunk, and the compiled ones in one pass, give the bytes of
    the whole float clip converted."""
    monkeypatch.setenv(_dispatch.CPU_ENV, kernels)
    for layer in (*CONTROL_LAYERS, Layer.FLOW_BACKWARD, Layer.RGB):
        whole = to_uint8(control_image(layer, layers[layer]))
        parts = control_image_uint8(layer, layers[layer], chunk=chunk)
        assert parts.dtype == np.uint8 and parts.shape == whole.shape, layer
        np.testing.assert_array_equal(parts, whole, err_msg=layer.value)


@pytest.mark.parametrize("mode", ["off", "interpret"])
def test_depth_with_the_clip_range_equals_the_whole_clip(monkeypatch, mode):
    monkeypatch.setenv(_dispatch.ENV, mode)
    g = torch.Generator().manual_seed(0)
    depth = 1 + 4 * torch.rand(6, 9, 11, generator=g)
    depth[0, :2] = float("inf")  # empty pixels
    depth[5] = 2.5  # a frame of one depth: its own range would be empty
    whole = depth_to_control(depth)
    inv_range = inverse_depth_range(depth)
    for a in range(6):
        part = depth_to_control(depth[a:a + 1], inv_range=inv_range)
        torch.testing.assert_close(part, whole[a:a + 1], rtol=0, atol=0)
    assert inverse_depth_range(torch.full((2, 3, 3), float("inf"))) is None
    empty = torch.full((2, 3, 3), float("inf"))
    assert control_image_uint8(Layer.DEPTH, empty).max() == 0
