"""Canonical 3D keypoint detector of face-vid2vid (public ``KPDetector``)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from emoface.networks.face_vid2vid.blocks import (
    AntiAliasInterpolation2d,
    KPHourglass,
    convolve_channels_last_on_cpu,
    make_coordinate_grid,
)


class CanonicalKeypointDetector(nn.Module):
    """Identity-specific canonical keypoints from one image.

    A 2D encoder turns the (downscaled) image into a 3D feature volume; a 3x3x3 conv predicts one
    heatmap per keypoint; each keypoint is the expectation of the grid coordinates under its
    heatmap's softmax (temperature ``temperature``), so it lies in ``[-1, 1]^3``.

    Defaults are the vox-256 sizes; the state dict matches the public checkpoints' ``kp_detector``
    entry (75 keys, 41.9M parameters, with the blur buffer ``down.weight`` (3, 1, 13, 13)).

    Args:
        block_expansion: width of the first encoder block (doubling per block).
        feature_channel: unused (the public constructor takes it from the shared config).
        num_kp: keypoints K.
        image_channel: image channels.
        max_features: width cap of the encoder / decoder blocks.
        reshape_channel: channels of the 2D bottleneck conv, viewed as
            ``(reshape_channel / reshape_depth, reshape_depth)``; must equal
            ``min(max_features, block_expansion * 2**num_blocks) * reshape_depth``.
        reshape_depth: depth D of the 3D volume.
        num_blocks: encoder (and decoder) blocks.
        temperature: softmax temperature of the heatmaps.
        estimate_jacobian: also predict a 3x3 Jacobian per keypoint (not used by vox-256).
        scale_factor: the image is blurred and downscaled by this factor first (0.25: 256 -> 64).
        single_jacobian_map: one Jacobian map shared by all keypoints.
    """

    def __init__(
        self,
        block_expansion: int = 32,
        feature_channel: int = 32,
        num_kp: int = 15,
        image_channel: int = 3,
        max_features: int = 1024,
        reshape_channel: int = 16384,
        reshape_depth: int = 16,
        num_blocks: int = 5,
        temperature: float = 0.1,
        estimate_jacobian: bool = False,
        scale_factor: float = 0.25,
        single_jacobian_map: bool = False,
    ) -> None:
        super().__init__()
        self.config: dict[str, Any] = {
            "block_expansion": block_expansion, "feature_channel": feature_channel, "num_kp": num_kp,
            "image_channel": image_channel, "max_features": max_features, "reshape_channel": reshape_channel,
            "reshape_depth": reshape_depth, "num_blocks": num_blocks, "temperature": temperature,
            "estimate_jacobian": estimate_jacobian, "scale_factor": scale_factor,
            "single_jacobian_map": single_jacobian_map,
        }  # fmt: skip
        bottleneck = min(max_features, block_expansion * 2**num_blocks)
        if reshape_channel != bottleneck * reshape_depth:
            raise ValueError(
                f"reshape_channel ({reshape_channel}) must be min(max_features, block_expansion * 2**num_blocks) "
                f"* reshape_depth = {bottleneck} * {reshape_depth} = {bottleneck * reshape_depth}"
            )
        self.num_kp = num_kp
        self.predictor = KPHourglass(
            block_expansion,
            in_features=image_channel,
            max_features=max_features,
            reshape_features=reshape_channel,
            reshape_depth=reshape_depth,
            num_blocks=num_blocks,
        )
        self.kp = nn.Conv3d(self.predictor.out_filters, num_kp, kernel_size=3, padding=1)
        self.jacobian: nn.Conv3d | None = None
        if estimate_jacobian:
            self.num_jacobian_maps = 1 if single_jacobian_map else num_kp
            self.jacobian = nn.Conv3d(self.predictor.out_filters, 9 * self.num_jacobian_maps, kernel_size=3, padding=1)
            # Start from identity Jacobians.
            with torch.no_grad():
                self.jacobian.weight.zero_()
                self.jacobian.bias.copy_(torch.eye(3).flatten().repeat(self.num_jacobian_maps))
        self.temperature = temperature
        self.scale_factor = scale_factor
        if scale_factor != 1:
            self.down = AntiAliasInterpolation2d(image_channel, scale_factor)
        convolve_channels_last_on_cpu(self)

    @staticmethod
    def heatmap_to_keypoints(heatmap: Tensor) -> Tensor:
        """Expected grid coordinates under normalised heatmaps.

        Args:
            heatmap: ``(B, K, D, H, W)``, each summing to 1.

        Returns:
            ``(B, K, 3)`` keypoints ``(x, y, z)``.
        """
        grid = make_coordinate_grid(heatmap.shape[2:], heatmap.dtype, heatmap.device)  # (D, H, W, 3)
        return (heatmap.unsqueeze(-1) * grid).sum(dim=(2, 3, 4))

    def forward(self, image: Tensor) -> dict[str, Tensor]:
        """Canonical keypoints.

        Args:
            image: ``(B, C, H, W)`` in [0, 1]; ``H * scale_factor`` and ``W * scale_factor`` must be
                divisible by ``2**num_blocks``.

        Returns:
            ``{"value": (B, K, 3)}`` in ``[-1, 1]^3``, plus ``"jacobian": (B, K, 3, 3)`` when
            ``estimate_jacobian``.
        """
        if self.scale_factor != 1:
            image = self.down(image)
        feature_map = self.predictor(image)  # (B, C, D, H', W')
        prediction = self.kp(feature_map)  # (B, K, D, H', W')
        shape = prediction.shape
        heatmap = F.softmax(prediction.view(shape[0], shape[1], -1) / self.temperature, dim=2).view(shape)
        out = {"value": self.heatmap_to_keypoints(heatmap)}
        if self.jacobian is not None:
            jacobian_map = self.jacobian(feature_map).reshape(shape[0], self.num_jacobian_maps, 9, *shape[2:])
            jacobian = (heatmap.unsqueeze(2) * jacobian_map).view(shape[0], shape[1], 9, -1).sum(dim=-1)
            out["jacobian"] = jacobian.view(shape[0], shape[1], 3, 3)
        return out
