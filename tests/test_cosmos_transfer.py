"""Cosmos-Transfer2.5 from local folders (diffusers' Cosmos2_5_TransferPipeline parts and one
CosmosControlNetModel per modality), on tiny random parts written by
tools/make_tiny_cosmos_transfer.py: the setup file, the frozen encodings (against OpenCV and
analytic answers), several weighted controls at once, per-token weight maps, padding, chunked
long clips, provenance, the guardrail rule and bad setups."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from _tools import load_tool

import rendiff
from rendiff.cli import main
from rendiff.conditioners import cosmos_transfer as ct
from rendiff.conditioners.cosmos_transfer import (
    blur_control,
    canny_edges,
    cosmos_control,
    generate_cosmos_transfer,
    load_cosmos_transfer,
)
from rendiff.conditioners.framing import pad_clip
from rendiff.conditioners.pretrained import ModelError, load_spec
from rendiff.conditioners.token_weights import combine_weights, pool_to_tokens, region_mask
from rendiff.engine.layers import Layer

ROOT = Path(__file__).resolve().parents[1]


def _tool():
    return load_tool("make_tiny_cosmos_transfer")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return _tool().write_tiny_cosmos_transfer(tmp_path_factory.mktemp("models") / "tiny", seed=0)


@pytest.fixture(scope="module")
def spec(tiny):
    return load_spec(tiny / "rendiff_pretrained.yaml")


@pytest.fixture(scope="module")
def loaded(spec):
    return load_cosmos_transfer(spec)


@pytest.fixture(scope="module")
def layers():
    """falling_objects, 6 frames at 40x24: neither 4k + 1 frames nor a multiple of 16."""
    scene = rendiff.builtin_scene("falling_objects").model_copy(
        update={"frames": 6, "size": (40, 24)})
    return rendiff.render(rendiff.simulate(scene, progress=False), progress=False)


def _run(loaded, layers, **kw):
    pipe, nets = loaded
    nets = kw.pop("nets", nets)
    args = dict(steps=2, guidance_scale=1.0, max_sequence_length=32, chunk_frames=17,
                progress=False)
    args.update(kw)
    return generate_cosmos_transfer(pipe, nets, layers, **args)


# ---------------------------------------------------------------- encodings


def test_edges_are_opencvs_canny_on_the_rgb_frame():
    """cv2.Canny on the RGB frame, as Cosmos' preprocessor calls it (BGR, as diffusers' example
    converts, differs only where channels tie). A filled square on black gives white edges on
    its border only, three equal channels."""
    g = np.random.default_rng(0)
    frames = (g.random((2, 40, 56, 3)) * 255).astype(np.uint8)
    frames[:, 10:30, 12:40] = [200, 30, 90]
    out = canny_edges(frames, 100, 200)
    for f, e in zip(frames, out, strict=True):
        ref = cv2.Canny(f, 100, 200)
        assert np.array_equal(e[..., 0], ref) and np.array_equal(e[..., 2], ref)
        bgr = cv2.Canny(cv2.cvtColor(f, cv2.COLOR_RGB2BGR), 100, 200)
        assert (bgr != ref).mean() < 0.05
    square = np.zeros((1, 32, 32, 3), np.uint8)
    square[0, 8:24, 8:24] = 255
    edge = canny_edges(square)[0, ..., 0]
    assert set(np.unique(edge)) == {0, 255}
    assert edge[12:20, 12:20].max() == 0 and edge[:5].max() == 0  # inside and far outside
    assert edge[8:24, 7:9].max() == 255 and edge[7:9, 8:24].max() == 255  # the border


def test_blur_keeps_flat_colour_and_smooths_an_edge():
    """A flat frame stays the same colour; a hard vertical step becomes a monotone ramp wider
    than the 10x resample (Cosmos' vis control keeps layout and colour, not detail)."""
    flat = np.full((1, 40, 60, 3), [30, 120, 210], np.uint8)
    assert np.abs(blur_control(flat).astype(int) - flat).max() <= 1
    step = np.zeros((1, 40, 80, 3), np.uint8)
    step[:, :, 40:] = 255
    row = blur_control(step)[0, 20, :, 0].astype(int)
    assert row[0] <= 5 and row[-1] >= 250
    assert np.all(np.diff(row) >= -1)  # monotone up to rounding
    assert ((row > 20) & (row < 235)).sum() >= 8


def test_depth_is_inverse_depth_min_max_over_the_whole_clip():
    """Cosmos' depth control: inverse depth, one min-max over the clip (farthest 0, nearest 1),
    grey, the empty background 0, whatever frame the extremes are in."""
    from rendiff.conditioners.cosmos_transfer import cosmos_depth

    depth = torch.full((2, 3, 5), math.inf)
    depth[0, 1:] = torch.linspace(1.0, 2.0, 10).view(2, 5)
    depth[1, 1:] = 4.0
    got = cosmos_depth(depth)
    inv = 1.0 / depth[:, 1:]
    torch.testing.assert_close(got[:, 1:], (inv - 0.25) / (1.0 - 0.25), rtol=0, atol=1e-6)
    assert bool((got[:, 0] == 0).all()) and float(got[1, 1:].max()) == 0.0
    assert bool((cosmos_depth(torch.full((1, 2, 2), 3.0)) == 1).all())


def test_depth_control_is_grey(layers):
    out = cosmos_control("depth", layers)
    assert torch.equal(out[..., 0], out[..., 2]) and float(out.max()) == 1.0


def test_segmentation_gives_each_entity_one_colour_on_black(layers):
    out = cosmos_control("seg", layers)
    inst = layers[Layer.INSTANCE]
    assert bool((out[inst == 0] == 0).all())
    colours = {}
    for i in inst.unique().tolist():
        if i == 0:
            continue
        c = out[inst == i].unique(dim=0)
        assert c.shape[0] == 1 and bool(c.any())
        colours[i] = tuple(c[0].tolist())
    assert len(set(colours.values())) == len(colours)


def test_edges_and_blur_are_made_after_resizing_the_render(layers):
    """As Cosmos' preprocessing: the RGB is resized to the generation size (INTER_AREA) and
    then Canny'd, not the edges resized; segmentation resized by nearest keeps its colours."""
    from rendiff.io.video import to_uint8

    rgb = to_uint8(layers[Layer.RGB])
    big = np.stack([cv2.resize(f, (80, 48), interpolation=cv2.INTER_AREA) for f in rgb])
    got = cosmos_control("edge", layers, size=(48, 80), edge_thresholds=(50, 100))
    assert got.shape == (6, 48, 80, 3)
    assert np.array_equal((got.numpy() * 255).round().astype(np.uint8),
                          canny_edges(big, 50, 100))
    seg = cosmos_control("seg", layers, size=(48, 80))
    small = cosmos_control("seg", layers)
    assert set(map(tuple, seg.reshape(-1, 3).unique(dim=0).tolist())) <= set(
        map(tuple, small.reshape(-1, 3).unique(dim=0).tolist()))


# ---------------------------------------------------------------- weights


def test_weights_pool_to_the_token_grid_as_the_causal_vae_packs_frames():
    """Latent frame 0 is pixel frame 0, latent frame k pixel frames 4k-3..4k; a token is a
    16 x 16 block, its weight the mask's mean there."""
    mask = torch.zeros(9, 32, 48)
    mask[0, :16, :16] = 1.0  # latent 0, token (0, 0): all
    mask[1:3, 16:, 32:] = 1.0  # latent 1 (frames 1-4), token (1, 2): half the frames
    mask[5:9, :8, 16:32] = 1.0  # latent 2, token (0, 1): half the block
    w = pool_to_tokens(mask, temporal=4, spatial=16)
    expected = torch.zeros(3, 2, 3)
    expected[0, 0, 0] = 1.0
    expected[1, 1, 2] = 0.5
    expected[2, 0, 1] = 0.5
    torch.testing.assert_close(w, expected)
    with pytest.raises(ValueError, match="does not fit the token grid"):
        pool_to_tokens(torch.zeros(8, 32, 48), temporal=4, spatial=16)


def test_weights_above_one_in_sum_are_scaled_down_per_token():
    assert combine_weights({"depth": 0.3, "edge": 0.2}) == {"depth": 0.3, "edge": 0.2}
    got = combine_weights({"depth": 0.9, "edge": 0.6})
    assert got["depth"] == pytest.approx(0.6) and got["edge"] == pytest.approx(0.4)
    m = torch.tensor([[1.0, 0.2]])
    got = combine_weights({"depth": m, "edge": 0.5})
    torch.testing.assert_close(got["depth"], torch.tensor([[1 / 1.5, 0.2]]))
    torch.testing.assert_close(got["edge"], torch.tensor([[0.5 / 1.5, 0.5]]))


def test_region_masks_name_entities(layers):
    names = list(layers.entity_names)
    inst = layers[Layer.INSTANCE]
    one = region_mask(layers, f"instance:{names[0]}")
    assert torch.equal(one > 0, inst == 1)
    both = region_mask(layers, f"instance:{names[0]},{names[1]}")
    assert torch.equal(both > 0, (inst == 1) | (inst == 2))
    assert torch.equal(region_mask(layers, "background") > 0, inst == 0)
    assert torch.equal(region_mask(layers, "foreground") > 0, inst > 0)
    with pytest.raises(ValueError, match="no entity named 'spere_0'"):
        region_mask(layers, "instance:spere_0")


# ---------------------------------------------------------------- generation


def _encode_spy(monkeypatch, pipe) -> list[torch.Tensor]:
    """Records every video the pipeline's VAE encodes (controls and conditioning frames)."""
    seen: list[torch.Tensor] = []
    real = ct._encode

    def spy(p, video):
        seen.append(video.clone())
        return real(p, video)

    monkeypatch.setattr(ct, "_encode", spy)
    return seen


def test_the_model_receives_exactly_the_frozen_encodings_padded(loaded, layers, monkeypatch):
    """6 frames at 40x24 go in as 9 frames (4k + 1, the last repeated) at 48x32 (multiples of
    16, edges repeated), in [-1, 1], and come back cropped to 6 frames at 40x24."""
    seen = _encode_spy(monkeypatch, loaded[0])
    out = _run(loaded, layers, weights={"depth": 0.5, "edge": 0.5, "seg": 0.0, "vis": 0.0})
    assert out.shape == (6, 24, 40, 3) and bool(torch.isfinite(out).all())
    assert len(seen) == 2  # depth and edge: weight 0 leaves seg and vis out
    for name, video in zip(("depth", "edge"), seen, strict=True):
        expected = pad_clip(cosmos_control(name, layers), 9, 32, 48)
        assert video.shape == (1, 3, 9, 32, 48)
        torch.testing.assert_close(video[0].permute(1, 2, 3, 0), expected * 2 - 1)


def test_weight_zero_equals_no_control(loaded, layers):
    pipe, nets = loaded
    a = _run(loaded, layers, weights={"depth": 0.0, "edge": 0.5, "seg": 0.0, "vis": 0.0})
    b = _run(loaded, layers, weights={"edge": 0.5}, nets={"edge": nets["edge"]})
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    none = _run(loaded, layers, nets={})
    zero = _run(loaded, layers, weights=dict.fromkeys(nets, 0.0))
    torch.testing.assert_close(none, zero, rtol=0, atol=0)
    assert float((a - none).abs().max()) > 1e-3  # and a control does change the video


def test_a_mask_weight_reaches_only_its_tokens(loaded, layers, monkeypatch):
    """weight_masks depth: instance:<entity>: the ControlNet residual added to the transformer is
    zero exactly at the tokens where the entity is absent, and the weight there is the entity's
    share of the token's pixels times the weight."""
    pipe, nets = loaded
    inst = layers[Layer.INSTANCE]
    counts = {n: int((inst == i + 1).sum()) for i, n in enumerate(layers.entity_names)}
    name = min((c, n) for n, c in counts.items() if c > 0)[1]  # the smallest one in view
    residuals = []
    real = type(pipe.transformer).forward

    def spy(self, *a, **kw):
        residuals.append(kw.get("block_controlnet_hidden_states"))
        return real(self, *a, **kw)

    monkeypatch.setattr(type(pipe.transformer), "forward", spy)
    inspect: dict = {}
    _run(loaded, layers, weights={"depth": 0.8}, weight_masks={"depth": f"instance:{name}"},
         nets={"depth": nets["depth"]}, inspect=inspect)
    w = inspect["token_weights"][0]["depth"]  # [T', H / 16, W / 16]
    mask = pad_clip(region_mask(layers, f"instance:{name}")[..., None], 9, 32, 48)[..., 0]
    torch.testing.assert_close(w, 0.8 * pool_to_tokens(mask, temporal=4, spatial=16))
    assert bool((w > 0).any()) and bool((w == 0).any())
    zero = (w == 0).flatten()
    for blocks in residuals:
        for b in blocks:
            assert b.shape[1] == zero.numel()
            assert bool((b[0, zero] == 0).all())
            assert bool((b[0, ~zero].abs().sum(-1) > 0).all())


def test_a_weight_map_from_python_equals_the_same_mask_from_the_setup(loaded, layers):
    """weights={depth: Tensor[T, H, W]}: a per-pixel, per-frame weight; 0.8 inside an entity's
    region is the same run as weight 0.8 with weight_masks instance:<entity>. A map of another
    shape, or values outside [0, 1], is one line."""
    nets = {"depth": loaded[1]["depth"]}
    name = list(layers.entity_names)[3]
    a_insp: dict = {}
    b_insp: dict = {}
    a = _run(loaded, layers, nets=nets, weights={"depth": 0.8},
             weight_masks={"depth": f"instance:{name}"}, inspect=a_insp)
    b = _run(loaded, layers, nets=nets,
             weights={"depth": 0.8 * region_mask(layers, f"instance:{name}")}, inspect=b_insp)
    torch.testing.assert_close(a_insp["token_weights"][0]["depth"],
                               b_insp["token_weights"][0]["depth"])
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)  # float rounding of the same product
    with pytest.raises(ModelError, match=r"weights.depth: a weight map must be \[T, H, W\] = "
                                         r"\[6, 24, 40\]"):
        _run(loaded, layers, nets=nets, weights={"depth": torch.ones(6, 40, 24)})
    with pytest.raises(ModelError, match="values must be finite and in"):
        _run(loaded, layers, nets=nets, weights={"depth": torch.full((6, 24, 40), 2.0)})


def test_a_long_clip_runs_in_chunks_each_continuing_the_last(loaded, monkeypatch):
    """20 frames with chunk_frames 9 and chunk_context 1: chunks 0-8, 8-16, 16-24 (the last
    padded); a later chunk's conditioning video starts with the frame the chunk before
    generated there, the rest black (-1), and that frame is kept as it was."""
    scene = rendiff.builtin_scene("falling_objects").model_copy(
        update={"frames": 20, "size": (32, 32)})
    clip = rendiff.render(rendiff.simulate(scene, progress=False), progress=False)
    seen = _encode_spy(monkeypatch, loaded[0])
    inspect: dict = {}
    out = _run(loaded, clip, weights={"depth": 1.0}, nets={"depth": loaded[1]["depth"]},
               chunk_frames=9, chunk_context=1, inspect=inspect)
    assert out.shape == (20, 32, 32, 3)
    assert inspect["chunks"] == [(0, 9), (8, 17), (16, 25)]
    # per chunk: its control video; from the second on, then its conditioning video
    assert len(seen) == 5
    for k, cond in ((1, seen[2]), (2, seen[4])):
        start = inspect["chunks"][k][0]
        torch.testing.assert_close(cond[0, :, 0], out[start].permute(2, 0, 1) * 2 - 1,
                                   rtol=0, atol=1e-6)
        assert bool((cond[0, :, 1:] == -1).all())
    for k, ctrl in ((0, seen[0]), (1, seen[1]), (2, seen[3])):
        a, b = inspect["chunks"][k]
        expected = pad_clip(cosmos_control("depth", clip), 25, 32, 32)[a:b]
        torch.testing.assert_close(ctrl[0].permute(1, 2, 3, 0), expected * 2 - 1)


def test_guidance_uses_the_pipelines_own_negative_prompt_by_default(loaded, layers,
                                                                    monkeypatch):
    from diffusers.pipelines.cosmos.pipeline_cosmos2_5_transfer import DEFAULT_NEGATIVE_PROMPT

    pipe = loaded[0]
    seen: list[dict] = []
    real = pipe.encode_prompt

    def spy(**kw):
        seen.append(kw)
        return real(**kw)

    monkeypatch.setattr(pipe, "encode_prompt", spy)
    _run(loaded, layers, nets={}, guidance_scale=3.0, steps=1)
    _run(loaded, layers, nets={}, guidance_scale=3.0, steps=1, negative_prompt="blurry")
    assert seen[0]["negative_prompt"] == DEFAULT_NEGATIVE_PROMPT
    assert seen[1]["negative_prompt"] == "blurry"
    assert seen[0]["do_classifier_free_guidance"] is True


def test_a_chunk_longer_than_the_position_encoding_is_one_line(loaded, layers):
    with pytest.raises(ModelError, match="position encoding takes at most"):
        _run(loaded, layers, chunk_frames=1025)


# ---------------------------------------------------------------- runs, provenance, errors


def test_rendiff_run_with_the_setup_writes_video_and_provenance(tiny, tmp_path):
    out = tmp_path / "run"
    assert main(["run", "falling_objects", "-o", str(out), "--model", str(tiny), "--frames", "9",
                 "--size", "64x64", "--quiet"]) == 0
    import imageio.v3 as iio

    assert iio.imread(out / "generated.mp4").shape[:3] == (9, 64, 64)
    for name in ("depth", "seg", "edge", "vis"):  # what the model was given, in its encodings
        assert iio.imread(out / "maps" / f"model_{name}.mp4").shape[:3] == (9, 64, 64)
    edges = iio.imread(out / "maps" / "model_edge.mp4")
    assert edges.max() > 200 and np.median(edges) < 30  # white edges on black
    gen = json.loads((out / "metadata.json").read_text())["generation"]
    setup = tiny / "rendiff_pretrained.yaml"
    assert gen["kind"] == "cosmos_transfer" and gen["setup_file"] == str(setup.resolve())
    assert gen["setup_sha256"] == hashlib.sha256(setup.read_bytes()).hexdigest()
    assert gen["model"] == str((tiny / "base").resolve())
    assert gen["controls"]["edge"] == str((tiny / "controlnets" / "edge").resolve())
    assert gen["weights"] == {"depth": 0.5, "seg": 1.0, "edge": 0.5, "vis": 1.0}
    assert gen["guardrail"].startswith("off")
    assert (gen["steps"], gen["guidance_scale"], gen["seed"]) == (2, 1.0, 0)
    assert gen["edge_thresholds"] == [100, 200] and gen["scheduler"] == "UniPCMultistepScheduler"


def test_maps_and_weights_from_the_command_line(tiny, tmp_path):
    out = tmp_path / "run"
    assert main(["run", "falling_objects", "-o", str(out), "--model", str(tiny), "--frames", "5",
                 "--size", "32x32", "--maps", "edge", "--weights", "edge=0.3", "--quiet"]) == 0
    gen = json.loads((out / "metadata.json").read_text())["generation"]
    assert gen["maps"] == ["edge"] and gen["weights"] == {"edge": 0.3}


def _setup(tmp: Path, text: str) -> Path:
    p = tmp / "rendiff_pretrained.yaml"
    p.write_text(text)
    return p


_BASE = "kind: cosmos_transfer\nmodel: base\ncontrols: {depth: controlnets/depth}\n"


@pytest.mark.parametrize("text, words", [
    ("kind: cosmos_transfr\nmodel: m\n",
     "kind: unknown kind 'cosmos_transfr' (did you mean 'cosmos_transfer'?)"),
    ("kind: cosmos_transfer\nmodel: m\ncontrols: {}\n", "controls: name at least one"),
    ("kind: cosmos_transfer\nmodel: m\ncontrols: {normal: n}\n", "controls.normal"),
    (_BASE + "weights: {depth: 1.5}\n", "depth: weight 1.5 is outside [0, 1]"),
    (_BASE + "weights: {edge: 0.5}\n", "weights: 'edge' has no ControlNet under controls"),
    (_BASE + "weight_masks: {depth: robot}\n", "'robot' is not a region"),
    (_BASE + "chunk_frames: 90\n", "chunk_frames: 90 is not 4k + 1"),
    (_BASE + "guardrail: 'no'\n", "guardrail: Input should be a valid boolean"),
    (_BASE + "promt: x\n", "promt: unknown field (did you mean 'prompt'?)"),
])
def test_a_bad_setup_file_is_one_line_naming_the_field(text, words, tmp_path):
    with pytest.raises(ModelError) as e:
        load_spec(_setup(tmp_path, text))
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(str(tmp_path)), msg
    assert words in msg, msg


def test_bad_folders_and_the_guardrail_are_one_line_before_any_work(tiny, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(tiny, broken)
    cases = [
        ("model: nowhere\ncontrols: {depth: controlnets/depth}\nguardrail: false\n",
         "Cosmos-Transfer2.5 base folder not found"),
        ("model: base/vae\ncontrols: {depth: controlnets/depth}\nguardrail: false\n",
         "holds a AutoencoderKLWan; expected a Cosmos2_5_TransferPipeline folder"),
        ("model: base\ncontrols: {depth: base/vae}\nguardrail: false\n",
         "controls.depth must be a CosmosControlNetModel folder"),
        ("model: base\ncontrols: {depth: controlnets/depth}\n",  # guardrail on by default
         "write 'guardrail: false' in the setup file to run without it"),
        ("model: base\ncontrols: {depth: controlnets/depth}\nguardrail: false\n"
         "weight_masks: {depth: 'instance:robot'}\n", "weight_masks.depth: no entity named"),
    ]
    for body, words in cases:
        _setup(broken, f"kind: cosmos_transfer\n{body}")
        assert main(["run", "falling_objects", "-o", str(tmp_path / "o"), "--model",
                     str(broken)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0], err
    assert not (tmp_path / "o").exists()


def test_the_guardrail_is_never_silently_off(tiny, tmp_path):
    """Without cosmos_guardrail installed, a setup that does not say 'guardrail: false' cannot
    load; with it said, the run records that the guardrail was off."""
    assert importlib.util.find_spec("cosmos_guardrail") is None
    text = (tiny / "rendiff_pretrained.yaml").read_text().replace("guardrail: false",
                                                                  "guardrail: true")
    folder = tmp_path / "on"
    shutil.copytree(tiny, folder)
    spec = load_spec(_setup(folder, text))
    with pytest.raises(ModelError, match="NVIDIA's guardrail, which cannot be imported"):
        load_cosmos_transfer(spec)


def test_nothing_needs_torchvision():
    """diffusers' Cosmos models call one torchvision function (a nearest resize of the padding
    mask); where torchvision cannot load, rendiff gives them the torch equivalent."""
    ct.provide_torchvision_resize()
    from diffusers.models.controlnets import controlnet_cosmos
    from diffusers.models.transformers import transformer_cosmos

    x = (torch.rand(1, 1, 7, 9) > 0.5).float()
    for module in (transformer_cosmos, controlnet_cosmos):
        t = module.transforms
        got = t.functional.resize(x, [14, 18], interpolation=t.InterpolationMode.NEAREST)
        assert torch.equal(got, x.repeat_interleave(2, 2).repeat_interleave(2, 3))


def test_a_data_set_generates_with_the_setup_and_keeps_its_labels(tiny, tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: t\ngenerator: falling_objects\nframes: 5\nsize: [48, 32]\n")
    out = tmp_path / "ds"
    assert main(["dataset", str(spec), "-o", str(out), "--clips", "1", "--generate", "--model",
                 str(tiny), "--quiet"]) == 0
    clip = out / "clips" / "000000"
    meta = json.loads((clip / "metadata.json").read_text())
    assert meta["generation"]["kind"] == "cosmos_transfer"
    assert len(list((clip / "generated").glob("*.png"))) == 5
    assert main(["dataset", "--verify", str(out)]) == 0


def test_the_evaluation_script_scores_a_setup_against_the_engine(tiny, tmp_path):
    """benchmarks/eval_pretrained.py: both scenes, the generated clip and the repeated first
    frame scored with the default model's measures, and what made each video."""
    spec = importlib.util.spec_from_file_location("eval_pretrained",
                                                  ROOT / "benchmarks" / "eval_pretrained.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "eval.json"
    assert mod.main(["--model", str(tiny), "--frames", "5", "--size", "32x32", "--out",
                     str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["kind"] == "cosmos_transfer"
    assert [r["scene"] for r in result["results"]] == ["falling_objects", "walking_human"]
    for r in result["results"]:
        assert r["frames"] == 5 and r["size"] == [32, 32]
        assert r["generation"]["kind"] == "cosmos_transfer"
        for row in r["rows"].values():
            assert set(row) >= {"l1", "psnr", "ssim", "psnr_changed", "warping_error",
                                "warping_error_target", "colour_kept"}
        rep = r["rows"]["repeat first frame"]
        assert rep["warping_error_target"] == r["rows"]["generated"]["warping_error_target"]
    assert mod.main(["--model", str(tmp_path)]) == 2  # no setup there
