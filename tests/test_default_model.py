"""The shipped default model stays what its documented evaluation measured: it loads, generates
the requested frames and size, and a fixed-seed generation matches a stored thumbnail of its
frames (so an accidental change of the weights, or of how they are loaded, is caught).

After shipping new weights, or changing a control map the model reads, on purpose, refresh the
stored thumbnail (session 6 did, for the silhouette-normal fix: 5 of 720 values moved by 4e-3;
session 7 for the built-in falling_objects, whose bodies no longer start inside each other,
and again for the 16-channel model it shipped; session 9 for the refiner):
    python tests/test_default_model.py --write
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

STORED = Path(__file__).resolve().parent / "data" / "default_model_thumbnail.json"


def _generate() -> np.ndarray:
    """The shipped model on a fixed input: falling_objects, 5 frames at 64x48, seed 0, 3 steps;
    returns the frames [5, 48, 64, 3]."""
    import rendiff

    scene = rendiff.builtin_scene("falling_objects")
    scene.frames, scene.size = 5, (64, 48)
    layers = rendiff.render(rendiff.simulate(scene, progress=False), progress=False)
    # the model alone: no pixel kept from the engine's frames
    video = rendiff.generate(layers, steps=3, seed=0, progress=False, keep_static=False)
    return video.numpy()


def _thumbnail(frames: np.ndarray) -> np.ndarray:
    """Each frame averaged over 8x8-pixel cells: [T, H/8, W/8, 3]."""
    t, h, w, c = frames.shape
    return frames.reshape(t, h // 8, 8, w // 8, 8, c).mean(axis=(2, 4))


def test_shipped_model_generates_its_stored_frames():
    torch.set_num_threads(1)
    frames = _generate()
    assert frames.shape == (5, 48, 64, 3) and frames.dtype == np.float32
    assert np.isfinite(frames).all() and frames.min() >= 0 and frames.max() <= 1
    stored = np.array(json.loads(STORED.read_text())["thumbnail"], dtype=np.float32)
    # 2e-3: threads or machines move it by ~1e-5; weights scaled by 1.01 move it by 6e-3
    np.testing.assert_allclose(_thumbnail(frames), stored, atol=2e-3)


def test_by_default_unchanged_pixels_keep_the_engines_frame():
    """rendiff.generate's default with the engine's frames as reference: frame 0 is the engine's
    frame 0 (nothing changed since itself); later frames keep it where no map changed, and the
    model paints the rest (the falling bodies); keep_static=False leaves every pixel to it."""
    import rendiff
    from rendiff.engine.layers import Layer

    torch.set_num_threads(1)
    scene = rendiff.builtin_scene("falling_objects")
    scene.frames, scene.size = 5, (64, 48)
    layers = rendiff.render(rendiff.simulate(scene, progress=False), progress=False)
    record: dict = {}
    kept = rendiff.generate(layers, steps=2, seed=0, progress=False, record=record).numpy()
    alone = rendiff.generate(layers, steps=2, seed=0, progress=False, keep_static=False).numpy()
    rgb = layers[Layer.RGB].numpy()
    assert record["keep_static"] is True
    np.testing.assert_allclose(kept[0], rgb[0], atol=1e-6)
    same = np.isclose(kept[1:], rgb[:1], atol=1e-6).all(-1)
    assert 0.3 < same.mean() < 1.0  # the background kept, the moving bodies generated
    model = np.isclose(kept[1:], alone[1:], atol=1e-6).all(-1)
    assert (same | model).all()
    assert not np.allclose(alone[0], rgb[0], atol=1e-3)


def test_guidance_defaults_to_the_folders_and_can_be_overridden():
    """The shipped folder's default_guidance_scale (1.5) is what generate uses and records;
    guidance_scale=1 turns it off (a different video); below 1 is one line."""
    import pytest

    import rendiff
    from rendiff.api import DEFAULT_MODEL_DIR, ModelError

    torch.set_num_threads(1)
    index = json.loads((DEFAULT_MODEL_DIR / "model_index.json").read_text())
    scene = rendiff.builtin_scene("falling_objects")
    scene.frames, scene.size = 3, (32, 32)
    layers = rendiff.render(rendiff.simulate(scene, progress=False), progress=False)
    rec: dict = {}
    default = rendiff.generate(layers, steps=1, progress=False, keep_static=False, record=rec)
    same = rendiff.generate(layers, steps=1, progress=False, keep_static=False,
                            guidance_scale=index["default_guidance_scale"])
    off = rendiff.generate(layers, steps=1, progress=False, keep_static=False, guidance_scale=1)
    assert rec["guidance_scale"] == index["default_guidance_scale"] == 1.5
    torch.testing.assert_close(default, same)
    assert not torch.allclose(default, off)
    with pytest.raises(ModelError, match="guidance_scale: 0.5"):
        rendiff.generate(layers, steps=1, progress=False, guidance_scale=0.5)


def test_the_shipped_refiner_runs_by_default_and_refine_false_is_the_decoder_alone():
    """The shipped folder's refiner (session 9) reads every map the model takes and needs albedo
    and shading; generate records it; refine=False gives another video (the decoder's frames),
    and so does withholding albedo, where the refiner leaves the frame as it is."""
    import rendiff
    from rendiff.conditioners.pipeline import RendiffVideoPipeline

    torch.set_num_threads(1)
    scene = rendiff.builtin_scene("falling_objects")
    scene.frames, scene.size = 3, (32, 32)
    layers = rendiff.render(rendiff.simulate(scene, progress=False), progress=False)
    rec: dict = {}
    on = rendiff.generate(layers, steps=2, progress=False, keep_static=False, record=rec)
    off = rendiff.generate(layers, steps=2, progress=False, keep_static=False, refine=False)
    assert rec["refiner"] == rec["maps"]
    assert (on - off).abs().max() > 0.05
    pipe = RendiffVideoPipeline.from_pretrained(
        rendiff.api.DEFAULT_MODEL_DIR, low_cpu_mem_usage=False)
    assert pipe.refiner.config.required_maps == ["albedo", "shading"]
    geometry = [m for m in rec["maps"] if m not in ("albedo", "shading")]
    a = rendiff.generate(layers, steps=2, progress=False, keep_static=False, maps=geometry)
    b = rendiff.generate(layers, steps=2, progress=False, keep_static=False, maps=geometry,
                         refine=False)
    torch.testing.assert_close(a, b)


if __name__ == "__main__" and "--write" in sys.argv:
    torch.set_num_threads(1)
    thumb = _thumbnail(_generate())
    STORED.parent.mkdir(exist_ok=True)
    STORED.write_text(json.dumps({"what": __doc__.splitlines()[0], "thumbnail":
                                  np.round(thumb, 5).tolist()}) + "\n")
    print(f"wrote {STORED}")
