"""Random smooth image warps for the renderer's equivariance loss (affine + thin-plate spline).

A :class:`RandomTPS` draws, per batch item, an affine map near the identity plus a thin-plate
spline perturbation on a grid of control points (the FOMM / face-vid2vid equivariance
transform). Coordinates are ``grid_sample``'s: x, y in ``[-1, 1]``, x to the right, y down.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def coordinate_grid_2d(height: int, width: int, device: torch.device | None = None,
                       dtype: torch.dtype = torch.float32) -> Tensor:  # fmt: skip
    """Pixel-centre coordinates in ``[-1, 1]``: ``(H, W, 2)`` with ``[..., 0] = x``, ``[..., 1] = y``."""
    y = torch.linspace(-1.0, 1.0, height, device=device, dtype=dtype)
    x = torch.linspace(-1.0, 1.0, width, device=device, dtype=dtype)
    yy, xx = torch.meshgrid(y, x, indexing="ij")
    return torch.stack([xx, yy], -1)


class RandomTPS:
    """A random affine + TPS warp per batch item.

    Args:
        batch: number of warps ``B``.
        sigma_affine: std of the affine matrix's deviation from the identity.
        sigma_tps: std of the TPS control-point weights (0 or ``points_tps=0``: affine only).
        points_tps: control points per side.
        generator: random generator (``None``: torch's global one).
        device, dtype: of the parameters.
    """

    def __init__(
        self,
        batch: int,
        sigma_affine: float = 0.05,
        sigma_tps: float = 0.005,
        points_tps: int = 5,
        generator: torch.Generator | None = None,
        device: torch.device | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        noise = torch.randn(batch, 2, 3, generator=generator) * sigma_affine
        self.theta = (noise + torch.eye(2, 3)).to(device=device, dtype=dtype)  # (B, 2, 3)
        self.control_points = None
        if sigma_tps > 0 and points_tps > 0:
            grid = coordinate_grid_2d(points_tps, points_tps, device=device, dtype=dtype)
            self.control_points = grid.reshape(1, 1, -1, 2)  # (1, 1, P, 2)
            weights = torch.randn(batch, 1, points_tps**2, generator=generator) * sigma_tps
            self.control_weights = weights.to(device=device, dtype=dtype)  # (B, 1, P)

    def warp_coordinates(self, coordinates: Tensor) -> Tensor:
        """Warp points ``(B, N, 2)`` -> ``(B, N, 2)``."""
        linear, offset = self.theta[:, None, :, :2], self.theta[:, None, :, 2]
        warped = (linear @ coordinates.unsqueeze(-1)).squeeze(-1) + offset
        if self.control_points is not None:
            # Radial basis r^2 log r with the L1 distance to each control point (as FOMM does).
            distance = (coordinates.unsqueeze(-2) - self.control_points).abs().sum(-1)  # (B, N, P)
            basis = distance.pow(2) * torch.log(distance + 1e-6)
            warped = warped + (basis * self.control_weights).sum(-1, keepdim=True)
        return warped

    def warp_images(self, images: Tensor) -> Tensor:
        """Resample ``(B, C, H, W)`` images at the warped pixel grid (reflection at the borders)."""
        b, _, h, w = images.shape
        grid = coordinate_grid_2d(h, w, images.device, images.dtype).reshape(1, h * w, 2).expand(b, -1, -1)
        grid = self.warp_coordinates(grid).reshape(b, h, w, 2)
        return F.grid_sample(images, grid, padding_mode="reflection", align_corners=True)
