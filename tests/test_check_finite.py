"""rendiff.io.outputs.check_finite, the last guard before writing: its fast path (a layer's sum)
never lets NaN or inf through, and never refuses finite values whose sum overflows."""

from __future__ import annotations

import math

import pytest
import torch

import rendiff
from rendiff.engine.layers import Layer
from rendiff.io.outputs import OutputError, check_finite


@pytest.fixture(scope="module")
def rendered():
    scene = rendiff.builtin_scene("falling_objects")
    scene.frames, scene.size = 3, (24, 20)
    return rendiff.render(rendiff.simulate(scene, progress=False), progress=False)


@pytest.mark.parametrize(("layer", "value", "frame"), [
    (Layer.SHADING, float("nan"), 2), (Layer.RGB, float("inf"), 0),
    (Layer.FLOW, float("-inf"), 1), (Layer.DEPTH, float("nan"), 1),
    (Layer.DEPTH, float("-inf"), 2)])
def test_nan_and_inf_are_found_with_their_frame(rendered, layer, value, frame):
    data = rendered[layer].clone()
    try:
        rendered[layer].reshape(rendered.frames, -1)[frame, 7] = value
        with pytest.raises(OutputError, match=rf"layer '{layer.value}' holds NaN or inf at "
                                              rf"frame {frame}"):
            check_finite(rendered)
    finally:
        rendered[layer].copy_(data)


def test_depths_infinity_and_overflowing_sums_pass(rendered):
    assert torch.isinf(rendered[Layer.DEPTH]).any()  # empty pixels: +inf is documented
    data = rendered[Layer.SHADING].clone()
    try:
        rendered[Layer.SHADING].fill_(3e38)  # finite, but the sum overflows to inf
        check_finite(rendered)
    finally:
        rendered[Layer.SHADING].copy_(data)
    check_finite(rendered, torch.full((2, 4, 4, 3), 3e38))
    with pytest.raises(OutputError, match="generated video holds NaN or inf at frame 1"):
        check_finite(rendered, torch.zeros(2, 4, 4, 3).index_fill_(0, torch.tensor([1]), -math.inf))
