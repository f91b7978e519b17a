"""A 3DGS ``.ply`` written here by an independent writer (plain numpy, the standard field names and
order of the original 3D Gaussian Splatting code) renders the same as the same Gaussians built in
code from the raw arrays, activated here (sigmoid opacity, exp scales, normalised quaternions)."""

from __future__ import annotations

import numpy as np
import torch

from rendiff.engine.camera import look_at
from rendiff.engine.gaussians import GaussianCloud, load_ply
from rendiff.kernels.gaussian_raster import rasterize_gaussians

DEGREE = 3
K_SH = (DEGREE + 1) ** 2


def _write_3dgs_ply(path, xyz, dc, rest, logit, log_scale, rot) -> None:
    """The layout 3DGS's ``save_ply`` writes: x y z nx ny nz f_dc_0..2 f_rest_0..44 opacity
    scale_0..2 rot_0..3, float32, binary little-endian; f_rest channel-major."""
    n = xyz.shape[0]
    names = (["x", "y", "z", "nx", "ny", "nz"] + [f"f_dc_{i}" for i in range(3)]
             + [f"f_rest_{i}" for i in range(3 * (K_SH - 1))] + ["opacity"]
             + [f"scale_{i}" for i in range(3)] + [f"rot_{i}" for i in range(4)])
    rest_flat = rest.transpose(0, 2, 1).reshape(n, -1)  # [N, channel, coeff] -> channel-major
    table = np.concatenate([xyz, np.zeros((n, 3)), dc, rest_flat, logit[:, None], log_scale,
                            rot], axis=1).astype("<f4")
    assert table.shape[1] == len(names)
    header = f"ply\nformat binary_little_endian 1.0\nelement vertex {n}\n"
    header += "".join(f"property float {name}\n" for name in names) + "end_header\n"
    path.write_bytes(header.encode("ascii") + table.tobytes())


def test_independent_ply_renders_like_the_cloud_built_in_code(tmp_path):
    rng = np.random.default_rng(11)
    n = 300
    xyz = rng.normal(size=(n, 3)) * 0.4
    dc = rng.normal(size=(n, 3)) * 1.2
    rest = rng.normal(size=(n, K_SH - 1, 3)) * 0.15  # [N, coefficient, channel]
    logit = rng.normal(size=n) * 2
    log_scale = rng.normal(size=(n, 3)) * 0.4 - 3.5
    rot = rng.normal(size=(n, 4)) * 3.0  # unnormalised, as 3DGS stores them
    path = tmp_path / "point_cloud.ply"
    _write_3dgs_ply(path, xyz, dc, rest, logit, log_scale, rot)

    f32 = np.float32  # the file holds float32: activate the float32 values
    sh = np.concatenate([dc.astype(f32)[:, None, :], rest.astype(f32)], axis=1)
    rot32 = rot.astype(f32).astype(np.float64)
    code = GaussianCloud(
        means=torch.from_numpy(xyz.astype(f32)),
        quats=torch.from_numpy((rot32 / np.linalg.norm(rot32, axis=1, keepdims=True)).astype(f32)),
        scales=torch.from_numpy(np.exp(log_scale.astype(f32).astype(np.float64)).astype(f32)),
        opacities=torch.from_numpy((1 / (1 + np.exp(-logit.astype(f32).astype(np.float64))))
                                   .astype(f32)),
        sh=torch.from_numpy(sh),
    )
    loaded = load_ply(path)
    assert loaded.sh_degree == DEGREE and len(loaded) == n

    viewmat = look_at(torch.tensor([1.2, -2.0, 0.8]), torch.zeros(3), torch.tensor([0.0, 0, 1]))
    K = torch.tensor([[90.0, 0, 48.0], [0, 90.0, 40.0], [0, 0, 1]])
    out = [rasterize_gaussians(c.means, c.quats, c.scales, c.opacities, c.sh, viewmat, K, 96, 80,
                               sh_degree=DEGREE) for c in (loaded, code)]
    a, b = out
    assert a.alpha.max() > 0.9 and (a.alpha > 0.1).float().mean() > 0.1  # something was drawn
    torch.testing.assert_close(a.color, b.color, atol=1e-5, rtol=0)
    torch.testing.assert_close(a.alpha, b.alpha, atol=1e-5, rtol=0)
    torch.testing.assert_close(a.depth, b.depth, atol=1e-5, rtol=1e-5)
    assert torch.equal(a.ids, b.ids)
