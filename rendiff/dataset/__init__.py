"""Synthetic data sets: a randomised spec in, many annotated clips out (``rendiff dataset``).

    from rendiff.dataset import load_dataset_spec, make_dataset, RunOptions, ClipDataset
    spec = load_dataset_spec("examples/falling_objects_dataset.yaml")
    make_dataset(spec, "out/falling", RunOptions(clips=100, workers=2))
    ds = ClipDataset("out/falling", layers=("rgb", "depth", "instance"))

Submodules load on first use (the runner's workers import only what they need).
"""

from importlib import import_module

_LAZY = {
    "DatasetSpec": "spec", "DatasetSpecError": "spec", "load_dataset_spec": "spec",
    "save_dataset_spec": "spec", "dataset_spec_from_dict": "spec",
    "ClipDraw": "sample", "clip_seed": "sample", "sample_clip": "sample",
    "clip_annotations": "annotations", "write_clip": "writers", "read_clip": "writers",
    "verify_clip": "writers", "clip_coco": "coco", "merge_coco": "coco",
    "DatasetError": "runner", "RunOptions": "runner", "RunReport": "runner",
    "make_clip": "runner", "make_dataset": "runner", "verify_dataset": "verify",
    "ClipDataset": "loader", "is_dataset": "loader",
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
