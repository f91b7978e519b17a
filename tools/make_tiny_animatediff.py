"""Write a tiny, randomly initialised AnimateDiff setup in diffusers format.

Every part has the classes and folder layout of the real thing, only a few hundred times smaller,
so rendiff's pretrained-model path (``rendiff.conditioners.pretrained``) can be tested without
downloading anything, and so a user can check an installation before fetching gigabytes::

    python tools/make_tiny_animatediff.py out/tiny_animatediff
    rendiff run falling_objects -o out/check --model out/tiny_animatediff --steps 2
    rendiff run falling_objects -o out/check --model out/tiny_animatediff/rendiff_sparsectrl.yaml

The folder holds::

    base/               a Stable Diffusion 1.5-format pipeline (model_index.json, unet/, vae/,
                        text_encoder/, tokenizer/ [vocab.json + merges.txt], scheduler/)
    motion_adapter/     MotionAdapter matching the UNet's blocks
    controlnet_depth/   ControlNetModel     (and controlnet_normal/, controlnet_pose/)
    sparsectrl/         SparseControlNetModel, RGB variant (keyframes go through the VAE)
    rendiff_pretrained.yaml   base + motion adapter + the three ControlNets
    rendiff_sparsectrl.yaml   base + motion adapter + SparseCtrl

The VAE downsamples by 2 (two blocks) and the ControlNets' conditioning embeddings by 2 to match,
so 32x32 images give 16x16 latents. The parameters that diffusers initialises to zero (ControlNet
output convolutions, SparseCtrl's conditioning convolution, the motion modules' output
projections) get small random values instead, so every part visibly changes the output. The
output is the same for the same seed and library versions; it takes about a second.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import torch

__all__ = ["TINY_SIZE", "write_tiny_animatediff"]

#: Image size (pixels, square) the tiny setup is meant for; any multiple of 2 works.
TINY_SIZE = 32

_CHANNELS = (8, 16)
_CROSS_DIM = 16
_GROUPS = 4
_COMMON = dict(block_out_channels=_CHANNELS, layers_per_block=1, cross_attention_dim=_CROSS_DIM,
               norm_num_groups=_GROUPS, attention_head_dim=4)

_SPEC_CONTROLNETS = """\
# Tiny random AnimateDiff + ControlNets written by tools/make_tiny_animatediff.py.
# For tests and for checking an installation: its output is noise, not video.
kind: animatediff
base: base
motion_adapter: motion_adapter
controlnets:
  depth: controlnet_depth
  normal: controlnet_normal
  pose: controlnet_pose
prompt: a robot arm stacking blocks
negative_prompt: blurry
guidance_scale: 7.5
"""

_SPEC_SPARSECTRL = """\
# Tiny random AnimateDiff + SparseCtrl (RGB) written by tools/make_tiny_animatediff.py.
kind: animatediff
base: base
motion_adapter: motion_adapter
sparsectrl: sparsectrl
sparsectrl_map: rgb
keyframes: [0]
prompt: a robot arm stacking blocks
guidance_scale: 7.5
"""


def _randomise_zeros(module: torch.nn.Module, gen: torch.Generator, scale: float = 0.2) -> None:
    """Give every all-zero parameter (diffusers' zero-initialised projections) random values."""
    with torch.no_grad():
        for p in module.parameters():
            if p.numel() and not bool(p.any()):
                p.copy_(torch.randn(p.shape, generator=gen) * scale)


def _byte_alphabet() -> list[str]:
    """The 256 printable characters byte-level BPE uses for the bytes 0..255 (GPT-2's table:
    printable Latin-1 bytes stand for themselves, the rest map to code points from 256 up)."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
            *range(ord("®"), ord("ÿ") + 1)]
    extra = iter(range(256, 512))
    return [chr(b) if b in keep else chr(next(extra)) for b in range(256)]


def _tokenizer_files(folder: Path) -> int:
    """A byte-level CLIP BPE vocabulary (every byte, alone and word-final) with no merges."""
    chars = _byte_alphabet()
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    folder.mkdir(parents=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "do_lower_case": True,
        "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}, indent=2), encoding="utf-8")
    return len(vocab)


def _write(root: Path, seed: int) -> None:
    from transformers.utils import logging as tlogging

    tlogging.set_verbosity_error()  # before diffusers imports transformers' image processors
    tlogging.disable_progress_bar()
    from diffusers import (
        AutoencoderKL,
        ControlNetModel,
        DDIMScheduler,
        MotionAdapter,
        SparseControlNetModel,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from diffusers.utils import logging as dlogging
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    dlogging.set_verbosity_error()
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)

    # 1. The Stable Diffusion 1.5-format base: UNet, VAE, CLIP text encoder, tokenizer, DDIM.
    unet = UNet2DConditionModel(
        **_COMMON, sample_size=TINY_SIZE // 2, in_channels=4, out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"))
    vae = AutoencoderKL(
        block_out_channels=_CHANNELS, layers_per_block=1, norm_num_groups=_GROUPS,
        latent_channels=4, sample_size=TINY_SIZE,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2)
    tok_dir = root / "_tokenizer"
    vocab_size = _tokenizer_files(tok_dir)
    tokenizer = CLIPTokenizer.from_pretrained(str(tok_dir), local_files_only=True)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=vocab_size, hidden_size=_CROSS_DIM, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=2, max_position_embeddings=77, projection_dim=_CROSS_DIM,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id))
    # AnimateDiff's recommended sampler settings (its motion modules were trained with them).
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="linear",
                              clip_sample=False, timestep_spacing="linspace", steps_offset=1)
    StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                            scheduler=scheduler, safety_checker=None, feature_extractor=None,
                            requires_safety_checker=False).save_pretrained(root / "base")
    # Keep the tokenizer as the plain vocab.json + merges.txt pair SD1.5 folders ship.
    shutil.rmtree(root / "base" / "tokenizer")
    tok_dir.rename(root / "base" / "tokenizer")

    # 2. The motion adapter, its blocks matching the UNet's.
    adapter = MotionAdapter(block_out_channels=_CHANNELS, motion_layers_per_block=1,
                            motion_num_attention_heads=2, motion_norm_num_groups=_GROUPS,
                            motion_max_seq_length=32)
    _randomise_zeros(adapter, gen)
    adapter.save_pretrained(root / "motion_adapter")

    # 3. One ControlNet per map; the conditioning embedding downsamples by the VAE's factor.
    for name in ("depth", "normal", "pose"):
        net = ControlNetModel(**_COMMON, in_channels=4,
                              down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                              conditioning_embedding_out_channels=(8, 16))
        _randomise_zeros(net, gen)
        net.save_pretrained(root / f"controlnet_{name}")

    # 4. SparseCtrl, RGB variant: keyframes are VAE-encoded (4 channels) plus the frame mask.
    sparse = SparseControlNetModel(
        **_COMMON, in_channels=4, conditioning_channels=4,
        down_block_types=("CrossAttnDownBlockMotion", "DownBlockMotion"),
        conditioning_embedding_out_channels=(8, 16), motion_num_attention_heads=2,
        motion_max_seq_length=32, use_simplified_condition_embedding=True)
    _randomise_zeros(sparse, gen)
    sparse.save_pretrained(root / "sparsectrl")

    (root / "rendiff_pretrained.yaml").write_text(_SPEC_CONTROLNETS, encoding="utf-8")
    (root / "rendiff_sparsectrl.yaml").write_text(_SPEC_SPARSECTRL, encoding="utf-8")


def write_tiny_animatediff(out: str | Path, seed: int = 0, overwrite: bool = False) -> Path:
    """Writes the tiny setup into the folder ``out`` (atomically: built beside it, then renamed).

    Args:
        out: destination folder; must not exist unless ``overwrite``.
        seed: seeds every random weight.
        overwrite: replace an existing folder.
    Returns:
        ``out`` as a Path.
    """
    from rendiff.io.atomic import build_folder

    return build_folder(out, lambda tmp: _write(tmp, seed), overwrite)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python tools/make_tiny_animatediff.py OUT [--seed N] [--overwrite]``."""
    from rendiff.io.atomic import folder_tool_main

    return folder_tool_main(__doc__.split("\n\n")[0], write_tiny_animatediff, argv)


if __name__ == "__main__":
    sys.exit(main())
