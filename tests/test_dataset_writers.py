"""Clip folders for synthetic data sets: annotations, COCO, file formats, byte-determinism."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import zipfile
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO

import rendiff
from rendiff import (
    Ambient,
    Box,
    Camera,
    Directional,
    Gaussians,
    Human,
    Layer,
    Plane,
    Pose,
    Scene,
    Sphere,
    StaticPath,
)
from rendiff.dataset.annotations import clip_annotations
from rendiff.dataset.coco import merge_coco
from rendiff.dataset.writers import read_clip, verify_clip, write_clip
from rendiff.engine.body import COCO17_NAMES
from rendiff.engine.transforms import quat_to_matrix

# pycocotools' annToMask trips numpy 2's copy-keyword deprecation; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

BALL_R = 0.1
WALL_CENTRE, WALL_SIZE = np.array([1.2, 0.0, 0.325]), np.array([0.1, 1.2, 0.65])


def _objects_scene() -> Scene:
    """A falling ball, a sphere partly hiding another, and a Gaussian blob, seen from -Y."""
    s = Scene(name="objects", seed=3, frames=8, fps=16.0, size=(64, 64))
    s.add(Plane(size=(8.0, 8.0)), name="ground", label="ground")
    s.add(Sphere(radius=BALL_R), Pose(position=(-0.5, 0.0, 1.0)), name="ball", dynamic=True)
    s.add(Sphere(radius=0.15), Pose(position=(0.45, -1.0, 0.45)), name="front")
    s.add(Sphere(radius=0.2), Pose(position=(0.6, 0.5, 0.5)), name="back")
    s.add(
        Gaussians(shape="sphere", count=600, radius=0.15),
        Pose(position=(-0.1, 0.3, 1.1)),
        name="blob",
        label="blob",
    )
    s.add_light(Ambient(intensity=0.4))
    s.add_light(Directional(shadows=False))
    s.camera = Camera(fov_deg=50.0, path=StaticPath(eye=(0.0, -3.0, 0.7), target=(0.0, 0.0, 0.6)))
    return s


def _person_scene() -> Scene:
    """A standing person facing the camera, a low wall hiding the legs, the head above the
    top of the image."""
    s = Scene(name="person", seed=4, frames=6, fps=16.0, size=(64, 64))
    s.add(Plane(size=(8.0, 8.0)), name="ground", label="ground")
    s.add(Human(), name="person")
    s.add(
        Box(size=tuple(WALL_SIZE)), Pose(position=tuple(WALL_CENTRE)), name="wall", label="occluder"
    )
    s.add_light(Ambient(intensity=0.4))
    s.add_light(Directional(shadows=False))
    s.camera = Camera(fov_deg=40.0, path=StaticPath(eye=(2.5, 0.0, 0.6), target=(0.0, 0.0, 0.6)))
    return s


def _make(root, scene: Scene, index: int, generated: bool = False) -> SimpleNamespace:
    traj = rendiff.simulate(scene, progress=False)
    layers = rendiff.render(traj, progress=False)
    gen = layers[Layer.RGB].flip(-1) if generated else None  # any [T,H,W,3] video in [0, 1]
    params = {"difficulty": 0.5, "colours": ["red", "blue"]}
    clip_dir = root / "clips" / f"{index:06d}"
    summary = write_clip(
        clip_dir,
        traj,
        layers,
        scene=scene,
        index=index,
        seed=100 + index,
        params=params,
        generated=gen,
    )
    return SimpleNamespace(
        root=root,
        dir=clip_dir,
        scene=scene,
        traj=traj,
        layers=layers,
        gen=gen,
        params=params,
        summary=summary,
        index=index,
        ann=json.loads((clip_dir / "annotations.json").read_text()),
    )


@pytest.fixture(scope="module")
def objects(tmp_path_factory):
    return _make(tmp_path_factory.mktemp("dataset"), _objects_scene(), 3, generated=True)


@pytest.fixture(scope="module")
def person(objects):
    return _make(objects.root, _person_scene(), 4)


def _entity(ann: dict, name: str) -> dict:
    return next(e for e in ann["entities"] if e["name"] == name)


def _project(cams: dict, k: int, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World points [N, 3] -> pixels [N, 2] and camera z [N], from cameras.json alone."""
    fr = cams["frames"][k]
    V, K = np.array(fr["world_to_camera"]), np.array(fr["K"])
    pc = pts @ V[:3, :3].T + V[:3, 3]
    uv = (pc[:, :2] / pc[:, 2:3]) @ K[:2, :2].T + K[:2, 2]
    return uv, pc[:, 2]


# --------------------------------------------------------------------------------------------


def test_coco_masks_match_instance_layer(objects):
    coco = COCO(str(objects.dir / "coco.json"))
    inst = objects.layers[Layer.INSTANCE].numpy()
    names = objects.layers.entity_names
    expected = {
        (k, i)
        for k in range(inst.shape[0])
        for i in np.unique(inst[k])
        if i > 0 and names[i - 1] != "ground"
    }
    seen = set()
    for ann in coco.loadAnns(coco.getAnnIds()):
        img = coco.loadImgs(ann["image_id"])[0]
        k = img["frame"]
        assert (objects.root / img["file_name"]).is_file()
        mask = inst[k] == ann["instance_id"]
        np.testing.assert_array_equal(coco.annToMask(ann), mask.astype(np.uint8))
        rows, cols = np.nonzero(mask)
        assert ann["bbox"] == [
            cols.min(),
            rows.min(),
            cols.max() + 1 - cols.min(),
            rows.max() + 1 - rows.min(),
        ]
        assert ann["area"] == mask.sum()
        assert (
            coco.loadCats(ann["category_id"])[0]["name"]
            == _entity(objects.ann, ann["entity"])["category"]
        )
        seen.add((k, ann["instance_id"]))
    assert seen == expected
    assert {c["name"] for c in coco.loadCats(coco.getCatIds())} == {"sphere", "blob"}


def test_depth_png_within_a_millimetre(objects):
    clip = read_clip(objects.dir)
    depth = objects.layers[Layer.DEPTH].numpy()
    hit = np.isfinite(depth)
    assert hit.any() and (~hit).any()
    mm = clip["depth_mm"].astype(np.float64)
    assert np.all(mm[~hit] == 0) and np.all(mm[hit] > 0)
    assert np.abs(mm[hit] / 1000.0 - depth[hit]).max() <= 0.0005 + 1e-6
    np.testing.assert_array_equal(clip["depth"], depth)  # +inf preserved in depth.npz


def test_flow_follows_the_falling_ball(objects):
    clip = read_clip(objects.dir)
    cams = clip["cameras"]
    pos = objects.traj.rigid["ball"].positions.double().numpy()
    iid = objects.layers.entity_names.index("ball") + 1
    for k in range(2, 6):  # free fall, before the ball reaches the ground
        uv0 = _project(cams, k, pos[k : k + 1])[0][0]
        uv1 = _project(cams, k + 1, pos[k + 1 : k + 2])[0][0]
        i, j = int(uv0[1]), int(uv0[0])
        assert clip["instance"][k, i, j] == iid
        np.testing.assert_allclose(clip["flow"][k, i, j], uv1 - uv0, atol=0.75)
        assert np.linalg.norm(uv1 - uv0) > 2.0  # it does move
        i1, j1 = int(uv1[1]), int(uv1[0])
        np.testing.assert_allclose(clip["flow_backward"][k + 1, i1, j1], uv0 - uv1, atol=0.75)


def test_sphere_box_is_the_physics_pose(objects):
    ball = _entity(objects.ann, "ball")
    track = objects.traj.rigid["ball"]
    verts = next(m for m in objects.traj.meshes if m.name == "ball").vertices.double().numpy()
    for k, fr in enumerate(ball["frames"]):
        box = fr["box3d"]
        np.testing.assert_allclose(box["center"], track.positions[k].double(), atol=1e-5)
        np.testing.assert_allclose(fr["position"], track.positions[k].double(), atol=1e-5)
        np.testing.assert_allclose(box["size"], [2 * BALL_R] * 3, atol=1e-9)
        R = quat_to_matrix(torch.tensor(box["quaternion"], dtype=torch.float64)).numpy()
        local = (verts[k] - np.array(box["center"])) @ R
        assert np.all(np.abs(local) <= BALL_R + 1e-5)  # every vertex inside the box ...
        assert np.abs(local).max() > 0.97 * BALL_R  # ... and the box is tight
        corners = np.array(box["corners"])
        np.testing.assert_allclose(corners.mean(0), box["center"], atol=1e-6)
        np.testing.assert_allclose(
            np.linalg.norm(corners - box["center"], axis=1), BALL_R * np.sqrt(3), atol=1e-5
        )
        # the projected 3D box contains the silhouette's box
        x, y, w, h = fr["bbox"]
        px, py, pw, ph = fr["bbox_projected"]
        assert px <= x + 1 and py <= y + 1 and px + pw >= x + w - 1 and py + ph >= y + h - 1
    blob = _entity(objects.ann, "blob")
    means = objects.traj.gaussians[0].means.double().numpy()
    for k, fr in enumerate(blob["frames"]):
        R = quat_to_matrix(torch.tensor(fr["box3d"]["quaternion"], dtype=torch.float64)).numpy()
        local = (means[k] - np.array(fr["box3d"]["center"])) @ R
        assert np.all(np.abs(local) <= np.array(fr["box3d"]["size"]) / 2 + 1e-6)


def test_visible_fraction_and_amodal_masks(objects):
    ann = objects.ann
    for name in ("front", "ball", "blob"):
        fr = [f["visible_fraction"] for f in _entity(ann, name)["frames"]]
        assert fr == [1.0] * len(fr), name
    back = _entity(ann, "back")
    assert all(0.2 < f["visible_fraction"] < 1.0 for f in back["frames"])
    # Independent amodal answer: render again without the occluder and count back's pixels.
    traj = dataclasses.replace(
        objects.traj, meshes=[m for m in objects.traj.meshes if m.name != "front"]
    )
    alone = rendiff.render(traj, [Layer.INSTANCE, Layer.DEPTH], shadows=False, progress=False)
    iid = back["instance_id"]
    counts = (alone[Layer.INSTANCE] == iid).flatten(1).sum(1).tolist()
    assert [f["amodal_pixels"] for f in back["frames"]] == counts
    for f, n in zip(back["frames"], counts, strict=True):
        assert f["visible_fraction"] == round(f["visible_pixels"] / n, 6)
    # amodal=False leaves everything else as it was
    plain = clip_annotations(objects.traj, objects.layers, scene=objects.scene, amodal=False)
    for e, e2 in zip(ann["entities"], plain["entities"], strict=True):
        for f, f2 in zip(e["frames"], e2["frames"], strict=True):
            assert f2["amodal_pixels"] is None and f2["visible_fraction"] is None
            assert {
                k: v for k, v in f.items() if k not in ("amodal_pixels", "visible_fraction")
            } == {k: v for k, v in f2.items() if k not in ("amodal_pixels", "visible_fraction")}


def _segment_hits_box(a: np.ndarray, b: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> bool:
    """Slab test: does the segment a -> b cross the axis-aligned box [lo, hi]?"""
    d = b - a
    t0, t1 = 0.0, 1.0
    for ax in range(3):
        if abs(d[ax]) < 1e-12:
            if not lo[ax] <= a[ax] <= hi[ax]:
                return False
            continue
        ta, tb = sorted(((lo[ax] - a[ax]) / d[ax], (hi[ax] - a[ax]) / d[ax]))
        t0, t1 = max(t0, ta), min(t1, tb)
    return t0 <= t1


def test_person_keypoints_follow_occlusion(person):
    ent = _entity(person.ann, "person")
    cams = person.ann["cameras"]
    W, H = cams["width"], cams["height"]
    lo, hi = WALL_CENTRE - WALL_SIZE / 2, WALL_CENTRE + WALL_SIZE / 2
    coco = json.loads((person.dir / "coco.json").read_text())
    people = [a for a in coco["annotations"] if a["entity"] == "person"]
    cat = next(c for c in coco["categories"] if c["name"] == "person")
    assert cat["keypoints"] == COCO17_NAMES and len(cat["skeleton"]) == 19
    verts = next(m for m in person.traj.meshes if m.name == "person").vertices.double().numpy()
    counts = {0: 0, 1: 0, 2: 0}
    for k, fr in enumerate(ent["frames"]):
        p3 = np.array(fr["keypoints_3d"])
        uv, z = _project(cams, k, p3)
        eye = np.array(cams["frames"][k]["position"])
        for j in range(17):
            inside = z[j] > cams["near"] and 0 <= uv[j, 0] < W and 0 <= uv[j, 1] < H
            want = 0 if not inside else (1 if _segment_hits_box(eye, p3[j], lo, hi) else 2)
            x, y, v = fr["keypoints"][j]
            assert v == want, (k, COCO17_NAMES[j])
            counts[want] += 1
            if v:
                np.testing.assert_allclose([x, y], uv[j], atol=1e-3)
            else:
                assert x == y == 0
        assert fr["num_keypoints"] == sum(1 for kp in fr["keypoints"] if kp[2] > 0)
        ann = next(a for a in people if a["image_id"] == k + 1)
        assert ann["keypoints"] == [c for kp in fr["keypoints"] for c in (kp[0], kp[1], int(kp[2]))]
        # the body box holds the whole posed mesh
        box = fr["box3d"]
        R = quat_to_matrix(torch.tensor(box["quaternion"], dtype=torch.float64)).numpy()
        local = (verts[k] - np.array(box["center"])) @ R
        assert np.all(np.abs(local) <= np.array(box["size"]) / 2 + 1e-5)
    assert min(counts.values()) > 0  # the scene exercises all three cases


def test_same_inputs_give_identical_bytes(objects, tmp_path):
    again = tmp_path / "again"
    write_clip(
        again,
        objects.traj,
        objects.layers,
        scene=objects.scene,
        index=objects.index,
        seed=103,
        params=objects.params,
        generated=objects.gen,
    )
    first = sorted(p.relative_to(objects.dir) for p in objects.dir.rglob("*") if p.is_file())
    second = sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert first == second
    for rel in first:
        a, b = (objects.dir / rel).read_bytes(), (again / rel).read_bytes()
        if rel.name == "metadata.json":
            ma, mb = json.loads(a), json.loads(b)
            ma.pop("created"), mb.pop("created")
            assert ma == mb
        else:
            assert a == b, rel
    # Nothing time-dependent inside: fixed zip dates, no PNG time or text chunks.
    for npz in ("flow.npz", "depth.npz"):
        with zipfile.ZipFile(objects.dir / npz) as zf:
            assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    for kind in ("rgb", "depth", "normal", "instance", "semantic", "generated"):
        data = (objects.dir / kind / "00001.png").read_bytes()
        chunks, i = set(), 8
        while i < len(data):
            n = int.from_bytes(data[i : i + 4], "big")
            chunks.add(data[i + 4 : i + 8])
            i += 12 + n
        assert chunks == {b"IHDR", b"IDAT", b"IEND"}, kind


def test_read_clip_round_trip(objects):
    clip = read_clip(objects.dir)
    L = objects.layers
    rgb = np.round(L[Layer.RGB].clamp(0, 1).numpy() * 255).astype(np.uint8)
    np.testing.assert_array_equal(clip["rgb"], rgb)
    gen = np.round(objects.gen.clamp(0, 1).numpy() * 255).astype(np.uint8)
    np.testing.assert_array_equal(clip["generated"], gen)
    np.testing.assert_array_equal(clip["instance"], L[Layer.INSTANCE].numpy())
    np.testing.assert_array_equal(clip["semantic"], L[Layer.SEMANTIC].numpy())
    np.testing.assert_array_equal(clip["flow"], L[Layer.FLOW].numpy())
    np.testing.assert_array_equal(clip["flow_backward"], L[Layer.FLOW_BACKWARD].numpy())
    normal = L[Layer.NORMAL].numpy()
    np.testing.assert_allclose(clip["normal"], normal, atol=1.0 / 255 + 1e-6)
    assert np.array_equal(np.any(clip["normal"] != 0, -1), np.any(normal != 0, -1))
    albedo = np.round(L[Layer.ALBEDO].clamp(0, 1).numpy() * 255).astype(np.uint8)
    np.testing.assert_array_equal(clip["albedo"], albedo)
    pose = np.round(L[Layer.POSE].clamp(0, 1).numpy() * 255).astype(np.uint8)
    np.testing.assert_array_equal(clip["pose"], pose)
    shading = L[Layer.SHADING].numpy()
    assert shading.max() > 0.1  # the scene is lit
    np.testing.assert_allclose(clip["shading"], np.clip(shading, 0, 6.5535), atol=0.5e-4 + 1e-7)
    meta = clip["metadata"]
    assert meta["index"] == 3 and meta["seed"] == 103 and meta["params"] == objects.params
    assert meta["scene"]["name"] == "objects" and meta["frames"] == 8
    s = objects.summary
    assert s["index"] == 3 and s["n_objects"] == 4 and s["n_humans"] == 0
    assert s["param.difficulty"] == 0.5 and s["param.colours"] == '["red", "blue"]'
    assert s["depth_min_m"] == pytest.approx(float(np.min(clip["depth"])))
    np.testing.assert_allclose(
        np.array(clip["cameras"]["frames"][2]["world_to_camera"]),
        L.cameras.viewmats[2].numpy(),
        atol=1e-6,
    )


def test_metadata_lists_every_file_with_its_hash(objects, tmp_path):
    meta = json.loads((objects.dir / "metadata.json").read_text())
    on_disk = {p.relative_to(objects.dir).as_posix() for p in objects.dir.rglob("*") if p.is_file()}
    assert set(meta["files"]) == on_disk - {"metadata.json"}
    for rel, rec in meta["files"].items():
        data = (objects.dir / rel).read_bytes()
        assert rec == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    assert verify_clip(objects.dir) == []
    broken = tmp_path / "broken"
    shutil.copytree(objects.dir, broken)
    png = broken / "depth" / "00002.png"
    png.write_bytes(png.read_bytes()[:-1] + b"\0")
    (broken / "stray.txt").write_text("x")
    problems = verify_clip(broken)
    assert len(problems) == 2 and "00002.png" in problems[0] and "stray.txt" in problems[1]


def test_merge_coco_unifies_categories(objects, person):
    clips = [json.loads((c.dir / "coco.json").read_text()) for c in (objects, person, objects)]
    merged = merge_coco(clips)
    names = [c["name"] for c in merged["categories"]]
    assert names == ["sphere", "blob", "person", "occluder"]
    assert [i["id"] for i in merged["images"]] == list(range(1, 8 + 6 + 8 + 1))
    n = sum(len(c["annotations"]) for c in clips)
    assert [a["id"] for a in merged["annotations"]] == list(range(1, n + 1))
    # a clip's annotations keep their image, category and track identity, renumbered
    images = {i["id"]: i for i in merged["images"]}
    cats = {c["id"]: c["name"] for c in merged["categories"]}
    tracks = {}
    for a in merged["annotations"]:
        img = images[a["image_id"]]
        tracks.setdefault(a["track_id"], set()).add((img["clip"], a["entity"]))
        assert img["file_name"].startswith(img["clip"] + "/rgb/")
        assert (
            cats[a["category_id"]]
            == _entity(objects.ann if img["clip"] == "clips/000003" else person.ann, a["entity"])[
                "category"
            ]
        )
    assert all(len(v) == 1 for v in tracks.values())
    assert len(tracks) == 2 * 4 + 2  # the first clip twice (4 things each), then wall + person
    path = objects.root / "merged.json"
    path.write_text(json.dumps(merged))
    coco = COCO(str(path))
    assert len(coco.getAnnIds(catIds=coco.getCatIds(catNms=["person"]))) == 6


def test_bad_generated_shape_is_a_clear_error(objects, tmp_path):
    with pytest.raises(ValueError, match="generated has shape"):
        write_clip(
            tmp_path / "x",
            objects.traj,
            objects.layers,
            scene=objects.scene,
            index=0,
            seed=0,
            params={},
            generated=torch.zeros(2, 64, 64, 3),
        )


def test_robot_joints_and_links_are_exported(tmp_path):
    """annotations.json carries each robot's joint angles and link poses per frame, exactly as
    the simulator produced them, and the arm's 2D box contains its projected base link."""
    import rendiff

    scene = rendiff.builtin_scene("robot_arm").model_copy(update={"frames": 4, "size": (48, 48)})
    traj = rendiff.simulate(scene, progress=False)
    layers = rendiff.render(traj, progress=False)
    write_clip(tmp_path / "c", traj, layers, scene=scene, index=0, seed=0, params={}, amodal=False)
    ann = json.loads((tmp_path / "c" / "annotations.json").read_text())
    (robot,) = traj.robots
    (out,) = ann["robots"]
    assert out["joint_names"] == robot.joint_names and out["link_names"] == robot.link_names
    for k in range(4):
        fr = out["frames"][k]
        np.testing.assert_allclose(fr["q"], robot.q[k].numpy(), atol=1e-6)
        np.testing.assert_allclose(fr["link_positions"], robot.link_positions[k].numpy(), atol=1e-6)
    ent = ann["entities"][out["instance_id"] - 1]
    assert ent["name"] == robot.name
    x, y, w, h = ent["frames"][0]["bbox"]
    uv, _ = layers.cameras.project(robot.link_positions[:1, :1].float())
    u, v = uv[0, 0].tolist()
    assert x - 1 <= u <= x + w + 1 and y - 1 <= v <= y + h + 1


def test_flow16_shrinks_the_flow_file_within_float16_precision(objects, tmp_path):
    write_clip(
        tmp_path / "c16",
        objects.traj,
        objects.layers,
        scene=objects.scene,
        index=3,
        seed=103,
        params=objects.params,
        amodal=False,
        flow16=True,
    )
    exact = objects.layers[Layer.FLOW].numpy()
    back = read_clip(tmp_path / "c16", keys=["flow"])["flow"]
    assert back.dtype == np.float32
    # float16 keeps 11 significant bits: relative error <= 2^-11 (plus subnormals near 0)
    np.testing.assert_allclose(back, exact, rtol=2.0**-11, atol=1e-4)
    assert np.abs(exact).max() > 1.0  # the clip really moves
    size16 = (tmp_path / "c16" / "flow.npz").stat().st_size
    size32 = (objects.dir / "flow.npz").stat().st_size
    # half the raw bytes; compressed, float32's low mantissa bits were the incompressible part
    assert size16 < 0.7 * size32
