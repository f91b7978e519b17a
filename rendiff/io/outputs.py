"""Writing a run's outputs: resolved scene, metadata, raw layers, map videos, contact sheet.

Every file is written under a temporary name and renamed; ``metadata.json`` is written last, so
its presence marks a complete output folder.
"""

from __future__ import annotations

import json
import logging
import math
import platform
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from importlib import metadata as importlib_metadata
from pathlib import Path

import numpy as np
import torch

from rendiff.conditioners.controls import control_image_uint8
from rendiff.engine.layers import LAYER_DOCS, Layer, Layers
from rendiff.engine.trajectory import Trajectory
from rendiff.scenes.io import save_scene
from rendiff.scenes.spec import Scene

from .atomic import atomic_path, remove_leftovers, write_text
from .contact_sheet import SHEET_COLUMNS, contact_sheet, pick_frames
from .npz import write_npz
from .trajectory import save_trajectory, trajectory_table
from .video import write_videos

__all__ = ["OutputError", "check_finite", "save", "versions"]

log = logging.getLogger(__name__)

# Order of rows in the contact sheet and of files in maps/.
_MAP_ORDER = [Layer.DEPTH, Layer.NORMAL, Layer.SEMANTIC, Layer.INSTANCE, Layer.POSE,
              Layer.SHADING, Layer.ALBEDO, Layer.FLOW, Layer.FLOW_BACKWARD, Layer.ALPHA]


def versions() -> dict[str, str]:
    """Versions of rendiff and the libraries that shape its output."""
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for pkg in ("rendiff", "torch", "triton", "warp-lang", "newton", "smplx", "diffusers",
                "numpy"):
        try:
            out[pkg] = importlib_metadata.version(pkg)
        except importlib_metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


class OutputError(ValueError):
    """A result that must not be written (NaN or inf where a layer is documented finite)."""


def _first_frame(bad: torch.Tensor) -> int:
    """The first frame (leading dimension) holding a True of ``bad``."""
    return int(bad.reshape(bad.shape[0], -1).any(dim=1).nonzero()[0])


def _surely_fine(value: torch.Tensor, depth: bool) -> bool:
    """True when a float tensor's sum shows it holds no NaN and no inf (+inf allowed with
    ``depth``): NaN makes any sum NaN, and an infinity makes it infinite or NaN. One pass without
    temporaries, ~30x faster than a mask; False (an overflowing sum, or something there) sends
    the tensor to the element-wise check."""
    total = float(value.sum())
    return not math.isnan(total) and total != -math.inf if depth else math.isfinite(total)


def check_finite(layers: Layers, generated: torch.Tensor | None = None) -> None:
    """The last guard before writing: every layer documented as finite is (depth may be +inf
    where nothing was hit, never NaN or -inf), and so is the generated video. Raises
    :class:`OutputError` naming the layer, the first bad frame and the entity there."""
    for layer, value in layers.items():
        if not value.is_floating_point() or _surely_fine(value, layer == Layer.DEPTH):
            continue

        def bad_at(part: torch.Tensor, depth: bool = layer == Layer.DEPTH) -> torch.Tensor:
            return torch.isnan(part) | (part == -torch.inf) if depth else ~torch.isfinite(part)

        # a few frames at a time: a whole 720p clip's masks are ~0.1 GB
        first = next((a for a in range(0, value.shape[0], 4) if bad_at(value[a:a + 4]).any()),
                     None)
        if first is not None:
            bad = bad_at(value[first:first + 4])  # the chunk holding the first bad frame
            k = _first_frame(bad)
            frame = first + k
            where = ""
            if Layer.INSTANCE in layers and bad.dim() >= 3:
                pixel = bad[k].reshape(*bad.shape[1:3], -1).any(dim=-1).nonzero()[0]
                ident = int(layers[Layer.INSTANCE][frame, pixel[0], pixel[1]])
                if 0 < ident <= len(layers.entity_names):
                    where = f", entity {layers.entity_names[ident - 1]!r} there"
            raise OutputError(f"layer {layer.value!r} holds NaN or inf at frame {frame}{where}; "
                              "nothing was written")
    if generated is not None and not _surely_fine(generated, False):
        bad = ~torch.isfinite(generated)
        if bad.any():
            raise OutputError(f"the generated video holds NaN or inf at frame "
                              f"{_first_frame(bad)} (damaged model weights?); nothing was "
                              "written")


#: The file names ``save`` writes before metadata.json (which it removes first and writes last);
#: in a folder it writes into, any of them that a run did not write is an earlier run's and is
#: removed, so that a folder's outputs all come from one run.
_OUTPUT_NAMES = ("scene.yaml", "trajectory.npz", "trajectory.csv", "layers.npz", "render.mp4",
                 "generated.mp4", "contact_sheet.png")


def _stale_outputs(out: Path, written: set[Path]) -> list[Path]:
    candidates = [out / name for name in _OUTPUT_NAMES]
    candidates += sorted((out / "maps").glob("*.mp4"))
    return [p for p in candidates if p.is_file() and p not in written]


class _VideoQueue:
    """``write(key, path, frames)`` collects videos into batches of about ``BATCH_BYTES`` of
    uint8 frames; each batch is written by one ffmpeg process (:func:`write_videos`) on a writer
    thread while the next one is encoded and collected, and its paths recorded in ``written``
    under their keys, in the order given. At most two batches are held. Leaving the ``with``
    block writes the last batch, waits for every video and raises the first error."""

    #: A 256x256 or 512x512 run's maps all go to one ffmpeg process (its start-up is half of a
    #: small clip's cost); a 1280x720 run's go two at a time (44 MB each).
    BATCH_BYTES = 64 * 2**20

    def __init__(self, fps: float, written: dict[str, Path]) -> None:
        self._fps, self._written = fps, written
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="rendiff-video")
        self._batch: list[tuple[str, Path, np.ndarray]] = []
        self._pending: list[tuple[list[str], Future]] = []

    def write(self, key: str, path: Path, frames: torch.Tensor | np.ndarray) -> None:
        self._batch.append((key, path, frames))
        if sum(f.nbytes for _, _, f in self._batch) >= self.BATCH_BYTES:
            self._submit()

    def flush(self) -> None:
        """Hands the videos collected so far to the writer now (after the batch before them is
        done) instead of when the block is left."""
        self._submit()

    def _submit(self) -> None:
        if not self._batch:
            return
        while self._pending:  # one batch written while the next is collected
            self._finish_one()
        batch, self._batch = self._batch, []
        future = self._pool.submit(write_videos, [(p, f) for _, p, f in batch], self._fps)
        self._pending.append(([k for k, _, _ in batch], future))

    def _finish_one(self) -> None:
        keys, future = self._pending.pop(0)
        for key, path in zip(keys, future.result(), strict=True):
            self._written[key] = path

    def __enter__(self) -> _VideoQueue:
        return self

    def __exit__(self, exc_type: type | None, *exc: object) -> None:
        try:
            if exc_type is None:
                self._submit()
            while self._pending:
                if exc_type is None:
                    self._finish_one()
                else:  # already failing: wait, keep that error
                    self._pending.pop(0)[1].exception()
        finally:
            self._pool.shutdown(wait=True)


def _save_videos_and_sheet(out: Path, layers: Layers, generated: torch.Tensor | None,
                           scene: Scene | None, sheet_layers: list[Layer] | None,
                           model_inputs: dict[str, torch.Tensor | np.ndarray] | None,
                           written: dict[str, Path]) -> None:
    """The control-map, render and generated videos and the contact sheet of :func:`save`,
    recorded in ``written``."""
    fps = layers.fps
    picked = pick_frames(layers.frames, SHEET_COLUMNS)  # the frames the contact sheet shows
    maps: dict[str, np.ndarray] = {}  # each map's picked frames only: the video has them all
    # Videos are written on another thread (it waits on ffmpeg) while this one encodes the next
    # maps; at most two batches of uint8 clips are held at a time.
    with _VideoQueue(fps, written) as videos:
        for layer in _MAP_ORDER:
            if layer == Layer.POSE and layers.keypoints is None:
                continue  # no people in the scene: the pose map would be black
            if layer in layers:
                # encoded straight to uint8 (what the video takes), never as a float32 clip
                frames = control_image_uint8(layer, layers[layer])
                videos.write(f"maps/{layer.value}", out / "maps" / f"{layer.value}.mp4", frames)
                maps[layer.value] = frames[picked]
                del frames
        for name, frames in (model_inputs or {}).items():
            videos.write(f"maps/model_{name}", out / "maps" / f"model_{name}.mp4",
                         control_image_uint8(Layer.RGB, torch.as_tensor(frames)))
        for key, name, frames in (("render", "render.mp4", layers.get(Layer.RGB)),
                                  ("generated", "generated.mp4", generated)):
            if frames is not None:
                frames = control_image_uint8(Layer.RGB, frames)  # clamped, as to_uint8 does
                videos.write(key, out / name, frames)
                maps[key] = frames[picked]

        videos.flush()  # the last batch goes to ffmpeg while the contact sheet is made
        rows: dict[str, torch.Tensor | np.ndarray] = {}
        if "render" in maps:
            rows["render"] = maps["render"]
        for layer in sheet_layers or _MAP_ORDER:
            if layer.value in maps and layer not in (Layer.FLOW_BACKWARD, Layer.ALPHA):
                rows[layer.value] = maps[layer.value]
        if "generated" in maps:
            rows["generated"] = maps["generated"]
        title = None
        if scene is not None:
            title = (f"{scene.name}  seed {scene.seed}  {layers.frames} frames @ {fps:g} fps  "
                     f"{layers.size[0]}x{layers.size[1]}")
        contact_sheet(rows, out / "contact_sheet.png", title=title, frame_numbers=picked)
        written["contact_sheet"] = out / "contact_sheet.png"


def save(
    out_dir: str | Path,
    layers: Layers,
    generated: torch.Tensor | None = None,
    *,
    scene: Scene | None = None,
    trajectory: Trajectory | None = None,
    contacts: list | None = None,
    timings: dict[str, float] | None = None,
    extra: dict | None = None,
    sheet_layers: list[Layer] | None = None,
    model_inputs: dict[str, torch.Tensor | np.ndarray] | None = None,
) -> dict[str, Path]:
    """Writes every output of a run into ``out_dir`` and returns the paths written.

    Files: ``scene.yaml`` (``scene``, the resolved scene the layers were rendered from, seed
    included; only when given), ``trajectory.npz`` and ``trajectory.csv`` (``trajectory``, the
    simulated 3D state the layers were rendered from: :mod:`rendiff.io.trajectory`; only when
    given), ``layers.npz`` (raw float layers,
    cameras, keypoints), ``maps/<layer>.mp4`` (each control layer in its control encoding),
    ``maps/model_<name>.mp4`` (``model_inputs``: the control videos a pretrained model was
    given, in its own encodings, [T, H, W, 3] in [0, 1]; only when given),
    ``render.mp4`` (the engine's lit RGB), ``generated.mp4`` (when ``generated`` [T, H, W, 3] is
    given), ``contact_sheet.png`` and, last, ``metadata.json``. Outputs of an earlier run in the
    same folder that this one does not write (``generated.mp4`` after a render-only run, a pose
    map for a scene without people) are removed, so every output comes from one run; other files
    are left alone.
    """
    started = time.perf_counter()
    layers = layers.to("cpu")  # rendered on a GPU: written from the CPU
    if generated is not None:
        generated = torch.as_tensor(generated).cpu()
    check_finite(layers, generated)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metadata.json").unlink(missing_ok=True)
    removed = remove_leftovers(out, ("maps",))
    if removed:
        log.warning("%s: removed %d temporary file(s) an interrupted run left there (%s)",
                    out, len(removed), ", ".join(p.name for p in removed[:3])
                    + (", ..." if len(removed) > 3 else ""))
    written: dict[str, Path] = {}
    if scene is not None:
        written["scene"] = save_scene(scene, out / "scene.yaml")

    if trajectory is not None:
        written["trajectory"] = save_trajectory(trajectory, out / "trajectory.npz")
        written["trajectory_table"] = write_text(out / "trajectory.csv",
                                                 trajectory_table(trajectory))
        if contacts is None:
            contacts = trajectory.contacts

    def write_layers() -> Path:
        with atomic_path(out / "layers.npz") as tmp:
            write_npz(tmp, layers.to_numpy())
        return out / "layers.npz"

    # layers.npz is compressed on a second thread (ISA-L lets go of the GIL) while the videos
    # are encoded; both are done before metadata.json, written last
    with ThreadPoolExecutor(1, thread_name_prefix="rendiff-npz") as pool:
        npz = pool.submit(write_layers)
        _save_videos_and_sheet(out, layers, generated, scene, sheet_layers, model_inputs,
                               written)
        written["layers"] = npz.result()


    stale = _stale_outputs(out, set(written.values()))
    for p in stale:  # an earlier run's outputs this run did not write (its generated.mp4, ...)
        p.unlink()
    if stale:
        log.info("%s: removed %d output(s) of an earlier run: %s", out, len(stale),
                 ", ".join(str(p.relative_to(out)) for p in stale))

    meta = {
        "rendiff_output": 1,
        "scene": scene.name if scene is not None else None,
        "seed": scene.seed if scene is not None else None,
        "frames": layers.frames,
        "fps": layers.fps,
        "size": list(layers.size),
        "versions": versions(),
        "layers": {k.value: {"shape": list(v.shape), "dtype": str(v.dtype).replace("torch.", ""),
                             "doc": LAYER_DOCS[k]} for k, v in layers.items()},
        "entities": layers.entity_names,
        "semantic_classes": layers.semantic_classes,
        "cameras": layers.cameras.as_dict(),
        # this save's own time: every file above (metadata.json itself is a few kB)
        "timings_s": {k: round(v, 3) for k, v in
                      {**(timings or {}), "save": time.perf_counter() - started}.items()},
        "contacts": contacts or [],
        "files": sorted(str(p.relative_to(out)) for p in written.values()),
    }
    if extra:
        meta.update(extra)
    written["metadata"] = write_text(out / "metadata.json", json.dumps(meta, indent=2) + "\n")
    return written
