"""RendiffVideoPipeline: shapes, round trips, schedulers, temporal windows and input checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
)

from rendiff.conditioners.models import SpatioTemporalUNet, vae_encode_video
from rendiff.conditioners.pipeline import (
    RendiffVideoPipeline,
    blend_weights,
    build_pipeline,
    temporal_windows,
)

SCHEDULERS = {
    "ddim": DDIMScheduler,
    "euler": EulerDiscreteScheduler,
    "dpm": DPMSolverMultistepScheduler,
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _perturb(module: torch.nn.Module, name: str, seed: int = 1, scale: float = 0.1) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in module.named_parameters():
            if name in n:
                p.copy_(torch.randn(p.shape, generator=g) * scale)


def _pipe(injection: str = "pixel", temporal: str = "conv", maps=("depth", "normal"), seed=0):
    torch.manual_seed(seed)
    pipe = build_pipeline(maps=maps, injection=injection, preset="tiny", temporal_layers=temporal)
    # untrained zero-initialised projections would hide the conditioning paths
    for enc in (pipe.guidance_encoder, pipe.latent_encoder):
        if enc is not None:
            _perturb(enc, "conv_out")
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _clip(t=6, h=16, w=16, maps=("depth", "normal"), seed=0):
    rng = np.random.default_rng(seed)
    controls = {m: rng.random((t, h, w, 3)).astype(np.float32) for m in maps}
    return controls, rng.random((h, w, 3)).astype(np.float32)


RUN = dict(num_inference_steps=3, progress=False)


@pytest.mark.parametrize("injection", ["pixel", "latent", "both"])
def test_output_types_and_shapes(injection):
    pipe = _pipe(injection)
    controls, ref = _clip()
    out = pipe(controls, ref, **RUN).frames
    assert isinstance(out, np.ndarray) and out.shape == (6, 16, 16, 3) and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1
    pt = pipe(controls, ref, output_type="pt", **RUN).frames
    assert isinstance(pt, torch.Tensor)
    np.testing.assert_array_equal(pt.numpy(), out)
    lat = pipe(controls, ref, output_type="latent", **RUN).frames
    assert lat.shape == (1, 4, 6, 8, 8)


def test_sizes_the_vae_cannot_take_are_padded_and_cropped_back():
    pipe = _pipe()
    assert pipe.size_multiple == 4
    controls, ref = _clip(t=3, h=18, w=13)
    assert pipe(controls, ref, **RUN).frames.shape == (3, 18, 13, 3)


def test_seed_determinism_and_save_load_round_trip(tmp_path):
    pipe = _pipe("both")
    controls, ref = _clip()
    a = pipe(controls, ref, seed=7, **RUN).frames
    assert np.array_equal(a, pipe(controls, ref, seed=7, **RUN).frames)
    assert not np.array_equal(a, pipe(controls, ref, seed=8, **RUN).frames)
    g = torch.Generator().manual_seed(7)
    assert np.array_equal(a, pipe(controls, ref, generator=g, **RUN).frames)
    pipe.save_pretrained(tmp_path)
    loaded = RendiffVideoPipeline.from_pretrained(tmp_path, low_cpu_mem_usage=False)
    assert loaded.map_names == pipe.map_names
    assert isinstance(loaded.unet, SpatioTemporalUNet)
    assert np.array_equal(loaded(controls, ref, seed=7, **RUN).frames, a)


def test_reference_free_model_round_trip(tmp_path):
    torch.manual_seed(0)
    pipe = build_pipeline(maps=("depth",), preset="tiny", reference=False)
    controls, _ = _clip(t=2, maps=("depth",))
    a = pipe(controls, **RUN).frames
    pipe.save_pretrained(tmp_path)
    b = RendiffVideoPipeline.from_pretrained(tmp_path, low_cpu_mem_usage=False)(
        controls, **RUN
    ).frames
    assert np.array_equal(a, b)


class _OracleUNet(SpatioTemporalUNet):
    """Knows the clean latent: the reference latent it is given. Predicts epsilon or v exactly."""

    def forward(self, sample, timestep, added_features=None):
        sched = DDPMScheduler(**self._schedule)
        a = sched.alphas_cumprod.double()[int(round(float(timestep)))]
        xt, x0 = sample[:, :4].double(), sample[:, 4:8].double()
        eps = (xt - a.sqrt() * x0) / (1 - a).sqrt()
        out = (
            eps
            if self._schedule["prediction_type"] == "epsilon"
            else a.sqrt() * eps - (1 - a).sqrt() * x0
        )
        return out.float()


@pytest.mark.parametrize("prediction", ["v_prediction", "epsilon"])
@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_each_scheduler_recovers_the_clean_latent_with_an_oracle_denoiser(name, prediction):
    torch.manual_seed(0)
    base = build_pipeline(maps=(), preset="tiny", prediction_type=prediction)
    base.vae.register_to_config(scaling_factor=8.0)  # latents of order 1, like a trained VAE's
    oracle = _OracleUNet.from_config(base.unet.config)
    oracle._schedule = {
        k: base.scheduler.config[k]
        for k in (
            "num_train_timesteps",
            "beta_start",
            "beta_end",
            "beta_schedule",
            "prediction_type",
            "rescale_betas_zero_snr",
        )
    }
    scheduler = SCHEDULERS[name].from_config(base.scheduler.config)
    pipe = RendiffVideoPipeline(vae=base.vae, unet=oracle, scheduler=scheduler)
    _, ref = _clip(h=8, w=8)
    out = pipe(None, ref, num_frames=3, num_inference_steps=8, output_type="latent", progress=False)
    with torch.no_grad():
        x0 = vae_encode_video(
            base.vae, torch.from_numpy(ref).permute(2, 0, 1)[None, :, None] * 2 - 1
        )
    assert x0.abs().max() > 0.5
    torch.testing.assert_close(out.frames, x0.expand_as(out.frames), rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_each_scheduler_runs_the_real_model(name):
    pipe = _pipe()
    pipe.scheduler = SCHEDULERS[name].from_config(pipe.scheduler.config)
    controls, ref = _clip(t=5)
    out = pipe(controls, ref, window=4, overlap=2, **RUN).frames
    assert out.shape == (5, 16, 16, 3) and np.isfinite(out).all()


def test_temporal_windows_and_blend_weights():
    assert temporal_windows(10, 4, 2) == [(0, 4), (2, 6), (4, 8), (6, 10)]
    assert temporal_windows(11, 4, 2) == [(0, 4), (2, 6), (4, 8), (6, 10), (7, 11)]
    assert temporal_windows(3, 16, 4) == [(0, 3)]
    assert temporal_windows(20, 16, 0) == [(0, 16), (4, 20)]
    for t, window, overlap in [(10, 4, 2), (11, 4, 2), (33, 16, 4), (20, 5, 4), (7, 3, 0)]:
        windows = temporal_windows(t, window, overlap)
        w = blend_weights(t, windows)
        torch.testing.assert_close(w.sum(0), torch.ones(t))
        for i, (s, e) in enumerate(windows):
            assert (w[i, :s] == 0).all() and (w[i, e:] == 0).all() and (w[i, s:e] > 0).all()
    # a linear cross-fade over the two shared frames: 1/3, 2/3
    w = blend_weights(10, temporal_windows(10, 4, 2))
    torch.testing.assert_close(w[1, 2:6], torch.tensor([1 / 3, 2 / 3, 2 / 3, 1 / 3]))
    with pytest.raises(ValueError, match="overlap"):
        temporal_windows(10, 4, 4)


@pytest.mark.parametrize("injection", ["pixel", "latent"])
def test_windowed_generation_matches_one_window_for_a_per_frame_model(injection):
    """With a model whose prediction for a frame depends on that frame only, blending windows
    with weights that sum to 1 reproduces the single-window result: no seams."""
    pipe = _pipe(injection, temporal="none")
    controls, ref = _clip(t=10)
    one = pipe(controls, ref, window=16, **RUN).frames
    windowed = pipe(controls, ref, window=4, overlap=2, **RUN).frames
    np.testing.assert_allclose(windowed, one, atol=1e-5)


def test_windowed_generation_of_a_temporal_model_is_continuous():
    pipe = _pipe("pixel", temporal="conv")
    _perturb(pipe.unet, "temporal", scale=0.05)
    controls, ref = _clip(t=10)
    windowed = pipe(controls, ref, window=4, overlap=2, output_type="latent", **RUN).frames
    one = pipe(controls, ref, window=16, output_type="latent", **RUN).frames
    # the temporal layers see different context, so results differ, but only slightly
    assert 0 < (windowed - one).abs().max() < 0.25 * one.abs().max()


def test_chunk_size_does_not_change_the_result():
    pipe = _pipe("both")
    controls, ref = _clip(t=5)
    a = pipe(controls, ref, chunk_size=1, **RUN).frames
    b = pipe(controls, ref, chunk_size=16, **RUN).frames
    np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("injection", ["pixel", "latent", "both"])
def test_zero_weights_equal_absent_maps(injection):
    pipe = _pipe(injection)
    controls, ref = _clip(t=4)
    zero = pipe(controls, ref, control_weights={"depth": 0.0, "normal": 0.0}, **RUN).frames
    absent = pipe(None, ref, num_frames=4, **RUN).frames
    np.testing.assert_allclose(zero, absent, atol=1e-6)
    one_map = pipe({"depth": controls["depth"]}, ref, **RUN).frames
    other_zero = pipe(controls, ref, control_weights={"normal": 0.0}, **RUN).frames
    np.testing.assert_allclose(one_map, other_zero, atol=1e-6)
    assert not np.allclose(one_map, absent, atol=1e-4)


def test_per_pixel_weights_and_classifier_free_guidance():
    pipe = _pipe()
    controls, ref = _clip(t=4)
    mask = np.zeros((4, 16, 16), np.float32)
    mask[:, :, 8:] = 1
    masked = pipe(controls, ref, control_weights={"depth": mask}, **RUN).frames
    assert masked.shape == (4, 16, 16, 3)
    plain = pipe(controls, ref, **RUN).frames
    assert np.array_equal(plain, pipe(controls, ref, guidance_scale=1.0, **RUN).frames)
    guided = pipe(controls, ref, guidance_scale=3.0, **RUN).frames
    assert not np.allclose(guided, plain)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (
            dict(controls={"segmentation": np.zeros((4, 16, 16, 3), np.float32)}),
            "not ones the model was trained with",
        ),
        (dict(controls={"depth": np.zeros((4, 16, 16))}), r"\[T, H, W, 3\]"),
        (
            dict(controls={"depth": np.zeros((4, 16, 16, 3)), "normal": np.zeros((4, 8, 16, 3))}),
            "has shape",
        ),
        (dict(controls={"depth": np.full((4, 16, 16, 3), 2.0)}), r"\[0, 1\]"),
        (dict(reference_image=np.zeros((8, 8, 3))), "reference_image must be"),
        (dict(control_weights={"normal": 0.5}), "not in the controls"),
        (dict(control_weights={"depth": 2.0}), r"\[0, 1\]"),
        (dict(window=4, overlap=4), "overlap"),
        (dict(output_type="pil"), "output_type"),
        (dict(guidance_scale=0.5), "guidance_scale"),
        (dict(num_inference_steps=0), "num_inference_steps"),
        (dict(num_frames=5), "num_frames=5"),
        (dict(controls=None), "without control maps"),
    ],
)
def test_bad_inputs_raise_clear_errors(kwargs, match):
    pipe = _pipe()
    good = dict(
        controls={"depth": np.zeros((4, 16, 16, 3), np.float32)},
        reference_image=np.zeros((16, 16, 3), np.float32),
        progress=False,
    )
    with pytest.raises(ValueError, match=match):
        pipe(**{**good, **kwargs})


def test_mismatched_components_are_rejected():
    a = build_pipeline(maps=("depth",), injection="latent", preset="tiny")
    b = build_pipeline(maps=("depth",), injection="pixel", preset="tiny")
    with pytest.raises(ValueError, match="latent control channels"):
        RendiffVideoPipeline(
            vae=a.vae, unet=b.unet, scheduler=a.scheduler, latent_encoder=a.latent_encoder
        )


def test_one_reference_per_frame_gives_each_window_its_first_frame(monkeypatch):
    """reference_image [T, H, W, 3]: each temporal window is conditioned on the reference latent
    of its own first frame (checked by recording what the UNet input is built from); one window
    with per-frame references equals the single reference of frame 0."""
    import rendiff.conditioners.pipeline as P
    from rendiff.conditioners.latent import encode_reference

    pipe = _pipe("pixel", temporal="none")
    controls, _ = _clip(t=10)
    refs = np.random.default_rng(3).random((10, 16, 16, 3)).astype(np.float32)
    seen: list[torch.Tensor] = []
    real = P.concat_conditions

    def record(x, reference, control):
        seen.append(reference.clone())
        return real(x, reference, control)

    monkeypatch.setattr(P, "concat_conditions", record)
    pipe(controls, refs, window=4, overlap=2, num_inference_steps=1, progress=False)
    windows = P.temporal_windows(10, 4, 2)
    assert len(seen) == len(windows)
    for (s, _), got in zip(windows, seen, strict=True):
        img = torch.from_numpy(refs[s]).permute(2, 0, 1)[None]  # [1, 3, H, W] in [0, 1]
        want = encode_reference(pipe.vae, img)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    monkeypatch.setattr(P, "concat_conditions", real)
    one_window = pipe(controls, refs, window=16, **RUN).frames
    frame0 = pipe(controls, refs[0], window=16, **RUN).frames
    np.testing.assert_allclose(one_window, frame0, atol=1e-6)


def test_keep_static_keeps_exactly_the_pixels_no_map_changed_at():
    """A square moves in one map between frames 0 and 2: every pixel of frames 1-5 whose maps
    equal frame 0's, and whose neighbours' do, is frame 0 of the engine; the changed square and
    a one-pixel margin are the model's. With two windows, frames from the second window's start
    on compare against (and keep) the engine's frame there."""
    from rendiff.conditioners.pipeline import keep_static_pixels

    T, H, W = 6, 12, 12
    gen = torch.rand(T, H, W, 3)
    refs = torch.rand(T, H, W, 3)
    depth = torch.zeros(T, H, W, 3)
    depth[2:, 4:6, 4:6] = 0.5  # changes at frame 2, stays changed
    normal = torch.zeros(T, H, W, 3)
    normal[1:, 0, 0] = 1 / 255  # below the tolerance: not a change
    out, kept = keep_static_pixels(gen, {"depth": depth, "normal": normal}, refs, [(0, T)])
    moved = torch.zeros(T, H, W, dtype=torch.bool)
    moved[2:, 3:7, 3:7] = True  # the square and its margin
    assert torch.equal(kept, ~moved)
    assert torch.equal(out[kept], refs[0].expand(T, H, W, 3)[kept])
    assert torch.equal(out[moved], gen[moved])
    out2, kept2 = keep_static_pixels(gen, {"depth": depth}, refs, [(0, 3), (2, 6)])
    assert bool(kept2[2:].all())  # frames 2-5 compare with frame 2: nothing changed since
    assert torch.equal(out2[3], refs[2]) and torch.equal(out2[1], refs[0])


def test_keep_static_needs_the_engines_frames():
    pipe = _pipe()
    controls, ref = _clip()
    with pytest.raises(ValueError, match="keep_static needs control maps and the engine's"):
        pipe(controls, ref, keep_static=True, **RUN)
    frames = np.random.default_rng(1).random((6, 16, 16, 3)).astype(np.float32)
    still = {m: np.repeat(c[:1], 6, 0) for m, c in controls.items()}  # nothing changes
    out = pipe(still, frames, keep_static=True, **RUN).frames
    np.testing.assert_allclose(out, np.repeat(frames[:1], 6, 0), atol=1e-6)


def test_a_models_default_guidance_travels_with_its_folder(tmp_path):
    """default_guidance_scale is saved in model_index.json and used when a call names none; a
    folder without it samples without guidance."""
    pipe = _pipe()
    controls, ref = _clip()
    plain = pipe(controls, ref, **RUN).frames
    guided = pipe(controls, ref, guidance_scale=1.5, **RUN).frames
    assert not np.allclose(plain, guided)
    pipe.register_to_config(default_guidance_scale=1.5)
    pipe.save_pretrained(tmp_path / "m")
    loaded = RendiffVideoPipeline.from_pretrained(tmp_path / "m")
    loaded.set_progress_bar_config(disable=True)
    assert loaded.config.default_guidance_scale == 1.5
    np.testing.assert_allclose(loaded(controls, ref, **RUN).frames, guided, atol=1e-5)
    np.testing.assert_allclose(loaded(controls, ref, guidance_scale=1.0, **RUN).frames, plain,
                               atol=1e-5)
    with pytest.raises(ValueError, match="default_guidance_scale must be in"):
        RendiffVideoPipeline(vae=pipe.vae, unet=pipe.unet, scheduler=pipe.scheduler,
                             guidance_encoder=pipe.guidance_encoder, default_guidance_scale=0.5)
