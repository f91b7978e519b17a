"""One annotated clip on disk: standard image formats, exact annotations, byte-deterministic.

Layout of a clip folder (``T`` frames of ``W x H``; frame files are numbered ``00000.png`` ...)::

    rgb/00000.png        uint8 RGB, the engine's lit render
    generated/00000.png  uint8 RGB, the generated video (only when one was given)
    depth/00000.png      uint16 grey, camera z in millimetres; 0 = nothing hit; clipped to 65535
    normal/00000.png     uint8 RGB, round((n + 1) / 2 * 255) of the unit camera-space normal
                         (OpenCV axes: x right, y down, z forward); (0, 0, 0) where empty
    instance/00000.png   uint16 grey, entity id (1-based scene order), 0 = background
    semantic/00000.png   uint16 grey, class id (metadata semantic_classes[id - 1]), 0 = background
    albedo/00000.png     uint8 RGB, unlit surface colour (when rendered)
    shading/00000.png    uint16 grey, light arriving at the surface x 10000 (when rendered)
    pose/00000.png       uint8 RGB, the OpenPose-18 skeleton image (when rendered)
    depth.npz            depth: float32 [T, H, W] camera z in metres, +inf where nothing was hit
    flow.npz             forward, backward: float32 [T, H, W, 2] pixels (dx, dy), t -> t+1 and
                         t -> t-1; 0 at the clip ends and where nothing was hit
    scene.yaml           the resolved scene (re-render with ``rendiff render scene.yaml``)
    annotations.json     per entity and frame: pose, velocities, 3D box, 2D boxes, visibility,
                         keypoints (rendiff.dataset.annotations)
    cameras.json         per frame K, world_to_camera, camera_to_world, fov, near / far
    coco.json            COCO detection / segmentation / keypoint annotations of the clip
    metadata.json        written last: scene, seed, index, params, versions, file docs and the
                         sha256 and size of every other file

Every file is written under a temporary name and renamed. The same inputs give byte-identical
files; the only exception is the ``created`` field of ``metadata.json``. Fixed encodings make
this hold: PNG without time chunks, npz with fixed zip entry dates, JSON with sorted keys and
floats rounded to 6 decimals.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
import sys
import time
from collections.abc import Iterable
from importlib import metadata as importlib_metadata
from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image

from rendiff.engine.entities import kind_of
from rendiff.engine.layers import Layer, Layers
from rendiff.engine.trajectory import Trajectory
from rendiff.io.atomic import write_bytes
from rendiff.io.npz import write_npz
from rendiff.scenes.io import scene_to_dict
from rendiff.scenes.spec import Scene

from .annotations import clip_annotations
from .coco import clip_coco

__all__ = ["write_clip", "read_clip", "verify_clip", "CLIP_FORMAT", "FILE_DOCS"]

CLIP_FORMAT = "rendiff.clip/1"
SHADING_SCALE = 10000.0  # shading PNG = round(irradiance * SHADING_SCALE)

FILE_DOCS = {
    "rgb/%05d.png": "uint8 RGB PNG, the engine's lit render",
    "generated/%05d.png": "uint8 RGB PNG, the generated video (present only when generated)",
    "depth/%05d.png": "uint16 grey PNG, camera z in millimetres (round(z * 1000)); 0 = nothing "
                      "hit; depths beyond 65.535 m are clipped to 65535; depth.npz is exact",
    "normal/%05d.png": "uint8 RGB PNG, round((n + 1) / 2 * 255) of the unit camera-space normal "
                       "facing the camera, OpenCV axes (x right, y down, z forward); (0, 0, 0) "
                       "where empty",
    "instance/%05d.png": "uint16 grey PNG, entity instance id (1-based scene order, see "
                         "annotations.json entities), 0 = background",
    "semantic/%05d.png": "uint16 grey PNG, semantic class id, class name = "
                         "semantic_classes[id - 1] (ids 1-24 are SMPL body parts), "
                         "0 = background",
    "albedo/%05d.png": "uint8 RGB PNG, unlit surface colour (present when rendered)",
    "shading/%05d.png": "uint16 grey PNG, light arriving at the surface (irradiance, shadows "
                        "included) times 10000, clipped to 65535 (present when rendered)",
    "pose/%05d.png": "uint8 RGB PNG, the OpenPose-18 skeleton image in OpenPose's limb colours "
                     "(present when rendered)",
    "depth.npz": "key 'depth': float32 [T, H, W] camera z in metres, +inf where nothing was hit",
    "flow.npz": "keys 'forward', 'backward': float32 [T, H, W, 2] optical flow in pixels "
                "(dx, dy) to frame t+1 / t-1; 0 at the last / first frame and where nothing "
                "was hit",
    "scene.yaml": "the resolved scene, every field written out",
    "annotations.json": "per entity and frame: pose, velocities, oriented 3D box, 2D boxes, "
                        "visible / amodal pixels, keypoints; see its 'conventions'",
    "cameras.json": "per frame K, world_to_camera, camera_to_world, position, fov; near, far",
    "coco.json": "COCO instances (RLE masks, boxes) and person keypoints, one image per frame, "
                 "file names relative to the data-set root",
    "metadata.json": "written last: scene, seed, index, params, versions, this table, and the "
                     "sha256 and byte size of every other file",
}


# --------------------------------------------------------------------------------------------
# Deterministic encoders


def _png(arr: np.ndarray) -> bytes:
    """PNG bytes of a uint8 [H, W, 3] or uint16 [H, W] array (no time or text chunks)."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr)).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def _npz(arrays: dict[str, np.ndarray]) -> bytes:
    """An ``np.load``-compatible .npz whose bytes depend only on the arrays (fixed entry dates,
    deflated by ISA-L: :mod:`rendiff.io.npz`)."""
    buf = io.BytesIO()
    write_npz(buf, arrays)
    return buf.getvalue()


def _json(obj, indent: int | None = None) -> bytes:
    seps = (",", ":") if indent is None else (",", ": ")
    text = json.dumps(obj, sort_keys=True, indent=indent, separators=seps, allow_nan=False)
    return (text + "\n").encode("utf-8")


def _u8(x: torch.Tensor | np.ndarray) -> np.ndarray:
    a = x.detach().cpu().float().numpy() if isinstance(x, torch.Tensor) else np.asarray(
        x, dtype=np.float32)
    return np.round(np.clip(a, 0.0, 1.0) * 255.0).astype(np.uint8)


def _depth_mm(depth: np.ndarray) -> np.ndarray:
    finite = np.isfinite(depth)
    mm = np.round(np.where(finite, depth, 0.0).astype(np.float64) * 1000.0)
    return np.where(finite, np.clip(mm, 1, 65535), 0).astype(np.uint16)


def _normal_u8(normal: np.ndarray) -> np.ndarray:
    empty = ~np.any(normal != 0, axis=-1, keepdims=True)
    enc = np.round((np.clip(normal, -1.0, 1.0) + 1.0) * 0.5 * 255.0)
    return np.where(empty, 0, enc).astype(np.uint8)


def _ids_u16(ids: np.ndarray, what: str) -> np.ndarray:
    if ids.size and (int(ids.min()) < 0 or int(ids.max()) > 65535):
        raise ValueError(f"write_clip: {what} ids must lie in [0, 65535] for 16-bit PNG; got "
                         f"[{int(ids.min())}, {int(ids.max())}]")
    return ids.astype(np.uint16)


def _versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for pkg in ("rendiff", "torch", "numpy", "pillow", "pycocotools"):
        try:
            out[pkg] = importlib_metadata.version(pkg)
        except importlib_metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _param_value(v):
    """Scalars stay as they are (Parquet columns); anything else becomes sorted JSON text."""
    if v is None or isinstance(v, bool | int | float | str):
        return v
    return json.dumps(v, sort_keys=True, default=str)


# --------------------------------------------------------------------------------------------


def write_clip(
    clip_dir: str | Path,
    traj: Trajectory,
    layers: Layers,
    *,
    scene: Scene,
    index: int,
    seed: int,
    params: dict,
    generated: torch.Tensor | np.ndarray | None = None,
    amodal: bool = True,
    name: str | None = None,
    classes: list[str] | None = None,
    categories: list[str] | None = None,
    flow16: bool = False,
    generation: dict | None = None,
) -> dict:
    """Writes one annotated clip into ``clip_dir`` (layout in the module docstring).

    Args:
        clip_dir: the folder to fill (created if missing); ``metadata.json`` is written last and
            marks the clip complete.
        traj: the simulated clip of ``scene`` (the resolved scene, written as scene.yaml).
            layers: its render (every layer of :class:`Layer` that the files need: rgb, depth,
            normal, instance, semantic, flow, flow_backward).
        index: the clip's index in the data set. seed: the seed it was sampled with.
        params: the sampled parameters (recorded in metadata and, as ``param.<key>``, in the
            summary).
        generated: optional [T, H, W, 3] float video in [0, 1], written to ``generated/``.
        generation: what made ``generated`` (``rendiff.generate``'s ``record``), written into
            ``metadata.json`` as ``generation``.
        amodal: compute amodal masks and visible fractions (see ``clip_annotations``).
        name: the clip folder relative to the data-set root, used in coco.json file names;
            default ``clips/<index:06d>``.
        classes: a data-set-wide semantic class table (id = index + 1); the clip's own ids
            (``layers.semantic_classes``) are remapped to it, so an id means the same class in
            every clip. Default: the clip's own table.
        categories: a data-set-wide COCO category table (id = index + 1), see ``clip_coco``.
        flow16: store flow as float16 (half the raw bytes, about two thirds compressed; error
            below 0.002 px per px of flow magnitude, i.e. float16's 11-bit mantissa) instead of
            exact float32.
    Raises:
        OutputError: a layer documented as finite (or the generated video) holds NaN or inf;
            nothing is written (``rendiff.io.outputs.check_finite``).
    Returns:
        A flat summary row for the data-set index: index, seed, name, scene, frames, fps,
        width, height, entity counts, visibility, depth range, bytes, timings (seconds), and
        every ``params`` key as ``param.<key>`` (non-scalar values as JSON text).
    """
    from rendiff.io.outputs import check_finite

    t0 = time.perf_counter()
    check_finite(layers, torch.as_tensor(generated) if generated is not None else None)
    clip_dir = Path(clip_dir)
    name = name if name is not None else f"clips/{index:06d}"
    need = [Layer.RGB, Layer.DEPTH, Layer.NORMAL, Layer.INSTANCE, Layer.SEMANTIC, Layer.FLOW,
            Layer.FLOW_BACKWARD]
    missing = [x.value for x in need if x not in layers]
    if missing:
        raise ValueError(f"write_clip: layers lack {missing}; render all layers")
    T, (W, H) = layers.frames, layers.size
    if generated is not None:
        gshape = tuple(generated.shape)
        if gshape != (T, H, W, 3):
            raise ValueError(f"write_clip: generated has shape {list(gshape)}, expected "
                             f"[{T}, {H}, {W}, 3] like the layers")
    clip_dir.mkdir(parents=True, exist_ok=True)
    (clip_dir / "metadata.json").unlink(missing_ok=True)

    sem = _ids_u16(layers[Layer.SEMANTIC].detach().cpu().numpy(), "semantic")
    semantic_classes = list(layers.semantic_classes)
    lut = None
    if classes is not None:
        missing = [c for c in semantic_classes if c not in classes]
        if missing:
            raise ValueError(f"write_clip: semantic classes {missing} are not in the data set's "
                             f"class table {classes}")
        lut = np.array([0] + [classes.index(c) + 1 for c in semantic_classes], np.uint16)
        if int(sem.max(initial=0)) >= len(lut):
            raise ValueError(f"write_clip: semantic id {int(sem.max())} has no class name")
        sem = lut[sem]
        semantic_classes = list(classes)
    t_ann = time.perf_counter()
    ann = clip_annotations(traj, layers, scene=scene, amodal=amodal)
    t_ann = time.perf_counter() - t_ann
    if lut is not None:
        ann["semantic_classes"] = semantic_classes
        for e in ann["entities"]:
            if e["semantic_id"] is not None:
                e["semantic_id"] = int(lut[e["semantic_id"]])

    files: dict[str, dict] = {}

    def put(rel: str, data: bytes) -> None:
        write_bytes(clip_dir / rel, data)
        files[rel] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}

    np_layers = {k: layers[k].detach().cpu().numpy() for k in need}
    depth = np_layers[Layer.DEPTH].astype(np.float32)
    rgb = _u8(np_layers[Layer.RGB])
    gen = _u8(generated) if generated is not None else None
    depth_mm = _depth_mm(depth)
    normal = _normal_u8(np_layers[Layer.NORMAL])
    inst = _ids_u16(np_layers[Layer.INSTANCE], "instance")
    # optional layers, written when rendered (the default model trains on them)
    extra: dict[str, np.ndarray] = {}
    if Layer.ALBEDO in layers:
        extra["albedo"] = _u8(layers[Layer.ALBEDO])
    if Layer.SHADING in layers:
        sh = layers[Layer.SHADING].detach().cpu().double().numpy()
        extra["shading"] = np.round(np.clip(sh, 0.0, 6.5535) * SHADING_SCALE).astype(np.uint16)
    if Layer.POSE in layers:
        extra["pose"] = _u8(layers[Layer.POSE])
    for k in range(T):
        put(f"rgb/{k:05d}.png", _png(rgb[k]))
        if gen is not None:
            put(f"generated/{k:05d}.png", _png(gen[k]))
        put(f"depth/{k:05d}.png", _png(depth_mm[k]))
        put(f"normal/{k:05d}.png", _png(normal[k]))
        put(f"instance/{k:05d}.png", _png(inst[k]))
        put(f"semantic/{k:05d}.png", _png(sem[k]))
        for key, stack in extra.items():
            put(f"{key}/{k:05d}.png", _png(stack[k]))
    put("depth.npz", _npz({"depth": depth}))
    fdt = np.float16 if flow16 else np.float32
    put("flow.npz", _npz({"forward": np_layers[Layer.FLOW].astype(fdt),
                          "backward": np_layers[Layer.FLOW_BACKWARD].astype(fdt)}))
    scene_dict = scene_to_dict(scene)
    put("scene.yaml", yaml.safe_dump(scene_dict, sort_keys=False, allow_unicode=True,
                                     width=100).encode("utf-8"))
    put("annotations.json", _json(ann))
    put("cameras.json", _json(ann["cameras"], indent=1))
    put("coco.json", _json(clip_coco(name, layers, ann, categories=categories)))

    meta = {
        "format": CLIP_FORMAT,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "name": name,
        "index": int(index),
        "seed": int(seed),
        "params": params,
        "frames": T,
        "fps": float(layers.fps),
        "width": W,
        "height": H,
        "entities": list(layers.entity_names),
        "semantic_classes": semantic_classes,
        "scene": scene_dict,
        "versions": _versions(),
        "file_docs": FILE_DOCS,
        "files": dict(sorted(files.items())),
    }
    if generation is not None:  # what made generated/ (rendiff.generate's record)
        meta["generation"] = generation
    try:
        meta_bytes = _json(meta, indent=2)
    except (TypeError, ValueError) as err:
        raise ValueError(f"write_clip: params must be JSON-serialisable ({err})") from None
    write_bytes(clip_dir / "metadata.json", meta_bytes)

    things = [e for e in ann["entities"] if e["thing"]]
    fractions = [f["visible_fraction"] for e in things for f in e["frames"]
                 if f["visible_fraction"] is not None]
    finite = depth[np.isfinite(depth)]
    geoms = [e.geometry for e in scene.entities]
    summary = {
        "index": int(index),
        "seed": int(seed),
        "name": name,
        "scene": scene.name,
        "frames": T,
        "fps": float(layers.fps),
        "width": W,
        "height": H,
        "n_entities": len(geoms),
        "n_objects": sum(kind_of(g).thing and not kind_of(g).person for g in geoms),
        "n_humans": sum(kind_of(g).person for g in geoms),
        "visible_fraction_mean": float(np.mean(fractions)) if fractions else None,
        "visible_fraction_min": float(np.min(fractions)) if fractions else None,
        "depth_min_m": float(finite.min()) if finite.size else None,
        "depth_max_m": float(finite.max()) if finite.size else None,
        "bytes": sum(f["bytes"] for f in files.values()) + len(meta_bytes),
        "time_simulate_s": float(traj.timings.get("simulate", float("nan"))),
        "time_render_s": float(traj.timings.get("render", float("nan"))),
        "time_annotate_s": t_ann,
        "time_write_s": time.perf_counter() - t0,
    }
    summary.update({f"param.{k}": _param_value(v) for k, v in params.items()})
    return summary


def verify_clip(clip_dir: str | Path) -> list[str]:
    """Checks a clip folder against its ``metadata.json``: every listed file present with the
    recorded size and sha256, and no unlisted file. Returns the problems found (empty = OK)."""
    clip_dir = Path(clip_dir)
    meta_path = clip_dir / "metadata.json"
    if not meta_path.is_file():
        return [f"{clip_dir}: no metadata.json (incomplete clip)"]
    try:
        listed = json.loads(meta_path.read_text(encoding="utf-8"))["files"]
    except (ValueError, KeyError) as err:
        return [f"{meta_path}: unreadable ({err})"]
    problems = []
    for rel, rec in sorted(listed.items()):
        path = clip_dir / rel
        if not path.is_file():
            problems.append(f"{path}: missing")
            continue
        data = path.read_bytes()
        if len(data) != rec["bytes"]:
            problems.append(f"{path}: {len(data)} bytes, metadata says {rec['bytes']}")
        elif hashlib.sha256(data).hexdigest() != rec["sha256"]:
            problems.append(f"{path}: sha256 differs from metadata")
    # dot files (.DS_Store, .nfsXXXX) are the file system's, not the clip's
    present = {p.relative_to(clip_dir).as_posix() for p in clip_dir.rglob("*")
               if p.is_file() and not p.name.startswith(".")}
    # summary.json: the data-set runner's index row, written after metadata.json
    for rel in sorted(present - set(listed) - {"metadata.json", "summary.json"}):
        problems.append(f"{clip_dir / rel}: not listed in metadata.json")
    return problems


def _read_png_stack(folder: Path, frames: range | int) -> np.ndarray:
    out = []
    for k in (range(frames) if isinstance(frames, int) else frames):
        path = folder / f"{k:05d}.png"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing frame {k}")
        with Image.open(path) as im:
            out.append(np.array(im))
    return np.stack(out)


READABLE = ("rgb", "generated", "depth", "depth_mm", "normal", "instance", "semantic",
            "albedo", "shading", "pose", "flow", "flow_backward", "annotations", "cameras",
            "coco")


def read_clip(clip_dir: str | Path, keys: Iterable[str] | None = None,
              frames: slice | None = None) -> dict:
    """Loads a clip written by :func:`write_clip`.

    Returns:
        dict with numpy arrays ``rgb`` uint8 [T, H, W, 3], ``generated`` (or None), ``depth``
        float32 [T, H, W] metres (+inf = nothing hit, from depth.npz), ``depth_mm`` uint16
        [T, H, W], ``normal`` float32 [T, H, W, 3] decoded to [-1, 1] (0 where empty),
        ``instance`` and ``semantic`` int32 [T, H, W], ``flow`` and ``flow_backward`` float32
        [T, H, W, 2]; when they were written, ``albedo`` and ``pose`` uint8 [T, H, W, 3] and
        ``shading`` float32 [T, H, W]; and the parsed ``annotations``, ``cameras``, ``coco``,
        ``metadata``. ``keys`` picks a subset (see ``READABLE``; ``metadata`` always comes) and
        ``frames`` a slice of frames, so a training loader reads only what it uses.
    """
    clip_dir = Path(clip_dir)
    meta_path = clip_dir / "metadata.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{clip_dir}: no metadata.json (incomplete or not a clip)")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    T = int(meta["frames"])

    def load_json(rel: str):
        return json.loads((clip_dir / rel).read_text(encoding="utf-8"))

    want = READABLE if keys is None else tuple(keys)
    bad = [k for k in want if k not in READABLE]
    if bad:
        raise ValueError(f"read_clip: unknown keys {bad}; expected some of {list(READABLE)}")
    span = range(T) if frames is None else range(T)[frames]
    sl = slice(span.start, span.stop, span.step) if len(span) else slice(0, 0)
    out: dict = {"metadata": meta}
    if "depth" in want:
        with np.load(clip_dir / "depth.npz") as z:
            out["depth"] = z["depth"][sl]
    if "flow" in want or "flow_backward" in want:
        with np.load(clip_dir / "flow.npz") as z:
            if "flow" in want:
                out["flow"] = z["forward"][sl].astype(np.float32)
            if "flow_backward" in want:
                out["flow_backward"] = z["backward"][sl].astype(np.float32)
    if "normal" in want:
        normal_u8 = _read_png_stack(clip_dir / "normal", span)
        empty = ~np.any(normal_u8 != 0, axis=-1, keepdims=True)
        out["normal"] = np.where(empty, 0.0, normal_u8.astype(np.float32) / 255.0 * 2.0
                                 - 1.0).astype(np.float32)
    for key, folder in (("rgb", "rgb"), ("depth_mm", "depth"), ("generated", "generated"),
                        ("albedo", "albedo"), ("pose", "pose"), ("shading", "shading"),
                        ("instance", "instance"), ("semantic", "semantic")):
        if key not in want:
            continue
        if key in ("generated", "albedo", "pose", "shading") and not (clip_dir / folder).is_dir():
            if key == "generated":
                out[key] = None
            continue
        a = _read_png_stack(clip_dir / folder, span)
        if key in ("instance", "semantic"):
            a = a.astype(np.int32)
        elif key == "shading":
            a = a.astype(np.float32) / SHADING_SCALE
        out[key] = a
    for key in ("annotations", "cameras", "coco"):
        if key in want:
            out[key] = load_json(f"{key}.json")
    return out
