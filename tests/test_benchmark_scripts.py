"""The model-scoring benchmarks run end to end on a tiny model and a tiny held-out clip.

They are long jobs nobody runs in CI, so a change to a shared helper (``_score``) can break them
silently; these tests run their scoring paths for real on a 16x16, 4-frame clip.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rendiff.conditioners.metrics import score_clip
from rendiff.conditioners.pipeline import build_pipeline
from rendiff.conditioners.train import synthetic_clip

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
ablate = pytest.importorskip("ablate_default_model")
evaluate = pytest.importorskip("eval_default_model")

MAPS = ("depth", "normal", "shading")


@pytest.fixture
def heldout(tmp_path):
    """Two clips with the fields the engine's held-out clips have (rgb, maps, flow, alpha)."""
    folder = tmp_path / "heldout"
    folder.mkdir()
    for seed in (1, 2):
        clip = synthetic_clip(num_frames=4, size=16, seed=seed)
        clip["flow_raw"] = np.zeros((4, 16, 16, 2), np.float32)
        clip["alpha"] = np.full((4, 16, 16), 255, np.uint8)
        clip["albedo"] = clip["rgb"]  # the colours the metric looks for (the shading is grey)
        clip["pose"] = np.zeros_like(clip["rgb"])  # no body in these clips
        np.savez(folder / f"falling_objects_0000{seed}.npz", **clip)
    return folder


@pytest.fixture
def model_dir(tmp_path):
    torch.manual_seed(0)
    folder = tmp_path / "model"
    build_pipeline(maps=MAPS, preset="tiny").save_pretrained(folder)
    return folder


def test_colour_kept_measures_chroma_on_coloured_pixels():
    albedo = np.zeros((3, 16, 16, 3), np.float32)
    albedo[..., 0] = 1.0  # every pixel coloured (red)
    target = albedo * 0.5  # chroma 0.5
    grey = np.full_like(target, 0.3)
    flow, valid = np.zeros((3, 16, 16, 2), np.float32), np.ones((3, 16, 16), bool)
    assert score_clip(target, target, flow, valid, albedo)["colour_kept"] == pytest.approx(1)
    assert score_clip(grey, target, flow, valid, albedo)["colour_kept"] == pytest.approx(0)
    half = target * 0.5
    assert score_clip(half, target, flow, valid, albedo)["colour_kept"] == pytest.approx(0.5)


def test_eval_default_model_writes_its_table(heldout, model_dir, tmp_path):
    out = tmp_path / "eval.json"
    assert evaluate.main(["--data", str(heldout), "--model", str(model_dir), "--clips", "2",
                          "--steps", "2", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["maps"] == list(MAPS) and result["size"] == [16, 16]
    rep = result["summary"]["repeat reference"]
    # the engine's frame 0 repeated: this synthetic clip's objects move, so it is not exact
    assert 0 < rep["l1"] < 1 and np.isfinite(rep["psnr"])
    assert set(result["summary"]) == {"model, all maps", "model + unchanged pixels kept",
                                      "model, no maps",
                                      "model, geometry maps only", "repeat reference",
                                      "VAE round trip"}
    for row in result["summary"].values():
        assert set(row) >= {"l1", "psnr", "ssim", "warping_error", "colour_kept"}


def test_eval_scores_a_vae_alone(heldout, model_dir, tmp_path):
    """--vae RUN/vae: the VAE round trip of a VAE being trained, before any UNet; the same
    figures as the pipeline's own VAE row."""
    out, full = tmp_path / "vae.json", tmp_path / "full.json"
    assert evaluate.main(["--data", str(heldout), "--vae", str(model_dir / "vae"), "--clips",
                          "2", "--out", str(out)]) == 0
    assert evaluate.main(["--data", str(heldout), "--model", str(model_dir), "--clips", "2",
                          "--steps", "1", "--out", str(full)]) == 0
    alone, whole = json.loads(out.read_text()), json.loads(full.read_text())
    assert set(alone["summary"]) == {"repeat reference", "VAE round trip"}
    for key in ("l1", "psnr", "colour_kept"):
        assert alone["summary"]["VAE round trip"][key] == pytest.approx(
            whole["summary"]["VAE round trip"][key], rel=1e-4)


def test_ablation_scores_a_trained_run(heldout, model_dir):
    pipe = ablate.load_trained(model_dir)
    clips = sorted(heldout.glob("*.npz"))
    r = ablate._evaluate(pipe, clips, 2, MAPS)
    assert len(r["per_clip"]) == 2
    assert set(r["summary"]) >= {"psnr", "psnr_se", "colour_kept", "warping_error"}
    assert ablate._paired(r, r) == (0.0, 0.0)  # a run against itself


def test_ablation_runs_shard_and_share_one_table(heldout, tmp_path):
    """Two shards of a tiny plan (35 -> 2 clips) train disjoint runs; each writes every finished
    run into its table, and a second pass trains nothing and adds the maps-dropped check."""
    train_dir = tmp_path / "train"
    train_dir.mkdir()
    for f in sorted(heldout.glob("*.npz")):
        (train_dir / f.name).symlink_to(f)
    runs, out = tmp_path / "runs", tmp_path / "ablation.json"
    common = ["--train", str(train_dir), "--heldout", str(heldout), "--runs", str(runs),
              "--clips", "2", "--sizes", "2", "--unet-steps", "2", "--size", "16",
              "--num-frames", "4", "--eval-steps", "2", "--skip-steps", "--out", str(out),
              "--only", "all_pixel_n2", "none_n2"]
    order = [s["name"] for s in ablate.plan_runs([2])]
    assert order.index("all_pixel_n2") % 2 == 0 and order.index("none_n2") % 2 == 1
    assert ablate.main(common + ["--shard", "0/2"]) == 0
    assert set(json.loads(out.read_text())["runs"]) == {"all_pixel_n2"}
    assert ablate.main(common + ["--shard", "1/2"]) == 0
    first = json.loads(out.read_text())
    assert set(first["runs"]) == {"all_pixel_n2", "none_n2"}
    assert "none_n2" not in first["missing"] and "depth_pixel_n2" in first["missing"]

    assert ablate.main(common + ["--no-maps-check", "all_pixel_n2"]) == 0
    again = json.loads(out.read_text())["runs"]
    assert again["none_n2"]["per_clip"] == first["runs"]["none_n2"]["per_clip"]  # not retrained
    bare = again["all_pixel_n2"]["same_weights_no_maps"]
    assert len(bare["per_clip"]) == 2
    assert "maps dropped" in ablate.tables(json.loads(out.read_text()))
