"""Models, conditioners, metrics and training of rendiff's video diffusion model (tiny, CPU)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler

from rendiff.conditioners.guidance import GuidanceEncoder, resize_weights, resolve_control_weights
from rendiff.conditioners.latent import LatentControlEncoder, concat_conditions, encode_reference
from rendiff.conditioners.metrics import evaluate_video, l1, psnr, ssim, warping_error
from rendiff.conditioners.models import (
    SpatioTemporalUNet,
    build_vae,
    vae_decode_video,
    vae_downsample_factor,
    vae_encode_video,
)
from rendiff.conditioners.pipeline import build_pipeline
from rendiff.conditioners.train import (
    NpzClipDataset,
    TrainConfig,
    WeightAverage,
    colour_weights,
    decayed_lr,
    diffusion_loss,
    fine_tune_start,
    load_trained,
    snapshot,
    synthetic_clip,
    train,
    write_synthetic_clips,
)

TINY_UNET = dict(block_out_channels=(16, 32), norm_num_groups=8, attention_head_dim=8)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _unet(temporal: str = "conv", seed: int = 0, **kw) -> SpatioTemporalUNet:
    torch.manual_seed(seed)
    return SpatioTemporalUNet(temporal_layers=temporal, **{**TINY_UNET, **kw}).eval()


def _perturb(module: torch.nn.Module, name: str, seed: int = 1, scale: float = 0.1) -> None:
    """Give the (zero-initialised) parameters whose name contains ``name`` random values."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in module.named_parameters():
            if name in n:
                p.copy_(torch.randn(p.shape, generator=g) * scale)


# ---------------------------------------------------------------- UNet


@pytest.mark.parametrize("temporal", ["conv", "attention", "none"])
def test_unet_shapes(temporal):
    unet = _unet(temporal, control_channels=3)
    x = torch.randn(2, 4 + 4 + 3, 5, 8, 12)
    with torch.no_grad():
        out = unet(x, torch.tensor([10, 900]))
        out_scalar = unet(x, 500)
    assert out.shape == (2, 4, 5, 8, 12)
    assert out_scalar.shape == (2, 4, 5, 8, 12)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("temporal", ["conv", "attention"])
def test_temporal_layers_start_as_identity(temporal):
    """At initialisation a UNet with temporal layers equals the same UNet without them."""
    with_t = _unet(temporal)
    without = _unet("none")
    missing, unexpected = [], []
    result = without.load_state_dict(
        {k: v for k, v in with_t.state_dict().items() if k in without.state_dict()}, strict=True
    )
    missing += result.missing_keys
    unexpected += result.unexpected_keys
    assert not missing and not unexpected
    x = torch.randn(1, 8, 6, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(with_t(x, 300), without(x, 300), rtol=1e-5, atol=1e-5)


def test_per_frame_unet_is_frame_independent_and_temporal_one_is_not():
    x = torch.randn(1, 8, 6, 8, 8)
    per_frame = _unet("none")
    with torch.no_grad():
        torch.testing.assert_close(
            per_frame(x, 300)[:, :, 2:4], per_frame(x[:, :, 2:4], 300), rtol=1e-5, atol=1e-5
        )
    temporal = _unet("conv")
    _perturb(temporal, "temporal")
    with torch.no_grad():
        diff = (temporal(x, 300)[:, :, 2:4] - temporal(x[:, :, 2:4], 300)).abs().max()
    assert diff > 1e-3


def test_unet_rejects_latents_not_divisible():
    with pytest.raises(ValueError, match="multiples of 2"):
        _unet()(torch.randn(1, 8, 2, 7, 8), 1)


def test_widen_control_channels_keeps_output_and_round_trips(tmp_path):
    unet = _unet()
    x = torch.randn(1, 8, 3, 8, 8)
    with torch.no_grad():
        before = unet(x, 100)
    unet.widen_control_channels(5)
    assert unet.config.control_channels == 5
    assert unet.conv_in.in_channels == 13
    x_wide = torch.cat([x, torch.randn(1, 5, 3, 8, 8)], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(unet(x_wide, 100), before)
    unet.save_pretrained(tmp_path)
    loaded = SpatioTemporalUNet.from_pretrained(tmp_path, low_cpu_mem_usage=False).eval()
    with torch.no_grad():
        assert torch.equal(loaded(x_wide, 100), unet(x_wide, 100))


@pytest.mark.parametrize("temporal", ["conv", "attention"])
def test_unet_save_load_round_trip(tmp_path, temporal):
    unet = _unet(temporal, control_channels=2)
    _perturb(unet, "temporal")
    _perturb(unet, "proj_out")
    unet.save_pretrained(tmp_path)
    loaded = SpatioTemporalUNet.from_pretrained(tmp_path, low_cpu_mem_usage=False).eval()
    assert loaded.config.temporal_layers == temporal
    x = torch.randn(1, 10, 4, 8, 8)
    feats = torch.randn(1, 16, 4, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded(x, 7, feats), unet(x, 7, feats))


# ---------------------------------------------------------------- VAE


def test_vae_shapes_chunking_and_round_trip(tmp_path):
    torch.manual_seed(0)
    vae = build_vae((16, 32), norm_num_groups=8).eval()
    assert vae_downsample_factor(vae) == 2
    video = torch.rand(2, 3, 5, 16, 12) * 2 - 1
    with torch.no_grad():
        z = vae_encode_video(vae, video, chunk_size=3)
        assert z.shape == (2, 4, 5, 8, 6)
        torch.testing.assert_close(z, vae_encode_video(vae, video, chunk_size=100))
        rec = vae_decode_video(vae, z, chunk_size=4)
        assert rec.shape == video.shape
        torch.testing.assert_close(rec, vae_decode_video(vae, z, chunk_size=1))
    vae.save_pretrained(tmp_path)
    loaded = type(vae).from_pretrained(tmp_path, low_cpu_mem_usage=False).eval()
    with torch.no_grad():
        assert torch.equal(vae_encode_video(loaded, video, chunk_size=3), z)


def test_vae_scaling_factor_scales_latents():
    torch.manual_seed(0)
    vae = build_vae((16, 32), norm_num_groups=8).eval()
    video = torch.rand(1, 3, 2, 8, 8)
    with torch.no_grad():
        vae.register_to_config(scaling_factor=1.0)
        z1 = vae_encode_video(vae, video)
        vae.register_to_config(scaling_factor=2.5)
        torch.testing.assert_close(vae_encode_video(vae, video), 2.5 * z1)
        torch.testing.assert_close(vae_decode_video(vae, 2.5 * z1), vae_decode_video(vae, 2.5 * z1))


# ---------------------------------------------------------------- control weights


def test_resolve_control_weights_defaults_and_normalisation():
    names = ("depth", "normal", "semantic")
    w = resolve_control_weights(names, ["depth", "normal"], None, 2, 3, 4)
    assert w.shape == (3, 2, 3, 4)
    torch.testing.assert_close(w[0], torch.full((2, 3, 4), 0.5))  # 1 + 1 > 1 -> halves
    assert (w[2] == 0).all()  # absent map
    w = resolve_control_weights(names, ["depth", "normal"], {"depth": 0.3, "normal": 0.5}, 2, 3, 4)
    assert torch.allclose(w[0], torch.tensor(0.3)) and torch.allclose(w[1], torch.tensor(0.5))

    per_pixel = torch.zeros(2, 3, 4)
    per_pixel[:, :, 2:] = 1.0  # right half: depth 1 + normal 0.6 -> normalised
    w = resolve_control_weights(
        names, ["depth", "normal"], {"depth": per_pixel, "normal": 0.6}, 2, 3, 4
    )
    torch.testing.assert_close(w[0, :, :, :2], torch.zeros(2, 3, 2))
    torch.testing.assert_close(w[1, :, :, :2], torch.full((2, 3, 2), 0.6))
    torch.testing.assert_close(w[0, :, :, 2:], torch.full((2, 3, 2), 1 / 1.6))
    torch.testing.assert_close(w[1, :, :, 2:], torch.full((2, 3, 2), 0.6 / 1.6))
    assert (w.sum(0) <= 1 + 1e-6).all()


@pytest.mark.parametrize(
    "weights, match",
    [
        ({"semantic": 0.5}, "not in the controls"),
        ({"depth": 1.5}, r"\[0, 1\]"),
        ({"depth": -0.1}, r"\[0, 1\]"),
        ({"depth": np.ones((2, 3))}, "scalar or"),
    ],
)
def test_resolve_control_weights_errors(weights, match):
    with pytest.raises(ValueError, match=match):
        resolve_control_weights(("depth", "semantic"), ["depth"], weights, 2, 3, 4)


def test_resize_weights_area_average():
    w = torch.zeros(1, 1, 1, 4, 4)
    w[..., :2, :2] = 1.0
    small = resize_weights(w, 2, 2)
    torch.testing.assert_close(small[0, 0, 0], torch.tensor([[1.0, 0.0], [0.0, 0.0]]))


# ---------------------------------------------------------------- guidance encoder


def _controls(b=1, t=3, h=16, w=16, names=("depth", "normal"), seed=0):
    g = torch.Generator().manual_seed(seed)
    return {n: torch.rand(b, 3, t, h, w, generator=g) for n in names}


def test_guidance_encoder_shapes_and_zero_init_leaves_unet_unchanged():
    torch.manual_seed(0)
    enc = GuidanceEncoder(map_names=("depth", "normal"), out_channels=16, downsample_factor=4)
    controls = _controls()
    weights = torch.ones(1, 2, 3, 16, 16)
    feats = enc(controls, weights)
    assert feats.shape == (1, 16, 3, 4, 4)
    assert (feats == 0).all()  # zero-initialised projections
    unet = _unet()
    x = torch.randn(1, 8, 3, 4, 4)
    with torch.no_grad():
        assert torch.equal(unet(x, 50, feats), unet(x, 50))


def test_guidance_encoder_weights_scale_and_sum_features():
    torch.manual_seed(0)
    enc = GuidanceEncoder(
        map_names=("depth", "normal"),
        block_out_channels=(8, 16, 16),
        out_channels=16,
        downsample_factor=2,
    )
    _perturb(enc, "conv_out")
    controls = _controls()
    ones = torch.ones(1, 2, 3, 16, 16)
    with torch.no_grad():
        both = enc(controls, ones)
        depth_only = enc({"depth": controls["depth"]}, ones)
        normal_only = enc({"normal": controls["normal"]}, ones)
        torch.testing.assert_close(both, depth_only + normal_only)
        torch.testing.assert_close(enc(controls, ones * 0.25), both * 0.25)
        # a per-pixel weight of 0 on the left half silences the features there
        left_off = ones.clone()
        left_off[..., :8] = 0
        out = enc(controls, left_off)
        assert (out[..., :4] == 0).all() and (out[..., 4:] != 0).any()
        # chunked encoding is exact (the encoder is per-frame)
        torch.testing.assert_close(enc(controls, ones, chunk_size=1), both)
    with pytest.raises(ValueError, match="power of two"):
        GuidanceEncoder(block_out_channels=(8, 16), downsample_factor=4)


def test_guidance_encoder_round_trip(tmp_path):
    torch.manual_seed(0)
    enc = GuidanceEncoder(map_names=("depth", "pose"), out_channels=16)
    _perturb(enc, "conv_out")
    enc.save_pretrained(tmp_path)
    loaded = GuidanceEncoder.from_pretrained(tmp_path, low_cpu_mem_usage=False)
    assert loaded.map_names == ("depth", "pose")
    controls = _controls(names=("depth", "pose"))
    w = torch.ones(1, 2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(loaded(controls, w), enc(controls, w))


# ---------------------------------------------------------------- latent-space conditioning


def test_latent_encoder_channels_absent_maps_and_weights():
    torch.manual_seed(0)
    enc = LatentControlEncoder(
        map_names=("depth", "normal"),
        block_out_channels=(8, 16),
        channels_per_map=3,
        downsample_factor=2,
    )
    assert enc.out_channels == 6
    controls = _controls()
    ones = torch.ones(1, 2, 3, 16, 16)
    with torch.no_grad():
        out = enc(controls, ones)
        assert out.shape == (1, 6, 3, 8, 8)
        assert out[:, :3].abs().sum() > 0  # not zero-initialised (see the module docstring)
        only_normal = enc({"normal": controls["normal"]}, ones)
        assert (only_normal[:, :3] == 0).all()
        torch.testing.assert_close(only_normal[:, 3:], out[:, 3:])
        half = ones.clone()
        half[:, 0] = 0.5
        torch.testing.assert_close(enc(controls, half)[:, :3], out[:, :3] * 0.5)


def test_latent_encoder_vae_maps_are_the_vaes_own_latents_times_the_weights():
    torch.manual_seed(0)
    vae = build_vae((16, 32), norm_num_groups=8).eval()
    enc = LatentControlEncoder(
        map_names=("depth",),
        block_out_channels=(8, 16),
        channels_per_map=3,
        downsample_factor=2,
        vae_map_names=("albedo",),
        vae_latent_channels=4,
    )
    assert enc.map_names == ("depth", "albedo")
    assert enc.out_channels == 3 + 4
    controls = _controls(names=("depth", "albedo"))
    w = torch.ones(1, 2, 3, 16, 16)
    w[:, 1, :, :8] = 0.25  # a quarter of the albedo weight on the top half
    with torch.no_grad():
        out = enc(controls, w, vae=vae)
        expected = vae_encode_video(vae, controls["albedo"] * 2 - 1)
    torch.testing.assert_close(out[:, 3:], expected * resize_weights(w[:, 1:2], 8, 8))
    assert torch.allclose(out[:, 3:, :, :4], expected[..., :4, :] * 0.25)
    # an absent VAE map is zeros and needs no VAE; the learned part is unaffected by it
    with torch.no_grad():
        only_depth = enc({"depth": controls["depth"]}, w)
    assert (only_depth[:, 3:] == 0).all()
    torch.testing.assert_close(only_depth[:, :3], out[:, :3])
    with pytest.raises(ValueError, match="encoded by the VAE"):
        enc(controls, w)
    with pytest.raises(ValueError, match="both map_names and vae_map_names"):
        LatentControlEncoder(map_names=("depth",), vae_map_names=("depth",))


def test_pipeline_with_vae_maps_generates_and_round_trips(tmp_path):
    torch.manual_seed(0)
    pipe = build_pipeline(
        maps=("depth", "shading"), injection="pixel", preset="tiny", vae_maps=("shading",)
    )
    assert pipe.map_names == ("depth", "shading")
    assert pipe.latent_encoder.map_names == ("shading",)
    assert pipe.unet.config.control_channels == pipe.vae.config.latent_channels
    _perturb(pipe.unet, "conv_in")  # let the VAE map reach the output
    clip = synthetic_clip(num_frames=4, size=16, seed=3)
    controls = {k: clip[k].astype(np.float32) / 255 for k in ("depth", "shading")}
    ref = clip["rgb"][0].astype(np.float32) / 255
    a = pipe(controls, ref, num_inference_steps=2, progress=False).frames
    without = pipe({"depth": controls["depth"]}, ref, num_inference_steps=2, progress=False)
    assert np.abs(a - without.frames).max() > 1e-4  # the VAE map changes the output
    pipe.save_pretrained(tmp_path / "p")
    again = load_trained(tmp_path / "p")
    b = again(controls, ref, num_inference_steps=2, progress=False).frames
    np.testing.assert_allclose(a, b, atol=1e-6)
    with pytest.raises(ValueError, match="not among the maps"):
        build_pipeline(maps=("depth",), preset="tiny", vae_maps=("albedo",))


def test_reference_latent_and_concatenation():
    torch.manual_seed(0)
    vae = build_vae((16, 32), norm_num_groups=8).eval()
    img = torch.rand(2, 3, 8, 8)
    with torch.no_grad():
        ref = encode_reference(vae, img)
        assert ref.shape == (2, 4, 1, 4, 4)
        torch.testing.assert_close(ref, vae_encode_video(vae, img[:, :, None] * 2 - 1))
    noisy = torch.randn(2, 4, 5, 4, 4)
    ctrl = torch.randn(2, 6, 5, 4, 4)
    x = concat_conditions(noisy, ref, ctrl)
    assert x.shape == (2, 14, 5, 4, 4)
    assert torch.equal(x[:, :4], noisy)
    assert torch.equal(x[:, 4:8, 3], ref[:, :, 0])  # broadcast over frames
    assert torch.equal(x[:, 8:], ctrl)
    assert concat_conditions(noisy).shape == noisy.shape


# ---------------------------------------------------------------- metrics


def test_pixel_metrics_against_hand_computed_values():
    target = np.zeros((2, 8, 8, 3), np.float32)
    pred = np.full_like(target, 0.1)
    assert l1(pred, target) == pytest.approx(0.1, rel=1e-6)
    assert psnr(pred, target) == pytest.approx(20.0, rel=1e-6)  # MSE 0.01
    pred2 = target.copy()
    pred2[..., 0] = 0.3  # MSE = 0.09 / 3 = 0.03
    assert psnr(pred2, target) == pytest.approx(10 * math.log10(1 / 0.03), rel=1e-6)
    img = np.random.default_rng(0).random((16, 16, 3)).astype(np.float32)
    assert ssim(img, img) == pytest.approx(1.0, abs=1e-6)
    assert ssim(torch.from_numpy(img), torch.from_numpy(img)) == pytest.approx(1.0, abs=1e-6)
    assert ssim(img, 1 - img) < 0.5
    with pytest.raises(ValueError, match="shapes differ"):
        l1(img, img[:8])


def test_warping_error_of_a_known_integer_shift_is_zero():
    rng = np.random.default_rng(0)
    t, h, w, dx, dy = 4, 20, 24, 2, -1
    frames = [rng.random((h, w, 3))]
    for _ in range(t - 1):  # content at (x, y) in frame t is at (x + dx, y + dy) in frame t+1
        frames.append(np.roll(frames[-1], shift=(dy, dx), axis=(0, 1)))
    frames = np.stack(frames).astype(np.float32)
    flow = np.zeros((t, h, w, 2), np.float32)
    flow[..., 0], flow[..., 1] = dx, dy
    # np.roll wraps around; the wrapped border is what an occlusion mask would exclude
    valid = np.zeros((t, h, w), bool)
    valid[:, 2:-2, 3:-3] = True
    assert warping_error(frames, flow, valid) < 1e-10
    assert warping_error(frames, -flow, valid) > 1e-2  # the wrong direction is not consistent
    assert warping_error(frames, flow[:-1], valid[:-1]) < 1e-10  # [T-1, ...] flow accepted
    # without a mask, pixels whose flow lands outside the frame are excluded, and those are
    # exactly the pixels np.roll wrapped around
    assert warping_error(frames, flow) < 1e-10
    metrics = evaluate_video(frames, frames, flow, valid)
    assert metrics["psnr"] == float("inf") and metrics["ssim"] == pytest.approx(1.0, abs=1e-6)
    assert metrics["warping_error"] < 1e-10
    with pytest.raises(ValueError, match="flow must be"):
        warping_error(frames, flow[..., :1])


def test_warping_error_half_pixel_shift_is_bilinear():
    """A linear ramp shifted by half a pixel is reproduced exactly by bilinear warping."""
    h, w = 6, 10
    ramp = np.tile(np.arange(w, dtype=np.float64)[None, :, None] / w, (h, 1, 3))
    frames = np.stack([ramp, ramp - 0.5 / w])  # frame 1 = frame 0 moved right by half a pixel
    flow = np.zeros((2, h, w, 2))
    flow[..., 0] = 0.5
    assert warping_error(frames, flow) < 1e-20


# ---------------------------------------------------------------- training


def test_synthetic_clip_is_consistent():
    clip = synthetic_clip(num_frames=4, size=32, seed=3)
    assert set(clip) == {"rgb", "depth", "normal", "semantic", "shading"}
    for a in clip.values():
        assert a.shape == (4, 32, 32, 3) and a.dtype == np.uint8
    fg = clip["semantic"].sum(-1) > 0
    assert fg.any() and (~fg).any()
    # nearer (foreground) pixels have a larger normalised inverse depth than the background
    assert clip["depth"][..., 0][fg].mean() > clip["depth"][..., 0][~fg].mean()


def _cfg(data, out, **kw) -> TrainConfig:
    base = dict(
        data_dir=str(data),
        output_dir=str(out),
        preset="tiny",
        size=16,
        num_frames=4,
        batch_size=2,
        vae_steps=15,
        vae_batch_frames=4,
        unet_steps=12,
        lr=1e-3,
        vae_lr=2e-3,
        log_every=5,
        maps=("depth", "normal", "semantic"),
    )
    return TrainConfig(**{**base, **kw})


def test_training_smoke_loss_decreases_deterministic_and_resumable(tmp_path, capsys):
    data = tmp_path / "clips"
    write_synthetic_clips(data, 3, num_frames=6, size=20, seed=0)
    ds = NpzClipDataset(data, ("depth", "normal", "semantic"))
    assert len(ds) == 3

    untrained = load_trained(train(_cfg(data, tmp_path / "a", unet_steps=0)))
    trained = load_trained(train(_cfg(data, tmp_path / "b", unet_steps=40)))
    assert "parameters: vae" in capsys.readouterr().out

    log = [json.loads(line) for line in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if r["phase"] == "vae" and "l1" in r] == [5, 10, 15]

    # fixed evaluation batch: the trained VAE reconstructs better than its initialisation
    gen = torch.Generator().manual_seed(123)
    video, ref = ds.batch(4, 4, 16, gen)
    torch.manual_seed(0)  # the seed training starts from
    initial_vae = build_pipeline(maps=trained.map_names, preset="tiny").vae.eval()
    x = video["rgb"] * 2 - 1
    with torch.no_grad():
        rec_before = (vae_decode_video(initial_vae, vae_encode_video(initial_vae, x)) - x).abs()
        rec_after = (vae_decode_video(trained.vae, vae_encode_video(trained.vae, x)) - x).abs()
    assert rec_after.mean() < 0.7 * rec_before.mean()

    # fixed timesteps and noise: the trained denoiser's loss is lower
    names = trained.map_names
    weights = resolve_control_weights(names, names, None, 4, 16, 16)[None].expand(4, -1, -1, -1, -1)
    t = torch.tensor([150, 400, 650, 900])
    noise = torch.randn(4, 4, 4, 8, 8, generator=gen)
    with torch.no_grad():
        before = diffusion_loss(untrained, video, ref, weights, t, noise).mean()
        after = diffusion_loss(trained, video, ref, weights, t, noise).mean()
    assert after < 0.8 * before

    # same seed, same result; resuming from a checkpoint gives the uninterrupted run's result
    train(_cfg(data, tmp_path / "c", unet_steps=6))
    resumed = load_trained(train(_cfg(data, tmp_path / "c", unet_steps=12, resume=True)))
    straight = load_trained(train(_cfg(data, tmp_path / "d", unet_steps=12)))
    again = load_trained(train(_cfg(data, tmp_path / "e", unet_steps=12)))
    for a, b in ((straight, again), (straight, resumed)):
        for key, value in a.unet.state_dict().items():
            assert torch.equal(value, b.unet.state_dict()[key]), key
        assert a.vae.config.scaling_factor == b.vae.config.scaling_factor


@pytest.mark.parametrize("injection", ["latent", "none"])
def test_training_ablations_run(tmp_path, injection):
    data = tmp_path / "clips"
    write_synthetic_clips(data, 2, num_frames=4, size=16, seed=1)
    pipe = load_trained(
        train(
            _cfg(
                data,
                tmp_path / "run",
                injection=injection,
                vae_steps=2,
                unet_steps=2,
                maps=("depth",),
            )
        )
    )
    assert (pipe.latent_encoder is not None) == (injection == "latent")
    assert pipe.guidance_encoder is None


def test_build_pipeline_presets():
    pipe = build_pipeline(maps=("depth", "normal"), injection="both", preset="tiny")
    assert pipe.map_names == ("depth", "normal")
    assert pipe.unet.config.control_channels == pipe.latent_encoder.out_channels
    with pytest.raises(ValueError, match="injection"):
        build_pipeline(injection="cross-attention")


def test_training_from_a_trained_vae_skips_the_vae_phase(tmp_path):
    data = tmp_path / "clips"
    write_synthetic_clips(data, 2, num_frames=4, size=16, seed=2)
    first = load_trained(train(_cfg(data, tmp_path / "a", vae_steps=3, unet_steps=1)))
    second = load_trained(
        train(_cfg(data, tmp_path / "b", vae_path=str(tmp_path / "a" / "vae"), unet_steps=1))
    )
    for key, value in first.vae.state_dict().items():
        assert torch.equal(value, second.vae.state_dict()[key]), key
    assert second.vae.config.scaling_factor == first.vae.config.scaling_factor
    log = (tmp_path / "b" / "log.jsonl").read_text()
    assert '"phase": "vae"' not in log


def test_fine_tuning_adds_vae_maps_and_the_decoder_phase_keeps_the_latents(tmp_path):
    data = tmp_path / "clips"
    write_synthetic_clips(data, 2, num_frames=4, size=16, seed=3)
    base_dir = train(_cfg(data, tmp_path / "a", vae_steps=3, unet_steps=2))
    base = load_trained(base_dir)

    # adding a VAE map leaves generation unchanged until its zero input weights are trained
    widened = fine_tune_start(base_dir, ("shading",))
    assert widened.map_names == ("depth", "normal", "semantic", "shading")
    assert widened.latent_encoder.map_names == ("shading",)
    clip = synthetic_clip(num_frames=4, size=16, seed=5)
    controls = {k: clip[k].astype(np.float32) / 255 for k in widened.map_names}
    ref = clip["rgb"][0].astype(np.float32) / 255
    old = {k: v for k, v in controls.items() if k != "shading"}
    a = base(old, ref, num_inference_steps=2, progress=False).frames
    b = widened(controls, ref, num_inference_steps=2, progress=False).frames
    np.testing.assert_allclose(a, b, atol=5e-4)  # summation order only (a wider conv_in)

    run = tmp_path / "b"
    ft = load_trained(
        train(
            _cfg(
                data,
                run,
                init_from=str(base_dir),
                vae_maps=("shading",),
                decoder_steps=30,
                unet_steps=2,
            )
        )
    )
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert {r["phase"] for r in log} == {"decoder", "unet", "done"}
    assert json.loads((run / "config.json").read_text())["maps"] == list(widened.map_names)
    assert ft.map_names == widened.map_names
    # the encoder is frozen, so latents (what the UNet was trained on) do not change ...
    for key, value in base.vae.state_dict().items():
        if not key.startswith(("decoder.", "post_quant_conv.")):
            assert torch.equal(value, ft.vae.state_dict()[key]), key
    assert ft.vae.config.scaling_factor == base.vae.config.scaling_factor
    # ... while the decoder reconstructs a fixed batch better
    ds = NpzClipDataset(data, ("depth",))
    video, _ = ds.batch(4, 4, 16, torch.Generator().manual_seed(7))
    x = video["rgb"] * 2 - 1
    with torch.no_grad():
        z = vae_encode_video(base.vae, x)
        torch.testing.assert_close(z, vae_encode_video(ft.vae, x))
        before = (vae_decode_video(base.vae, z) - x).abs().mean()
        after = (vae_decode_video(ft.vae, z) - x).abs().mean()
    assert after < 0.9 * before


def test_retrain_vae_continues_the_whole_vae(tmp_path):
    data = tmp_path / "clips"
    write_synthetic_clips(data, 2, num_frames=4, size=16, seed=3)
    base_dir = train(_cfg(data, tmp_path / "a", vae_steps=3, unet_steps=2))
    base = load_trained(base_dir)
    with pytest.raises(ValueError, match="needs init_from"):
        train(_cfg(data, tmp_path / "x", retrain_vae=True))

    run = tmp_path / "b"
    ft = load_trained(
        train(
            _cfg(
                data,
                run,
                init_from=str(base_dir),
                retrain_vae=True,
                vae_steps=40,
                vae_lr_decay=0.5,
                unet_steps=2,
            )
        )
    )
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    vae_log = [r for r in log if r["phase"] == "vae" and "l1" in r]
    assert vae_log[-1]["step"] == 40
    # constant for the first half, then linear to 0: step 39 of 40 runs at 1/20 of vae_lr
    assert vae_log[0]["lr"] == pytest.approx(2e-3)
    assert vae_log[-1]["lr"] == pytest.approx(2e-3 / 20)
    assert {r["phase"] for r in log} == {"vae", "unet", "done"}
    # unlike decoder_steps, the encoder trains too, and the latent scale is measured again
    changed = [
        k
        for k, v in base.vae.state_dict().items()
        if k.startswith("encoder.") and not torch.equal(v, ft.vae.state_dict()[k])
    ]
    assert changed
    assert ft.vae.config.scaling_factor != base.vae.config.scaling_factor
    ds = NpzClipDataset(data, ("depth",))
    video, _ = ds.batch(4, 4, 16, torch.Generator().manual_seed(7))
    x = video["rgb"] * 2 - 1
    with torch.no_grad():
        before = (vae_decode_video(base.vae, vae_encode_video(base.vae, x)) - x).abs().mean()
        after = (vae_decode_video(ft.vae, vae_encode_video(ft.vae, x)) - x).abs().mean()
    assert after < 0.9 * before


def test_decayed_lr():
    assert [decayed_lr(1.0, s, 100, 0.5) for s in (0, 50, 75, 99)] == pytest.approx(
        [1.0, 1.0, 0.5, 0.02]
    )
    assert decayed_lr(1.0, 99, 100, 0.0) == 1.0  # no decay
    assert decayed_lr(1.0, 0, 100, 1.0) == 1.0
    assert decayed_lr(1.0, 90, 100, 1.0) == pytest.approx(0.1)


def test_colour_weights_and_weighted_loss():
    albedo = torch.full((1, 3, 2, 8, 8), 0.5)
    albedo[:, 0, :, :4, :4] = 1.0  # a red-ish top-left quadrant: chroma 0.5
    w = colour_weights(albedo, 4, 2.0)
    assert w.shape == (1, 1, 2, 4, 4)
    torch.testing.assert_close(w[..., :2, :2], torch.full((1, 1, 2, 2, 2), 2.0))  # 1 + 2 * 0.5
    torch.testing.assert_close(w[..., 2:, :], torch.ones(1, 1, 2, 2, 4))

    torch.manual_seed(0)
    pipe = build_pipeline(maps=("depth",), preset="tiny")
    video = {"rgb": torch.rand(2, 3, 2, 16, 16), "depth": torch.rand(2, 3, 2, 16, 16)}
    ref, t = torch.rand(2, 3, 16, 16), torch.tensor([100, 700])
    weights = torch.ones(2, 1, 2, 16, 16)
    noise = torch.randn(2, 4, 2, 8, 8)
    with torch.no_grad():
        plain = diffusion_loss(pipe, video, ref, weights, t, noise)
        uniform = diffusion_loss(
            pipe, video, ref, weights, t, noise, latent_weight=torch.full((2, 1, 2, 8, 8), 3.0)
        )
        torch.testing.assert_close(uniform, plain)  # normalised: a constant weight changes nothing
        only = torch.zeros(2, 1, 2, 8, 8)
        only[..., 0, 0] = 1.0  # all the weight on one cell per frame
        one_cell = diffusion_loss(pipe, video, ref, weights, t, noise, latent_weight=only)
        sched = DDPMScheduler.from_config(pipe.scheduler.config)
        from rendiff.conditioners.latent import concat_conditions, encode_reference

        z0 = vae_encode_video(pipe.vae, video["rgb"] * 2 - 1)
        zt = sched.add_noise(z0, noise, t)
        x = concat_conditions(zt, encode_reference(pipe.vae, ref))
        feats = pipe.guidance_encoder({"depth": video["depth"]}, weights)
        err = (pipe.unet(x, t, feats) - sched.get_velocity(z0, noise, t)) ** 2
        # normalised weight 64 on 1 of 64 cells: the mean error of that cell
        expected = err[..., 0, 0].mean((1, 2))
    torch.testing.assert_close(one_cell, expected, rtol=1e-4, atol=1e-6)


def test_weight_average_is_the_exponential_moving_average():
    m = torch.nn.Linear(2, 1)
    with torch.no_grad():
        m.weight.fill_(0.0)
    avg = WeightAverage({"m": m}, decay=0.9)
    expected = torch.zeros(1, 2)
    for value in (1.0, 2.0, 3.0):
        with torch.no_grad():
            m.weight.fill_(value)
        avg.update()
        expected = 0.9 * expected + 0.1 * value
    assert torch.allclose(avg.state_dict()["m"]["weight"], expected)
    assert torch.equal(m.weight, torch.full((1, 2), 3.0))  # the module itself is untouched
    avg.copy_to()
    assert torch.allclose(m.weight, expected)


def test_training_with_weight_average_and_lr_decay_saves_the_average(tmp_path):
    data = tmp_path / "clips"
    write_synthetic_clips(data, 2, num_frames=6, size=20, seed=0)
    cfg = _cfg(data, tmp_path / "a", unet_steps=10, ema_decay=0.5, lr_decay=0.5, log_every=1)
    final = load_trained(train(cfg))
    log = [json.loads(line) for line in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    lrs = [r["lr"] for r in log if r["phase"] == "unet" and "lr" in r]
    assert lrs[:5] == pytest.approx([1e-3] * 5) and lrs[5:] == pytest.approx(
        [1e-3 * (10 - s) / 5 for s in range(5, 10)]
    )
    state = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=False)
    last, ema = state["models"]["unet"], state["ema"]["unet"]
    saved = final.unet.state_dict()
    key = next(k for k in ema if not torch.equal(ema[k], last[k]))  # the average lags the weights
    assert torch.equal(saved[key], ema[key])
    # a mid-run snapshot of the same checkpoint holds the average too, or the last weights
    snap = load_trained(snapshot(tmp_path / "a", tmp_path / "snap"))
    raw = load_trained(snapshot(tmp_path / "a", tmp_path / "raw", average=False))
    assert torch.equal(snap.unet.state_dict()[key], ema[key])
    assert torch.equal(raw.unet.state_dict()[key], last[key])
    # resuming restores the average rather than restarting it from the current weights
    train(_cfg(data, tmp_path / "b", unet_steps=5, ema_decay=0.5))
    resumed = load_trained(
        train(_cfg(data, tmp_path / "b", unet_steps=10, ema_decay=0.5, resume=True))
    )
    straight = load_trained(train(_cfg(data, tmp_path / "c", unet_steps=10, ema_decay=0.5)))
    for k, v in straight.unet.state_dict().items():
        assert torch.equal(v, resumed.unet.state_dict()[k]), k
