"""Pretrained AnimateDiff + ControlNets / SparseCtrl from local folders, on tiny random parts.

The parts are written in diffusers format by tools/make_tiny_animatediff.py (random weights, the
zero-initialised projections made non-zero so every part changes the output)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from _tools import load_tool

import rendiff
from rendiff.conditioners.pretrained import (
    ModelError,
    generate_animatediff,
    keyframe_indices,
    load_animatediff,
    load_spec,
    make_scheduler,
)
from rendiff.engine.camera import CameraFrames
from rendiff.engine.layers import Layer, Layers
from rendiff.kernels.skeleton import draw_openpose

ROOT = Path(__file__).resolve().parents[1]
T, H, W = 6, 32, 32
STEPS = 2
PROMPT = "a robot arm"


def _tool():
    return load_tool("make_tiny_animatediff")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return _tool().write_tiny_animatediff(tmp_path_factory.mktemp("models") / "tiny", seed=0)


def _layers(frames: int = T, height: int = H, width: int = W, seed: int = 0) -> Layers:
    """Synthetic layers: depth with an empty (inf) band, unit normals (0 where empty), an
    OpenPose skeleton walking across, an RGB render."""
    g = torch.Generator().manual_seed(seed)
    depth = 1.0 + 3.0 * torch.rand(frames, height, width, generator=g)
    depth[:, : height // 5] = float("inf")
    n = torch.randn(frames, height, width, 3, generator=g)
    n[..., 2] = -n[..., 2].abs()  # facing the camera
    n = n / n.norm(dim=-1, keepdim=True)
    n[:, : height // 5] = 0.0
    kp = torch.zeros(frames, 1, 18, 3)
    kp[..., 0] = torch.linspace(0.2, 0.8, 18) * width
    kp[..., 1] = torch.linspace(0.1, 0.9, 18) * height
    kp[..., 0] += torch.arange(frames)[:, None, None] * 0.5
    kp[..., 2] = 1.0
    data = {Layer.RGB: torch.rand(frames, height, width, 3, generator=g), Layer.DEPTH: depth,
            Layer.NORMAL: n, Layer.POSE: draw_openpose(kp, width, height)}
    cams = CameraFrames(torch.eye(3).expand(frames, 3, 3).clone(),
                        torch.eye(4).expand(frames, 4, 4).clone(), width, height, 0.1, 100.0)
    return Layers(data, cams, 8.0)


def _expected_controls(layers: Layers) -> dict[str, torch.Tensor]:
    """The encodings the public SD1.5 ControlNets were trained on, written out independently:
    inverse depth normalised over the clip (near bright, empty 0), normalbae normals 0.5 - 0.5 n
    (empty 0), the OpenPose image as drawn."""
    d = layers[Layer.DEPTH]
    valid = torch.isfinite(d)
    inv = torch.where(valid, 1.0 / d, torch.zeros_like(d))
    lo, hi = inv[valid].min(), inv[valid].max()
    depth = torch.where(valid, 0.05 + 0.95 * (inv - lo) / (hi - lo), torch.zeros_like(d))
    n = layers[Layer.NORMAL]
    normal = torch.where((n == 0).all(-1, keepdim=True), torch.zeros_like(n), 0.5 - 0.5 * n)
    return {"depth": depth[..., None].expand(*d.shape, 3), "normal": normal,
            "pose": layers[Layer.POSE]}


@pytest.fixture(scope="module")
def layers() -> Layers:
    return _layers()


@pytest.fixture(scope="module")
def cn_pipe(tiny):
    spec = load_spec(tiny / "rendiff_pretrained.yaml")
    return load_animatediff(spec.base, spec.motion_adapter, spec.controlnets)


@pytest.fixture(scope="module")
def sparse_pipe(tiny):
    spec = load_spec(tiny / "rendiff_sparsectrl.yaml")
    return load_animatediff(spec.base, spec.motion_adapter, sparsectrl=spec.sparsectrl)


def _gen(pipe, layers, **kw):
    kw = {"prompt": PROMPT, "steps": STEPS, "seed": 1, "progress": False, **kw}
    return generate_animatediff(pipe, layers, **kw)


def _capture(module: torch.nn.Module, store: list):
    """Records the keyword inputs of every forward call of ``module``."""
    def hook(_mod, _args, kwargs):
        store.append({k: (v.detach().clone() if torch.is_tensor(v) else v)
                      for k, v in kwargs.items()})
    return module.register_forward_pre_hook(hook, with_kwargs=True)


# ---------------------------------------------------------------- the tool


def test_tool_writes_diffusers_folders_deterministically(tiny, tmp_path):
    again = _tool().write_tiny_animatediff(tmp_path / "again", seed=0)
    files = sorted(p.relative_to(tiny) for p in tiny.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for rel in files:
        assert (tiny / rel).read_bytes() == (again / rel).read_bytes(), rel
    index = json.loads((tiny / "base" / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    kinds = {d: json.loads((tiny / d / "config.json").read_text())["_class_name"]
             for d in ("motion_adapter", "controlnet_depth", "sparsectrl")}
    assert kinds == {"motion_adapter": "MotionAdapter", "controlnet_depth": "ControlNetModel",
                     "sparsectrl": "SparseControlNetModel"}
    assert (tiny / "base" / "tokenizer" / "vocab.json").is_file()
    with pytest.raises(FileExistsError):
        _tool().write_tiny_animatediff(again)


# ---------------------------------------------------------------- ControlNets


def test_loads_and_generates_frames_deterministically(cn_pipe, layers):
    assert type(cn_pipe).__name__ == "AnimateDiffControlNetPipeline"
    assert cn_pipe.rendiff_maps == ("depth", "normal", "pose")
    a = _gen(cn_pipe, layers)
    assert a.shape == (T, H, W, 3) and a.dtype == torch.float32
    assert torch.isfinite(a).all() and a.min() >= 0 and a.max() <= 1
    assert a.std() > 0.01  # not a constant image
    assert torch.equal(a, _gen(cn_pipe, layers))
    assert (a - _gen(cn_pipe, layers, seed=2)).abs().max() > 0.05


def test_controlnets_receive_exactly_the_frozen_encodings(cn_pipe, layers):
    expected = _expected_controls(layers)
    weights = {"depth": 0.5, "normal": 1.0, "pose": 0.25}
    calls: dict[str, list] = {name: [] for name in cn_pipe.rendiff_maps}
    hooks = [_capture(net, calls[name])
             for name, net in zip(cn_pipe.rendiff_maps, cn_pipe.controlnet.nets, strict=True)]
    try:
        _gen(cn_pipe, layers, weights=weights)
    finally:
        for h in hooks:
            h.remove()
    for name, seen in calls.items():
        assert len(seen) == STEPS
        for call in seen:
            cond = call["controlnet_cond"]  # [2T (uncond + cond), 3, H, W]
            assert cond.shape == (2 * T, 3, H, W)
            want = expected[name].permute(0, 3, 1, 2)
            torch.testing.assert_close(cond[:T], want, atol=1e-6, rtol=0)
            torch.testing.assert_close(cond[T:], want, atol=1e-6, rtol=0)
            assert call["conditioning_scale"] == weights[name]


def _plain_animatediff(pipe, layers, seed=1, prompt=PROMPT, negative_prompt="blurry"):
    """diffusers' AnimateDiffPipeline on the same parts, no ControlNet at all."""
    from diffusers import AnimateDiffPipeline

    plain = AnimateDiffPipeline(vae=pipe.vae, text_encoder=pipe.text_encoder,
                                tokenizer=pipe.tokenizer, unet=pipe.unet,
                                motion_adapter=pipe.motion_adapter,
                                scheduler=make_scheduler(None, pipe.rendiff_scheduler_config))
    plain.set_progress_bar_config(disable=True)
    out = plain(prompt=prompt, negative_prompt=negative_prompt, num_frames=layers.frames,
                height=H, width=W, num_inference_steps=STEPS, guidance_scale=7.5,
                generator=torch.Generator().manual_seed(seed), output_type="pt").frames
    return out[0].permute(0, 2, 3, 1)


def test_scale_zero_equals_animatediff_without_controlnet(cn_pipe, layers):
    plain = _plain_animatediff(cn_pipe, layers)
    off = _gen(cn_pipe, layers, negative_prompt="blurry",
               weights={"depth": 0.0, "normal": 0.0, "pose": 0.0})
    torch.testing.assert_close(off, plain, atol=1e-6, rtol=0)
    on = _gen(cn_pipe, layers, negative_prompt="blurry")
    assert (on - plain).abs().mean() > 0.01  # the ControlNets do steer when scaled in


def test_per_map_weight_changes_only_that_controlnets_contribution(tiny, cn_pipe, layers):
    depth_only = load_animatediff(tiny / "base", tiny / "motion_adapter",
                                  {"depth": tiny / "controlnet_depth"})
    assert type(depth_only.controlnet).__name__ == "ControlNetModel"  # one net, not a Multi
    want = _gen(depth_only, layers, weights={"depth": 0.8})
    got = _gen(cn_pipe, layers, weights={"depth": 0.8, "normal": 0.0, "pose": 0.0})
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    pose = _gen(cn_pipe, layers, weights={"depth": 0.0, "normal": 0.0, "pose": 0.8})
    assert (pose - got).abs().mean() > 0.01


def test_sizes_the_vae_cannot_take_are_padded_and_cropped_back(cn_pipe):
    odd = _layers(frames=4, height=29, width=31)
    seen: list = []
    hook = _capture(cn_pipe.controlnet.nets[0], seen)
    try:
        out = _gen(cn_pipe, odd)
    finally:
        hook.remove()
    assert out.shape == (4, 29, 31, 3)
    cond = seen[0]["controlnet_cond"]
    assert cond.shape[-2:] == (32, 32)  # padded to a multiple of 8, edges repeated
    want = _expected_controls(odd)["depth"].permute(0, 3, 1, 2)
    torch.testing.assert_close(cond[:4, :, :29, :31], want, atol=1e-6, rtol=0)
    torch.testing.assert_close(cond[:4, :, 29:, :31], want[:, :, 28:29].expand(-1, -1, 3, -1),
                               atol=1e-6, rtol=0)
    torch.testing.assert_close(cond[:4, :, :29, 31], want[..., 30], atol=1e-6, rtol=0)


def test_long_clip_uses_overlapping_windows(cn_pipe):
    long = _layers(frames=10)
    out = _gen(cn_pipe, long, window=4, overlap=2)
    assert out.shape == (10, H, W, 3) and torch.isfinite(out).all()
    assert cn_pipe.free_noise_enabled
    _gen(cn_pipe, _layers(frames=4))
    assert not cn_pipe.free_noise_enabled


@pytest.mark.parametrize("name", ["ddim", "euler", "dpm"])
def test_each_scheduler_runs(cn_pipe, layers, name):
    out = _gen(cn_pipe, layers, scheduler=name)
    cls = {"ddim": "DDIMScheduler", "euler": "EulerDiscreteScheduler",
           "dpm": "DPMSolverMultistepScheduler"}[name]
    assert type(cn_pipe.scheduler).__name__ == cls
    assert out.shape == (T, H, W, 3) and torch.isfinite(out).all()
    if name != "ddim":
        ddim = _gen(cn_pipe, layers, scheduler="ddim")
        assert (out - ddim).abs().max() > 1e-3  # another sampler, other frames
        # swapping back rebuilds from the base's config: same frames as the base's own DDIM
        torch.testing.assert_close(ddim, _gen(cn_pipe, layers), atol=0, rtol=0)


# ---------------------------------------------------------------- SparseCtrl


def test_keyframe_indices():
    assert keyframe_indices(8, None) == [0]
    assert keyframe_indices(8, 3) == [0, 3, 6]
    assert keyframe_indices(8, [0, -1]) == [0, 7]
    for bad in ([8], [0, 0], [], 0):
        with pytest.raises(ValueError, match="keyframes"):
            keyframe_indices(8, bad)


def test_sparsectrl_receives_the_keyframes_at_their_indices_only(sparse_pipe, layers):
    assert type(sparse_pipe).__name__ == "AnimateDiffSparseControlNetPipeline"
    assert sparse_pipe.rendiff_maps == ("rgb",)
    idx = [0, 3]
    seen, encoded = [], []
    hooks = [_capture(sparse_pipe.controlnet, seen),
             sparse_pipe.vae.encoder.register_forward_pre_hook(
                 lambda _m, args: encoded.append(args[0].detach().clone()))]
    try:
        out = _gen(sparse_pipe, layers, keyframes=idx, seed=5)
    finally:
        for h in hooks:
            h.remove()
    assert out.shape == (T, H, W, 3) and torch.isfinite(out).all()
    # the VAE encoded exactly the keyframes' RGB (SparseCtrl-RGB's input), in [-1, 1]
    rgb = layers[Layer.RGB][idx].permute(0, 3, 1, 2)
    torch.testing.assert_close(encoded[0], 2 * rgb - 1, atol=1e-6, rtol=0)
    cond, mask = seen[0]["controlnet_cond"], seen[0]["conditioning_mask"]
    assert cond.shape[2] == T and mask.shape[2] == T
    keep = torch.zeros(T, dtype=torch.bool)
    keep[idx] = True
    assert torch.equal(mask[0, 0, :, 0, 0] == 1, keep) and mask.amax((0, 1, 3, 4)).eq(keep).all()
    assert cond[:, :, ~keep].abs().max() == 0
    # and the latents at the keyframes are those keyframes' VAE latents (posterior sampled with
    # the seed)
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        lat = sparse_pipe.vae.encode(2 * rgb - 1).latent_dist.sample()
    lat = lat * sparse_pipe.vae.config.scaling_factor
    torch.testing.assert_close(cond[0, :, idx].permute(1, 0, 2, 3), lat, atol=1e-5, rtol=0)


def test_sparsectrl_keyframes_every_k_and_reference(sparse_pipe, layers):
    encoded = []
    hook = sparse_pipe.vae.encoder.register_forward_pre_hook(
        lambda _m, args: encoded.append(args[0].detach().clone()))
    ref = torch.full((H, W, 3), 0.25)
    try:
        a = _gen(sparse_pipe, layers, keyframes=2, reference=ref)
        b = _gen(sparse_pipe, layers, keyframes=2)
    finally:
        hook.remove()
    rgb = layers[Layer.RGB][[0, 2, 4]].permute(0, 3, 1, 2)
    assert encoded[0].shape[0] == 3
    torch.testing.assert_close(encoded[0][1:], 2 * rgb[1:] - 1, atol=1e-6, rtol=0)
    torch.testing.assert_close(encoded[0][0], torch.full((3, H, W), -0.5), atol=1e-6, rtol=0)
    torch.testing.assert_close(encoded[1], 2 * rgb - 1, atol=1e-6, rtol=0)
    assert (a - b).abs().mean() > 1e-3
    assert torch.equal(b, _gen(sparse_pipe, layers, keyframes=[0, 2, 4]))


# ---------------------------------------------------------------- rendiff.generate


def test_generate_routes_a_setup_folder_and_file(tiny, cn_pipe, sparse_pipe, layers):
    got = rendiff.generate(layers, model=tiny, steps=STEPS, seed=3, progress=False)
    spec = load_spec(tiny / "rendiff_pretrained.yaml")
    want = generate_animatediff(cn_pipe, layers, prompt=spec.prompt, steps=STEPS, seed=3,
                                negative_prompt=spec.negative_prompt, progress=False)
    torch.testing.assert_close(got, want, atol=0, rtol=0)
    got = rendiff.generate(layers, model=tiny / "rendiff_sparsectrl.yaml", steps=STEPS, seed=3,
                           keyframes=[0, 5], progress=False)
    want = generate_animatediff(sparse_pipe, layers, prompt=spec.prompt, steps=STEPS, seed=3,
                                keyframes=[0, 5], progress=False)
    torch.testing.assert_close(got, want, atol=0, rtol=0)
    # maps= picks a subset of the ControlNets
    depth = rendiff.generate(layers, model=tiny, maps=["depth"], weights={"depth": 0.0},
                             steps=STEPS, seed=3, progress=False)
    plain = _plain_animatediff(cn_pipe, layers, seed=3, prompt=spec.prompt)
    torch.testing.assert_close(depth, plain, atol=1e-6, rtol=0)
    with pytest.raises(ModelError, match=r"no ControlNet for map\(s\) \['shading'\]"):
        rendiff.generate(layers, model=tiny, maps=["shading"], steps=STEPS, progress=False)
    with pytest.raises(ValueError, match="only pretrained AnimateDiff setups"):
        rendiff.generate(layers, model=tiny / "base", prompt="x")
    with pytest.raises(ModelError, match="holds a ControlNetModel, .*rendiff_pretrained.yaml"):
        rendiff.generate(layers, model=tiny / "controlnet_depth")


# ---------------------------------------------------------------- errors


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _bad_setups(tiny: Path, tmp: Path):
    """(description, kwargs for load_animatediff, the folder named, words of the message)."""
    ok = dict(base=tiny / "base", motion_adapter=tiny / "motion_adapter",
              controlnets={"depth": tiny / "controlnet_depth"})
    no_unet = _copy(tiny / "base", tmp / "no_unet")
    shutil.rmtree(no_unet / "unet")
    no_index = _copy(tiny / "base", tmp / "no_index")
    (no_index / "model_index.json").unlink()
    no_weights = _copy(tiny / "motion_adapter", tmp / "no_weights")
    for f in no_weights.glob("*.safetensors"):
        f.unlink()
    wide = _copy(tiny / "motion_adapter", tmp / "wide")
    cfg = json.loads((wide / "config.json").read_text())
    cfg["block_out_channels"] = [16, 32]
    (wide / "config.json").write_text(json.dumps(cfg))
    (tmp / "empty").mkdir()
    return [
        ({**ok, "base": tmp / "missing"}, tmp / "missing", "base model folder not found"),
        ({**ok, "base": no_index}, no_index, "model_index.json not found"),
        ({**ok, "base": tiny / "controlnet_depth"}, tiny / "controlnet_depth",
         "folder is a ControlNetModel, expected a Stable Diffusion 1.5 pipeline"),
        ({**ok, "base": no_unet}, no_unet, "unet/ not found"),
        ({**ok, "motion_adapter": tiny / "controlnet_pose"}, tiny / "controlnet_pose",
         "folder is a ControlNetModel, expected a MotionAdapter"),
        ({**ok, "motion_adapter": tmp / "empty"}, tmp / "empty",
         "config.json not found (expected a MotionAdapter"),
        ({**ok, "motion_adapter": no_weights}, no_weights, "no weights file"),
        ({**ok, "motion_adapter": wide}, wide, "made for a UNet with block_out_channels (16, 32)"),
        ({**ok, "controlnets": {"depth": tiny / "sparsectrl"}}, tiny / "sparsectrl",
         "folder is a SparseControlNetModel, expected a ControlNetModel (SparseCtrl"),
        ({**ok, "controlnets": {"depth": tiny / "motion_adapter"}}, tiny / "motion_adapter",
         "folder is a MotionAdapter, expected a ControlNetModel"),
        ({**ok, "controlnets": None, "sparsectrl": tiny / "controlnet_depth"},
         tiny / "controlnet_depth",
         "folder is a ControlNetModel, expected a SparseControlNetModel"),
        ({**ok, "controlnets": {"dept": tiny / "controlnet_depth"}}, None,
         "unknown map 'dept' (did you mean 'depth'?)"),
    ]


def test_each_bad_folder_gives_one_line_naming_it(tiny, tmp_path):
    for kwargs, folder, words in _bad_setups(tiny, tmp_path):
        with pytest.raises(ModelError) as err:
            load_animatediff(**kwargs)
        msg = str(err.value)
        assert "\n" not in msg and words in msg, msg
        if folder is not None:
            assert msg.startswith(str(folder)), msg


@pytest.mark.parametrize("text, words", [
    ("base: base\nmotion_adapter: motion_adapter\ncontrolnet: {depth: controlnet_depth}\n",
     "controlnet: unknown field (did you mean 'controlnets'?)"),
    ("base: base\nmotion_adapter: motion_adapter\ncontrolnets: {dept: controlnet_depth}\n",
     "controlnets: unknown map 'dept' (did you mean 'depth'?)"),
    ("base: base\nmotion_adapter: motion_adapter\ncontrolnets: {depth: controlnet_depth}\n"
     "sparsectrl: sparsectrl\n", "give controlnets or sparsectrl, not both"),
    ("motion_adapter: motion_adapter\ncontrolnets: {depth: controlnet_depth}\n",
     "base: Field required"),
    ("base: [unclosed\n", "line 2: invalid YAML"),
])
def test_setup_file_errors_are_one_line(tiny, text, words):
    path = tiny / "bad.yaml"
    path.write_text(text)
    try:
        with pytest.raises(ModelError) as err:
            load_spec(path)
    finally:
        path.unlink()
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{path}: ") and words in msg, msg


def test_setup_file_paths_are_relative_to_it(tiny):
    spec = load_spec(tiny / "rendiff_pretrained.yaml")
    assert spec.base == (tiny / "base").resolve()
    assert spec.controlnets["pose"] == (tiny / "controlnet_pose").resolve()


def test_a_controlnet_whose_map_is_empty_is_left_out(tiny, caplog):
    """Issue 14, item 8: a clip without people has a black pose map; its ControlNet would steer
    the video towards an empty image, so it is left out (with one warning) when other maps have
    content; when every map is empty, all of them are kept."""
    import logging

    from rendiff.conditioners.pretrained import generate_from_spec

    spec = load_spec(tiny / "rendiff_pretrained.yaml")
    base = _layers()
    data = dict(base.data)
    data[Layer.POSE] = torch.zeros_like(data[Layer.POSE])
    no_people = Layers(data, base.cameras, base.fps)
    record: dict = {}
    with caplog.at_level(logging.WARNING, logger="rendiff.conditioners.pretrained"):
        generate_from_spec(no_people, spec, steps=STEPS, progress=False, record=record)
    assert sorted(record["controlnets"]) == ["depth", "normal"]
    assert [r.message for r in caplog.records] == [
        "the pose map is empty in this clip: its ControlNet left out"]
    blank = Layers({Layer.POSE: data[Layer.POSE],
                    Layer.DEPTH: torch.full_like(data[Layer.DEPTH], float("inf"))},
                   base.cameras, base.fps)
    record = {}
    generate_from_spec(blank, spec, steps=STEPS, progress=False, record=record)
    assert sorted(record["controlnets"]) == ["depth", "pose"]
