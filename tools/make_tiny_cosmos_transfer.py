"""Write a tiny, randomly initialised Cosmos-Transfer2.5 setup in diffusers format.

Every part has the classes and folder layout of the real ``nvidia/Cosmos-Transfer2.5-2B``
diffusers folders, only many thousand times smaller, so rendiff's Cosmos-Transfer path can be
tested offline, and a user can check an installation before fetching the real weights::

    python tools/make_tiny_cosmos_transfer.py out/tiny_cosmos_transfer
    rendiff run falling_objects -o out/check --model out/tiny_cosmos_transfer \\
        --frames 9 --size 64x64

The folder holds::

    base/                   a Cosmos2_5_TransferPipeline saved without its controlnet and without
                            a safety checker (both null in model_index.json; pass them to
                            from_pretrained): transformer/ (CosmosTransformer3DModel, 2 layers,
                            a control input after every layer, padding-mask channel, learnable
                            extra position embedding, image-context cross-attention), vae/
                            (AutoencoderKLWan, 8x spatial and 4x temporal, 16 latent channels like
                            the Wan2.1 VAE Cosmos uses, base width 4, encoder scaled to give
                            about unit latents with little sampling noise), text_encoder/
                            (Qwen2_5_VLForConditionalGeneration, 2 text layers of width 16),
                            tokenizer/ (a Qwen2-style byte-level BPE with a few hundred tokens,
                            built in memory, with a Qwen-style chat template), scheduler/ (UniPC
                            with Karras flow sigmas, as Cosmos-Transfer2.5 ships)
    controlnets/depth|seg|edge|vis
                            four CosmosControlNetModel folders (2 control blocks each, one per
                            transformer layer), each from its own seed
    rendiff_pretrained.yaml kind: cosmos_transfer, controls depth/seg/edge/vis, guardrail off

Its output is noise, not video; the same for the same seed and library versions. About 1.5 MB,
written in about three seconds.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

__all__ = ["TINY_SIZE", "write_tiny_cosmos_transfer"]

#: Image size (pixels, square) the tiny setup is meant for; any multiple of 16 up to 256 works.
TINY_SIZE = 64

_Z = 16  # latent channels: the Wan2.1 VAE's, which Cosmos-Transfer2.5 uses
_TEXT = 16  # text encoder width
_TEXT_LAYERS = 2  # the pipeline concatenates every layer's normalised output
_HEADS, _HEAD_DIM = 2, 16  # transformer width 32
_LAYERS = 2  # transformer layers, and control blocks per controlnet
_IMG_CONTEXT = 16  # image-context feature width (the pipeline feeds zeros)
# Latent (frames, height, width) the position embeddings cover. With patch (1, 2, 2): 24 latent
# frames and 16x16 tokens (256 px). The pipeline's chunk limit is the largest of
# size // patch, here 24 frames, above the 17 the spec asks for.
_MAX_SIZE = (24, 32, 32)
_PATCH = (1, 2, 2)
_CONTROLS = ("depth", "seg", "edge", "vis")

_SPEC = """\
# Tiny random Cosmos-Transfer2.5 written by tools/make_tiny_cosmos_transfer.py.
# For tests and for checking an installation: its output is noise, not video.
kind: cosmos_transfer
model: base
controls:
  depth: controlnets/depth
  seg: controlnets/seg
  edge: controlnets/edge
  vis: controlnets/vis
weights: {depth: 0.5, edge: 0.5}
guardrail: false   # tiny random weights: no NVIDIA guardrail (the real models need it)
prompt: a robot arm stacking blocks
negative_prompt: blurry
steps: 2
guidance_scale: 1.0
max_sequence_length: 32
area: null           # the clip's own size (the real models want 720P)
chunk_frames: 17     # frames per chunk (the real models use 93)
"""

# The pipeline's own system prompt and a few prompts: the BPE merges are learnt from these, so
# they take about as many tokens as with the real Qwen tokenizer.
_CORPUS = [
    "You are a helpful assistant who will provide prompts to an image generator.",
    "a robot arm stacking blocks", "a red ball bouncing on the floor", "blurry",
    "The video shows a scene with objects falling and rolling.", "system", "user", "assistant",
]
_MERGES = 128  # byte-level BPE merges learnt from _CORPUS
# Qwen's special tokens, in Qwen's order, after the BPE vocabulary.
_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>",
            "<|object_ref_end|>", "<|box_start|>", "<|box_end|>", "<|quad_start|>",
            "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
            "<|image_pad|>", "<|video_pad|>"]

# Qwen2.5-VL-style chat template: a default system turn, each turn framed by <|im_start|>ROLE
# and <|im_end|>; content is a string or a list of {"type": "text"|"image"|"video", ...} items,
# pictures and videos become vision placeholders (numbered when add_vision_id).
_CHAT_TEMPLATE = (
    "{% set counts = namespace(image=0, video=0) %}"
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' or 'image' in item or 'image_url' in item %}"
    "{% set counts.image = counts.image + 1 %}"
    "{% if add_vision_id %}Picture {{ counts.image }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif item['type'] == 'video' or 'video' in item %}"
    "{% set counts.video = counts.video + 1 %}"
    "{% if add_vision_id %}Video {{ counts.video }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in item %}{{ item['text'] }}"
    "{% endif %}"
    "{% endfor %}{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _tokenizer():
    """A Qwen2 tokenizer (byte-level BPE with Qwen's pre-tokenizer) whose merges are learnt in
    memory from a few sentences, plus Qwen's special tokens and a chat template."""
    import json

    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer

    qwen = Qwen2Tokenizer()  # only for its pre-tokenizer (Qwen's split regex, then byte-level)
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = qwen.backend_tokenizer.pre_tokenizer
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    trainer = trainers.BpeTrainer(vocab_size=len(alphabet) + _MERGES, initial_alphabet=alphabet,
                                  show_progress=False)
    bpe.train_from_iterator(_CORPUS, trainer=trainer)
    vocab = bpe.get_vocab()
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" "))
              for m in json.loads(bpe.to_str())["model"]["merges"]]
    special = {t: len(vocab) + i for i, t in enumerate(_SPECIAL)}
    # pad and unknown: <|endoftext|>; end of turn: <|im_end|> (as Qwen2.5-VL-Instruct)
    tok = Qwen2Tokenizer(vocab={**vocab, **special}, merges=merges, eos_token="<|im_end|>",
                         model_max_length=32768, extra_special_tokens=_SPECIAL[1:])
    tok.chat_template = _CHAT_TEMPLATE
    return tok, special


def _randomise_zeros(model: torch.nn.Module, gen: torch.Generator) -> None:
    """Gives every all-zero parameter small random values: the learnable position embeddings
    start at zero, and control projections may start at zero ("zero convs"); random, positions
    and each control visibly change the output."""
    for p in model.parameters():
        if not p.detach().abs().any():
            with torch.no_grad():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)


def _settle_vae(vae, seed: int) -> None:
    """Makes the random VAE's encoder behave like a trained one: its posterior nearly a point
    (log-variance -8) and its mean of about unit spread over a random clip. Left random, the
    sampled noise (variance 1) swamps the mean (spread about 0.15), and control videos would
    barely change the output."""
    z = vae.config.z_dim
    conv = vae.quant_conv  # encoder output -> (mean, log-variance), z channels each
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        conv.weight[z:] = 0.0
        conv.bias[z:] = -8.0
        probe = torch.rand((1, 3, 5, 32, 32), generator=gen) * 2 - 1
        scale = round(1.0 / vae.encode(probe).latent_dist.mean.std().item(), 1)
        conv.weight[:z] *= scale
        conv.bias[:z] *= scale


def _dit_kwargs() -> dict:
    """Settings the transformer and every controlnet share."""
    return dict(num_attention_heads=_HEADS, attention_head_dim=_HEAD_DIM, mlp_ratio=2.0,
                text_embed_dim=_TEXT * _TEXT_LAYERS, adaln_lora_dim=4, max_size=_MAX_SIZE,
                patch_size=_PATCH, rope_scale=(2.0, 1.0, 1.0), extra_pos_embed_type="learnable",
                img_context_dim_in=_IMG_CONTEXT, img_context_dim_out=_HEADS * _HEAD_DIM)


def _controlnet(seed: int):
    from diffusers import CosmosControlNetModel

    torch.manual_seed(seed)
    # inputs: the control's latents + condition mask + padding mask; the base latents likewise
    net = CosmosControlNetModel(n_controlnet_blocks=_LAYERS, in_channels=_Z + 2,
                                latent_channels=_Z + 2, model_channels=_HEADS * _HEAD_DIM,
                                use_crossattn_projection=False, **_dit_kwargs())
    _randomise_zeros(net, torch.Generator().manual_seed(seed + 1))
    return net


def _no_guardrail(*args, **kwargs):
    return None


def _write(root: Path, seed: int) -> None:
    from diffusers import (
        AutoencoderKLWan,
        Cosmos2_5_TransferPipeline,
        CosmosTransformer3DModel,
        UniPCMultistepScheduler,
    )
    from diffusers.utils import logging
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    torch.manual_seed(seed)
    tokenizer, special = _tokenizer()
    text_encoder = Qwen2_5_VLForConditionalGeneration(Qwen2_5_VLConfig(
        text_config=dict(
            vocab_size=len(tokenizer), hidden_size=_TEXT, intermediate_size=32,
            num_hidden_layers=_TEXT_LAYERS, num_attention_heads=2, num_key_value_heads=1,
            max_position_embeddings=1024, bos_token_id=special["<|endoftext|>"],
            eos_token_id=special["<|im_end|>"], pad_token_id=special["<|endoftext|>"],
            rope_parameters=dict(rope_type="default", rope_theta=1000000.0,
                                 mrope_section=[1, 1, 2])),
        vision_config=dict(depth=1, hidden_size=16, intermediate_size=16, num_heads=2,
                           out_hidden_size=_TEXT, fullatt_block_indexes=[0]),
        image_token_id=special["<|image_pad|>"], video_token_id=special["<|video_pad|>"],
        vision_start_token_id=special["<|vision_start|>"],
        vision_end_token_id=special["<|vision_end|>"]))
    vae = AutoencoderKLWan(base_dim=4, z_dim=_Z, dim_mult=[1, 2, 2, 2], num_res_blocks=1,
                           temperal_downsample=[False, True, True],
                           latents_mean=[0.0] * _Z, latents_std=[1.0] * _Z)
    _settle_vae(vae, seed + 2)
    transformer = CosmosTransformer3DModel(
        in_channels=_Z + 1, out_channels=_Z, num_layers=_LAYERS, concat_padding_mask=True,
        controlnet_block_every_n=1, img_context_num_tokens=4, **_dit_kwargs())
    _randomise_zeros(transformer, torch.Generator().manual_seed(seed + 1))
    scheduler = UniPCMultistepScheduler(use_karras_sigmas=True, use_flow_sigmas=True,
                                        prediction_type="flow_prediction", sigma_max=200.0,
                                        sigma_min=0.01)
    # A stand-in safety checker only so that the constructor does not build NVIDIA's guardrail;
    # it is removed before saving, so model_index.json records none.
    pipe = Cosmos2_5_TransferPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae,
                                      transformer=transformer, scheduler=scheduler,
                                      controlnet=None, safety_checker=_no_guardrail)
    pipe.safety_checker = None
    level = logging.get_verbosity()
    logging.set_verbosity_error()  # not the warning that the (absent) controlnet is not saved
    try:
        pipe.save_pretrained(root / "base", safe_serialization=True)
    finally:
        logging.set_verbosity(level)
    for i, name in enumerate(_CONTROLS):
        _controlnet(seed + 100 * (i + 1)).save_pretrained(root / "controlnets" / name,
                                                          safe_serialization=True)
    (root / "rendiff_pretrained.yaml").write_text(_SPEC, encoding="utf-8")


def write_tiny_cosmos_transfer(out: str | Path, seed: int = 0, overwrite: bool = False) -> Path:
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
    """Command line: ``python tools/make_tiny_cosmos_transfer.py OUT [--seed N] [--overwrite]``."""
    from rendiff.io.atomic import folder_tool_main

    return folder_tool_main(__doc__.split("\n\n")[0], write_tiny_cosmos_transfer, argv)


if __name__ == "__main__":
    sys.exit(main())
