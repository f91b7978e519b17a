"""What loading any pretrained setup shares: its error type, path and folder rules, quiet loading
and the dtype a device gets. Imported by :mod:`.pretrained` (AnimateDiff) and :mod:`.wan_vace`,
which import nothing of each other's but this."""

from __future__ import annotations

import contextlib
import difflib
import json
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

__all__ = ["ModelError", "absolute_path", "check_pipeline_folder", "check_safetensors",
           "did_you_mean", "first_line", "folder_kind", "quiet", "read_json", "resolve_dtype"]

#: The parts of a diffusers video pipeline folder (Wan VACE, Cosmos-Transfer2.5), and those of
#: them that hold weights.
PIPELINE_PARTS = ("transformer", "vae", "text_encoder", "tokenizer", "scheduler")
WEIGHTED_PARTS = ("transformer", "vae", "text_encoder")


class ModelError(ValueError):
    """A model folder that is missing, of the wrong kind, or asked for maps it was not trained
    with, or inputs it cannot take (keyframes outside the clip, a reference image for a model
    that takes none). ``str(err)`` is one line naming the folder or file where there is one."""


def absolute_path(path: Path, root: Path) -> Path:
    """A setup file's path made absolute: ``~`` expanded, a relative one taken against ``root``
    (the file's folder)."""
    path = path.expanduser()
    return path if path.is_absolute() else (root / path).resolve()


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices`` to ``word``, else ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_safetensors(folder: Path) -> None:
    """``folder`` holds ``*.safetensors`` weights; a pickled ``.bin`` is never loaded."""
    if not any(folder.glob("*.safetensors")):
        raise ModelError(f"{folder}: no *.safetensors weights (pickled .bin weights are not "
                         "loaded: they can run code)")


def check_pipeline_folder(folder: Path, expected: str, label: str) -> Path:
    """Checks, without loading, that ``folder`` holds a diffusers pipeline of class
    ``expected`` with the :data:`PIPELINE_PARTS` and safetensors weights; ``label`` names it in
    errors ("Wan VACE model folder"). Returns it; a one-line ModelError otherwise."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ModelError(f"{folder}: {label} not found")
    kind = folder_kind(folder)
    parts = ", ".join(f"{p}/" for p in PIPELINE_PARTS)
    if kind != expected:
        what = f"holds a {kind}" if kind else "has no model_index.json"
        raise ModelError(f"{folder}: {what}; expected a {expected} folder in diffusers format "
                         f"(model_index.json, {parts})")
    for part in PIPELINE_PARTS:
        if not (folder / part).is_dir():
            raise ModelError(f"{folder}: {part}/ not found (a {expected} folder has {parts})")
    for part in WEIGHTED_PARTS:
        check_safetensors(folder / part)
    return folder


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ModelError(f"{path}: not valid JSON") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path}: not a diffusers config (expected a JSON object)")
    return data


def folder_kind(folder: Path) -> str | None:
    """The class a diffusers folder holds (from model_index.json or config.json), if any."""
    for name in ("model_index.json", "config.json"):
        if (folder / name).is_file():
            return read_json(folder / name).get("_class_name")
    return None


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """No loading bars, no advice about accelerate, no deprecation noise from the libraries."""
    from diffusers.utils import logging as dlogging
    from transformers.utils import logging as tlogging

    levels = dlogging.get_verbosity(), tlogging.get_verbosity()
    dlogging.set_verbosity(50)  # CRITICAL: its load errors come back as our one-line error
    tlogging.set_verbosity(50)
    dlogging.disable_progress_bar()
    tlogging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        dlogging.set_verbosity(levels[0])
        tlogging.set_verbosity(levels[1])
        dlogging.enable_progress_bar()
        tlogging.enable_progress_bar()


def first_line(error: BaseException) -> str:
    """The first line of an error's message (a library's can span many), else its type name."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def resolve_dtype(dtype: torch.dtype | str | None, device: str | torch.device) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "auto"):
        return torch.float16 if torch.device(device).type == "cuda" else torch.float32
    try:
        return {"float32": torch.float32, "float16": torch.float16,
                "bfloat16": torch.bfloat16}[dtype]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r}; expected float32, float16 or bfloat16") \
            from None
