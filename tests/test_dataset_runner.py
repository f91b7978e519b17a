"""``rendiff dataset``: complete clips only in the index, byte-identical clips from the same spec
whatever the mode (in-process, worker processes, local Ray), resume after a kill, failures
logged with their seed, --verify, and the torch Dataset reading clips back."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from rendiff.cli import main
from rendiff.dataset.runner import DatasetError, RunOptions, complete_clips, make_dataset
from rendiff.dataset.sample import clip_seed
from rendiff.dataset.spec import load_dataset_spec

SPEC = """\
name: tiny
seed: 7
frames: 6
fps: 12
size: [48, 40]
generator: falling_objects
objects: {count: {randint: [2, 3]}}
"""
CLIPS = 4


def _files(root: Path) -> dict[str, bytes]:
    """Every file of every clip; metadata.json without its `created` timestamp."""
    out = {}
    for p in sorted((root / "clips").rglob("*")):
        if p.is_file():
            data = p.read_bytes()
            if p.name == "metadata.json":
                meta = json.loads(data)
                meta.pop("created")
                data = json.dumps(meta, sort_keys=True).encode()
            out[p.relative_to(root).as_posix()] = data
    return out


def _assert_same_clips(a: Path, b: Path) -> None:
    fa, fb = _files(a), _files(b)
    assert sorted(fa) == sorted(fb)
    differ = [k for k in fa if fa[k] != fb[k]]
    assert not differ, f"files differ: {differ[:5]}"


@pytest.fixture(scope="module")
def spec_path(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("spec") / "tiny_dataset.yaml"
    p.write_text(SPEC)
    return p


@pytest.fixture(scope="module")
def reference(spec_path, tmp_path_factory) -> Path:
    """A clean in-process run of CLIPS clips through the CLI."""
    out = tmp_path_factory.mktemp("ref") / "out"
    assert main(["dataset", str(spec_path), "-o", str(out), "--clips", str(CLIPS),
                 "--quiet"]) == 0
    return out


def test_index_coco_and_verify(reference):
    rows = pq.read_table(reference / "index.parquet").to_pylist()
    assert [r["index"] for r in rows] == list(range(CLIPS))
    assert [r["seed"] for r in rows] == [clip_seed(7, i) for i in range(CLIPS)]
    assert all((reference / r["path"] / "metadata.json").is_file() for r in rows)
    assert all(r["frames"] == 6 and r["width"] == 48 and r["height"] == 40 for r in rows)
    # drawn parameters are columns; object counts are what the spec allows
    assert {r["param.objects.count"] for r in rows} <= {2, 3}
    from pycocotools.coco import COCO

    coco = COCO(str(reference / "coco.json"))
    assert len(coco.getImgIds()) == CLIPS * 6
    assert len({img["file_name"] for img in coco.dataset["images"]}) == CLIPS * 6
    assert all((reference / img["file_name"]).is_file() for img in coco.dataset["images"])
    ann = coco.dataset["annotations"][0]
    img = coco.imgs[ann["image_id"]]
    from PIL import Image

    inst = np.array(Image.open(reference / img["file_name"].replace("/rgb/", "/instance/")))
    np.testing.assert_array_equal(coco.annToMask(ann), inst == ann["instance_id"])
    assert json.loads((reference / "failures.json").read_text())["failed"] == []
    assert main(["dataset", "--verify", str(reference), "--quiet"]) == 0


def test_same_spec_gives_byte_identical_clips(spec_path, reference, tmp_path):
    report = make_dataset(load_dataset_spec(spec_path), tmp_path / "again",
                          RunOptions(clips=CLIPS, progress=False))
    assert sorted(report.made) == list(range(CLIPS))
    _assert_same_clips(reference, tmp_path / "again")


def test_two_worker_processes_give_the_same_clips(spec_path, reference, tmp_path):
    report = make_dataset(load_dataset_spec(spec_path), tmp_path / "w2",
                          RunOptions(clips=CLIPS, workers=2, progress=False))
    assert sorted(report.made) == list(range(CLIPS)) and not report.failed
    _assert_same_clips(reference, tmp_path / "w2")


def test_local_ray_with_two_workers_gives_the_same_clips(spec_path, reference, tmp_path):
    report = make_dataset(load_dataset_spec(spec_path), tmp_path / "ray",
                          RunOptions(clips=CLIPS, workers=2, ray_address="local",
                                     progress=False))
    assert sorted(report.made) == list(range(CLIPS)) and not report.failed
    _assert_same_clips(reference, tmp_path / "ray")


def test_resume_after_kill_finishes_with_the_clean_result(spec_path, reference, tmp_path):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "rendiff.cli", "dataset", str(spec_path), "-o", str(out),
           "--clips", str(CLIPS), "--quiet"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 240
        while not complete_clips(out) and time.time() < deadline and proc.poll() is None:
            time.sleep(0.02)
        assert proc.poll() is None, "the run ended before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    done_before = set(complete_clips(out))
    assert 1 <= len(done_before) < CLIPS
    assert not (out / "index.parquet").exists()  # the index is written when a run ends
    assert main(["dataset", "--verify", str(out), "--quiet"]) == 1  # unfinished: says so
    # re-running the same command keeps the finished clips and redoes the rest
    mtimes = {i: (out / "clips" / f"{i:06d}" / "metadata.json").stat().st_mtime_ns
              for i in done_before}
    report = make_dataset(load_dataset_spec(spec_path), out,
                          RunOptions(clips=CLIPS, progress=False))
    assert set(report.kept) == done_before
    assert set(report.made) == set(range(CLIPS)) - done_before
    assert all((out / "clips" / f"{i:06d}" / "metadata.json").stat().st_mtime_ns == m
               for i, m in mtimes.items())
    assert not [p for p in (out / "clips").iterdir() if p.name.startswith(".")]
    _assert_same_clips(reference, out)
    assert main(["dataset", "--verify", str(out), "--quiet"]) == 0


def test_failed_clip_is_logged_with_its_seed_and_redone_on_resume(spec_path, monkeypatch,
                                                                   tmp_path, capsys):
    import rendiff.dataset.sample as sample

    real = sample.sample_clip

    def flaky(spec, index):
        if index == 1:
            raise RuntimeError("physics blew up (test)")
        return real(spec, index)

    monkeypatch.setattr(sample, "sample_clip", flaky)
    out = tmp_path / "flaky"
    assert main(["dataset", str(spec_path), "-o", str(out), "--clips", "3", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert f"clip 1 (seed {clip_seed(7, 1)}) failed: RuntimeError: physics blew up" in err
    failed = json.loads((out / "failures.json").read_text())["failed"]
    assert [(f["index"], f["seed"]) for f in failed] == [(1, clip_seed(7, 1))]
    assert [r["index"] for r in pq.read_table(out / "index.parquet").to_pylist()] == [0, 2]
    assert main(["dataset", "--verify", str(out), "--quiet"]) == 0  # index = complete clips
    monkeypatch.setattr(sample, "sample_clip", real)
    report = make_dataset(load_dataset_spec(spec_path), out, RunOptions(clips=3,
                                                                        progress=False))
    assert report.made == [1] and sorted(report.kept) == [0, 2]
    assert json.loads((out / "failures.json").read_text())["failed"] == []


def _flip_bit(path: Path, offset: int = -20) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=1) + "\n")


def _rewrite_index_seed(out: Path) -> None:
    """A valid index.parquet whose content differs: clip 2's seed changed."""
    table = pq.read_table(out / "index.parquet")
    rows = table.to_pylist()
    rows[2]["seed"] += 1
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), out / "index.parquet")


def _copy_clip(out: Path) -> None:
    shutil.copytree(out / "clips" / "000000", out / "clips" / "000099")


# tampering -> what --verify must name (file and finding)
TAMPERINGS = {
    "dotfile in a clip": (lambda o: (o / "clips/000000/.hidden").write_text("x"),
                          "clips/000000/.hidden: not part of the data set"),
    "stray top-level file": (lambda o: (o / "notes.txt").write_text("x"),
                             "notes.txt: not part of the data set"),
    "stray clip folder": (_copy_clip, "clips/000099/: clip folder not in manifest.json"),
    "summary.json edited": (
        lambda o: _edit_json(o / "clips/000001/summary.json", lambda d: d.update(seed=1)),
        "clips/000001/summary.json: "),
    "metadata.json edited (drawn parameter)": (
        lambda o: _edit_json(o / "clips/000001/metadata.json",
                             lambda d: d["params"].update({next(iter(d["params"])): 123})),
        "clips/000001/metadata.json: "),
    "bit flipped in index.parquet": (lambda o: _flip_bit(o / "index.parquet", 200),
                                     "index.parquet: "),
    "index.parquet rewritten, still valid": (_rewrite_index_seed, "index.parquet: "),
    "classes.json edited": (
        lambda o: _edit_json(o / "classes.json", lambda d: d["categories"].append("cat")),
        "classes.json: "),
    "dataset.yaml edited": (
        lambda o: (o / "dataset.yaml").write_text((o / "dataset.yaml").read_text() + "# x\n"),
        "dataset.yaml: "),
    "metadata.json files is a list": (
        lambda o: _edit_json(o / "clips/000002/metadata.json",
                             lambda d: d.update(files=list(d["files"]))),
        "clips/000002/metadata.json: malformed"),
    "corrupt frame": (lambda o: _flip_bit(o / "clips/000001/depth/00002.png"),
                      "clips/000001/depth/00002.png: SHA-256 differs"),
    "missing file": (lambda o: (o / "clips/000002/flow.npz").unlink(),
                     "clips/000002/flow.npz: missing"),
    "unlisted file in a clip": (lambda o: (o / "clips/000000/stray.txt").write_text("x"),
                                "clips/000000/stray.txt: not part of the data set"),
    "missing clip": (lambda o: shutil.rmtree(o / "clips/000003"),
                     "clips/000003: clip missing"),
    "coco.json edited": (lambda o: _flip_bit(o / "coco.json", 30), "coco.json: "),
    "failures.json edited": (lambda o: (o / "failures.json").write_text('{"failed": []}\n'),
                             "failures.json: "),
    "manifest.json edited": (
        lambda o: _edit_json(o / "manifest.json", lambda d: d["files"].pop("run.json")),
        "manifest.json: its own SHA-256 does not match"),
    "manifest.json missing": (lambda o: (o / "manifest.json").unlink(),
                              "manifest.json: missing"),
    "partial clip of a killed run": (lambda o: (o / "clips/.000007.partial-1-ab").mkdir(),
                                     "partial clip of an interrupted run"),
}


def test_the_untouched_data_set_verifies(reference, capsys):
    capsys.readouterr()
    assert main(["dataset", "--verify", str(reference), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["problems"] == [] and report["clips"] == CLIPS
    every = [p for p in reference.rglob("*") if p.is_file() and p.name != ".lock"]
    assert report["files"] == len(every)  # every byte on disk was read


@pytest.mark.parametrize("case", sorted(TAMPERINGS))
def test_verify_reports_each_tampering_by_file(case, reference, tmp_path, capsys):
    tamper, finding = TAMPERINGS[case]
    out = tmp_path / "copy"
    shutil.copytree(reference, out)
    tamper(out)
    capsys.readouterr()
    assert main(["dataset", "--verify", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert finding in err, err
    assert "Traceback" not in err and "Error:" not in err


def test_verify_lists_every_problem_with_a_count(reference, tmp_path, capsys):
    out = tmp_path / "copy"
    shutil.copytree(reference, out)
    cases = ["dotfile in a clip", "stray top-level file", "corrupt frame", "missing file",
             "classes.json edited"]
    for case in cases:
        TAMPERINGS[case][0](out)
    capsys.readouterr()
    assert main(["dataset", "--verify", str(out), "--quiet"]) == 1
    captured = capsys.readouterr()
    for case in cases:
        assert TAMPERINGS[case][1] in captured.err
    assert re.search(rf"{CLIPS} clips, \d+ files checked, {len(cases)} problems",
                     captured.out), captured.out
    assert main(["dataset", "--verify", str(out), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert not report["ok"] and len(report["problems"]) == len(cases)
    assert main(["dataset", "--json", str(out)]) == 2  # --json goes with --verify


def test_other_spec_or_foreign_folder_is_refused(spec_path, reference, tmp_path, capsys):
    assert main(["dataset", str(spec_path), "-o", str(reference), "--clips", "4",
                 "--seed", "8", "--quiet"]) == 2
    assert "holds a data set made from a different spec (differs in: seed)" in \
        capsys.readouterr().err
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(DatasetError, match="is not a rendiff data set"):
        make_dataset(load_dataset_spec(spec_path), foreign, RunOptions(clips=1,
                                                                       progress=False))
    assert main(["dataset", str(spec_path), "--clips", "2"]) == 2
    assert main(["dataset", "--verify", str(tmp_path / "nothing")]) == 2


def test_torch_dataset_reads_clips_back(reference):
    from rendiff.conditioners.controls import control_images
    from rendiff.conditioners.train import DatasetClips, open_clips
    from rendiff.dataset.loader import ClipDataset

    ds = ClipDataset(reference, layers=("rgb", "depth", "instance", "flow", "shading"))
    assert len(ds) == CLIPS
    item = ds[2]
    assert item["rgb"].shape == (6, 40, 48, 3) and item["rgb"].dtype == torch.float32
    with np.load(reference / "clips" / "000002" / "depth.npz") as z:
        assert torch.equal(item["depth"], torch.from_numpy(z["depth"]))
    assert item["instance"].dtype == torch.int32 and item["K"].shape == (6, 3, 3)
    assert item["seed"] == clip_seed(7, 2)
    torch.manual_seed(0)
    win = ClipDataset(reference, layers=("rgb",), window=4)[0]
    assert win["rgb"].shape[0] == 4 and torch.equal(
        win["rgb"], ds[0]["rgb"][win["start"]:win["start"] + 4])
    # the default model's training reads a data set directly
    clips = open_clips(reference, ("depth", "normal", "semantic"))
    assert isinstance(clips, DatasetClips) and len(clips) == CLIPS
    arrays = clips.clip(1)
    ctrl = control_images(ds.layers(1), ["depth"])
    from rendiff.io.video import to_uint8

    np.testing.assert_array_equal(arrays["depth"], to_uint8(ctrl["depth"]))
    video, ref = clips.batch(2, 4, 32, torch.Generator().manual_seed(0))
    assert video["rgb"].shape == (2, 3, 4, 32, 32) and ref.shape == (2, 3, 32, 32)
    with pytest.raises(DatasetError, match="unknown layers"):
        ClipDataset(reference, layers=("rgb", "colour"))


def test_class_ids_and_categories_are_fixed_for_the_whole_data_set(reference, tmp_path):
    """A semantic id and a COCO category id mean the same class in every clip and in every
    data set made from the same spec family, whatever objects a clip happens to draw."""
    from PIL import Image

    classes = json.loads((reference / "classes.json").read_text())
    table = classes["semantic"]
    assert table[:24] == [c for c in table if c.startswith("body/")] and table[24] == "ground"
    seen = set()
    for i in range(CLIPS):
        clip = reference / "clips" / f"{i:06d}"
        meta = json.loads((clip / "metadata.json").read_text())
        assert meta["semantic_classes"] == table
        ann = json.loads((clip / "annotations.json").read_text())
        sem = np.array(Image.open(clip / "semantic" / "00003.png"))
        inst = np.array(Image.open(clip / "instance" / "00003.png"))
        for e in ann["entities"]:
            mask = inst == e["instance_id"]
            if mask.any():  # the object's pixels carry its label's id in the fixed table
                assert set(np.unique(sem[mask])) == {table.index(e["label"]) + 1}
                seen.add(e["label"])
        coco = json.loads((clip / "coco.json").read_text())
        assert [c["name"] for c in coco["categories"]] == classes["categories"]
        assert [c["id"] for c in coco["categories"]] == list(range(1, len(
            classes["categories"]) + 1))
    assert len(seen) >= 2  # several object types occurred, so the check means something
    merged = json.loads((reference / "coco.json").read_text())
    assert [c["name"] for c in merged["categories"]] == classes["categories"]
    # image ids are stable: clip index * 100000 + frame + 1
    assert {img["id"] for img in merged["images"]} == {
        i * 100000 + k + 1 for i in range(CLIPS) for k in range(6)}
    assert all(a["num_keypoints"] == 0 for a in merged["annotations"])


def test_resume_refuses_changed_settings_and_concurrent_runs(spec_path, reference, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(reference, out)
    with pytest.raises(DatasetError, match=r"other settings \(amodal: True then, False now\)"):
        make_dataset(load_dataset_spec(spec_path), out,
                     RunOptions(clips=CLIPS, amodal=False, progress=False))
    import fcntl

    with open(out / ".lock", "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(DatasetError, match="another `rendiff dataset` run is using"):
            make_dataset(load_dataset_spec(spec_path), out,
                         RunOptions(clips=CLIPS, progress=False))
    # an incomplete clip under its final name (an interrupted copy) is redone, not trusted
    (out / "clips" / "000002" / "summary.json").unlink()
    assert main(["dataset", "--verify", str(out), "--quiet"]) == 1
    report = make_dataset(load_dataset_spec(spec_path), out,
                          RunOptions(clips=CLIPS, progress=False))
    assert report.made == [2]
    _assert_same_clips(reference, out)


def test_a_worker_that_dies_is_retried(spec_path, reference, tmp_path, monkeypatch):
    """A worker killed mid-clip (out of memory, say) breaks the process pool; its clip is
    retried in a new pool and the run ends with every clip."""
    out = tmp_path / "oom"
    monkeypatch.setenv("RENDIFF_TEST_KILL_WORKER_AT", str(tmp_path / "killed-once"))
    report = make_dataset(load_dataset_spec(spec_path), out,
                          RunOptions(clips=CLIPS, workers=2, progress=False))
    assert (tmp_path / "killed-once").exists()  # a worker really died
    assert sorted(report.made) == list(range(CLIPS)) and not report.failed
    _assert_same_clips(reference, out)


def test_bad_model_or_unreachable_ray_fail_before_any_clip(spec_path, tmp_path, capsys):
    t0 = time.time()
    out = tmp_path / "x"
    assert main(["dataset", str(spec_path), "-o", str(out), "--clips", "2", "--generate",
                 "--model", str(tmp_path / "nomodel"), "--quiet"]) == 2
    assert "not a rendiff model folder" in capsys.readouterr().err
    assert main(["dataset", str(spec_path), "-o", str(out), "--clips", "2",
                 "--ray-address", "127.0.0.1:1", "--quiet"]) == 2
    assert "cannot reach a Ray cluster" in capsys.readouterr().err
    assert not out.exists() and time.time() - t0 < 30
    f = tmp_path / "file"
    f.write_text("x")
    assert main(["dataset", str(spec_path), "-o", str(f), "--clips", "1", "--quiet"]) == 2


def test_sigterm_stops_workers_and_writes_the_index(spec_path, tmp_path):
    out = tmp_path / "term"
    cmd = [sys.executable, "-m", "rendiff.cli", "dataset", str(spec_path), "-o", str(out),
           "--clips", "12", "--workers", "2", "--quiet"]
    proc = subprocess.Popen(cmd, env=dict(os.environ, OMP_NUM_THREADS="1"),
                            start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 240
        while not complete_clips(out) and time.time() < deadline and proc.poll() is None:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        alive = []
        for _ in range(50):  # workers get SIGTERM when the parent dies; zombies don't count
            ps = subprocess.run(["ps", "-o", "pid=,stat=,args=", "-g", str(proc.pid)],
                                capture_output=True, text=True).stdout.splitlines()
            alive = [line for line in ps if line.split()[1][0] != "Z"]
            if not alive:
                break
            time.sleep(0.2)
        assert alive == [], f"processes left running: {alive}"
    finally:
        with __import__("contextlib").suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    done = complete_clips(out)
    assert 1 <= len(done) < 12
    rows = pq.read_table(out / "index.parquet").to_pylist()
    assert sorted(r["index"] for r in rows) == sorted(done)
    assert main(["dataset", "--verify", str(out), "--quiet"]) == 0
