"""A PyTorch ``Dataset`` over a data set made by ``rendiff dataset``: clips and their layers
back as tensors, in the engine's own conventions (the same as ``rendiff.render`` returns), so
code written against :class:`~rendiff.engine.layers.Layers` trains on stored clips unchanged.

    ds = ClipDataset("out/movi_like", layers=("rgb", "depth", "instance"))
    item = ds[0]            # {"rgb": [T,H,W,3] float, "depth": [T,H,W] metres, ..., "K", ...}
    layers = ds.layers(0)   # a full Layers (cameras, class names) for control_images() etc.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from rendiff.engine.camera import CameraFrames
from rendiff.engine.layers import Layer, Layers

from .runner import CLASSES_FILE, INDEX_FILE, SPEC_FILE, DatasetError
from .writers import READABLE, read_clip

__all__ = ["ClipDataset", "is_dataset"]

DEFAULT_LAYERS = ("rgb", "depth", "normal", "instance", "semantic", "flow")
_U8_LAYERS = {"rgb", "albedo", "pose", "generated"}


def is_dataset(folder: str | Path) -> bool:
    """True when ``folder`` holds a data set made by ``rendiff dataset``."""
    return (Path(folder) / SPEC_FILE).is_file() and (Path(folder) / INDEX_FILE).is_file()


class ClipDataset(torch.utils.data.Dataset):
    """Clips of a data set, one item per clip listed in its index (complete clips only).

    Args:
        root: the data-set folder.
        layers: layer names to load (any of rgb, albedo, depth, normal, instance, semantic,
            pose, shading, flow, flow_backward, generated).
        window: if set, each item is a random window of this many frames (drawn from
            ``torch``'s global generator, or the DataLoader worker's), else the whole clip.
    Each item: every requested layer as a tensor in the engine's conventions (``rgb`` float32
    [T,H,W,3] in [0,1], ``depth`` float32 [T,H,W] metres with +inf, ``instance`` int32 ...),
    plus ``K`` [T,3,3], ``viewmats`` [T,4,4], ``index``, ``seed`` and ``start`` (first frame).
    """

    def __init__(self, root: str | Path, layers: Sequence[str] = DEFAULT_LAYERS,
                 window: int | None = None):
        import pyarrow.parquet as pq

        self.root = Path(root)
        if not is_dataset(self.root):
            raise DatasetError(f"{self.root}: not a finished rendiff data set (needs "
                               f"{SPEC_FILE} and {INDEX_FILE}; run `rendiff dataset` first)")
        known = {x.value for x in Layer} | {"generated"}
        bad = [x for x in layers if x not in known]
        if bad:
            raise DatasetError(f"unknown layers {bad}; expected some of {sorted(known)}")
        self.layer_names = tuple(layers)
        if window is not None and window < 1:
            raise DatasetError(f"window must be >= 1 frame, got {window}")
        self.window = window
        self.rows = sorted(pq.read_table(self.root / INDEX_FILE).to_pylist(),
                           key=lambda r: r["index"])
        classes = self.root / CLASSES_FILE
        #: semantic class names of the whole data set: semantic id c is classes[c - 1]
        self.classes: list[str] = (json.loads(classes.read_text())["semantic"]
                                   if classes.is_file() else [])

    def __len__(self) -> int:
        return len(self.rows)

    def clip_dir(self, i: int) -> Path:
        return self.root / self.rows[i]["path"]

    def __getitem__(self, i: int) -> dict[str, Tensor | int]:
        if not 0 <= i < len(self.rows):
            raise IndexError(f"clip {i} out of range (data set has {len(self.rows)})")
        T = int(self.rows[i]["frames"])
        start = 0
        if self.window is not None:
            if self.window > T:
                raise DatasetError(f"window {self.window} is longer than clip {i} ({T} frames)")
            start = int(torch.randint(0, T - self.window + 1, (1,)))
        sl = slice(start, start + (self.window or T))
        # only the requested layers and frames are read
        clip = read_clip(self.clip_dir(i), keys=(*self.layer_names, "cameras"), frames=sl)
        missing = [x for x in self.layer_names if clip.get(x) is None]
        if missing:
            raise DatasetError(f"{self.clip_dir(i)}: has no {missing} (not written for this "
                               "clip)")
        cams = clip["cameras"]["frames"]
        item: dict[str, Tensor | int] = {}
        for name in self.layer_names:
            t = torch.from_numpy(np.ascontiguousarray(clip[name]))
            item[name] = t.float() / 255.0 if name in _U8_LAYERS else (
                t.int() if t.dtype in (torch.int32, torch.int64) else t.float())
        item["K"] = torch.tensor([c["K"] for c in cams[sl]], dtype=torch.float32)
        item["viewmats"] = torch.tensor([c["world_to_camera"] for c in cams[sl]],
                                        dtype=torch.float32)
        item["index"] = int(self.rows[i]["index"])
        item["seed"] = int(self.rows[i]["seed"])
        item["start"] = start
        return item

    def layers(self, i: int) -> Layers:
        """Clip ``i`` as a :class:`Layers` (every layer on disk, cameras, class names), e.g.
        for ``rendiff.conditioners.control_images``."""
        clip = read_clip(self.clip_dir(i), keys=[k for k in READABLE if k not in (
            "coco", "annotations", "depth_mm", "generated")])
        data: dict[Layer, Tensor] = {}
        for layer in Layer:
            a = clip.get(layer.value)
            if a is None:
                continue
            t = torch.from_numpy(np.ascontiguousarray(a))
            if layer.value in _U8_LAYERS:
                t = t.float() / 255.0
            elif t.dtype in (torch.int32, torch.int64, torch.uint16):
                t = t.int()
            else:
                t = t.float()
            data[layer] = t
        alpha = (data[Layer.INSTANCE] > 0).float() if Layer.INSTANCE in data else None
        if alpha is not None:
            data[Layer.ALPHA] = alpha
        cam = clip["cameras"]
        frames = cam["frames"]
        cameras = CameraFrames(
            torch.tensor([c["K"] for c in frames], dtype=torch.float32),
            torch.tensor([c["world_to_camera"] for c in frames], dtype=torch.float32),
            int(cam["width"]), int(cam["height"]), float(cam["near"]), float(cam["far"]))
        meta = clip["metadata"]
        return Layers(data, cameras, float(meta["fps"]), list(meta["entities"]),
                      list(meta["semantic_classes"]))

    def training_arrays(self, i: int, maps: Sequence[str]) -> dict[str, np.ndarray]:
        """``rgb`` and the control image of each map, uint8 [T,H,W,3], in the frozen
        encodings the default model trains on (what ``tools/make_training_data.py`` writes)."""
        from rendiff.conditioners.controls import control_images
        from rendiff.io.video import to_uint8

        layers = self.layers(i)
        out = {k: to_uint8(v) for k, v in control_images(layers, list(maps)).items()}
        out["rgb"] = to_uint8(layers[Layer.RGB])
        return out

    def params(self, i: int) -> dict:
        """The drawn parameters of clip ``i`` (from its metadata)."""
        meta = json.loads((self.clip_dir(i) / "metadata.json").read_text())
        return dict(meta.get("params", {}))
