"""Exports a trained pipeline as the shipped default model (float16 weights, loaded as float32).

    python tools/export_default_model.py runs/default/pipeline [--to rendiff/data/models/default]
        [--guidance 1.5] [--refiner runs/refine/refiner]

Commit new default weights only when benchmarks/eval_default_model.py shows they beat the ones
they replace; the evaluation figures go into the folder's README.md (docs/default-model.md).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import torch

from rendiff.api import DEFAULT_MODEL_DIR, _load_pipeline


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("pipeline", type=Path, help="a pipeline folder written by training")
    ap.add_argument("--to", type=Path, default=DEFAULT_MODEL_DIR)
    ap.add_argument("--guidance", type=float, default=None,
                    help="the model's default guidance on the reference image (model_index.json; "
                         "the one it was evaluated with); default: keep the pipeline's")
    ap.add_argument("--refiner", type=Path, default=None,
                    help="a MapRefiner folder (tools/train_refiner.py) to add as the pipeline's "
                         "refiner, replacing any it has")
    args = ap.parse_args(argv)
    from diffusers.utils import logging as dlogging

    dlogging.set_verbosity_error()
    pipe = _load_pipeline(args.pipeline).to(torch.float16)
    if args.guidance is not None:
        if not 1.0 <= args.guidance <= 20.0:
            print(f"error: --guidance {args.guidance} is outside [1, 20]", file=sys.stderr)
            return 2
        pipe.register_to_config(default_guidance_scale=float(args.guidance))
    if args.refiner is not None:
        from rendiff.conditioners.pipeline import RendiffVideoPipeline
        from rendiff.conditioners.refiner import MapRefiner

        refiner = MapRefiner.from_pretrained(args.refiner, low_cpu_mem_usage=False)
        settings = {"default_guidance_scale": pipe.config.default_guidance_scale}
        try:
            pipe = RendiffVideoPipeline(**{**pipe.components, "refiner": refiner}, **settings)
        except ValueError as e:
            print(f"error: --refiner {args.refiner}: {e}", file=sys.stderr)
            return 2
        pipe = pipe.to(torch.float16)
    args.to.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".export.", dir=args.to.parent))
    try:
        tmp.chmod(0o755)
        pipe.save_pretrained(tmp, safe_serialization=True)
        if args.to.exists():
            shutil.rmtree(args.to)
        tmp.rename(args.to)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    size = sum(p.stat().st_size for p in args.to.rglob("*") if p.is_file())
    print(f"exported {args.pipeline} -> {args.to} ({size / 2**20:.1f} MiB, float16)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
