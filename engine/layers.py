"""Named render layers: what ``rendiff.render`` returns, keyed by :class:`Layer`."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

import torch
from torch import Tensor

from .camera import CameraFrames

__all__ = ["Layer", "Layers", "LAYER_DOCS"]


class Layer(StrEnum):
    """The layers the engine renders. Shapes are per clip of T frames at H x W."""

    RGB = "rgb"
    ALBEDO = "albedo"
    DEPTH = "depth"
    NORMAL = "normal"
    ALPHA = "alpha"
    INSTANCE = "instance"
    SEMANTIC = "semantic"
    POSE = "pose"
    SHADING = "shading"
    FLOW = "flow"
    FLOW_BACKWARD = "flow_backward"


LAYER_DOCS: dict[Layer, str] = {
    Layer.RGB: "float32 [T,H,W,3] in [0,1], the engine's own lit render",
    Layer.ALBEDO: "float32 [T,H,W,3] in [0,1], unlit surface colour",
    Layer.DEPTH: "float32 [T,H,W] camera z in metres, +inf where nothing was hit",
    Layer.NORMAL: "float32 [T,H,W,3] unit camera-space normals facing the camera, 0 where empty",
    Layer.ALPHA: "float32 [T,H,W] coverage in [0,1]",
    Layer.INSTANCE: "int32 [T,H,W] entity id (1-based, scene order), 0 = background",
    Layer.SEMANTIC: "int32 [T,H,W] class id (see Layers.semantic_classes), 0 = background",
    Layer.POSE: "float32 [T,H,W,3] OpenPose-18 skeleton image; keypoints in Layers.keypoints",
    Layer.SHADING: "float32 [T,H,W] light arriving at the surface, shadows included",
    Layer.FLOW: "float32 [T,H,W,2] forward optical flow t -> t+1 in pixels (0 at the last frame)",
    Layer.FLOW_BACKWARD: "float32 [T,H,W,2] backward flow t -> t-1 in pixels (0 at frame 0)",
}


@dataclass
class Layers(Mapping[Layer, Tensor]):
    """Rendered layers of a clip, a read-only mapping ``Layer -> Tensor``, plus what is needed to
    interpret them: the camera per frame, frame rate, entity and class names, keypoints."""

    data: dict[Layer, Tensor]
    cameras: CameraFrames
    fps: float
    entity_names: list[str] = field(default_factory=list)  # instance id i -> entity_names[i-1]
    semantic_classes: list[str] = field(default_factory=list)  # class id c -> classes[c-1]
    keypoints: Tensor | None = None  # [T,P,18,3] OpenPose-18 pixels (x, y, visibility)
    keypoints_coco: Tensor | None = None  # [T,P,17,3] COCO-17 pixels (x, y, visibility)

    def __getitem__(self, key: Layer | str) -> Tensor:
        return self.data[Layer(key)]

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def __contains__(self, key: object) -> bool:
        try:
            return Layer(key) in self.data  # type: ignore[arg-type]
        except ValueError:
            return False

    @property
    def frames(self) -> int:
        return next(iter(self.data.values())).shape[0]

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return self.cameras.width, self.cameras.height

    def to(self, device: torch.device | str) -> Layers:
        """The layers, cameras and keypoints on ``device`` (themselves when already there)."""
        dev = torch.device(device)
        if all(v.device == dev for v in self.data.values()) and self.cameras.K.device == dev:
            return self
        kp = None if self.keypoints is None else self.keypoints.to(dev)
        kpc = None if self.keypoints_coco is None else self.keypoints_coco.to(dev)
        return Layers({k: v.to(dev) for k, v in self.data.items()}, self.cameras.to(dev),
                      self.fps, self.entity_names, self.semantic_classes, kp, kpc)

    def to_numpy(self) -> dict[str, object]:
        """All layers and keypoints as numpy arrays keyed by name (for ``layers.npz``)."""
        out: dict[str, object] = {k.value: v.cpu().numpy() for k, v in self.data.items()}
        out["K"] = self.cameras.K.cpu().numpy()
        out["viewmats"] = self.cameras.viewmats.cpu().numpy()
        if self.keypoints is not None:
            out["keypoints_openpose18"] = self.keypoints.cpu().numpy()
        if self.keypoints_coco is not None:
            out["keypoints_coco17"] = self.keypoints_coco.cpu().numpy()
        return out

    def clip(self, start: int, stop: int) -> Layers:
        """Frames ``start:stop`` as a new Layers."""
        cams = CameraFrames(self.cameras.K[start:stop], self.cameras.viewmats[start:stop],
                            self.cameras.width, self.cameras.height, self.cameras.near,
                            self.cameras.far)
        kp = None if self.keypoints is None else self.keypoints[start:stop]
        kpc = None if self.keypoints_coco is None else self.keypoints_coco[start:stop]
        return Layers({k: v[start:stop] for k, v in self.data.items()}, cams, self.fps,
                      self.entity_names, self.semantic_classes, kp, kpc)

    def equal(self, other: Layers) -> bool:
        """True when every layer is bitwise identical (NaN-safe)."""
        if set(self.data) != set(other.data):
            return False
        return all(torch.equal(torch.nan_to_num(a), torch.nan_to_num(other.data[k]))
                   and torch.equal(torch.isinf(a), torch.isinf(other.data[k]))
                   for k, a in self.data.items())
