"""Registers, spills and shared memory of every rendiff Triton kernel, compiled ahead of time for
sm_90 (H100) on a machine without a GPU.

Compiles each launch variant listed in the kernel modules' ``_AOT_VARIANTS`` tables (the
specialisations the wrappers launch) with Triton's bundled ``ptxas`` through ``tests/_aot.py``,
prints a table kernel | variant | registers | spill stores / loads | stack | shared memory, and
writes ``benchmarks/results/aot_sm90.json`` with the machine and the Triton version. It also
lists any ``@triton.jit`` kernel that no table covers, and exits non-zero if one is uncovered or
fails to compile.

Not a timing benchmark: the figures are properties of the compiled code (deterministic for a
Triton version), so there is no alternative to compare with and no ratio. The compile time per
variant is given for information only (it depends on the machine's load).

    python benchmarks/aot_kernels.py [--out benchmarks/results/aot_sm90.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

_ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(_ROOT))
sys.path.insert(0, str(_ROOT.parent / "tests"))
from _aot import (  # noqa: E402  (tests/ is on sys.path)
    aot_unavailable,
    compile_variant,
    kernel_variants,
    resource_usage,
    uncovered_kernels,
    variant_label,
)
from _machine import machine_info  # noqa: E402  (benchmarks/ is on sys.path)

from rendiff.io.atomic import write_text  # noqa: E402


def main() -> int:
    """Compiles every variant, prints the table, writes the JSON; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=_ROOT / "results" / "aot_sm90.json")
    args = parser.parse_args()

    import triton

    reason = aot_unavailable()
    if reason is not None:
        print(f"cannot compile ahead of time: {reason}")
        return 1
    rows, failures = [], []
    with tempfile.TemporaryDirectory(prefix="rendiff_aot_") as cache:
        for module, variant in kernel_variants():
            kernel, label = variant[0].__name__, variant_label(variant)
            reason = aot_unavailable(variant[0])
            if reason is not None:
                print(f"cannot compile ahead of time: {reason}")
                return 1
            t0 = time.perf_counter()
            try:
                compiled = compile_variant(variant, cache_dir=cache)
                usage = resource_usage(compiled)
            except Exception as exc:  # report every failure, then exit non-zero
                failures.append({"module": module, "kernel": kernel, "variant": label,
                                 "error": f"{type(exc).__name__}: {exc}"})  # fmt: skip
                traceback.print_exc()
                continue
            seconds = time.perf_counter() - t0
            rows.append({"module": module, "kernel": kernel, "variant": label,
                         "num_warps": compiled.metadata.num_warps, **usage,
                         "compile_s": round(seconds, 2)})  # fmt: skip
    uncovered = uncovered_kernels()

    print(f"Triton {triton.__version__}, target sm_90 (cuda, warp 32); bytes are per thread "
          f"except shared (per block)")  # fmt: skip
    head = f"{'kernel':<24}{'variant':<48}{'warps':>6}{'regs':>6}{'spill st':>9}{'spill ld':>9}"
    print(f"{head}{'stack':>7}{'shared':>8}{'compile s':>11}")
    for r in rows:
        print(f"{r['kernel']:<24}{r['variant']:<48}{r['num_warps']:>6}{r['registers']:>6}"
              f"{r['spill_stores']:>9}{r['spill_loads']:>9}{r['stack']:>7}{r['shared']:>8}"
              f"{r['compile_s']:>11.2f}")  # fmt: skip
    for f in failures:
        print(f"FAILED {f['kernel']} [{f['variant']}]: {f['error'].splitlines()[0]}")
    if uncovered:
        print(f"kernels without an _AOT_VARIANTS entry: {', '.join(uncovered)}")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text(args.out, json.dumps({
        "benchmark": "aot_sm90",
        "note": "ahead-of-time compile for sm_90 with Triton's bundled ptxas; not a timing "
                "benchmark (no ratio). registers/stack/spills per thread from ptxas -v, shared "
                "per block from Triton's metadata.",
        "triton": triton.__version__, "target": {"backend": "cuda", "arch": 90, "warp_size": 32},
        "machine": machine_info(triton=triton.__version__),
        "results": rows, "failures": failures, "uncovered_kernels": uncovered,
    }, indent=2) + "\n")  # fmt: skip
    print(f"wrote {args.out}")
    return 1 if failures or uncovered else 0


if __name__ == "__main__":
    sys.exit(main())
