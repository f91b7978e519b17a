"""Gaussian-Flow's dual-domain deformation (DDDM), evaluated for many Gaussians and times at once.

For Gaussian i, channel c and time t the residual is

    r_ic(t) = (1/L) * sum_{l<L} [ a_ilc t'^l + b_ilc sin(2 pi l t') + c_ilc cos(2 pi l t') ],
    t' = s * t + o - tau_i,

a polynomial (time domain) plus a Fourier series (frequency domain), with a global time scale s,
offset o, and per-Gaussian time centre tau_i (Lin et al., "Gaussian-Flow", CVPR 2024). t'^0 = 1.

`dddm_residual` is the public entry point. It dispatches by device (``rendiff.kernels._dispatch``,
which documents the interpreter's limitation once):

* CUDA tensors: the Triton kernel. One program handles a block of Gaussians: it loads their time
  centres once, then for each of the T times evaluates all C channels and all L terms of the
  three families in registers and writes one [block, C] tile of the [T, N, C] output.
* CPU tensors: the torch reference `_dddm_residual_reference` (a loop over the L terms).
* CPU tensors with the environment variable ``RENDIFF_TRITON=interpret``: the same Triton kernel
  run by Triton's interpreter, which is how the tests check the kernel without a GPU.

Inputs that require grad always take the reference, so fitting (`rendiff.engine.deformation`)
can differentiate through it; the Triton path is forward only.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl
from torch import Tensor

from ._dispatch import get_kernel
from ._dispatch import use_triton as _use_triton

__all__ = ["dddm_residual"]

_TWO_PI = tl.constexpr(2 * math.pi)


@triton.jit
def _dddm_kernel(
    poly_ptr,  # [N, L, C] float32
    sin_ptr,  # [N, L, C] float32
    cos_ptr,  # [N, L, C] float32
    tau_ptr,  # [N] float32
    times_ptr,  # [T] float32
    out_ptr,  # [T, N, C] float32
    N,
    T,
    time_scale,
    time_offset,
    L: tl.constexpr,
    C: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    pid = tl.program_id(0)
    n = pid * BLOCK_N + tl.arange(0, BLOCK_N)
    ch = tl.arange(0, BLOCK_C)
    n_ok = n < N
    n64 = n.to(tl.int64)  # n * L * C passes int32 beyond ~70M Gaussians
    tile = n64[:, None] * (L * C) + ch[None, :]  # offsets of term l = 0
    tile_ok = n_ok[:, None] & (ch[None, :] < C)
    tau = tl.load(tau_ptr + n, mask=n_ok, other=0.0)
    out_ptrs = out_ptr + n64[:, None] * C + ch[None, :]  # frame 0; advanced by N * C per frame
    for ti in range(T):
        t = tl.load(times_ptr + ti)
        tp = (time_scale * t + time_offset - tau)[:, None]  # [BLOCK_N, 1]
        acc = tl.full((BLOCK_N, BLOCK_C), 0.0, tl.float32)
        power = tl.full((BLOCK_N, 1), 1.0, tl.float32)
        for l in tl.static_range(L):
            a = tl.load(poly_ptr + tile + l * C, mask=tile_ok, other=0.0)
            b = tl.load(sin_ptr + tile + l * C, mask=tile_ok, other=0.0)
            c = tl.load(cos_ptr + tile + l * C, mask=tile_ok, other=0.0)
            angle = (_TWO_PI * l) * tp
            acc += power * a + tl.sin(angle) * b + tl.cos(angle) * c
            power = power * tp
        tl.store(out_ptrs, acc * (1.0 / L), mask=tile_ok)
        out_ptrs += N * C


def _dddm_residual_reference(
    poly: Tensor,
    sin: Tensor,
    cos: Tensor,
    tau: Tensor,
    times: Tensor,
    time_scale: float,
    time_offset: float,
) -> Tensor:
    """Plain torch evaluation (differentiable); same contract as `dddm_residual`."""
    n, L, C = poly.shape
    tp = (time_scale * times[:, None] + time_offset - tau[None, :])[..., None]  # [T, N, 1]
    out = torch.zeros(times.shape[0], n, C, dtype=poly.dtype, device=poly.device)
    power = torch.ones_like(tp)
    for l in range(L):
        angle = (2 * math.pi * l) * tp
        out.addcmul_(power, poly[:, l]).addcmul_(torch.sin(angle), sin[:, l])
        out.addcmul_(torch.cos(angle), cos[:, l])
        power = power * tp
    return out.div_(L)


def _launch(
    poly: Tensor,
    sin: Tensor,
    cos: Tensor,
    tau: Tensor,
    times: Tensor,
    time_scale: float,
    time_offset: float,
) -> Tensor:
    n, L, C = poly.shape
    T = times.shape[0]
    out = torch.empty(T, n, C, dtype=torch.float32, device=poly.device)
    if n == 0 or T == 0:
        return out
    block_n = 64
    get_kernel(_dddm_kernel, poly.device)[(triton.cdiv(n, block_n),)](
        poly, sin, cos, tau, times, out,
        n, T, float(time_scale), float(time_offset),
        L=L, C=C, BLOCK_N=block_n, BLOCK_C=triton.next_power_of_2(C),
    )
    return out


# Ahead-of-time sm_90 compile checks (tests/_aot.py, benchmarks/aot_kernels.py): each entry is
# (kernel, runtime argument types, constexprs, launch options) as `_launch` launches it for the
# engine's 10 channels and default L = 3: many times, one time (`DDDM.residual` of one frame;
# Triton turns an int argument equal to 1 into a constant), one Gaussian at one time.
# tests/test_deformation.py checks that the launch and this table agree.
_AOT_SIGNATURE = {f"{name}_ptr": "*fp32" for name in ("poly", "sin", "cos", "tau", "times", "out")}
_AOT_SIGNATURE |= {"N": "i32", "T": "i32", "time_scale": "fp32", "time_offset": "fp32"}
_AOT_CONSTEXPRS = {"L": 3, "C": 10, "BLOCK_N": 64, "BLOCK_C": 16}
_AOT_VARIANTS = tuple(
    (_dddm_kernel, {k: v for k, v in _AOT_SIGNATURE.items() if k not in ones},
     {k: 1 for k in ones} | _AOT_CONSTEXPRS, {})
    for ones in ((), ("T",), ("N", "T"))
)  # fmt: skip


def dddm_residual(
    poly: Tensor,
    sin: Tensor,
    cos: Tensor,
    tau: Tensor,
    times: Tensor,
    time_scale: float = 1.0,
    time_offset: float = 0.0,
) -> Tensor:
    """DDDM residuals of N Gaussians at T times (formula in the module docstring).

    Args:
        poly: Tensor  # [N, L, C] polynomial coefficients a_l
        sin: Tensor   # [N, L, C] sine coefficients b_l
        cos: Tensor   # [N, L, C] cosine coefficients c_l
        tau: Tensor   # [N] per-Gaussian time centres
        times: Tensor  # [T] times (seconds, before scaling)
        time_scale: global s in t' = s t + o - tau
        time_offset: global o
    Returns:
        Tensor  # [T, N, C] float32
    """
    if poly.ndim != 3 or sin.shape != poly.shape or cos.shape != poly.shape:
        raise ValueError(
            f"poly/sin/cos must share one [N, L, C] shape, got {tuple(poly.shape)}, "
            f"{tuple(sin.shape)}, {tuple(cos.shape)}"
        )
    if tau.shape != poly.shape[:1]:
        raise ValueError(f"tau must be [N] = [{poly.shape[0]}], got {tuple(tau.shape)}")
    times = torch.as_tensor(times, dtype=torch.float32, device=poly.device).reshape(-1)
    needs_grad = torch.is_grad_enabled() and any(
        x.requires_grad for x in (poly, sin, cos, tau, times)
    )
    if not _use_triton(poly.device) or needs_grad:
        return _dddm_residual_reference(
            poly.float(), sin.float(), cos.float(), tau.float(), times, time_scale, time_offset
        )
    return _launch(
        *(x.detach().float().contiguous() for x in (poly, sin, cos, tau, times)),
        time_scale,
        time_offset,
    )
