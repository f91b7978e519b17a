"""SMPL bodies and motions against independent answers: smplx's own loader and forward pass,
the closed-surface Euler formula, explicit rotations, AMASS's Z-up convention evaluated
through smplx directly, and round trips through files and frame rates."""

from __future__ import annotations

import io
import math
import pickle
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation
from smplx.vertex_ids import vertex_ids

from rendiff.engine import motion as motion_lib
from rendiff.engine.body import (
    COCO17_NAMES,
    OPENPOSE18_NAMES,
    SMPL_JOINT_NAMES,
    STANDIN_PATH,
    BodyModel,
    UnsafePickleError,
    body_model_path,
    load_model_data,
)

RX90 = torch.tensor([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])  # SMPL Y-up -> world Z-up
J = {n: i for i, n in enumerate(SMPL_JOINT_NAMES)}


def _random_pose(gen: torch.Generator, n: int, scale: float = 0.4):
    go = torch.randn(n, 3, generator=gen) * scale
    bp = torch.randn(n, 69, generator=gen) * scale
    betas = torch.randn(n, 10, generator=gen)
    tr = torch.randn(n, 3, generator=gen)
    return go, bp, betas, tr


def test_standin_file_loads_in_smplx_and_is_closed(smpl_direct):
    assert smpl_direct.v_template.shape == (6890, 3)
    assert smpl_direct.faces.shape == (13776, 3)
    assert smpl_direct.J_regressor.shape == (24, 6890)
    assert smpl_direct.parents.tolist() == [-1] + [0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12,
                                                   13, 14, 16, 17, 18, 19, 20, 21]
    f = smpl_direct.faces.astype(np.int64)
    half = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    directed = {tuple(e) for e in half.tolist()}
    assert len(directed) == len(half), "a directed edge appears twice (bad orientation)"
    assert all((b, a) in directed for a, b in directed), "an edge has only one face (open)"
    edges = len(half) // 2
    assert 6890 - edges + len(f) == 2  # Euler characteristic of a closed genus-0 surface
    out = smpl_direct()
    torch.testing.assert_close(out.vertices[0], smpl_direct.v_template)
    # the regressor reproduces the joints stored with the model
    data = load_model_data(STANDIN_PATH)
    torch.testing.assert_close(out.joints[0, :24], torch.as_tensor(data["J"]), atol=1e-5, rtol=0)
    assert data["posedirs"].shape == (6890, 3, 207) and not data["posedirs"].any()
    assert STANDIN_PATH.stat().st_size < 3e6


def test_zero_pose_is_template_turned_z_up(body, smpl_direct):
    posed = body.pose(torch.zeros(1, 3), torch.zeros(1, 69), None, torch.zeros(1, 3))
    expect = smpl_direct.v_template @ RX90.T
    torch.testing.assert_close(posed.vertices[0], expect)
    v = posed.vertices[0]
    nose = v[vertex_ids["smplh"]["nose"]]
    assert v[:, 2].argmax() in torch.nonzero(body.part_labels == J["head"]).ravel()  # head on top
    assert nose[1] < v[:, 1].mean() - 0.05  # a zero-pose body faces world -Y
    assert 1.6 < float(v[:, 2].max() - v[:, 2].min()) < 1.9


def test_bodymodel_matches_smplx_forward(body, smpl_direct):
    gen = torch.Generator().manual_seed(0)
    go, bp, betas, tr = _random_pose(gen, 5)
    ours = body.pose(go, bp, betas, tr)
    ref = smpl_direct(global_orient=go, body_pose=bp, betas=betas, transl=tr)
    torch.testing.assert_close(ours.vertices, ref.vertices @ RX90.T, atol=1e-5, rtol=0)
    torch.testing.assert_close(ours.joints, ref.joints[:, :24] @ RX90.T, atol=1e-5, rtol=0)
    bp = bp.clone().requires_grad_()
    body.pose(go, bp, betas, tr).coco17.square().sum().backward()  # differentiable
    assert bp.grad is not None and bp.grad.abs().sum() > 0


def test_elbow_moves_hand_not_foot(body):
    bp = torch.zeros(2, 69)
    e = J["left_elbow"] - 1
    bp[1, 3 * e : 3 * e + 3] = torch.tensor([0.0, -1.2, 0.0])
    v = body.pose(torch.zeros(2, 3), bp).vertices
    moved = (v[1] - v[0]).norm(dim=-1)
    labels = body.part_labels
    hand = (labels == J["left_wrist"]) | (labels == J["left_hand"])
    feet = sum(labels == J[n] for n in ("left_ankle", "right_ankle", "left_foot", "right_foot"))
    assert moved[hand].min() > 0.1
    assert moved[feet.bool()].max() == 0.0
    assert moved[labels == J["right_wrist"]].max() == 0.0


def test_keypoints_match_smplx_extra_joints(body, smpl_direct):
    gen = torch.Generator().manual_seed(1)
    go, bp, betas, tr = _random_pose(gen, 4)
    ours = body.pose(go, bp, betas, tr)
    ref = smpl_direct(global_orient=go, body_pose=bp, betas=betas, transl=tr).joints @ RX90.T
    # smplx's SMPL joints: 24 body joints, then nose, right eye, left eye, right ear, left ear.
    smplx_index = {"nose": 24, "right_eye": 25, "left_eye": 26, "right_ear": 27, "left_ear": 28}
    smplx_index |= {n: J[n] for n in COCO17_NAMES[5:]}
    expect = ref[:, [smplx_index[n] for n in COCO17_NAMES]]
    torch.testing.assert_close(ours.coco17, expect, atol=1e-5, rtol=0)
    coco = {n: ours.coco17[:, i] for i, n in enumerate(COCO17_NAMES)}
    for i, n in enumerate(OPENPOSE18_NAMES):
        want = 0.5 * (coco["left_shoulder"] + coco["right_shoulder"]) if n == "neck" else coco[n]
        torch.testing.assert_close(ours.openpose18[:, i], want)


def test_standin_landmarks_sit_on_the_face(body):
    kp = body.pose(torch.zeros(1, 3), torch.zeros(1, 69)).coco17[0]
    k = {n: kp[i] for i, n in enumerate(COCO17_NAMES)}
    head_top = body.pose(torch.zeros(1, 3), torch.zeros(1, 69)).vertices[0, :, 2].max()
    for n in ("nose", "left_eye", "right_eye", "left_ear", "right_ear"):
        assert head_top - 0.2 < k[n][2] < head_top
    assert k["nose"][1] < k["left_eye"][1] < k["left_ear"][1]  # nose in front (-Y), ears behind
    assert k["left_eye"][0] > 0 > k["right_eye"][0] and k["left_ear"][0] > 0 > k["right_ear"][0]
    torch.testing.assert_close(k["left_ear"] * torch.tensor([-1, 1, 1]), k["right_ear"], atol=1e-3,
                               rtol=0)


def test_many_people_in_one_call(body):
    gen = torch.Generator().manual_seed(2)
    P, T = 3, 4
    go, bp, _, tr = _random_pose(gen, P * T)
    betas = torch.randn(P, 1, 10, generator=gen)  # one shape per person, broadcast over frames
    batch = body.pose(go.reshape(P, T, 3), bp.reshape(P, T, 69), betas, tr.reshape(P, T, 3),
                      chunk=5)
    assert batch.vertices.shape == (P, T, 6890, 3) and batch.openpose18.shape == (P, T, 18, 3)
    for p in range(P):
        one = body.pose(go.reshape(P, T, 3)[p], bp.reshape(P, T, 69)[p], betas[p, 0],
                        tr.reshape(P, T, 3)[p])
        torch.testing.assert_close(batch.vertices[p], one.vertices)
        torch.testing.assert_close(batch.coco17[p], one.coco17)


def test_part_labels_cover_24_parts(body):
    labels = body.part_labels
    assert labels.shape == (6890,) and labels.dtype == torch.int64
    assert torch.equal(labels.unique(), torch.arange(24))
    assert torch.equal(labels, body.smpl.lbs_weights.argmax(1))
    stored = torch.as_tensor(load_model_data(STANDIN_PATH)["part_labels"].astype(np.int64))
    assert torch.equal(stored, labels)


def test_model_path_resolution(tmp_path, monkeypatch, caplog):
    monkeypatch.delenv("RENDIFF_SMPL_PATH", raising=False)
    assert body_model_path() == (STANDIN_PATH, "standin")
    real = tmp_path / "models" / "smpl"
    real.mkdir(parents=True)
    shutil.copy(STANDIN_PATH, real / "SMPL_MALE.pkl")
    monkeypatch.setenv("RENDIFF_SMPL_PATH", str(tmp_path / "models"))
    assert body_model_path(gender="male") == (real / "SMPL_MALE.pkl", "smpl")
    with pytest.raises(FileNotFoundError):
        body_model_path(gender="female")
    other = tmp_path / "basicmodel_f_lbs_10_207_0_v1.1.0.pkl"
    shutil.copy(STANDIN_PATH, other)
    assert body_model_path(tmp_path, gender="female") == (other, "smpl")  # argument beats env
    assert BodyModel(other, gender="female").kind == "smpl"


def test_reads_chumpy_pickles_and_npz(tmp_path, body):
    data = load_model_data(STANDIN_PATH)
    # A fake chumpy module, gone again before loading, as on a machine without chumpy.
    fake = types.ModuleType("chumpy.ch")

    class Ch:
        def __init__(self, x):
            self.x = x

    class MatVecMult:  # a computed expression: pickled without a stored value ``x``
        def __init__(self, mtx):
            self.mtx = mtx

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    MatVecMult.__module__, MatVecMult.__qualname__ = "chumpy.ch", "MatVecMult"
    fake.Ch, fake.MatVecMult = Ch, MatVecMult
    sys.modules["chumpy"], sys.modules["chumpy.ch"] = types.ModuleType("chumpy"), fake
    try:
        wrapped = {k: Ch(v) if k in ("v_template", "shapedirs", "posedirs") else v
                   for k, v in data.items()}
        wrapped["J"] = MatVecMult(data["J_regressor"])
        (tmp_path / "SMPL_NEUTRAL.pkl").write_bytes(pickle.dumps(wrapped, protocol=2))
    finally:
        del sys.modules["chumpy"], sys.modules["chumpy.ch"]
    np.savez(tmp_path / "SMPL_FEMALE.npz", **{k: np.asarray(v.toarray() if hasattr(v, "toarray")
                                                           else v) for k, v in data.items()})
    gen = torch.Generator().manual_seed(3)
    go, bp, betas, tr = _random_pose(gen, 2)
    want = body.pose(go, bp, betas, tr).vertices
    assert "J" not in load_model_data(tmp_path / "SMPL_NEUTRAL.pkl")
    for gender in ("neutral", "female"):
        other = BodyModel(tmp_path, gender=gender)
        assert other.kind == "smpl"
        torch.testing.assert_close(other.pose(go, bp, betas, tr).vertices, want)


# ----------------------------------------------------------------------------------------------
# Motions


def test_walk_moves_forward_on_alternating_planted_feet(body):
    fps, speed = 30, 1.2
    mot = motion_lib.walk(frames=90, fps=fps, speed=speed, body=body)
    assert mot.global_orient.shape == (90, 3) and mot.body_pose.shape == (90, 69)
    root = mot.root_world()
    travelled = root[-1, 0] - root[0, 0]
    assert abs(travelled / (89 / fps) - speed) < 0.03 * speed
    assert root[:, 1].abs().max() < 0.05  # straight along +X
    posed = body.pose(mot.global_orient, mot.body_pose, mot.betas, mot.transl)
    v = posed.vertices
    assert v[..., 2].min(-1).values.abs().max() < 0.012  # on the ground z = 0
    ids = vertex_ids["smplh"]
    low, down, marks = {}, {}, {}
    for s, side in (("L", "left"), ("R", "right")):
        foot = (body.part_labels == J[f"{side}_ankle"]) | (body.part_labels == J[f"{side}_foot"])
        low[s] = v[:, foot, 2].min(-1).values
        down[s] = low[s] < 0.006
        marks[s] = v[:, [ids[f"{s}Heel"], ids[f"{s}BigToe"]]]
    assert (down["L"] | down["R"]).all()  # always a foot on the ground
    assert (~down["L"]).any() and (~down["R"]).any()
    lead = (marks["L"][:, 0, 0] > marks["R"][:, 0, 0]).int()  # which heel is ahead
    assert 4 <= int(lead.diff().abs().sum()) <= 6  # three seconds: about 2.3 strides
    for s in "LR":  # a flat foot on the ground does not slide
        flat = (marks[s][..., 2] < 0.03).all(-1)
        both = flat[1:] & flat[:-1]
        step = (marks[s][1:, :, :2] - marks[s][:-1, :, :2]).norm(dim=-1).max(-1).values
        assert both.sum() > 20 and step[both].max() < 0.01
    nose = posed.coco17[:, 0]
    assert (nose[:, 0] > root[:, 0]).all()  # facing the direction of travel


def _to_amass(mot: motion_lib.Motion):
    """Our SMPL-frame parameters -> AMASS's Z-up convention, written out independently."""
    rx = Rotation.from_matrix(RX90.double().numpy())
    root = (rx * Rotation.from_rotvec(mot.global_orient.double().numpy())).as_rotvec()
    j0 = mot.pelvis.double().numpy()
    trans = (j0 + mot.transl.double().numpy()) @ RX90.double().numpy().T - j0
    return root, trans


def test_amass_convention_and_resampling(tmp_path, body, smpl_direct):
    walk60 = motion_lib.walk(frames=61, fps=60, body=body)
    walk60.body_pose[:, 3 * 21 :] = 0.0  # SMPL-H carries no SMPL hand joints
    root, trans = _to_amass(walk60)
    # AMASS parameters through plain smplx give our world vertices: AMASS is Z-up.
    ref = smpl_direct(global_orient=torch.tensor(root).float(), body_pose=walk60.body_pose,
                      transl=torch.tensor(trans).float())
    ours = body.pose(walk60.global_orient, walk60.body_pose, None, walk60.transl)
    torch.testing.assert_close(ref.vertices, ours.vertices, atol=2e-5, rtol=0)
    poses = np.zeros((61, 156))
    poses[:, :3], poses[:, 3:66] = root, walk60.body_pose[:, :63].numpy()
    np.savez(tmp_path / "seq.npz", poses=poses, trans=trans, betas=np.zeros(16),
             mocap_framerate=np.array(60.0), gender="neutral")
    loaded = motion_lib.load_amass(tmp_path / "seq.npz", fps=30, body=body)
    assert loaded.frames == 31 and loaded.fps == 30
    got = body.pose(loaded.global_orient, loaded.body_pose, None, loaded.transl).vertices
    torch.testing.assert_close(got, ours.vertices[::2], atol=5e-5, rtol=0)
    # SMPL-width poses (72) and a non-integer ratio: 60 -> 40 fps against a walk made at 40 fps
    full60 = motion_lib.walk(frames=61, fps=60, body=body)
    root, trans = _to_amass(full60)
    poses = np.concatenate([root, full60.body_pose.double().numpy()], 1)
    np.savez(tmp_path / "smpl.npz", poses=poses, trans=trans, mocap_frame_rate=60.0)
    loaded = motion_lib.load_amass(tmp_path / "smpl.npz", fps=40, body=body)
    direct = motion_lib.walk(frames=41, fps=40, body=body)
    a = body.pose(loaded.global_orient, loaded.body_pose, None, loaded.transl).vertices
    b = body.pose(direct.global_orient, direct.body_pose, None, direct.transl).vertices
    assert loaded.frames == 41
    assert (a - b).norm(dim=-1).max() < 0.01


def test_follow_path_turns_the_walk(body):
    mot = motion_lib.walk(frames=150, fps=30, body=body)
    path = torch.tensor([[0.0, 0.0], [2.0, 0.0], [2.0, 3.0]])
    bent = motion_lib.follow_path(mot, path)
    root = bent.root_world()
    posed = body.pose(bent.global_orient, bent.body_pose, None, bent.transl)
    assert posed.vertices[..., 2].min(-1).values.abs().max() < 0.015  # still on the ground
    nose_dir = posed.coco17[:, 0, :2] - root[:, :2]
    heading = torch.atan2(nose_dir[:, 1], nose_dir[:, 0])
    assert abs(float(heading[0])) < 0.25  # starts facing +X
    assert abs(float(heading[-1]) - math.pi / 2) < 0.25  # ends facing +Y, the last leg
    assert (root[-1, :2] - torch.tensor([2.0, 5 * 1.2 - 2.0 - 0.6])).norm() < 0.8
    fixed = motion_lib.follow_path(mot, path, speed=0.5)
    assert (fixed.root_world()[-1, :2] - fixed.root_world()[0, :2]).norm() < 2.6


def test_other_motions_stand_on_the_ground(body):
    fps = 30
    for name in ("idle", "wave", "turn", "jump"):
        mot = getattr(motion_lib, name)(frames=75, fps=fps, speed=0.0, body=body)
        assert torch.isfinite(mot.body_pose).all() and mot.frames == 75
        posed = body.pose(mot.global_orient, mot.body_pose, mot.betas, mot.transl)
        lowest = posed.vertices[..., 2].min(-1).values
        assert lowest[0].abs() < 0.012, name
        if name == "jump":
            assert 0.15 < float(lowest.max()) < 0.4  # both feet leave the ground
        else:
            assert lowest.abs().max() < 0.015, name
    still = motion_lib.idle(frames=2, fps=fps, body=body)
    torch.testing.assert_close(still.global_orient[0], motion_lib.facing_rotation(0.0))
    turn = motion_lib.turn(frames=60, fps=fps, angle=math.pi / 2, body=body)
    kp = body.pose(turn.global_orient, turn.body_pose, None, turn.transl).coco17
    look = kp[[0, -1], 0, :2] - 0.5 * (kp[[0, -1], 11, :2] + kp[[0, -1], 12, :2])
    yaw = torch.atan2(look[:, 1], look[:, 0])
    assert abs(float(yaw[1] - yaw[0]) - math.pi / 2) < 0.15


def test_motion_slice_and_resample(body):
    mot = motion_lib.walk(frames=30, fps=30, body=body)
    part = mot.slice(25, 35)
    assert part.frames == 10 and torch.equal(part.transl[-1], mot.transl[-1])
    up = motion_lib.resample(mot, 60)
    assert up.frames == 59 and up.fps == 60
    torch.testing.assert_close(up.transl[::2], mot.transl)
    r1 = Rotation.from_rotvec(up.body_pose[::2].reshape(-1, 3).double().numpy())
    r0 = Rotation.from_rotvec(mot.body_pose.reshape(-1, 3).double().numpy())
    assert (r1.inv() * r0).magnitude().max() < 1e-5


# -- SMPL files are data, not code: the restricted unpickler ------------------------------------

class _RunsCode:
    """Unpickles as a call to os.system: what a hostile SMPL_NEUTRAL.pkl would hold."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_a_scene_whose_body_model_runs_code_is_refused(tmp_path):
    """A scene file naming a folder whose SMPL pickle calls os.system: `rendiff render` must not
    run the command, and must stop with one line naming the file."""
    import subprocess

    import yaml

    marker = tmp_path / "pwned"
    folder = tmp_path / "smpl"
    folder.mkdir()
    (folder / "SMPL_NEUTRAL.pkl").write_bytes(pickle.dumps({"v_template": _RunsCode(marker)}))
    rendiff_cli = Path(sys.executable).parent / "rendiff"
    shown = subprocess.run([rendiff_cli, "scenes", "--show", "walking_human"],
                           capture_output=True, text=True, check=True).stdout
    scene = yaml.safe_load(shown)
    person = next(e for e in scene["entities"] if e["name"] == "person")
    person["geometry"]["body_model"] = str(folder)
    path = tmp_path / "scene.yaml"
    path.write_text(yaml.safe_dump(scene, sort_keys=False))
    result = subprocess.run([rendiff_cli, "render", path, "-o", tmp_path / "out", "--frames", "2",
                             "--size", "32x32", "--quiet"], capture_output=True, text=True,
                            timeout=600)
    assert not marker.exists(), "the pickle's command ran"
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "SMPL_NEUTRAL.pkl: refused" in lines[0]
    assert "posix.system" in lines[0] or "os.system" in lines[0]


@pytest.mark.parametrize("target", ["os.system", "builtins.eval", "subprocess.Popen",
                                    "numpy.load", "scipy.sparse.save_npz"])
def test_only_the_names_an_smpl_file_holds_are_resolved(tmp_path, target):
    module, name = target.rsplit(".", 1)
    # protocol 0 GLOBAL + REDUCE by hand: whatever `target` is, the load must stop at its name
    data = f"c{module}\n{name}\n(S'x'\ntR.".encode()
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    path.write_bytes(data)
    with pytest.raises(UnsafePickleError, match=rf"refused, the pickle names {target}"):
        load_model_data(path)


def test_an_npz_whose_object_member_runs_code_is_refused(tmp_path):
    import zipfile

    marker = tmp_path / "pwned"
    good = load_model_data(STANDIN_PATH)
    path = tmp_path / "SMPL_NEUTRAL.npz"
    np.savez(path, **{k: v for k, v in good.items()
                      if isinstance(v, np.ndarray) and v.dtype != object})
    # an object member: the .npy magic and header of a 0-d object array, then a pickle that
    # runs code
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|O", "fortran_order": False,
                                                  "shape": ()})
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("J_regressor.npy", header.getvalue() + pickle.dumps(_RunsCode(marker)))
    with pytest.raises(UnsafePickleError, match="refused"):
        load_model_data(path)
    assert not marker.exists()


def test_an_npz_with_a_sparse_regressor_loads(tmp_path):
    """smplx's converted .npz files keep the regressor as a pickled sparse matrix: allowed."""
    import scipy.sparse

    good = load_model_data(STANDIN_PATH)
    path = tmp_path / "SMPL_NEUTRAL.npz"
    arrays = {k: v for k, v in good.items() if isinstance(v, np.ndarray) and v.dtype != object}
    np.savez(path, **arrays, J_regressor=np.array(good["J_regressor"], dtype=object))
    back = load_model_data(path)
    assert scipy.sparse.issparse(back["J_regressor"])
    assert (back["J_regressor"] != good["J_regressor"]).nnz == 0
    np.testing.assert_array_equal(back["v_template"], good["v_template"])
