"""Wan VACE from a local folder (diffusers' WanVACEPipeline), on tiny random parts written by
tools/make_tiny_wan_vace.py: the setup file, VACE's per-frame encodings, the mask and reference
image, frame counts and sizes the model cannot take, provenance, and bad setups."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from _tools import load_tool

import rendiff
from rendiff.cli import main
from rendiff.conditioners.pretrained import ModelError, load_spec
from rendiff.conditioners.wan_vace import (
    generate_wan_vace,
    letterbox,
    load_wan_vace,
    vace_control,
    vace_mask,
)
from rendiff.engine.layers import Layer

ROOT = Path(__file__).resolve().parents[1]


def _tool():
    return load_tool("make_tiny_wan_vace")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return _tool().write_tiny_wan_vace(tmp_path_factory.mktemp("models") / "tiny", seed=0)


@pytest.fixture(scope="module")
def pipe(tiny):
    return load_wan_vace(tiny / "model")


@pytest.fixture(scope="module")
def layers():
    """falling_objects, 6 frames at 40x24: neither 4k + 1 frames nor a multiple of 16."""
    scene = rendiff.builtin_scene("falling_objects").model_copy(
        update={"frames": 6, "size": (40, 24)})
    return rendiff.render(rendiff.simulate(scene, progress=False), progress=False)


def _spy(monkeypatch, pipe) -> list[dict]:
    """Records every call's keyword arguments to the pipeline (then calls it)."""
    calls: list[dict] = []
    real = type(pipe).__call__

    def spy(self, *args, **kw):
        calls.append(kw)
        return real(self, *args, **kw)

    monkeypatch.setattr(type(pipe), "__call__", spy)
    return calls


def _arrays(images) -> np.ndarray:
    return np.stack([np.asarray(im, dtype=np.float32) / 255.0 for im in images])


# ---------------------------------------------------------------- encodings


def test_depth_is_normalised_frame_by_frame():
    """Inverse depth min-max per frame: each frame's nearest point is 1, its farthest 0, empty
    pixels 0, whatever the other frames hold (VACE's annotators run frame by frame)."""
    depth = torch.full((3, 4, 5), math.inf)
    depth[0, 1:, :] = torch.linspace(1.0, 2.0, 15).view(3, 5)
    depth[1, 1:, :] = torch.linspace(10.0, 40.0, 15).view(3, 5)  # 10x farther: same image
    depth[2, 1:, :] = 3.0  # one depth: all 1
    out = vace_control("depth", depth)
    assert out.shape == (3, 4, 5, 3) and torch.equal(out[..., 0], out[..., 2])
    for k in range(2):
        inv = 1.0 / depth[k, 1:]
        expected = (inv - inv.min()) / (inv.max() - inv.min())
        torch.testing.assert_close(out[k, 1:, :, 0], expected, rtol=0, atol=1e-6)
        assert bool((out[k, 0] == 0).all())
    assert bool((out[2, 1:] == 1).all())
    # The clip-wide encoding (rendiff's own ControlNet one) is not per frame.
    from rendiff.conditioners.controls import control_image

    assert not torch.allclose(control_image(Layer.DEPTH, depth)[1], out[1])


def test_flow_is_normalised_frame_by_frame_with_vaces_timing():
    """VACE's flow frame t is the flow from t - 1 to t (frame 0 repeats frame 1's): the engine's
    forward flow of frame t - 1. Each frame is normalised by its own largest flow."""
    from rendiff.conditioners.wan_vace import flow_to_middlebury

    g = torch.Generator().manual_seed(0)
    flow = torch.randn(1, 6, 7, 2, generator=g) * 3.0
    clip = torch.cat([flow, flow * 10.0, torch.zeros_like(flow)])  # forward flow of frames 0-2
    out = vace_control("flow", clip)
    first = flow_to_middlebury(flow[0], float(flow[0].norm(dim=-1).max()) + 1e-5)
    torch.testing.assert_close(out[0], first)
    torch.testing.assert_close(out[1], first)  # the flow 0 -> 1
    torch.testing.assert_close(out[2], out[1], rtol=0, atol=1 / 255)  # 10x: the same image
    assert float((out[2] - 1).abs().max()) > 0.3  # and not the white of a still frame
    still = vace_control("flow", torch.zeros(2, 4, 4, 2))
    assert bool((still == 1).all())


def test_the_middlebury_coding_matches_a_float64_transcription_of_its_definition():
    """Random flow, angles near +-pi (the wheel's wrap from colour 54 to 0) and radii near 1,
    against the published coding evaluated in float64 numpy, one pixel at a time."""
    from rendiff.conditioners.wan_vace import flow_to_middlebury, middlebury_wheel

    wheel = middlebury_wheel().double().numpy()
    g = torch.Generator().manual_seed(1)
    ang = torch.cat([torch.rand(200, generator=g) * 2 * math.pi - math.pi,
                     torch.tensor([math.pi - 1e-4, -math.pi + 1e-4, 0.0, math.pi / 2])])
    rad = torch.cat([torch.rand(200, generator=g) * 1.4, torch.tensor([1.0, 0.999, 1.001, 0.5])])
    rad[rad == 1.0] = 0.9999
    flow = torch.stack([rad * torch.cos(ang), rad * torch.sin(ang)], -1)
    got = flow_to_middlebury(flow, 1.0).double().numpy()
    checked = 0
    for (u, v), row in zip(flow.double().numpy(), got, strict=True):
        r = math.hypot(u, v)
        if abs(r - 1) < 1e-5:  # the coding jumps there (darkened past 1): rounding picks a side
            continue
        checked += 1
        fk = (math.atan2(-v, -u) / math.pi + 1) / 2 * 54
        k0 = int(math.floor(fk))
        k1 = 0 if k0 + 1 == 55 else k0 + 1
        f = fk - k0
        col = (1 - f) * wheel[k0] / 255 + f * wheel[k1] / 255
        col = 1 - r * (1 - col) if r <= 1 else col * 0.75
        expected = np.floor(255 * col)
        assert np.abs(row * 255 - expected).max() <= 1.0, (u, v, row * 255, expected)
    assert checked >= 200


def test_the_middlebury_wheel_and_its_colours_by_hand():
    """Baker et al.'s wheel (15 red-yellow, 6 yellow-green, 4 green-cyan, 11 cyan-blue, 13
    blue-magenta, 6 magenta-red) and flow colours worked out by hand from the published coding:
    right -> index 0 (red); left -> atan2(0, 1) = 0 -> index 27 = cyan-blue step 2 (0, 209, 255);
    down -> (-0.5 + 1) / 2 * 54 = 13.5, halfway between red-yellow steps 13 (g 221) and 14
    (g 238): (255, 229, 0); half the largest magnitude blends halfway to white; zero is white."""
    from rendiff.conditioners.wan_vace import flow_to_middlebury, middlebury_wheel

    wheel = middlebury_wheel()
    assert wheel.shape == (55, 3)
    assert wheel[0].tolist() == [255, 0, 0] and wheel[15].tolist() == [255, 255, 0]
    assert wheel[21].tolist() == [0, 255, 0] and wheel[25].tolist() == [0, 255, 255]
    assert wheel[36].tolist() == [0, 0, 255] and wheel[49].tolist() == [255, 0, 255]
    flow = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.5, 0.0], [0.0, 0.0]])
    got = (flow_to_middlebury(flow, 1.0) * 255).round().tolist()
    assert got == [[255, 0, 0], [0, 209, 255], [255, 229, 0], [255, 127, 127], [255, 255, 255]]
    beyond = (flow_to_middlebury(torch.tensor([[2.0, 0.0]]), 1.0) * 255).round().tolist()
    assert beyond == [[191, 0, 0]]  # past max_norm: darkened to 0.75


def test_letterbox_keeps_the_aspect_on_white():
    red = torch.zeros(10, 20, 3)
    red[..., 0] = 1.0
    out = letterbox(red, 40, 40)  # 20x10 -> 40x20, centred: rows 10..29
    tall = letterbox(red.transpose(0, 1), 30, 12)  # 10x20 -> 6x12 (int of 0.6 x), left 12
    assert out.shape == (40, 40, 3)
    assert bool((out[:10] == 1).all()) and bool((out[30:] == 1).all())
    torch.testing.assert_close(out[10:30], red.new_tensor([1.0, 0.0, 0.0]).expand(20, 40, 3))
    assert bool((tall[:, :12] == 1).all()) and bool((tall[:, 18:] == 1).all())
    assert bool((tall[:, 12:18, 1] == 0).all())


def test_mask_keeps_exactly_the_named_entities(layers):
    names = layers.entity_names
    keep = [n for n in names if n.startswith("sphere")][:1]
    mask = vace_mask(layers, keep)
    inst = layers[Layer.INSTANCE]
    kept = inst == names.index(keep[0]) + 1
    assert bool(kept.any())
    assert torch.equal(mask == 0, kept)
    assert bool((vace_mask(layers, []) == 1).all())
    with pytest.raises(ValueError, match="keep: no entity named 'sphere_9'"):
        vace_mask(layers, ["sphere_9"])


# ---------------------------------------------------------------- generation


def test_the_model_receives_exactly_the_frozen_encodings_padded(pipe, layers, monkeypatch):
    """6 frames at 40x24 go in as 9 frames (4k + 1, the last repeated) at 48x32 (multiples of
    16, edges repeated), and come back cropped to 6 frames at 40x24."""
    calls = _spy(monkeypatch, pipe)
    out = generate_wan_vace(pipe, layers, control="depth", steps=2, guidance_scale=1.0,
                            max_sequence_length=32, progress=False)
    assert out.shape == (6, 24, 40, 3) and bool(torch.isfinite(out).all())
    kw = calls[0]
    assert (kw["num_frames"], kw["height"], kw["width"]) == (9, 32, 48)
    video, mask = _arrays(kw["video"]), _arrays(kw["mask"])
    expected = vace_control("depth", layers[Layer.DEPTH]).numpy()
    assert video.shape == (9, 32, 48, 3)
    np.testing.assert_allclose(video[:6, :24, :40], expected, atol=0.5 / 255 + 1e-6)
    np.testing.assert_array_equal(video[6:], np.repeat(video[5:6], 3, 0))  # last frame repeated
    np.testing.assert_array_equal(video[:, 24:, :40], np.repeat(video[:, 23:24, :40], 8, 1))
    assert bool((mask == 1).all()) and kw["reference_images"] is None


def test_kept_entities_carry_the_render_under_a_black_mask(pipe, layers, monkeypatch, tmp_path):
    calls = _spy(monkeypatch, pipe)
    keep = [n for n in layers.entity_names if n.startswith("sphere")][:1]
    ref = tmp_path / "look.png"
    from PIL import Image

    Image.fromarray(np.full((10, 30, 3), (0, 0, 255), np.uint8)).save(ref)
    generate_wan_vace(pipe, layers, control="depth", keep=keep, reference=ref, steps=1,
                      guidance_scale=1.0, max_sequence_length=32, progress=False)
    kw = calls[0]
    video, mask = _arrays(kw["video"])[:6, :24, :40], _arrays(kw["mask"])[:6, :24, :40, 0]
    kept = (layers[Layer.INSTANCE] == layers.entity_names.index(keep[0]) + 1).numpy()
    np.testing.assert_array_equal(mask == 0, kept)
    np.testing.assert_allclose(video[kept], layers[Layer.RGB].numpy()[kept], atol=0.5 / 255 + 1e-6)
    refs = _arrays(kw["reference_images"])
    assert refs.shape == (1, 32, 48, 3)
    assert bool((refs[0, 0] == 1).all()) and refs[0, 16, 24, 2] == 1 and refs[0, 16, 24, 0] == 0


def test_weight_zero_equals_no_control(pipe, layers):
    """At conditioning scale 0 the control video adds nothing: depth and flow controls give the
    same frames; at 1 they differ."""
    def run(control, scale):
        return generate_wan_vace(pipe, layers, control=control, conditioning_scale=scale,
                                 steps=2, seed=3, guidance_scale=1.0, max_sequence_length=32,
                                 progress=False)

    torch.testing.assert_close(run("depth", 0.0), run("flow", 0.0), rtol=0, atol=1e-6)
    assert float((run("depth", 1.0) - run("flow", 1.0)).abs().max()) > 1e-3


def test_pose_is_the_skeleton_with_vaces_channel_order():
    """VACE's pose annotator draws OpenPose's colours and reverses the canvas' channels before
    the RGB video is written: the neck-to-right-shoulder limb, red (153, 0, 0) in ControlNet's
    drawing, is blue (0, 0, 153) in VACE's."""
    pose = torch.zeros(1, 4, 4, 3)
    pose[0, 1, 1] = torch.tensor([153.0, 0.0, 0.0]) / 255
    pose[0, 2, 2] = torch.tensor([255.0, 85.0, 0.0]) / 255
    out = (vace_control("pose", pose) * 255).round()
    assert out[0, 1, 1].tolist() == [0, 0, 153] and out[0, 2, 2].tolist() == [0, 85, 255]
    assert bool((out[0, 0] == 0).all())


def test_a_weight_mask_becomes_vaces_per_token_scale(pipe, layers, monkeypatch, tmp_path):
    """weight_mask instance:<entity> with strength 0.8: the pipeline gets a per-token scale
    [layers, 1, tokens, 1], the entity's share of each 16 x 16 token (and of the frames its
    latent frame packs) times 0.8; a reference image's latent frame, which VACE puts first,
    keeps the plain 0.8; and the output differs from the same strength everywhere."""
    from PIL import Image

    from rendiff.conditioners.framing import pad_clip
    from rendiff.conditioners.token_weights import pool_to_tokens, region_mask

    inst = layers[Layer.INSTANCE]
    counts = {n: int((inst == i + 1).sum()) for i, n in enumerate(layers.entity_names)}
    name = min((c, n) for n, c in counts.items() if c > 0)[1]
    calls = _spy(monkeypatch, pipe)
    ref = tmp_path / "look.png"
    Image.fromarray(np.full((10, 30, 3), 128, np.uint8)).save(ref)
    args = dict(control="depth", conditioning_scale=0.8, steps=2, seed=1, guidance_scale=1.0,
                max_sequence_length=32, progress=False)
    masked = generate_wan_vace(pipe, layers, weight_mask=f"instance:{name}", reference=ref,
                               **args)
    scale = calls[0]["conditioning_scale"]
    layers_n = len(pipe.transformer.config.vace_layers)
    pixel = pad_clip(region_mask(layers, f"instance:{name}")[..., None], 9, 32, 48)[..., 0]
    tokens = 0.8 * pool_to_tokens(pixel, temporal=4, spatial=16)  # [3, 2, 3]
    expected = torch.cat([torch.full((1, 2, 3), 0.8), tokens]).reshape(1, 1, -1, 1)
    assert scale.shape == (layers_n, 1, 4 * 2 * 3, 1)
    torch.testing.assert_close(scale, expected.expand(layers_n, -1, -1, -1))
    assert bool((tokens == 0).any()) and bool((tokens > 0).any())
    plain = generate_wan_vace(pipe, layers, reference=ref, **args)
    assert calls[1]["conditioning_scale"] == 0.8
    assert float((masked - plain).abs().max()) > 1e-4
    # the same map given from Python: the same scale; a map of another shape is one line
    generate_wan_vace(pipe, layers, weight_mask=region_mask(layers, f"instance:{name}"),
                      reference=ref, **args)
    torch.testing.assert_close(calls[2]["conditioning_scale"], scale)
    with pytest.raises(ModelError, match=r"weight_mask: a weight map must be \[T, H, W\]"):
        generate_wan_vace(pipe, layers, weight_mask=torch.ones(6, 40, 24), **args)


def test_rendiff_run_with_the_setup_writes_video_and_provenance(tiny, tmp_path):
    out = tmp_path / "run"
    assert main(["run", "falling_objects", "-o", str(out), "--model", str(tiny), "--frames", "9",
                 "--size", "64x64", "--quiet"]) == 0
    import imageio.v3 as iio

    frames = iio.imread(out / "generated.mp4")
    assert frames.shape[:3] == (9, 64, 64)
    assert iio.imread(out / "maps" / "model_depth.mp4").shape[:3] == (9, 64, 64)
    mask = iio.imread(out / "maps" / "model_mask.mp4")
    assert mask.min() > 240  # nothing kept: all white (generate)
    meta = json.loads((out / "metadata.json").read_text())
    gen = meta["generation"]
    setup = tiny / "rendiff_pretrained.yaml"
    assert gen["kind"] == "wan_vace" and gen["setup_file"] == str(setup.resolve())
    assert gen["setup_sha256"] == hashlib.sha256(setup.read_bytes()).hexdigest()
    assert gen["model"] == str((tiny / "model").resolve())
    assert (gen["control"], gen["steps"], gen["guidance_scale"], gen["seed"]) == (
        "depth", 2, 1.0, 0)
    assert gen["prompt"] == "a robot arm stacking blocks" and gen["negative_prompt"] == "blurry"
    assert gen["scheduler"] == "UniPCMultistepScheduler"


def test_the_default_model_records_its_provenance_too(tmp_path):
    out = tmp_path / "run"
    assert main(["run", "falling_objects", "-o", str(out), "--frames", "4", "--size", "32x32",
                 "--steps", "1", "--quiet"]) == 0
    gen = json.loads((out / "metadata.json").read_text())["generation"]
    assert gen["kind"] == "rendiff" and gen["steps"] == 1 and gen["seed"] == 0
    assert gen["maps"] and gen["scheduler"] == "DDIMScheduler"


# ---------------------------------------------------------------- bad setups


def _setup(tmp: Path, text: str) -> Path:
    p = tmp / "rendiff_pretrained.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("text, words", [
    ("kind: wan_vac\nmodel: m\n", "kind: unknown kind 'wan_vac' (did you mean 'wan_vace'?)"),
    ("kind: wan_vace\nmodel: m\ncontrol: normal\n", "control: Input should be 'depth', 'pose' or"),
    ("kind: wan_vace\nmodel: m\npromt: x\n", "promt: unknown field (did you mean 'prompt'?)"),
    ("kind: wan_vace\nmodel: m\nsteps: '20'\n", "steps: Input should be a valid integer"),
    ("kind: wan_vace\nmodel: m\nkeep: [a, a]\n", "keep: Value error, an entity is named twice"),
])
def test_a_bad_setup_file_is_one_line_naming_the_field(text, words, tmp_path):
    with pytest.raises(ModelError) as e:
        load_spec(_setup(tmp_path, text))
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(str(tmp_path)), msg
    assert words.replace("Value error, ", "") in msg, msg


def test_a_bad_model_folder_is_one_line_before_any_work(tiny, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(tiny, broken)
    cases = [
        ("model: nowhere\n", "Wan VACE model folder not found"),
        ("model: model/vae\n", "holds a AutoencoderKLWan; expected a WanVACEPipeline folder"),
    ]
    for body, words in cases:
        _setup(broken, f"kind: wan_vace\n{body}")
        assert main(["run", "falling_objects", "-o", str(tmp_path / "o"), "--model",
                     str(broken)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0], err
    _setup(broken, "kind: wan_vace\nmodel: model\n")
    for f in (broken / "model" / "transformer").glob("*.safetensors"):
        f.unlink()
    assert main(["run", "falling_objects", "-o", str(tmp_path / "o"), "--model",
                 str(broken)]) == 2
    assert "transformer: no *.safetensors weights" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_a_data_set_generates_with_the_setup_and_keeps_its_labels(tiny, tmp_path):
    """``rendiff dataset --generate --model SETUP``: each clip's generated/ frames beside its
    exact labels, and what made them in its metadata.json."""
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: t\ngenerator: falling_objects\nframes: 5\nsize: [48, 32]\n")
    out = tmp_path / "ds"
    assert main(["dataset", str(spec), "-o", str(out), "--clips", "1", "--generate", "--model",
                 str(tiny), "--quiet"]) == 0
    clip = out / "clips" / "000000"
    meta = json.loads((clip / "metadata.json").read_text())
    assert meta["generation"]["kind"] == "wan_vace" and meta["generation"]["control"] == "depth"
    assert len(list((clip / "generated").glob("*.png"))) == 5
    assert main(["dataset", "--verify", str(out)]) == 0


def test_a_small_clip_is_generated_near_the_models_area_and_scaled_back(pipe, layers,
                                                                       monkeypatch):
    """40x24 with area 4096: scaled by sqrt(4096 / 960) = 2.07 to 80x48 (multiples of 16),
    generated there, and the frames scaled back to 40x24."""
    calls = _spy(monkeypatch, pipe)
    out = generate_wan_vace(pipe, layers, control="depth", steps=1, guidance_scale=1.0,
                            max_sequence_length=32, area=4096, progress=False)
    assert out.shape == (6, 24, 40, 3)
    kw = calls[0]
    assert (kw["num_frames"], kw["height"], kw["width"]) == (9, 48, 80)
    assert _arrays(kw["video"]).shape == (9, 48, 80, 3)


@pytest.mark.parametrize("frames, sent", [(9, 9), (1, 1), (2, 5)])
def test_frame_counts_go_in_as_4k_plus_1(pipe, frames, sent, monkeypatch):
    scene = rendiff.builtin_scene("falling_objects").model_copy(
        update={"frames": frames, "size": (32, 32)})
    lay = rendiff.render(rendiff.simulate(scene, progress=False), progress=False)
    calls = _spy(monkeypatch, pipe)
    out = generate_wan_vace(pipe, lay, steps=1, guidance_scale=1.0, max_sequence_length=32,
                            progress=False)
    assert calls[0]["num_frames"] == sent and out.shape == (frames, 32, 32, 3)


def test_setup_overrides_and_the_record_say_what_was_used(tiny, layers):
    from rendiff.conditioners.wan_vace import generate_from_wan_spec

    spec = load_spec(tiny / "rendiff_pretrained.yaml").model_copy(update={"flow_shift": 5.0})
    record: dict = {}
    generate_from_wan_spec(layers, spec, maps=["flow"], weights={"flow": 0.5}, steps=1,
                           progress=False, record=record)
    assert (record["control"], record["conditioning_scale"], record["flow_shift"]) == (
        "flow", 0.5, 5.0)
    assert record["steps"] == 1 and record["maps"] == ["flow"]
    with pytest.raises(ModelError, match="Wan VACE takes one control video"):
        generate_from_wan_spec(layers, spec, maps=["depth", "pose"])
    with pytest.raises(ModelError, match=r"weights given for map\(s\) \['depth'\]"):
        generate_from_wan_spec(layers, spec, maps=["flow"], weights={"depth": 1.0})
    with pytest.raises(ModelError, match="keyframes: only SparseCtrl"):
        rendiff.generate(layers, model=tiny, keyframes=[0])
    with pytest.raises(ModelError, match="scheduler: a Wan VACE setup samples"):
        rendiff.generate(layers, model=tiny, scheduler="ddim")


@pytest.mark.parametrize("extra, words", [
    ("keep: [nobody]\n", "keep: no entity named 'nobody'"),
    ("weight_masks: {depth: 'instance:spher'}\n",
     "weight_masks.depth: no entity named 'spher' (did you mean 'sphere_4'?)"),
    ("reference: missing.png\n", "missing.png: not a readable image"),
])
def test_setup_inputs_are_checked_before_any_work(tiny, tmp_path, capsys, extra, words):
    setup = tmp_path / "setup.yaml"
    setup.write_text(f"kind: wan_vace\nmodel: {tiny / 'model'}\narea: null\n{extra}")
    out = tmp_path / "o"
    assert main(["run", "falling_objects", "-o", str(out), "--model", str(setup)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0], err
    assert not out.exists()


@pytest.mark.parametrize("maps, words", [
    ("depth,pose", "maps: Wan VACE takes one control video, got ['depth', 'pose']"),
    ("normal", "control: VACE takes ['depth', 'pose', 'flow'], not 'normal'"),
])
def test_maps_a_setup_cannot_take_are_refused_before_any_work(tiny, tmp_path, capsys, maps,
                                                              words):
    out = tmp_path / "o"
    assert main(["run", "falling_objects", "-o", str(out), "--model", str(tiny), "--maps",
                 maps]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0], err
    assert not out.exists()


# ---------------------------------------------------------------- long clips


def test_a_long_clip_is_generated_in_passes_that_extend_each_other(pipe, monkeypatch):
    """14 frames at most 9 per pass with 3 frames of overlap: passes [0, 9), [6, 14). The
    second pass gets the first pass's frames 6-8 as its first three frames, mask black (kept),
    and the control video after them; the result is the first pass then the second's new
    frames."""
    scene = rendiff.builtin_scene("falling_objects").model_copy(
        update={"frames": 14, "size": (32, 32)})
    lay = rendiff.render(rendiff.simulate(scene, progress=False), progress=False)
    outputs: list[np.ndarray] = []
    spy_calls: list[dict] = []
    real = type(pipe).__call__

    def record(self, *args, **kw):
        spy_calls.append(kw)
        result = real(self, *args, **kw)
        outputs.append(np.asarray(result.frames[0], dtype=np.float32))
        return result

    monkeypatch.setattr(type(pipe), "__call__", record)
    out = generate_wan_vace(pipe, lay, steps=1, guidance_scale=1.0, max_sequence_length=32,
                            progress=False, max_frames=9, overlap=3, area=None)
    assert out.shape == (14, 32, 32, 3)
    assert [kw["num_frames"] for kw in spy_calls] == [9, 9]  # 9, then 8 padded to 4k + 1
    first, second = outputs
    video2, mask2 = _arrays(spy_calls[1]["video"]), _arrays(spy_calls[1]["mask"])
    # the context frames: the first pass's output (through 8-bit images), kept
    np.testing.assert_allclose(video2[:3], first[6:9], atol=1 / 255 + 1e-6)
    assert (mask2[:3] == 0).all() and (mask2[3:8] == 1).all()
    # after them, the control video of frames 9-13
    control = vace_control("depth", lay[Layer.DEPTH])[9:14].numpy()
    np.testing.assert_allclose(video2[3:8], control, atol=1 / 255 + 1e-6)
    # the clip: the first pass whole, then the second pass's new frames
    np.testing.assert_allclose(out[:9].numpy(), np.clip(first[:9], 0, 1), atol=1e-6)
    np.testing.assert_allclose(out[9:].numpy(), np.clip(second[3:8], 0, 1), atol=1e-6)


def test_a_short_clip_is_one_pass_and_overlap_is_checked(pipe, layers, monkeypatch):
    calls = _spy(monkeypatch, pipe)
    generate_wan_vace(pipe, layers, steps=1, guidance_scale=1.0, max_sequence_length=32,
                      progress=False, max_frames=81)
    assert len(calls) == 1
    with pytest.raises(ModelError, match="overlap: 9 must be at least 1 and below max_frames"):
        generate_wan_vace(pipe, layers, steps=1, max_frames=5, overlap=9, progress=False)
