"""OpenPose-18 skeleton drawing against the annotator's published tables, an independent PIL
rasterisation, clipping by translation, and (through Triton's interpreter) the torch reference."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from _aot import (
    aot_unavailable,
    assert_same_variants,
    record_launches,
)
from PIL import Image, ImageDraw

from rendiff.kernels import skeleton
from rendiff.kernels.skeleton import (
    COCO17_TO_OPENPOSE18,
    OPENPOSE18_COLORS,
    OPENPOSE18_LIMB_COLORS,
    OPENPOSE18_LIMBS,
    coco17_to_openpose18,
    draw_openpose,
)

# ControlNet 1.1's annotator (controlnet_aux open_pose/util.py draw_bodypose), 1-based limbs.
_ANNOTATOR_LIMBS = [
    [2, 3], [2, 6], [3, 4], [4, 5], [6, 7], [7, 8], [2, 9], [9, 10], [10, 11], [2, 12], [12, 13],
    [13, 14], [2, 1], [1, 15], [15, 17], [1, 16], [16, 18], [3, 17], [6, 18],
]  # fmt: skip
_ANNOTATOR_COLORS = [
    [255, 0, 0], [255, 85, 0], [255, 170, 0], [255, 255, 0], [170, 255, 0], [85, 255, 0],
    [0, 255, 0], [0, 255, 85], [0, 255, 170], [0, 255, 255], [0, 170, 255], [0, 85, 255],
    [0, 0, 255], [85, 0, 255], [170, 0, 255], [255, 0, 255], [255, 0, 170], [255, 0, 85],
]  # fmt: skip

# A standing person in a unit box, OpenPose-18 order; coordinates are multiples of 1/64 so that
# every derived quantity is exact in float32 after scaling by a power of two.
_PERSON = [
    (0.5, 0.125), (0.5, 0.25), (0.375, 0.25), (0.3125, 0.40625), (0.28125, 0.5625),
    (0.625, 0.25), (0.6875, 0.40625), (0.703125, 0.546875), (0.4375, 0.53125), (0.421875, 0.71875),
    (0.40625, 0.90625), (0.5625, 0.53125), (0.578125, 0.71875), (0.59375, 0.90625),
    (0.46875, 0.09375), (0.53125, 0.09375), (0.4375, 0.109375), (0.5625, 0.109375),
]  # fmt: skip


def _person(scale: float, offset: tuple[float, float]) -> torch.Tensor:
    kp = torch.ones(18, 3)
    kp[:, :2] = torch.tensor(_PERSON) * scale + torch.tensor(offset)
    return kp


def _codes(img: torch.Tensor) -> torch.Tensor:
    """Colour image [..., 3] back to shape codes (0 background, 1 + limb, 18 + joint)."""
    palette = torch.cat([torch.zeros(1, 3), OPENPOSE18_LIMB_COLORS, OPENPOSE18_COLORS]).float()
    rgb = (img * 255).round()
    match = (rgb[..., None, :] == palette).all(-1)  # [..., 36]
    assert bool(match.any(-1).all()), "a pixel has a colour outside the OpenPose palette"
    return match.float().argmax(-1)


def test_tables_match_the_annotator():
    one_based = [(a + 1, b + 1) for a, b in OPENPOSE18_LIMBS]
    assert one_based == [tuple(p) for p in _ANNOTATOR_LIMBS[:17]]
    assert OPENPOSE18_COLORS.tolist() == _ANNOTATOR_COLORS
    # The annotator dims the limb layer with (canvas * 0.6).astype(uint8).
    dimmed = (np.array(_ANNOTATOR_COLORS[:17], dtype=np.uint8) * 0.6).astype(np.uint8)
    assert OPENPOSE18_LIMB_COLORS.tolist() == dimmed.tolist()


def test_coco17_to_openpose18():
    names17 = (
        "nose l_eye r_eye l_ear r_ear l_sho r_sho l_elb r_elb l_wri r_wri l_hip r_hip l_kne r_kne"
        " l_ank r_ank"
    ).split()
    names18 = (
        "nose neck r_sho r_elb r_wri l_sho l_elb l_wri r_hip r_kne r_ank l_hip l_kne l_ank r_eye"
        " l_eye r_ear l_ear"
    ).split()
    expected = [names17.index(n) if n != "neck" else -1 for n in names18]
    assert list(COCO17_TO_OPENPOSE18) == expected

    kp = torch.rand(2, 3, 17, 3)
    kp[..., 2] = 1.0
    kp[1, 2, 6, 2] = 0.2  # right shoulder hidden in one frame
    out = coco17_to_openpose18(kp)
    assert out.shape == (2, 3, 18, 3)
    for j, c in enumerate(expected):
        if c >= 0:
            torch.testing.assert_close(out[..., j, :], kp[..., c, :])
    torch.testing.assert_close(out[..., 1, :2], (kp[..., 5, :2] + kp[..., 6, :2]) / 2)
    assert float(out[1, 2, 1, 2]) == pytest.approx(0.2)
    assert bool((out[0, :, 1, 2] == 1.0).all())


def _pil_codes(kp: torch.Tensor, width: int, height: int, stickwidth: float, radius: float):
    """Independent rasterisation with PIL: ellipses as 720-gon outlines painted in the same order
    on an 8x finer canvas, then sampled at our pixel centres. (PIL snaps polygon fills by up to
    half a pixel; at 8x that is 1/16 of ours.) Fine pixel k is centred at k, so our continuous
    coordinate u lands at 8 u and our pixel centre j + 0.5 at fine pixel 8 j + 4."""
    ss = 8
    img = Image.new("L", (width * ss, height * ss), 0)
    draw = ImageDraw.Draw(img)
    pts = kp[:, :2].double().numpy() * ss
    angles = np.linspace(0, 2 * np.pi, 720, endpoint=False)

    def ellipse(centre, phi, semi_a, semi_b, code):
        ex, ey = math.cos(phi), math.sin(phi)
        s, t = semi_a * np.cos(angles), semi_b * np.sin(angles)
        poly = np.stack([centre[0] + s * ex - t * ey, centre[1] + s * ey + t * ex], 1)
        draw.polygon([tuple(p) for p in poly], fill=code)

    for limb, (a, b) in enumerate(OPENPOSE18_LIMBS):
        phi = math.atan2(pts[b][1] - pts[a][1], pts[b][0] - pts[a][0])
        length = np.linalg.norm(pts[b] - pts[a])
        ellipse((pts[a] + pts[b]) / 2, phi, length / 2, stickwidth * ss, 1 + limb)
    for j in range(18):
        ellipse(pts[j], 0.0, radius * ss, radius * ss, 18 + j)
    fine = torch.from_numpy(np.array(img)).long()
    return fine[ss // 2 :: ss, ss // 2 :: ss]


@pytest.mark.parametrize("stickwidth,radius", [(4.0, 4.0), (3.0, 5.0)])
def test_single_person_matches_independent_rasterisation(stickwidth, radius):
    width, height = 160, 200
    kp = _person(176.0, (-8.0, 6.0))
    ours = _codes(draw_openpose(kp[None, None], width, height, stickwidth, radius)[0])
    pil = _pil_codes(kp, width, height, stickwidth, radius)
    assert bool((ours > 0).any())
    differ = ours != pil
    # Disagreements are edge pixels only: each has our code among PIL's 3 x 3 neighbours.
    pad = torch.nn.functional.pad(pil, (1, 1, 1, 1), value=-1)
    neigh = torch.stack([pad[i : i + height, j : j + width] for i in range(3) for j in range(3)])
    assert bool((neigh == ours).any(0)[differ].all())
    assert float(differ.sum()) < 0.04 * float(((ours > 0) | (pil > 0)).sum())
    # The same shapes show (small face limbs can hide under big joint discs).
    assert set(ours.unique().tolist()) == set(pil.unique().tolist())
    assert len(set(ours.unique().tolist())) > 30


def test_colours_are_exact():
    width, height = 128, 128
    kp = _person(128.0, (0.0, 0.0))
    img = draw_openpose(kp[None, None], width, height)[0]
    # Joint pixels in their full colour, drawn over the limbs (and under later joints).
    checked = 0
    for j in range(18):
        if bool(((kp[j + 1 :, :2] - kp[j, :2]).norm(dim=-1) < 9.0).any()):
            continue
        x, y = kp[j, :2].tolist()
        want = OPENPOSE18_COLORS[j] / 255.0
        torch.testing.assert_close(img[int(y), int(x)], want, rtol=0, atol=0)
        checked += 1
    assert checked >= 14
    torch.testing.assert_close(img[32, 64] * 255, torch.tensor([255.0, 85.0, 0.0]))  # neck
    # The middle of the left upper leg (limb 10: l-hip -> l-knee) in the dimmed colour.
    mid = (kp[11, :2] + kp[12, :2]) / 2
    leg = img[int(mid[1]), int(mid[0])] * 255
    torch.testing.assert_close(leg, torch.tensor([0.0, 102.0, 153.0]))
    torch.testing.assert_close(img[0, 0], torch.zeros(3))
    # Every pixel has a palette colour (checked inside _codes), and most of the image is black.
    assert float((_codes(img) == 0).float().mean()) > 0.7


def test_invisible_keypoints_draw_nothing():
    width, height = 96, 96
    kp = _person(96.0, (0.0, 0.0))
    kp[3, 2] = 0.49  # right elbow hidden: joint 3 and limbs 2 (r-sho -> r-elb), 3 (r-elb -> r-wri)
    codes = _codes(draw_openpose(kp[None, None], width, height)[0])
    present = set(codes.unique().tolist())
    assert 18 + 3 not in present and 1 + 2 not in present and 1 + 3 not in present
    assert {18 + 2, 18 + 4, 1 + 0} <= present
    kp[:, 2] = 0.0
    assert float(draw_openpose(kp[None, None], width, height).abs().sum()) == 0.0
    kp[:, 2] = 1.0
    kp[5, 0] = float("nan")  # a non-finite keypoint counts as hidden
    codes = _codes(draw_openpose(kp[None, None], width, height)[0])
    assert 18 + 5 not in set(codes.unique().tolist())


def test_people_beyond_the_frame_clip():
    big = _person(128.0, (32.0, 48.0))
    full = draw_openpose(big[None, None], 200, 200)[0]
    shifted = big.clone()
    shifted[:, :2] -= torch.tensor([96.0, 112.0])
    part = draw_openpose(shifted[None, None], 64, 48)[0]
    torch.testing.assert_close(part, full[112:160, 96:160], rtol=0, atol=0)
    assert float(part.sum()) > 0
    away = big.clone()
    away[:, 0] += 1000.0
    assert float(draw_openpose(away[None, None], 64, 48).sum()) == 0.0


def test_frames_and_people_batch():
    a, b = _person(64.0, (0.0, 0.0)), _person(64.0, (64.0, 8.0))
    both = draw_openpose(torch.stack([torch.stack([a, b]), torch.stack([b, a])]), 128, 80)
    one_a = draw_openpose(a[None, None], 128, 80)[0]
    one_b = draw_openpose(b[None, None], 128, 80)[0]
    torch.testing.assert_close(both[0], torch.maximum(one_a, one_b), rtol=0, atol=0)
    torch.testing.assert_close(both[1], both[0], rtol=0, atol=0)
    # Overlapping people: shapes are painted shape-major (limbs by index, then joints by index),
    # person-minor, so where people overlap the shape drawn last is the one with the larger code.
    c = a.clone()
    c[:, 0] += 3.0
    codes = _codes(draw_openpose(torch.stack([a, c])[None], 128, 80)[0])
    solo_a = _codes(draw_openpose(a[None, None], 128, 80)[0])
    solo_c = _codes(draw_openpose(c[None, None], 128, 80)[0])
    assert bool(((solo_a > 0) & (solo_c > 0) & (solo_a != solo_c)).any())
    torch.testing.assert_close(codes, torch.maximum(solo_a, solo_c), rtol=0, atol=0)


_TRITON_SCRIPT = textwrap.dedent(
    """
    import sys, torch
    from rendiff.kernels.skeleton import draw_openpose, _use_triton
    assert _use_triton(torch.device("cpu"))
    kp = torch.load(sys.argv[1])
    torch.save(draw_openpose(kp, 24, 20), sys.argv[2])
    """
)


def test_triton_kernel_through_interpreter_matches_reference(tmp_path):
    gen = torch.Generator().manual_seed(3)
    kp = torch.rand(2, 2, 18, 3, generator=gen) * torch.tensor([40.0, 34.0, 1.4])
    kp[..., :2] -= 8.0  # some keypoints off the 24 x 20 canvas
    kp[0, 1, :, :2] = kp[0, 0, :, :2] + 2.0  # overlapping people
    torch.save(kp, tmp_path / "kp.pt")
    env = dict(os.environ, RENDIFF_TRITON="interpret", TRITON_INTERPRET="1")
    proc = subprocess.run(
        [sys.executable, "-c", _TRITON_SCRIPT, str(tmp_path / "kp.pt"), str(tmp_path / "out.pt")],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = torch.load(tmp_path / "out.pt")
    want = draw_openpose(kp, 24, 20)
    assert float((want > 0).any(-1).float().mean()) > 0.3
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_aot_variants_match_the_launch(monkeypatch):
    """`skeleton._AOT_VARIANTS` lists exactly what `draw_openpose` launches."""
    if aot_unavailable(skeleton._skeleton_kernel):
        pytest.skip(aot_unavailable(skeleton._skeleton_kernel))
    monkeypatch.setenv("RENDIFF_TRITON", "interpret")
    launches = record_launches(monkeypatch, skeleton)
    kp = _person(20.0, (2.0, 1.0))
    img = draw_openpose(torch.stack([kp, kp + 3.0])[None].expand(2, 2, 18, 3), 24, 30)
    assert img.shape == (2, 30, 24, 3) and bool((img > 0).any())
    assert_same_variants(launches, skeleton._AOT_VARIANTS)
