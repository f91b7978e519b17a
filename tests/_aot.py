"""Ahead-of-time compilation of rendiff's Triton kernels for sm_90, without a GPU.

Triton ships ``ptxas``, so ``triton.compile(ASTSource(...), target=GPUTarget("cuda", 90, 32))``
takes a kernel through the frontend, the TTIR/TTGIR/LLVM passes and ``ptxas`` to a cubin on a
machine with no GPU. That is the GPU validation available on CPU: it catches what the interpreter
does not check (types, unsupported operations, layouts) and gives the register and spill counts.

Every kernel module keeps next to its launch code a private ``_AOT_VARIANTS`` table: entries
``(kernel, runtime argument types, constexprs, launch options)``, one per specialisation its
wrapper launches. ``record_launches`` checks a table against the real launch: it wraps the
module's ``get_kernel`` and describes each launch the way Triton's JIT specialises it.

Used by the ``*_compiles_for_cuda`` tests and by ``benchmarks/aot_kernels.py`` (which puts this
directory on ``sys.path``). Under pytest's default import mode ``tests/`` is on ``sys.path``
(it has no ``__init__.py``), so test files import this as ``from _aot import ...``.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import os
import pkgutil
import re
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "Variant",
    "aot_unavailable",
    "assert_same_variants",
    "compile_for_sm90",
    "compile_variant",
    "kernel_variants",
    "record_launches",
    "resource_usage",
    "uncovered_kernels",
    "variant_label",
]

Variant = tuple[Any, dict[str, str], dict[str, Any], dict[str, Any]]
"""(kernel, runtime argument name -> Triton type, constexpr name -> value, launch options)."""

_TARGET = ("cuda", 90, 32)


def aot_unavailable(kernel: Any = None) -> str | None:
    """Why ahead-of-time compilation cannot run here (``kernel`` is not a ``JITFunction``:
    Triton is in interpreter mode; or this Triton's ``ASTSource`` has no ``constexprs``), or
    None."""
    try:
        from triton.compiler import ASTSource
        from triton.runtime.jit import JITFunction
    except ImportError as exc:  # pragma: no cover - triton is a dependency
        return f"triton cannot be imported: {exc}"
    if kernel is not None and not isinstance(kernel, JITFunction):
        return "triton is in interpreter mode"
    if "constexprs" not in inspect.signature(ASTSource).parameters:
        return "this Triton's ahead-of-time API differs"
    return None


@contextlib.contextmanager
def _cache_dir(path: str | Path | None) -> Iterator[None]:
    """TRITON_CACHE_DIR set to ``path`` (a fresh temporary directory when None) for the block,
    so compiling here leaves the user's cache alone and always really compiles."""
    old = os.environ.get("TRITON_CACHE_DIR")
    with contextlib.ExitStack() as stack:
        if path is None:
            path = stack.enter_context(tempfile.TemporaryDirectory(prefix="rendiff_aot_"))
        os.environ["TRITON_CACHE_DIR"] = str(path)
        try:
            yield
        finally:
            if old is None:
                os.environ.pop("TRITON_CACHE_DIR", None)
            else:
                os.environ["TRITON_CACHE_DIR"] = old


def compile_for_sm90(
    kernel: Any,
    signature: dict[str, str],
    constexprs: dict[str, Any] | None = None,
    *,
    cache_dir: str | Path | None = None,
    aligned: bool = True,
    **options: Any,
) -> Any:
    """Compiles ``kernel`` (a ``@triton.jit`` function) to a cubin for sm_90 and returns Triton's
    ``CompiledKernel``; skips the calling test when ``aot_unavailable(kernel)``.

    Args:
        kernel: the ``JITFunction``.
        signature: Triton type (``"*fp32"``, ``"i32"``, ``"fp32"``, ...) of every argument that
            is not in ``constexprs``; constexpr parameters need no entry.
        constexprs: values of the ``tl.constexpr`` parameters, and of int arguments Triton
            specialises (an int equal to 1 is a constant at launch).
        cache_dir: Triton cache directory for this compilation; a temporary one when None.
        aligned: mark pointer arguments 16-byte aligned, as Triton's JIT does for the tensors
            torch allocates.
        **options: compile options as a launch passes them (``num_warps=8``,
            ``enable_fp_fusion=False``); ``enable_fp_fusion`` defaults to True, the launch
            default.
    """
    reason = aot_unavailable(kernel)
    if reason is not None:
        import pytest

        pytest.skip(reason)
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    constexprs = dict(constexprs or {})
    name = kernel.__name__
    unknown = (set(signature) | set(constexprs)) - set(kernel.arg_names)
    if unknown:
        raise ValueError(f"{name}: no parameters {sorted(unknown)}")
    full: dict[str, str] = {}
    for arg in kernel.arg_names:
        if arg in constexprs:
            full[arg] = "constexpr"
        elif arg in signature:
            full[arg] = signature[arg]
        else:
            raise ValueError(f"{name}: argument {arg!r} has neither a type nor a constexpr value")
    attrs = {}
    if aligned:
        pointers = [i for i, t in enumerate(full.values()) if t.startswith("*")]
        attrs = {(i,): [["tt.divisibility", 16]] for i in pointers}
    options = {"enable_fp_fusion": True, **options}
    with _cache_dir(cache_dir):
        compiled = triton.compile(
            ASTSource(kernel, full, constexprs=constexprs, attrs=attrs),
            target=GPUTarget(*_TARGET),
            options=options,
        )
    assert compiled.asm.get("cubin"), f"{name}: no cubin"
    return compiled


def compile_variant(variant: Variant, **kwargs: Any) -> Any:
    """``compile_for_sm90`` of one ``_AOT_VARIANTS`` entry; ``kwargs`` as for it
    (``cache_dir``, ``aligned``)."""
    kernel, signature, constexprs, options = variant
    return compile_for_sm90(kernel, signature, constexprs, **kwargs, **options)


def resource_usage(compiled: Any) -> dict[str, int]:
    """Per-thread registers and stack, spill stores and loads (bytes), and shared memory
    (bytes per block) of a kernel compiled by ``compile_for_sm90``.

    Without a GPU Triton's ``n_regs`` / ``n_spills`` (read from the driver when the cubin is
    loaded; ``n_spills`` is the local memory per thread in 4-byte words) are not available, so
    this runs Triton's bundled ``ptxas -v`` again on the kernel's PTX with the flags Triton used,
    and checks with the bundled ``cuobjdump`` that the registers match the cubin Triton built.
    ``shared`` is Triton's ``metadata.shared`` (the dynamic shared memory a launch requests).
    """
    from triton import knobs
    from triton.backends.nvidia.compiler import get_ptxas, sm_arch_from_capability

    meta = compiled.metadata
    capability = meta.target.arch
    arch = sm_arch_from_capability(capability)
    flags = ["-lineinfo", "-v", "--regAllocOptLevel=2", f"--gpu-name={arch}"]
    if not meta.enable_fp_fusion:
        flags.append("--fmad=false")
    if meta.ptx_options:
        flags += meta.ptx_options.split()
    ptxas = [get_ptxas(capability).path, *flags]
    with tempfile.TemporaryDirectory(prefix="rendiff_ptxas_") as tmp:
        ptx, cubin = Path(tmp, "k.ptx"), Path(tmp, "k.cubin")
        ptx.write_text(compiled.asm["ptx"])
        Path(tmp, "triton.cubin").write_bytes(compiled.asm["cubin"])
        log = subprocess.run(
            [*ptxas, str(ptx), "-o", str(cubin)], capture_output=True, text=True, check=True
        ).stderr
        dump = subprocess.run(
            [knobs.nvidia.cuobjdump.path, "--dump-resource-usage", str(Path(tmp, "triton.cubin"))],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    regs = re.search(r"Used (\d+) registers", log)
    frame = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill", log)
    built = re.search(r"REG:(\d+)", dump)
    if regs is None or frame is None or built is None:
        raise RuntimeError(f"{meta.name}: cannot read ptxas / cuobjdump output:\n{log}\n{dump}")
    if int(regs.group(1)) != int(built.group(1)):
        raise RuntimeError(
            f"{meta.name}: ptxas run again uses {regs.group(1)} registers, Triton's cubin "
            f"{built.group(1)}: the flags here no longer match Triton's"
        )
    return {
        "registers": int(regs.group(1)),
        "stack": int(frame.group(1)),
        "spill_stores": int(frame.group(2)),
        "spill_loads": int(frame.group(3)),
        "shared": int(meta.shared),
    }


def variant_label(variant: Variant) -> str:
    """``"NAME=value ..."`` of a variant's constexprs, then its launch options."""
    _, _, constexprs, options = variant
    return " ".join(f"{k}={v}" for k, v in (*constexprs.items(), *options.items()))


def _kernel_modules() -> list[Any]:
    import rendiff.kernels as package

    return [
        importlib.import_module(f"{package.__name__}.{info.name}")
        for info in pkgutil.iter_modules(package.__path__)
    ]


def kernel_variants() -> list[tuple[str, Variant]]:
    """(module name, variant) for every ``_AOT_VARIANTS`` entry of every ``rendiff.kernels``
    module, in module order."""
    return [
        (module.__name__.rsplit(".", 1)[-1], variant)
        for module in _kernel_modules()
        for variant in getattr(module, "_AOT_VARIANTS", ())
    ]


def uncovered_kernels() -> list[str]:
    """``module.name`` of every ``@triton.jit`` function in ``rendiff.kernels`` that no
    ``_AOT_VARIANTS`` entry compiles, directly or as a helper called from a listed kernel."""
    from triton.runtime.jit import JITFunction

    listed = {id(variant[0]): variant[0] for _, variant in kernel_variants()}
    sources = [kernel.src for kernel in listed.values()]
    missing = []
    for module in _kernel_modules():
        for name, obj in vars(module).items():
            if not isinstance(obj, JITFunction) or obj.fn.__module__ != module.__name__:
                continue
            called = any(re.search(rf"\b{re.escape(name)}\s*\(", src) for src in sources)
            if id(obj) not in listed and not called:
                missing.append(f"{module.__name__}.{name}")
    return missing


def _describe(kernel: Any, args: tuple, kwargs: dict[str, Any]) -> Variant:
    """A launch ``kernel[grid](*args, **kwargs)`` as a variant, specialised as Triton's JIT does
    (``mangle_type``: tensors by dtype, ints by range, an int equal to 1 as a constant)."""
    from triton.runtime.jit import mangle_type

    bound = dict(zip(kernel.arg_names, args, strict=False))
    options = {}
    for key, value in kwargs.items():
        if key in kernel.arg_names:
            bound[key] = value
        else:
            options[key] = value
    signature: dict[str, str] = {}
    constexprs: dict[str, Any] = {}
    for param in kernel.params:
        value = bound[param.name] if param.name in bound else param.default
        specialize = not param.do_not_specialize
        kind = "constexpr" if param.is_constexpr else mangle_type(value, specialize)
        if kind == "constexpr":
            constexprs[param.name] = value
        else:
            signature[param.name] = kind
    return kernel, signature, constexprs, options


class _Recorder:
    """Stands in for a launcher: ``[grid](*args, **kwargs)`` records the launch, then runs it
    with the real launcher (``run``) or not at all."""

    def __init__(self, kernel: Any, real: Any, log: list[Variant], run: bool) -> None:
        self.kernel, self.real, self.log, self.run = kernel, real, log, run

    def __getitem__(self, grid: Any) -> Any:
        def launch(*args: Any, **kwargs: Any) -> Any:
            self.log.append(_describe(self.kernel, args, kwargs))
            return self.real[grid](*args, **kwargs) if self.run else None

        return launch


def record_launches(monkeypatch: Any, module: Any, run: bool = True) -> list[Variant]:
    """Wraps ``module.get_kernel`` (for the test's duration) so that every launch the module
    makes is appended, as a variant, to the returned list; ``run=False`` skips the launches
    themselves (outputs stay uninitialised)."""
    real_get = module.get_kernel
    log: list[Variant] = []

    def get_kernel(kernel: Any, device: Any) -> _Recorder:
        return _Recorder(kernel, real_get(kernel, device), log, run)

    monkeypatch.setattr(module, "get_kernel", get_kernel)
    return log


def _key(variant: Variant) -> tuple:
    kernel, signature, constexprs, options = variant
    return (
        kernel.__name__,
        tuple(sorted(signature.items())),
        tuple(sorted((k, repr(v)) for k, v in constexprs.items())),
        tuple(sorted((k, repr(v)) for k, v in options.items())),
    )


def assert_same_variants(launched: list[Variant], table: tuple[Variant, ...]) -> None:
    """Every recorded launch is an entry of ``table`` and every entry was launched."""
    got = {_key(v): v for v in launched}
    want = {_key(v): v for v in table}
    extra = [f"{v[0].__name__} {v[1]} {variant_label(v)}" for k, v in got.items() if k not in want]
    unseen = [f"{v[0].__name__} {variant_label(v)}" for k, v in want.items() if k not in got]
    assert not extra, f"launches missing from _AOT_VARIANTS: {extra}"
    assert not unseen, f"_AOT_VARIANTS entries never launched: {unseen}"
