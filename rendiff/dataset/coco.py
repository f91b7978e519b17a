"""COCO-format annotations of rendered clips: one file per clip and a merged data-set file.

Each frame is a COCO image; each (entity, frame) with visible pixels is a COCO annotation whose
segmentation is the entity's instance-layer mask as compressed RLE (pycocotools), bbox the
mask's tight box and area its pixel count. Planes (ground, walls) are scenery, not objects, and
get no annotations. People use the standard ``person`` category with COCO-17 keypoints.
Extra fields (ignored by pycocotools): images carry ``clip`` and ``frame``; annotations carry
``track_id`` (same entity across a clip's frames), ``instance_id``, ``entity`` and
``visible_fraction``.
"""

from __future__ import annotations

import numpy as np
import pycocotools.mask as mask_utils
import torch

from rendiff.engine.body import COCO17_NAMES
from rendiff.engine.layers import Layer, Layers

__all__ = ["clip_coco", "merge_coco", "COCO_PERSON_SKELETON"]

# COCO's person skeleton: pairs of 1-based keypoint indices into COCO17_NAMES.
COCO_PERSON_SKELETON = [
    [16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8],
    [7, 9], [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7],
]  # fmt: skip

COCO_INFO = {"description": "rendiff synthetic data set", "version": "1",
         "contributor": "rendiff"}


_IMG_STRIDE = 100_000  # stable merged ids: frames (and instances) per clip stay below this
_ANN_STRIDE = 100_000_000


def coco_category(name: str, cid: int) -> dict:
    if name == "person":
        return {"id": cid, "name": "person", "supercategory": "person",
                "keypoints": list(COCO17_NAMES), "skeleton": COCO_PERSON_SKELETON}
    return {"id": cid, "name": name, "supercategory": "object"}


def clip_coco(clip_dir_name: str, layers: Layers, annotations: dict,
              categories: list[str] | None = None) -> dict:
    """COCO JSON of one clip.

    Args:
        clip_dir_name: the clip folder relative to the data-set root (e.g. ``clips/000012``);
            image file names are ``<clip_dir_name>/rgb/<frame:05d>.png``.
        layers: the clip's render; its instance layer gives the masks.
        annotations: :func:`rendiff.dataset.annotations.clip_annotations` of the same clip.
        categories: a fixed category table (id = index + 1), e.g. one for a whole data set so
            that ids agree between clips and data sets; every table entry is listed. Default:
            the clip's own categories, ids in order of first appearance.
    Returns:
        A dict with ``info``, ``licenses``, ``images`` (id = frame + 1), ``categories``,
        ``annotations`` (ids in (frame, instance id) order). Every annotation has
        ``num_keypoints`` (0 for things that are not people), as COCO's keypoint evaluation
        expects.
    """
    if Layer.INSTANCE not in layers:
        raise ValueError("clip_coco: layers lack the 'instance' layer")
    inst = layers[Layer.INSTANCE].cpu()
    T, H, W = inst.shape
    if annotations.get("frames") != T:
        raise ValueError(f"clip_coco: annotations have {annotations.get('frames')} frames, the "
                         f"instance layer {T}")
    things = [e for e in annotations["entities"] if e["thing"]]
    cat_ids: dict[str, int] = {}
    if categories is not None:
        cat_ids = {name: i + 1 for i, name in enumerate(categories)}
        missing = sorted({e["category"] for e in things} - set(cat_ids))
        if missing:
            raise ValueError(f"clip_coco: categories {missing} are not in the category table "
                             f"{categories}")
    for e in things:
        cat_ids.setdefault(e["category"], len(cat_ids) + 1)
    images = [{"id": k + 1, "file_name": f"{clip_dir_name}/rgb/{k:05d}.png", "width": W,
               "height": H, "clip": clip_dir_name, "frame": k} for k in range(T)]
    anns = []
    for k in range(T):
        present = [e for e in things if e["frames"][k]["visible_pixels"] > 0]
        if not present:
            continue
        ids = torch.tensor([e["instance_id"] for e in present], dtype=inst.dtype)
        masks = (inst[k][..., None] == ids).numpy().astype(np.uint8)  # [H, W, N]
        rles = mask_utils.encode(np.asfortranarray(masks))
        for e, rle in zip(present, rles, strict=True):
            fr = e["frames"][k]
            ann = {
                "id": len(anns) + 1,
                "image_id": k + 1,
                "category_id": cat_ids[e["category"]],
                "segmentation": {"size": [int(s) for s in rle["size"]],
                                 "counts": rle["counts"].decode("ascii")},
                "area": int(mask_utils.area(rle)),
                "bbox": list(fr["bbox"]),
                "iscrowd": 0,
                "track_id": e["instance_id"],
                "instance_id": e["instance_id"],
                "entity": e["name"],
                "visible_fraction": fr["visible_fraction"],
            }
            ann["num_keypoints"] = 0
            if "keypoints" in fr:
                ann["keypoints"] = [val for x, y, v in fr["keypoints"] for val in (x, y, int(v))]
                ann["num_keypoints"] = fr["num_keypoints"]
            anns.append(ann)
    return {
        "info": dict(COCO_INFO),
        "licenses": [],
        "images": images,
        "categories": [coco_category(name, cid) for name, cid in cat_ids.items()],
        "annotations": anns,
    }


def merge_coco(clip_cocos: list[dict], keys: list[int] | None = None) -> dict:
    """One COCO file for a whole data set from per-clip files, in the given order.

    Categories are unified by name (ids in order of first appearance, so clips written with one
    fixed category table keep its ids). Without ``keys``, image, annotation and track ids are
    renumbered 1, 2, ... in clip order. With ``keys`` (one non-negative integer per clip, e.g.
    its index in the data set) they are stable whatever other clips exist:
    ``image id = key * 100000 + frame + 1``, ``annotation id = key * 10**8 + its id in the
    clip``, ``track id = key * 100000 + its id in the clip``.
    """
    if keys is not None and len(keys) != len(clip_cocos):
        raise ValueError(f"merge_coco: {len(keys)} keys for {len(clip_cocos)} clips")
    categories: dict[str, dict] = {}
    images, anns = [], []
    tracks: dict[tuple[int, int], int] = {}
    for c, coco in enumerate(clip_cocos):
        cat_map = {}
        for cat in coco["categories"]:
            if cat["name"] not in categories:
                categories[cat["name"]] = {**cat, "id": len(categories) + 1}
            cat_map[cat["id"]] = categories[cat["name"]]["id"]
        img_map = {}
        for img in coco["images"]:
            new = len(images) + 1 if keys is None else keys[c] * _IMG_STRIDE + img["id"]
            img_map[img["id"]] = new
            images.append({**img, "id": new})
        for ann in coco["annotations"]:
            local = ann.get("track_id", ann["id"])
            if keys is None:
                track = tracks.setdefault((c, local), len(tracks) + 1)
                new = len(anns) + 1
            else:
                track = keys[c] * _IMG_STRIDE + local
                new = keys[c] * _ANN_STRIDE + ann["id"]
            anns.append({**ann, "id": new, "image_id": img_map[ann["image_id"]],
                         "category_id": cat_map[ann["category_id"]], "track_id": track})
    return {
        "info": dict(COCO_INFO),
        "licenses": [],
        "images": images,
        "categories": list(categories.values()),
        "annotations": anns,
    }
