"""MapRefiner: the pixel-space correction after the VAE decoder, in and out of the pipeline."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rendiff.conditioners.models import vae_decode_video
from rendiff.conditioners.pipeline import RendiffVideoPipeline, build_pipeline
from rendiff.conditioners.refiner import MapRefiner
from tests._tools import load_tool

MAPS = ("depth", "normal")
RUN = dict(num_inference_steps=2, progress=False)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _perturbed(refiner: MapRefiner, seed: int = 1, scale: float = 0.1) -> MapRefiner:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in [*refiner.conv_out.parameters(), *refiner.direct.parameters()]:
            p.copy_(torch.randn(p.shape, generator=g) * scale)
    return refiner


def _frames(n=3, h=8, w=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, h, w, generator=g) * 2 - 1
    maps = {m: torch.rand(n, 3, h, w, generator=g) for m in MAPS}
    return x, maps


def test_an_untrained_refiner_returns_the_frame_unchanged():
    x, maps = _frames()
    torch.manual_seed(0)
    assert torch.equal(MapRefiner(map_names=MAPS, block_out_channels=(8, 16))(x, maps), x)


def test_a_dropped_map_reads_as_not_given_and_maps_change_the_output():
    torch.manual_seed(0)
    r = _perturbed(MapRefiner(map_names=MAPS, block_out_channels=(8, 16)))
    x, maps = _frames()
    n, _, h, w = x.shape
    weights = torch.ones(n, 2, h, w)
    weights[:, 1] = 0
    dropped = r(x, maps, weights)
    absent = r(x, {"depth": maps["depth"]})
    torch.testing.assert_close(dropped, absent, rtol=0, atol=1e-6)
    assert not torch.allclose(r(x, maps), absent, atol=1e-4)
    # the input is exactly the frame, then map * weight (scaled to [-1, 1]) and weight per map
    inp = r.inputs(x, maps, weights)
    assert torch.equal(inp[:, :3], x)
    torch.testing.assert_close(inp[:, 3:6], maps["depth"] * 2 - 1)
    assert torch.equal(inp[:, 6], torch.ones(n, h, w))
    assert not inp[:, 7:].any()


def test_refine_video_in_chunks_equals_frame_by_frame_and_odd_sizes_are_refused():
    torch.manual_seed(0)
    r = _perturbed(MapRefiner(map_names=MAPS, block_out_channels=(8, 16)))
    x, maps = _frames(n=5)
    video = {k: v.transpose(0, 1)[None] for k, v in maps.items()}
    weights = torch.rand(1, 2, 5, 8, 10)
    out = r.refine_video(x.transpose(0, 1)[None], video, weights, chunk_size=2)
    one = r(x, maps, weights[0].transpose(0, 1))
    torch.testing.assert_close(out[0].transpose(0, 1), one, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="even frame size"):
        r(x[..., :7], {k: v[..., :7] for k, v in maps.items()})


def _pipe_with_refiner():
    torch.manual_seed(0)
    pipe = build_pipeline(maps=MAPS, preset="tiny")
    refiner = _perturbed(MapRefiner(map_names=MAPS, block_out_channels=(8, 16)))
    full = RendiffVideoPipeline(**{**pipe.components, "refiner": refiner})
    full.set_progress_bar_config(disable=True)
    return pipe, full


def test_the_pipeline_refines_its_decoded_frames_and_saves_the_refiner(tmp_path):
    bare, pipe = _pipe_with_refiner()
    rng = np.random.default_rng(0)
    controls = {m: rng.random((4, 14, 18, 3)).astype(np.float32) for m in MAPS}
    ref = rng.random((14, 18, 3)).astype(np.float32)
    out = pipe(controls, ref, seed=3, **RUN).frames
    # refine=False is exactly the pipeline without a refiner
    np.testing.assert_array_equal(pipe(controls, ref, seed=3, refine=False, **RUN).frames,
                                  bare(controls, ref, seed=3, **RUN).frames)
    # by hand: the latents decoded, padded maps (replicate) through the refiner, cropped back
    lat = pipe(controls, ref, seed=3, output_type="latent", **RUN).frames
    with torch.no_grad():
        dec = vae_decode_video(pipe.vae, lat)[0].transpose(0, 1)  # [T, 3, 16, 20]
        maps = {k: torch.nn.functional.pad(torch.from_numpy(v).permute(0, 3, 1, 2),
                                           (0, 2, 0, 2), mode="replicate")
                for k, v in controls.items()}
        want = pipe.refiner(dec, maps)[:, :, :14, :18]
    want = (want.permute(0, 2, 3, 1) / 2 + 0.5).clamp(0, 1).numpy()
    np.testing.assert_allclose(out, want, atol=1e-5)
    assert not np.allclose(out, bare(controls, ref, seed=3, **RUN).frames, atol=1e-3)
    pipe.save_pretrained(tmp_path / "m")
    loaded = RendiffVideoPipeline.from_pretrained(tmp_path / "m", low_cpu_mem_usage=False)
    assert isinstance(loaded.refiner, MapRefiner) and loaded.refiner.map_names == MAPS
    np.testing.assert_array_equal(loaded(controls, ref, seed=3, **RUN).frames, out)
    # a folder saved without a refiner loads with none
    bare.save_pretrained(tmp_path / "b")
    assert RendiffVideoPipeline.from_pretrained(tmp_path / "b", low_cpu_mem_usage=False).refiner \
        is None


def test_a_refiner_reading_maps_the_model_does_not_take_is_rejected():
    bare, _ = _pipe_with_refiner()
    with pytest.raises(ValueError, match=r"refiner reads maps \['albedo'\]"):
        RendiffVideoPipeline(**{**bare.components, "refiner":
                                MapRefiner(map_names=("depth", "albedo"))})


def test_training_learns_a_map_the_frame_lacks(tmp_path, capsys):
    """The tool's training loop on clips whose engine frame is the albedo map and whose
    'generated' frame is grey: the refiner's L1 falls well below the grey frame's."""
    tool = load_tool("train_refiner")
    data, pairs = tmp_path / "data", tmp_path / "pairs"
    data.mkdir(), pairs.mkdir()
    rng = np.random.default_rng(0)
    for k in range(3):
        albedo = (rng.random((4, 1, 1, 3)) * 255).repeat(16, 1).repeat(16, 2).astype(np.uint8)
        depth = rng.integers(0, 255, (4, 16, 16, 3), dtype=np.uint8)
        np.savez(data / f"clip_{k}.npz", rgb=albedo, albedo=albedo, depth=depth)
        np.savez(pairs / f"clip_{k}.npz", generated=np.full_like(albedo, 128))
    run = tmp_path / "run"
    args = ["train", "--data", str(data), "--pairs", str(pairs), "--output", str(run),
            "--maps", "albedo", "depth", "--widths", "8", "16", "--steps", "300", "--lr", "1e-2"]
    assert tool.main(args) == 0
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 300
    refiner = MapRefiner.from_pretrained(run / "refiner")
    item = np.load(data / "clip_0.npz")
    x = torch.full((1, 3, 16, 16), 128 / 255 * 2 - 1)
    target = torch.from_numpy(item["rgb"][1]).permute(2, 0, 1)[None].float() / 255 * 2 - 1
    maps = {m: torch.from_numpy(item[m][1]).permute(2, 0, 1)[None].float() / 255
            for m in ("albedo", "depth")}
    with torch.no_grad():
        err = (refiner(x, maps) - target).abs().mean()
    assert err < 0.3 * (x - target).abs().mean()
    # resumable: the same command with more steps continues from the checkpoint
    capsys.readouterr()
    assert tool.main(args[:-4] + ["--steps", "310", "--lr", "1e-2"]) == 0
    assert "resumed at step 300" in capsys.readouterr().out
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 310


def test_the_lambertian_input_is_albedo_times_shading_where_both_are_given():
    g = torch.Generator().manual_seed(0)
    names = ("albedo", "shading", "depth")
    maps = {m: torch.rand(2, 3, 6, 8, generator=g) for m in names}
    x = torch.rand(2, 3, 6, 8, generator=g) * 2 - 1
    r = MapRefiner(map_names=names, block_out_channels=(8, 16), lambertian=True)
    inp = r.inputs(x, maps)
    assert inp.shape[1] == 3 + 4 * 3 + 4
    torch.testing.assert_close(inp[:, -4:-1], maps["albedo"] * maps["shading"] * 2 - 1)
    assert torch.equal(inp[:, -1], torch.ones(2, 6, 8))
    w = torch.ones(2, 3, 6, 8)
    w[:, 1] = 0.5  # shading at half strength: the product weighs 1 x 0.5
    inp = r.inputs(x, maps, w)
    torch.testing.assert_close(inp[:, -4:-1], (maps["albedo"] * maps["shading"] * 2 - 1) * 0.5)
    no_shading = r.inputs(x, {k: v for k, v in maps.items() if k != "shading"})
    assert not no_shading[:, -4:].any()
    with pytest.raises(ValueError, match="lambertian needs the albedo and shading"):
        MapRefiner(map_names=("albedo", "depth"), lambertian=True)


def test_required_maps_scale_the_correction_and_their_absence_leaves_the_frame():
    torch.manual_seed(0)
    r = _perturbed(MapRefiner(map_names=MAPS, block_out_channels=(8, 16),
                              required_maps=("normal",)))
    free = _perturbed(MapRefiner(map_names=MAPS, block_out_channels=(8, 16)))
    free.load_state_dict(r.state_dict())
    x, maps = _frames()
    n, _, h, w = x.shape
    assert torch.equal(r(x, {"depth": maps["depth"]}), x)  # normal withheld: the frame as is
    full = free(x, maps)
    torch.testing.assert_close(r(x, maps), full)
    weights = torch.ones(n, 2, h, w)
    weights[:, 1, :, : w // 2] = 0.25  # normal at a quarter on the left half
    half = r(x, maps, weights)
    want = free(x, maps, weights)
    gate = torch.ones(n, 1, h, w)
    gate[..., : w // 2] = 0.25
    torch.testing.assert_close(half, x + gate * (want - x))
    with pytest.raises(ValueError, match=r"required_maps \['albedo'\]"):
        MapRefiner(map_names=MAPS, required_maps=("albedo",))
