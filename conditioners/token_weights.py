"""Where a control's weight applies, at the model's token grid: regions of the scene from the
instance layer (named entities, every entity, the background), a weight inside and a looser one
outside, averaged over each token's pixels and the frames its latent frame packs, and several
modalities' weights capped at 1 in sum. Shared by :mod:`.cosmos_transfer` (per modality) and
:mod:`.wan_vace` (its one control)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from rendiff.engine.layers import Layer, Layers

__all__ = ["WeightMask", "check_region", "checked_weight_map", "combine_weights", "parse_region",
           "pool_to_tokens", "region_mask", "weight_map"]


class WeightMask(BaseModel):
    """Where a control's weight applies: ``where`` a region (see :func:`region_mask`), the weight
    times ``outside`` elsewhere."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    where: str
    outside: float = Field(0.0, ge=0.0, le=1.0)


def parse_region(where: str, label: str = "weight_masks") -> tuple[str, list[str]]:
    """``instance:a,b`` / ``foreground`` / ``background`` -> (kind, names); a ValueError naming
    ``label`` (the setup field) otherwise."""
    text = where.strip()
    if text in ("foreground", "background"):
        return text, []
    if text.startswith("instance:"):
        names = [n.strip() for n in text[len("instance:"):].split(",") if n.strip()]
        if names:
            return "instance", names
    raise ValueError(f"{label}: {where!r} is not a region; write instance:NAME[,NAME...], "
                     "foreground or background")


def region_mask(layers: Layers, where: str) -> Tensor:
    """[T, H, W] float32: 1 inside the region ``where`` (:func:`parse_region`), 0 outside."""
    kind, names = parse_region(where, where)
    if Layer.INSTANCE not in layers:
        raise ValueError(f"{where}: needs the instance layer, which was not rendered")
    inst = layers[Layer.INSTANCE]
    if kind == "foreground":
        return (inst > 0).float()
    if kind == "background":
        return (inst == 0).float()
    known = list(layers.entity_names)
    mask = torch.zeros(inst.shape, dtype=torch.float32)
    for n in names:
        if n not in known:
            from .loading import did_you_mean

            raise ValueError(f"{where}: no entity named {n!r}{did_you_mean(n, known)}; the "
                             f"scene has {known}")
        mask[inst == known.index(n) + 1] = 1.0
    return mask


def pool_to_tokens(mask: Tensor, *, temporal: int, spatial: int) -> Tensor:
    """A per-pixel weight [T, H, W] (T = 4k + 1, H and W multiples of ``spatial``) averaged over
    each token: latent frame 0 is pixel frame 0, latent frame k the ``temporal`` frames
    4k - 3 .. 4k (the causal video VAE's packing), each token a ``spatial`` x ``spatial`` block.
    Returns [T', H / spatial, W / spatial]."""
    T, H, W = mask.shape
    if (T - 1) % temporal or H % spatial or W % spatial:
        raise ValueError(f"weight map of {T} frames at {W}x{H} does not fit the token grid "
                         f"({temporal}k + 1 frames, multiples of {spatial} pixels)")
    first = mask[:1]
    rest = mask[1:].reshape(-1, temporal, H, W).mean(1) if T > 1 else mask[:0]
    frames = torch.cat([first, rest])
    return torch.nn.functional.avg_pool2d(frames[:, None].float(), spatial)[:, 0]


def combine_weights(weights: Mapping[str, float | Tensor]) -> dict[str, float | Tensor]:
    """Cosmos' multi-control rule: each modality's weight in [0, 1]; where they sum to more than
    1 (per token, for maps), each is divided by the sum."""
    if not weights:
        return {}
    maps = [w for w in weights.values() if isinstance(w, Tensor)]
    if not maps:
        total = sum(float(w) for w in weights.values())
        scale = 1.0 / total if total > 1.0 else 1.0
        return {k: float(w) * scale for k, w in weights.items()}
    shape = maps[0].shape
    total = torch.zeros(shape)
    for w in weights.values():
        total = total + (w if isinstance(w, Tensor) else float(w))
    scale = torch.where(total > 1.0, 1.0 / total.clamp_min(1e-12), 1.0)
    return {k: w * scale for k, w in weights.items()}


def weight_map(layers: Layers, mask: WeightMask, weight: float = 1.0) -> Tensor:
    """[T, H, W] float32 per-pixel weight: ``weight`` inside the region, ``weight * outside``
    elsewhere."""
    inside = region_mask(layers, mask.where)
    return weight * (mask.outside + (1.0 - mask.outside) * inside)


def check_region(mask: WeightMask, entities: list[str], label: str) -> None:
    """A region's entity names exist in the scene (``entities``); a one-line ModelError naming
    ``label`` (the setup field) with a did-you-mean otherwise."""
    from .loading import ModelError, did_you_mean

    _, names = parse_region(mask.where, label)
    for n in names:
        if n not in entities:
            raise ModelError(f"{label}: no entity named {n!r}{did_you_mean(n, entities)}; the "
                             f"scene has {entities}")


def checked_weight_map(w: Tensor, shape: tuple[int, int, int], label: str) -> Tensor:
    """A per-pixel, per-frame weight map given from Python: [T, H, W] = ``shape`` (the clip's),
    finite values in [0, 1]; returned as float32 on the CPU, a one-line ModelError naming
    ``label`` otherwise."""
    from .loading import ModelError

    if tuple(w.shape) != shape:
        raise ModelError(f"{label}: a weight map must be [T, H, W] = {list(shape)} (the "
                         f"clip's frames and size), got {list(w.shape)}")
    w = w.detach().float().cpu()
    if not bool(torch.isfinite(w).all()) or float(w.min()) < 0 or float(w.max()) > 1:
        raise ModelError(f"{label}: a weight map's values must be finite and in [0, 1]")
    return w
