"""Gaussian-Flow's DDDM: evaluation against the formula written out in plain Python, the Triton
kernel (interpreter) against the torch reference, fitting against known coefficients and an
analytic spin, deformation of a cloud, and the file round trip."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from _aot import (
    aot_unavailable,
    assert_same_variants,
    record_launches,
)

from rendiff.engine.deformation import DDDM, deform, fit_dddm, load_dddm, save_dddm
from rendiff.engine.gaussians import SH_C0, from_primitive
from rendiff.kernels import dddm
from rendiff.kernels.dddm import _dddm_kernel, _dddm_residual_reference, dddm_residual


def _random_dddm(n: int, L: int, seed: int, canonical_form: bool = False) -> DDDM:
    g = torch.Generator().manual_seed(seed)
    poly, sin, cos = (torch.randn(n, L, 10, generator=g) * 0.2 for _ in range(3))
    if canonical_form:  # b_0 and c_0 are redundant; fitting leaves them 0
        sin[:, 0] = 0
        cos[:, 0] = 0
        tau = torch.zeros(n)
    else:
        tau = torch.rand(n, generator=g) * 0.4 - 0.2
    return DDDM(poly, sin, cos, tau, time_scale=0.7, time_offset=0.15)


def _by_hand(d: DDDM, times: list[float]) -> np.ndarray:
    """(1/L) sum_l a_l t'^l + b_l sin(2 pi l t') + c_l cos(2 pi l t'), one value at a time."""
    a, b, c, tau = (x.double().numpy() for x in (d.poly, d.sin, d.cos, d.tau))
    n, L, C = a.shape
    out = np.zeros((len(times), n, C))
    for ti, t in enumerate(times):
        for i in range(n):
            tp = d.time_scale * t + d.time_offset - tau[i]
            for ch in range(C):
                total = 0.0
                for l in range(L):
                    total += a[i, l, ch] * tp**l
                    total += b[i, l, ch] * math.sin(2 * math.pi * l * tp)
                    total += c[i, l, ch] * math.cos(2 * math.pi * l * tp)
                out[ti, i, ch] = total / L
    return out


@pytest.mark.parametrize("L", [1, 3, 4])
def test_residual_matches_formula_by_hand(L):
    d = _random_dddm(7, L, seed=L)
    times = [0.0, 0.4, 1.3, -0.2]
    got = d.residual(torch.tensor(times))
    np.testing.assert_allclose(got.numpy(), _by_hand(d, times), atol=2e-6, rtol=1e-5)


@pytest.mark.parametrize("n", [5, 123])
def test_triton_interpreter_matches_reference(monkeypatch, n):
    d = _random_dddm(n, 3, seed=n)
    times = torch.tensor([0.0, 0.25, 0.9, 2.0, -1.0])
    ref = _dddm_residual_reference(d.poly, d.sin, d.cos, d.tau, times, 0.7, 0.15)
    monkeypatch.setenv("RENDIFF_TRITON", "interpret")
    got = dddm_residual(d.poly, d.sin, d.cos, d.tau, times, 0.7, 0.15)
    torch.testing.assert_close(got, ref, atol=2e-6, rtol=1e-5)
    np.testing.assert_allclose(got.numpy(), _by_hand(d, times.tolist()), atol=2e-6, rtol=1e-5)
    # L = 2 and an odd channel count through the same kernel
    g = torch.Generator().manual_seed(1)
    p, s, c = (torch.randn(n, 2, 3, generator=g) for _ in range(3))
    torch.testing.assert_close(
        dddm_residual(p, s, c, d.tau, times),
        _dddm_residual_reference(p, s, c, d.tau, times, 1.0, 0.0),
        atol=2e-6,
        rtol=1e-5,
    )


def test_aot_variants_match_the_launch(monkeypatch):
    """`dddm._AOT_VARIANTS` lists exactly what `dddm_residual` launches for L = 3 and the
    engine's 10 channels: many times, one time, one Gaussian at one time."""
    if aot_unavailable(_dddm_kernel):
        pytest.skip(aot_unavailable(_dddm_kernel))
    monkeypatch.setenv("RENDIFF_TRITON", "interpret")
    launches = record_launches(monkeypatch, dddm)
    d = _random_dddm(7, 3, seed=2)
    assert d.residual(torch.tensor([0.0, 0.5, 1.0])).shape == (3, 7, 10)
    assert d.residual(0.25).shape == (1, 7, 10)
    one = _random_dddm(1, 3, seed=3)
    assert one.residual(0.25).shape == (1, 1, 10)
    assert_same_variants(launches, dddm._AOT_VARIANTS)


def test_deform_applies_position_rotation_colour():
    cloud = from_primitive("sphere", 6, seed=0)
    d = DDDM.zeros(6, L=2)
    d.poly[:, 0, 0:3] = torch.tensor([0.2, 0.0, -0.4])  # constant: 0.2/2, -0.4/2
    d.poly[:, 1, 7] = 0.2  # red grows like t/2 * 0.2
    d.poly[:, 0, 3:7] = 2 * (torch.tensor([0.0, 0.0, 0.0, 1.0]) - cloud.quats)  # q + dq = z-flip
    out = deform(cloud, d, 0.5)
    torch.testing.assert_close(out.means, cloud.means + torch.tensor([0.1, 0.0, -0.2]))
    torch.testing.assert_close(out.quats, torch.tensor([[0.0, 0, 0, 1]]).expand(6, 4))
    torch.testing.assert_close(out.sh[:, 0, 0], cloud.sh[:, 0, 0] + 0.05 / SH_C0)
    torch.testing.assert_close(out.colors()[:, 0], cloud.colors()[:, 0] + 0.05)
    frames = deform(cloud, d, torch.tensor([0.0, 1.0]))
    assert isinstance(frames, list) and len(frames) == 2
    torch.testing.assert_close(frames[1].sh[:, 0, 0], cloud.sh[:, 0, 0] + 0.1 / SH_C0)
    assert torch.equal(frames[0].scales, cloud.scales)


def test_fit_lstsq_recovers_known_coefficients():
    n, L = 40, 3
    truth = _random_dddm(n, L, seed=3, canonical_form=True)
    times = torch.linspace(2.0, 4.0, 30)  # fit maps the clip to t' in [0, 1]: s = 0.5, o = -1
    truth.time_scale, truth.time_offset = 0.5, -1.0
    cloud = from_primitive("torus", n, seed=1)
    r = truth.residual(times)
    fit, stats = fit_dddm(
        times, cloud.means + r[..., 0:3], L=L, colors=cloud.colors() + r[..., 7:10],
        canonical=cloud,
    )
    assert fit.time_scale == pytest.approx(0.5) and fit.time_offset == pytest.approx(-1.0)
    for got, want in ((fit.poly, truth.poly), (fit.sin, truth.sin), (fit.cos, truth.cos)):
        torch.testing.assert_close(got[..., 0:3], want[..., 0:3], atol=2e-4, rtol=0)
        torch.testing.assert_close(got[..., 7:10], want[..., 7:10], atol=2e-4, rtol=0)
    assert stats["rmse"] < 1e-5 and stats["max_err"] < 5e-5 and stats["color_rmse"] < 1e-5
    # 30 frames x 6 floats over 3 * 3 * 10 coefficients + tau per Gaussian, + s and o
    assert stats["compression_ratio"] == pytest.approx(30 * n * 6 / (n * 91 + 2))
    # without a canonical cloud the residual is relative to the first frame
    fit0, _ = fit_dddm(times, cloud.means + r[..., 0:3], L=L)
    first = cloud.means + r[0, :, 0:3]
    frames = deform(dataclasses.replace(cloud, means=first), fit0, times)
    torch.testing.assert_close(frames[-1].means, cloud.means + r[-1, :, 0:3], atol=5e-5, rtol=0)


def test_fit_recovers_a_spin_through_quaternion_sign_flips():
    """Two turns about z over the clip: q(t') = (cos 2 pi t', 0, 0, sin 2 pi t'), which the
    Fourier term l = 1 holds exactly; the input is given with w >= 0 (signs flipped) as a
    simulator reports it, so the fit must undo the flips."""
    n, T, L = 4, 25, 3
    times = torch.linspace(0, 1, T)
    half = 2 * math.pi * times
    q = torch.stack([torch.cos(half), 0 * half, 0 * half, torch.sin(half)], -1)
    q = q[:, None].expand(T, n, 4).clone()
    q = torch.where(q[..., :1] < 0, -q, q)
    pos = torch.randn(n, 3).expand(T, n, 3)
    fit, stats = fit_dddm(times, pos, L=L, quats=q)
    assert stats["rot_max_err"] < 1e-3
    torch.testing.assert_close(fit.cos[:, 1, 3], torch.full((n,), float(L)), atol=1e-4, rtol=0)
    torch.testing.assert_close(fit.sin[:, 1, 6], torch.full((n,), float(L)), atol=1e-4, rtol=0)
    torch.testing.assert_close(fit.poly[:, 0, 3], torch.full((n,), -float(L)), atol=1e-4, rtol=0)


def test_fit_adam_keeps_exact_fit_and_rigidity_reduces_noise():
    torch.manual_seed(0)
    cloud = from_primitive("box", 80, seed=2, half_extents=(0.2, 0.1, 0.05))
    T = 16
    times = torch.linspace(0, 1, T)
    ang = 1.5 * times
    R = torch.zeros(T, 3, 3)
    R[:, 0, 0], R[:, 0, 1], R[:, 1, 0], R[:, 1, 1] = ang.cos(), -ang.sin(), ang.sin(), ang.cos()
    R[:, 2, 2] = 1
    drift = torch.stack([0.3 * times, 0 * times, -1.2 * times**2], -1)
    clean = torch.einsum("tij,nj->tni", R, cloud.means) + drift[:, None]
    noisy = clean + 0.01 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(1))

    def err(d: DDDM) -> float:
        pred = cloud.means + d.residual(times)[..., 0:3]
        return float((pred - clean).norm(dim=-1).square().mean().sqrt())

    lsq, _ = fit_dddm(times, noisy, canonical=cloud)
    adam_rigid, stats = fit_dddm(
        times, noisy, canonical=cloud, method="adam", rigidity=10.0, steps=200, lr=1e-3
    )
    assert err(adam_rigid) < 0.9 * err(lsq)  # neighbours agree, noise averages out
    assert stats["rmse"] < 0.03
    assert adam_rigid.tau.abs().max() > 0  # tau is optimised too
    exact, stats = fit_dddm(times, clean, canonical=cloud, method="adam", steps=50)
    assert stats["rmse"] < 1e-3


def test_dddm_file_round_trip(tmp_path):
    d = _random_dddm(9, 3, seed=4)
    save_dddm(d, tmp_path / "scene.dddm")  # written at exactly this name
    back = load_dddm(tmp_path / "scene.dddm")
    for name in ("poly", "sin", "cos", "tau"):
        assert torch.equal(getattr(back, name), getattr(d, name))
    assert (back.time_scale, back.time_offset) == (d.time_scale, d.time_offset)
    d.save(tmp_path / "again.npz")
    assert torch.equal(DDDM.load(tmp_path / "again.npz").poly, d.poly)
    assert back.num_params == 3 * 9 * 3 * 10 + 9 + 2
    np.savez(tmp_path / "bad.npz", poly=np.zeros((1, 3, 10)))
    with pytest.raises(ValueError, match=r"bad\.npz.*'format'"):
        load_dddm(tmp_path / "bad.npz")
    with pytest.raises(ValueError, match="DDDM.tau"):
        DDDM(d.poly, d.sin, d.cos, torch.zeros(3))
