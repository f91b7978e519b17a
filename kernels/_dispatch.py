"""Where a kernel runs: the one place every ``rendiff.kernels`` module asks.

Every kernel module has a Triton kernel, a torch reference, and a public wrapper that calls
``use_triton(device)`` to choose between them and ``get_kernel(kernel, device)`` to launch:

* CUDA tensors: the compiled Triton kernel.
* CPU tensors: the torch reference, or where a kernel has one, its compiled CPU form
  (``rendiff.kernels.warp_cpu``: Warp kernels run on the CPU) unless the environment variable
  ``RENDIFF_CPU_KERNELS=torch`` asks for the reference (``use_warp_cpu``).
* CPU tensors with the environment variable ``RENDIFF_TRITON=interpret``: the same Triton kernel
  run by Triton's interpreter (numpy, slow: tests only). The variable is read at every call, so
  a test can switch it with ``monkeypatch.setenv`` after the kernels were imported.

The known limitation, and how this module gets round it (Triton 3.x; checked on 3.9): Triton
chooses between compiling and interpreting when ``@triton.jit`` runs, from ``TRITON_INTERPRET``.
A kernel decorated in compiled mode can still be interpreted by wrapping its Python function in
``triton.runtime.interpreter.InterpretedFunction``, but the ``@triton.jit`` functions it calls
cannot: Triton's own helpers (``tl.zeros``, ``tl.sum``, ``tl.max``, ``tl.cumprod``, ...) were
decorated when ``triton.language`` was imported, and a compiled-mode ``JITFunction`` refuses to be
called from Python ("Cannot call @triton.jit'd outside of the scope of a kernel"). Setting
``TRITON_INTERPRET=1`` before anything imports ``triton`` avoids it but depends on import order
(any library that imports triton first breaks it). So for an interpreted launch ``get_kernel``
returns a launcher that, for the duration of the launch only, lets a compiled-mode
``JITFunction`` be called from Python the way interpret mode would: by interpreting its function
(``InterpretedFunction(fn)(*args)``, exactly what ``@triton.jit`` returns under
``TRITON_INTERPRET=1``). The patch is undone when the launch returns. So are the interpreter's
own patches of ``triton.language`` made for each such call: ``InterpretedFunction.__call__``
leaves them in place, harmless in a process that only interprets, but later compilation in the
same process (e.g. the ahead-of-time compile tests) then fails. Compiled launches and
compilation after an interpreted launch are therefore unaffected. This relies on
``triton.runtime.interpreter._patch_lang``, a private function of Triton 3.9; a Triton upgrade may
need this module revisited (``tests/test_encodings_triton.py`` checks both behaviours). With
``TRITON_INTERPRET=1`` set before the import, kernels and helpers are already interpreted
functions and are used as they are. On CUDA nothing of this applies.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import torch
from triton.runtime.interpreter import InterpretedFunction, _patch_lang
from triton.runtime.jit import JITFunction

__all__ = ["CPU_ENV", "ENV", "get_kernel", "interpreting", "use_triton", "use_warp_cpu"]

ENV = "RENDIFF_TRITON"
"""Environment variable: ``interpret`` runs the Triton kernels on CPU through the interpreter."""

CPU_ENV = "RENDIFF_CPU_KERNELS"
"""Environment variable: ``torch`` runs the torch references on CPU tensors where a compiled CPU
kernel exists (``rendiff.kernels.warp_cpu``); unset or ``warp``, the compiled kernels."""

_INTERPRETED: dict[Callable, InterpretedFunction] = {}
_LOCK = threading.RLock()


def interpreting(device: torch.device | str) -> bool:
    """True when tensors on ``device`` run the Triton kernels through the interpreter."""
    return torch.device(device).type != "cuda" and (
        os.environ.get(ENV, "").strip().lower() == "interpret"
    )


def use_triton(device: torch.device | str) -> bool:
    """True when tensors on ``device`` take the Triton kernel (compiled on CUDA, interpreted on
    CPU under ``RENDIFF_TRITON=interpret``); False means the torch reference."""
    return torch.device(device).type == "cuda" or interpreting(device)


def use_warp_cpu(device: torch.device | str) -> bool:
    """True when tensors on ``device`` take the compiled CPU kernels of ``rendiff.kernels.warp_cpu``
    (where a kernel has them): CPU tensors, neither interpreting Triton nor asked for the torch
    reference with ``RENDIFF_CPU_KERNELS=torch``."""
    if torch.device(device).type == "cuda" or interpreting(device):
        return False
    choice = os.environ.get(CPU_ENV, "").strip().lower()
    if choice not in ("", "warp", "torch"):
        raise ValueError(f"{CPU_ENV}={choice!r}: expected 'warp' or 'torch'")
    return choice != "torch"


def _interpreted(fn: Callable) -> InterpretedFunction:
    """One cached ``InterpretedFunction`` per Python function (the interpreter caches its AST
    rewrite per function too)."""
    if fn not in _INTERPRETED:
        _INTERPRETED[fn] = InterpretedFunction(fn)
    return _INTERPRETED[fn]


def _call_interpreted(self: JITFunction, *args: Any, **kwargs: Any) -> Any:
    """A compiled-mode helper called from an interpreted kernel: interpreted, as
    ``InterpretedFunction.__call__`` would, except that the interpreter's patches of
    ``triton.language`` are undone on return (Triton 3.9 leaves them in place, which only
    matters in a process that also compiles)."""
    scope = _patch_lang(self.fn)
    try:
        return _interpreted(self.fn).rewrite()(*args, **kwargs)
    finally:
        scope.restore()


@contextlib.contextmanager
def _jit_helpers_interpreted() -> Iterator[None]:
    """While active, calling a compiled-mode ``JITFunction`` interprets it (module docstring)."""
    with _LOCK:
        original = JITFunction.__call__
        JITFunction.__call__ = _call_interpreted  # type: ignore[method-assign]
        try:
            yield
        finally:
            JITFunction.__call__ = original  # type: ignore[method-assign]


class _InterpretedLauncher:
    """``launcher[grid](*args, **kwargs)`` like a Triton kernel, run by the interpreter."""

    def __init__(self, kernel: InterpretedFunction) -> None:
        self._kernel = kernel

    def __getitem__(self, grid: Any) -> Callable[..., Any]:
        def launch(*args: Any, **kwargs: Any) -> Any:
            with _jit_helpers_interpreted():
                return self._kernel[grid](*args, **kwargs)

        return launch


def get_kernel(kernel: Any, device: torch.device | str) -> Any:
    """The launchable form of ``kernel`` (a ``@triton.jit`` function) for tensors on ``device``:
    the kernel itself on CUDA, an interpreted launcher on CPU. Use as
    ``get_kernel(k, x.device)[grid](...)``; call only when ``use_triton(device)`` is True."""
    if torch.device(device).type == "cuda":
        return kernel
    if isinstance(kernel, InterpretedFunction):
        return _InterpretedLauncher(kernel)
    if isinstance(kernel, JITFunction):
        return _InterpretedLauncher(_interpreted(kernel.fn))
    raise TypeError(f"get_kernel expects a @triton.jit function, got {type(kernel).__name__}")

