"""The rendiff command: each command, exit codes, and the outputs it writes (which must decode
to the requested frame count and size)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from rendiff.cli import main
from rendiff.io.video import read_video
from rendiff.scenes import load_scene

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--frames", "5", "--size", "48x40", "--quiet"]


def test_scenes_lists_builtins(capsys):
    assert main(["scenes"]) == 0
    out = capsys.readouterr().out.splitlines()
    names = {line.split()[0] for line in out}
    assert {"falling_objects", "walking_human", "dynamic_gaussians"} <= names
    assert all(len(line.split(maxsplit=1)) == 2 for line in out)


def test_scenes_show_prints_loadable_yaml(capsys, tmp_path):
    assert main(["scenes", "--show", "falling_objects"]) == 0
    p = tmp_path / "s.yaml"
    p.write_text(capsys.readouterr().out)
    assert load_scene(p).name == "falling_objects"


def test_bad_scene_file_exit_2_one_line(tmp_path, capsys):
    p = tmp_path / "scene.yaml"
    p.write_text(yaml.safe_dump({"entities": [{"name": "a", "geometry": {"type": "sphere"},
                                               "material": {"friction": -1}}]}))
    assert main(["render", str(p), "-o", str(tmp_path / "o")] + SMALL) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("rendiff: error: scene.yaml: entities[0].material.friction: "
                   "must be >= 0.0 (got -1)")
    assert not (tmp_path / "o").exists()


def test_unknown_scene_name_exit_2(tmp_path, capsys):
    assert main(["render", "no_such_scene", "-o", str(tmp_path / "o")]) == 2
    assert "not a built-in scene" in capsys.readouterr().err


def test_bad_size_option_exit_2(tmp_path):
    with pytest.raises(SystemExit) as e:
        main(["render", "falling_objects", "-o", str(tmp_path), "--size", "big"])
    assert e.value.code == 2


def _check_outputs(out, frames, w, h, generated=False):
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["frames"] == frames and meta["size"] == [w, h]
    assert set(meta["timings_s"]) >= {"simulate", "render"}
    assert len(meta["cameras"]["viewmats"]) == frames
    assert "torch" in meta["versions"]
    scene = load_scene(out / "scene.yaml")
    assert scene.frames == frames and scene.size == (w, h) and scene.seed == meta["seed"]
    for f in ["render.mp4", "maps/depth.mp4", "maps/normal.mp4", "maps/semantic.mp4",
              "maps/flow.mp4"] + (["generated.mp4"] if generated else []):
        video, fps = read_video(out / f)
        assert video.shape == (frames, h, w, 3), f
        assert fps == pytest.approx(meta["fps"], rel=1e-3)
    npz = np.load(out / "layers.npz")
    assert npz["depth"].shape == (frames, h, w) and npz["depth"].dtype == np.float32
    assert npz["rgb"].shape == (frames, h, w, 3)
    assert npz["viewmats"].shape == (frames, 4, 4)
    sheet = Image.open(out / "contact_sheet.png")
    assert sheet.size[0] > w and sheet.size[1] > h
    assert not list(out.rglob("*.partial*"))


def test_render_falling_objects_outputs(tmp_path):
    out = tmp_path / "o"
    assert main(["render", "falling_objects", "-o", str(out), "--seed", "4", "--fps", "8"]
                + SMALL) == 0
    _check_outputs(out, 5, 48, 40)
    assert load_scene(out / "scene.yaml").seed == 4


def test_render_yaml_example(tmp_path):
    out = tmp_path / "o"
    assert main(["render", str(ROOT / "examples" / "bouncing.yaml"), "-o", str(out)] + SMALL) == 0
    _check_outputs(out, 5, 48, 40)


def test_run_generates_video(tmp_path):
    out = tmp_path / "o"
    assert main(["run", "falling_objects", "-o", str(out), "--steps", "2"] + SMALL) == 0
    _check_outputs(out, 5, 48, 40, generated=True)


def test_entry_point_installed(tmp_path):
    r = subprocess.run([sys.executable, "-m", "rendiff.cli", "scenes"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0 and "falling_objects" in r.stdout


def test_run_with_missing_model_folder_exit_2(tmp_path, capsys):
    code = main(["run", "falling_objects", "-o", str(tmp_path / "o"), "--model",
                 str(tmp_path / "nope")] + SMALL)
    assert code == 2
    assert "not a rendiff model folder" in capsys.readouterr().err


def test_run_with_wrong_kind_of_model_exit_2(tmp_path, capsys):
    other = tmp_path / "sd15"
    other.mkdir()
    (other / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    code = main(["run", "falling_objects", "-o", str(tmp_path / "o"), "--model", str(other)]
                + SMALL)
    assert code == 2
    assert "not a RendiffVideoPipeline" in capsys.readouterr().err


def test_run_with_map_the_model_lacks_exit_2(tmp_path, capsys):
    code = main(["run", "falling_objects", "-o", str(tmp_path / "o"), "--maps", "flow"] + SMALL)
    assert code == 2
    assert "was not trained with map(s) ['flow']" in capsys.readouterr().err


def test_a_new_run_removes_what_a_killed_one_left(tmp_path):
    """Temporary files of atomic writes that a SIGKILL left behind (the names atomic_path gives)
    are removed by the next run into the folder, which says so once, on stderr."""
    out = tmp_path / "out"
    (out / "maps").mkdir(parents=True)
    left = [out / ".layers.k3j2_x9.partial.npz", out / "maps" / ".depth.a8bq1.partial.mp4",
            out / ".contact_sheet.zz01.partial.png"]
    for p in left:
        p.write_bytes(b"half-written")
    keep = out / "notes.txt"
    keep.write_text("the user's own file")
    result = subprocess.run([Path(sys.executable).parent / "rendiff", "render", "falling_objects",
                             "-o", out, "--frames", "2", "--size", "32x32"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert not any(p.exists() for p in left)
    assert not list(out.rglob("*.partial*"))
    assert keep.read_text() == "the user's own file"
    notes = [line for line in result.stderr.splitlines() if "interrupted run" in line]
    assert len(notes) == 1 and "removed 3 temporary file(s)" in notes[0]


def _copy_default_model(tmp_path: Path) -> Path:
    import shutil

    from rendiff.api import DEFAULT_MODEL_DIR

    folder = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL_DIR, folder)
    return folder


def test_model_folder_naming_another_module_is_refused(tmp_path, capsys):
    """diffusers imports whatever module model_index.json names: only diffusers, transformers
    and rendiff.conditioners may be named, checked before anything is loaded."""
    folder = _copy_default_model(tmp_path)
    index = json.loads((folder / "model_index.json").read_text())
    index["unet"] = ["os", "system"]
    (folder / "model_index.json").write_text(json.dumps(index))
    assert main(["run", "falling_objects", "-o", str(tmp_path / "out"), "--model", str(folder),
                 *SMALL]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "component 'unet' names ['os', 'system']" in err


def test_a_bad_default_guidance_in_a_model_folder_is_one_line(tmp_path, capsys):
    folder = _copy_default_model(tmp_path)
    index = json.loads((folder / "model_index.json").read_text())
    index["default_guidance_scale"] = "strong"
    (folder / "model_index.json").write_text(json.dumps(index))
    assert main(["run", "falling_objects", "-o", str(tmp_path / "out"), "--model", str(folder),
                 *SMALL]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "default_guidance_scale is 'strong'; expected a number in [1, 20]" in err


def test_model_weights_as_pickle_are_not_loaded(tmp_path, capsys):
    """A component whose weights are a pickled .bin (torch.load could run code) is refused with
    one line; safetensors only."""
    import torch
    from safetensors.torch import load_file

    folder = _copy_default_model(tmp_path)
    weights = folder / "vae" / "diffusion_pytorch_model.safetensors"
    torch.save(load_file(weights), folder / "vae" / "diffusion_pytorch_model.bin")
    weights.unlink()
    assert main(["run", "falling_objects", "-o", str(tmp_path / "out"), "--model", str(folder),
                 *SMALL]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "weights are a pickle (.bin/.pt)" in err


def _exit_code(argv: list[str]) -> int:
    """main()'s exit code, also for argparse's own errors (which raise SystemExit)."""
    try:
        return main(argv)
    except SystemExit as e:
        return e.code


@pytest.mark.parametrize("option, words", [
    (["--steps", "0"], "--steps must be >= 1, got 0"),
    (["--steps", "-1"], "--steps must be >= 1, got -1"),
    (["--seed", "-1"], "--seed must be >= 0, got -1"),
    (["--frames", "0"], "--frames must be >= 1, got 0"),
    (["--fps", "nan"], "--fps must be in (0, 1000]"),
    (["--weights", "depth=garbage"], "--weights must look like depth=1,normal=0.5"),
    (["--weights", "depth=5"], "weights in [0, 1]"),
    (["--reference", "REFERENCE"], "not a readable image"),
    (["--model", "MODEL"], "not a rendiff model folder"),
    (["--maps", "depth,bogus"], "the model was not trained with map(s) ['bogus']"),
])
def test_bad_run_options_stop_before_any_work(option, words, tmp_path, capsys, monkeypatch):
    """Options and model folders are checked before simulating: exit 2, the reason, no output."""
    import rendiff

    def no_work(*a, **k):
        raise AssertionError("simulated although an option was bad")

    monkeypatch.setattr(rendiff, "simulate", no_work)
    not_image = tmp_path / "notes.txt"
    not_image.write_text("not an image")
    option = [str(not_image) if o == "REFERENCE" else str(tmp_path) if o == "MODEL" else o
              for o in option]
    out = tmp_path / "out"
    assert _exit_code(["run", "falling_objects", "-o", str(out), "--quiet", *option]) == 2
    assert words in capsys.readouterr().err
    assert not out.exists()


def test_output_that_is_a_file_is_refused(tmp_path, capsys):
    target = tmp_path / "taken"
    target.write_text("mine")
    assert main(["render", "falling_objects", "-o", str(target), "--quiet"]) == 2
    assert "-o " in capsys.readouterr().err and target.read_text() == "mine"


def test_render_into_a_run_folder_leaves_no_stale_video(tmp_path):
    """`rendiff render` into the folder of an earlier `rendiff run` removes its generated.mp4
    (and maps the new scene does not have), keeping the user's own files."""
    out = tmp_path / "out"
    assert main(["run", "walking_human", "-o", str(out), "--frames", "4", "--size", "32x32",
                 "--quiet"]) == 0
    assert (out / "generated.mp4").is_file() and (out / "maps" / "pose.mp4").is_file()
    (out / "notes.txt").write_text("mine")
    assert main(["render", "falling_objects", "-o", str(out), "--frames", "4", "--size",
                 "32x32", "--quiet"]) == 0
    assert not (out / "generated.mp4").exists()
    assert not (out / "maps" / "pose.mp4").exists()  # no people in falling_objects
    meta = json.loads((out / "metadata.json").read_text())
    on_disk = sorted(str(p.relative_to(out)) for p in out.rglob("*")
                     if p.is_file() and p.name not in ("metadata.json", "notes.txt"))
    assert on_disk == meta["files"]
    assert (out / "notes.txt").read_text() == "mine"


def test_model_weights_with_every_byte_inverted_are_refused(tmp_path, capsys, monkeypatch):
    """Damaged weights (the data of a safetensors file inverted, its header intact) hold NaN or
    inf: refused with one line before any simulation, instead of a video of NaN."""
    import struct

    import rendiff

    def no_work(*a, **k):
        raise AssertionError("simulated although the model was damaged")

    monkeypatch.setattr(rendiff, "simulate", no_work)

    folder = _copy_default_model(tmp_path)
    path = folder / "unet" / "diffusion_pytorch_model.safetensors"
    data = bytearray(path.read_bytes())
    start = 8 + struct.unpack("<Q", data[:8])[0]
    data[start:] = bytes(b ^ 0xFF for b in data[start:])
    path.write_bytes(bytes(data))
    assert main(["run", "falling_objects", "-o", str(tmp_path / "out"), "--model", str(folder),
                 *SMALL]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "the weights of unet hold NaN or inf" in err
    assert not (tmp_path / "out" / "generated.mp4").exists()


def test_nan_in_a_layer_is_never_written(tmp_path):
    """The last guard before saving: NaN in a finite layer is an error naming the layer, the
    frame and the entity there; nothing is written."""
    import rendiff
    from rendiff.engine.layers import Layer
    from rendiff.io.outputs import OutputError

    scene = rendiff.builtin_scene("falling_objects")
    scene.frames, scene.size = 3, (32, 32)
    layers = rendiff.render(rendiff.simulate(scene, progress=False), progress=False)
    inst = layers[Layer.INSTANCE][1]
    y, x = (inst > 0).nonzero()[0].tolist()
    name = layers.entity_names[int(inst[y, x]) - 1]
    layers[Layer.SHADING][1, y, x] = float("nan")
    with pytest.raises(OutputError, match=rf"layer 'shading' holds NaN or inf at frame 1, "
                                          rf"entity '{name}' there"):
        rendiff.save(tmp_path / "out", layers)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv", [["scenes"], ["--help"], ["scenes", "--show", "walking_human"]])
def test_listings_and_help_do_not_load_torch(argv):
    """`rendiff scenes` and `--help` answer at once: torch (seconds to import) is never loaded."""
    code = ("import sys\nfrom rendiff.cli import main\ntry:\n"
            f"    main({argv!r})\nexcept SystemExit:\n    pass\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO TORCH', file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.stderr.strip().splitlines()[-1] == "NO TORCH"


def test_a_corrupt_component_config_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    import rendiff

    monkeypatch.setattr(rendiff, "simulate", lambda *a, **k: pytest.fail("simulated"))
    folder = _copy_default_model(tmp_path)
    (folder / "unet" / "config.json").write_bytes(b"\xff\xfe garbage {")
    assert main(["run", "falling_objects", "-o", str(tmp_path / "out"), "--model", str(folder),
                 *SMALL]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unet/config.json: not a valid configuration" in err


@pytest.mark.parametrize("stage", ["simulate", "render", "save"])
def test_a_failure_while_running_names_its_stage(stage, tmp_path, capsys, monkeypatch):
    """Exit 1 means the run failed for a reason other than its input: one line naming the stage
    (physics errors add the entity and frame themselves)."""
    import rendiff

    def boom(*a, **k):
        raise RuntimeError("boom (test)")

    monkeypatch.setattr(rendiff, stage, boom)
    assert main(["render", "falling_objects", "-o", str(tmp_path / "out"), *SMALL]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith(f"rendiff: error: {stage} failed: RuntimeError: boom (test)")
