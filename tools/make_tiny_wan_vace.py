"""Write a tiny, randomly initialised Wan VACE setup in diffusers format.

Every part has the classes and folder layout of the real ``Wan2.1-VACE-*-diffusers`` folders, only
about a thousand times smaller, so rendiff's Wan VACE path (``rendiff.conditioners.wan_vace``) can
be tested offline, and a user can check an installation before fetching the real weights::

    python tools/make_tiny_wan_vace.py out/tiny_wan_vace
    rendiff run falling_objects -o out/check --model out/tiny_wan_vace --frames 9 --size 64x64

The folder holds::

    model/                  a WanVACEPipeline: transformer/ (WanVACETransformer3DModel, 2 blocks,
                            both with a VACE branch), vae/ (AutoencoderKLWan, 8x spatial and 4x
                            temporal like the real one, base width 8), text_encoder/
                            (UMT5EncoderModel, 1 layer), tokenizer/ (a Unigram tokenizer over
                            letters and digits built in memory, saved as tokenizer.json),
                            scheduler/ (UniPC with flow sigmas, as Wan ships)
    rendiff_pretrained.yaml kind: wan_vace, control: depth

Its output is noise, not video; the same for the same seed and library versions. About 1 MB,
written in about a second.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

__all__ = ["TINY_SIZE", "write_tiny_wan_vace"]

#: Image size (pixels, square) the tiny setup is meant for; any multiple of 16 works.
TINY_SIZE = 64

_Z = 4  # latent channels
_TEXT = 16  # text feature width

_SPEC = """\
# Tiny random Wan VACE written by tools/make_tiny_wan_vace.py.
# For tests and for checking an installation: its output is noise, not video.
kind: wan_vace
model: model
control: depth
prompt: a robot arm stacking blocks
negative_prompt: blurry
steps: 2
guidance_scale: 1.0
max_sequence_length: 32
area: null           # the clip's own size (the real models want 480P)
"""

_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789,.-'"


def _tokenizer():
    """A Unigram tokenizer (the kind UMT5 uses) over letters, digits and a little punctuation,
    each with and without the word-start marker; ids 0-2 are pad, end and unknown."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    vocab += [("\u2581" + c, -1.0) for c in _CHARS] + [(c, -2.0) for c in _CHARS]
    tok = Tokenizer(models.Unigram(vocab, unk_id=2, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>",
                                   unk_token="<unk>", model_max_length=512)
    return fast, len(vocab)


def _write(root: Path, seed: int) -> None:
    from diffusers import (
        AutoencoderKLWan,
        UniPCMultistepScheduler,
        WanVACEPipeline,
        WanVACETransformer3DModel,
    )
    from transformers import UMT5Config, UMT5EncoderModel

    torch.manual_seed(seed)
    tokenizer, vocab = _tokenizer()
    text_encoder = UMT5EncoderModel(UMT5Config(
        vocab_size=vocab, d_model=_TEXT, d_kv=4, d_ff=32, num_layers=1, num_heads=2,
        relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1,
        decoder_start_token_id=0))
    vae = AutoencoderKLWan(base_dim=8, z_dim=_Z, dim_mult=[1, 2, 2, 2], num_res_blocks=1,
                           temperal_downsample=[False, True, True],
                           latents_mean=[0.0] * _Z, latents_std=[1.0] * _Z)
    spatial = 2 ** len(vae.temperal_downsample)
    transformer = WanVACETransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=8, in_channels=_Z,
        out_channels=_Z, text_dim=_TEXT, freq_dim=16, ffn_dim=32, num_layers=2,
        vace_layers=[0, 1], vace_in_channels=2 * _Z + spatial**2, rope_max_seq_len=64)
    # diffusers zero-initialises the VACE branch's output projections: random instead, so the
    # control video visibly changes the output.
    gen = torch.Generator().manual_seed(seed + 1)
    for name, p in transformer.named_parameters():
        if "vace" in name and not p.detach().abs().any():
            with torch.no_grad():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
                                        flow_shift=3.0)
    pipe = WanVACEPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae,
                           transformer=transformer, scheduler=scheduler)
    pipe.save_pretrained(root / "model", safe_serialization=True)
    (root / "rendiff_pretrained.yaml").write_text(_SPEC, encoding="utf-8")


def write_tiny_wan_vace(out: str | Path, seed: int = 0, overwrite: bool = False) -> Path:
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
    """Command line: ``python tools/make_tiny_wan_vace.py OUT [--seed N] [--overwrite]``."""
    from rendiff.io.atomic import folder_tool_main

    return folder_tool_main(__doc__.split("\n\n")[0], write_tiny_wan_vace, argv)


if __name__ == "__main__":
    sys.exit(main())
