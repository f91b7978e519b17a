"""Every Triton kernel variant the engine launches compiles ahead of time for sm_90 (no GPU).

The variants are the kernel modules' ``_AOT_VARIANTS`` tables (each module's tests check its
table against the wrapper's real launches); the helpers are in ``tests/_aot.py``. Compiling
catches what Triton's interpreter does not check (types, unsupported operations, layouts), and
ptxas's resource report shows register spills.
"""

from __future__ import annotations

import pytest
from _aot import (
    aot_unavailable,
    compile_variant,
    kernel_variants,
    resource_usage,
    uncovered_kernels,
    variant_label,
)

import rendiff.kernels.encodings as enc

VARIANTS = kernel_variants()


def _spills_allowed(module: str, constexprs: dict) -> bool:
    """Only the Gaussian compositor's wide payload (17-32 channels, > 9 extra feature channels,
    which no engine render uses) may spill; benchmarks/aot_kernels.py reports it."""
    return module == "gaussian_raster" and constexprs.get("DP") != 16


@pytest.mark.parametrize(
    ("module", "variant"), VARIANTS, ids=[f"{m}:{variant_label(v)}" for m, v in VARIANTS]
)
def test_every_kernel_variant_compiles_for_sm90(module, variant, tmp_path):
    usage = resource_usage(compile_variant(variant, cache_dir=tmp_path))
    assert 0 < usage["registers"] <= 255, usage
    if not _spills_allowed(module, variant[2]):
        assert usage["spill_stores"] == 0 and usage["stack"] == 0, usage


def test_every_triton_kernel_has_aot_variants(monkeypatch):
    """Every @triton.jit function of rendiff.kernels is compiled by some `_AOT_VARIANTS` entry
    (directly, or as a helper of a listed kernel, like `_atan2`), so the ahead-of-time tests and
    benchmarks/aot_kernels.py cover them all; a module without a table shows up."""
    if aot_unavailable(enc._flow_color_kernel):
        pytest.skip(aot_unavailable(enc._flow_color_kernel))
    modules = {module for module, _ in kernel_variants()}
    assert modules >= {"dddm", "encodings", "gaussian_raster", "mesh_raster", "shading", "skeleton"}
    assert uncovered_kernels() == []
    monkeypatch.setattr(enc, "_AOT_VARIANTS", enc._AOT_VARIANTS[:-1])  # drop _flow_color_kernel
    missing = {"_flow_color_kernel", "_atan2"}  # _atan2 is compiled only as its helper
    assert set(uncovered_kernels()) == {f"rendiff.kernels.encodings.{k}" for k in missing}
