"""LivePortrait's warping network (W): dense 3D motion from two keypoint sets, occlusion, and the
warped appearance volume folded into 2D features for the decoder.

The state dict matches the public ``warping_module.pth`` (45.5M parameters at the public sizes):
``dense_motion_network.{hourglass, mask, compress, norm, occlusion}``, ``third``, ``fourth``.
Unlike face-vid2vid's, the motion uses no jacobians and the warp field has the volume's own size.

Inference for a video splits in two, as :mod:`emoface.rendering` uses it: what depends on the
source only (:meth:`WarpingNetwork.encode_source`: the dense motion network's compressed copy of
the appearance volume) is computed once, then :meth:`WarpingNetwork.warp` runs per batch of
driving keypoints with the batch-1 source broadcast.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from emoface.networks.face_vid2vid.blocks import KP_VARIANCE, Hourglass, SameBlock2d, kp2gaussian, make_coordinate_grid
from emoface.networks.live_portrait.keypoints import NUM_KP

PUBLIC_DENSE_MOTION: Mapping[str, Any] = {
    "block_expansion": 32,
    "max_features": 1024,
    "num_blocks": 5,
    "reshape_depth": 16,
    "compress": 4,
}
"""``warping_module_params.dense_motion_params`` of the public ``models.yaml``."""


def _broadcast(tensor: Tensor, n: int) -> Tensor:
    """``(1 or n, ...)`` -> ``(n, ...)``."""
    if tensor.shape[0] not in (1, n):
        raise ValueError(f"batch {tensor.shape[0]} does not broadcast to {n}")
    return tensor.expand(n, *tensor.shape[1:])


class LivePortraitDenseMotion(nn.Module):
    """Dense warp field and occlusion map from the appearance volume and two keypoint sets.

    For each keypoint k a sparse motion maps volume coordinates ``z`` to ``z - kp_driving_k +
    kp_source_k`` (plus the identity for the background); the compressed volume warped by each,
    with the keypoints' Gaussian heatmap differences, feeds a 3D hourglass whose softmax mask
    blends the ``K + 1`` candidates into one field.

    Args:
        block_expansion, num_blocks, max_features: the hourglass (H and W of the volume must be
            divisible by ``2**num_blocks``).
        num_kp: keypoints K.
        feature_channel: channels of the appearance volume.
        reshape_depth: its depth D (the occlusion conv folds depth into channels).
        compress: channels of the compressed volume.
        estimate_occlusion_map: predict an occlusion map.
    """

    def __init__(
        self,
        block_expansion: int,
        num_blocks: int,
        max_features: int,
        num_kp: int,
        feature_channel: int,
        reshape_depth: int,
        compress: int,
        estimate_occlusion_map: bool = True,
    ) -> None:
        super().__init__()
        self.hourglass = Hourglass(block_expansion, (num_kp + 1) * (compress + 1), num_blocks, max_features)
        self.mask = nn.Conv3d(self.hourglass.out_filters, num_kp + 1, kernel_size=7, padding=3)
        self.compress = nn.Conv3d(feature_channel, compress, kernel_size=1)
        self.norm = nn.BatchNorm3d(compress, affine=True)
        self.num_kp = num_kp
        self.occlusion = (
            nn.Conv2d(self.hourglass.out_filters * reshape_depth, 1, kernel_size=7, padding=3)
            if estimate_occlusion_map else None
        )  # fmt: skip

    def compress_feature(self, feature: Tensor) -> Tensor:
        """``(B, C, D, H, W)`` -> ``(B, compress, D, H, W)`` (1x1 conv, BN, ReLU): source-only work."""
        return F.relu(self.norm(self.compress(feature)))

    def forward_compressed(self, compressed: Tensor, kp_driving: Tensor, kp_source: Tensor) -> dict[str, Tensor]:
        """The dense motion for N driving keypoint sets.

        Args:
            compressed: ``(1 or N, c, D, H, W)`` from :meth:`compress_feature`.
            kp_driving: ``(N, K, 3)``.
            kp_source: ``(1 or N, K, 3)``.

        Returns:
            ``"mask"`` ``(N, K + 1, D, H, W)``, ``"deformation"`` ``(N, D, H, W, 3)``,
            ``"occlusion_map"`` ``(N, 1, H, W)`` (when estimated).
        """
        n, k = kp_driving.shape[:2]
        compressed, kp_source = _broadcast(compressed, n), _broadcast(kp_source, n)
        _, c, d, h, w = compressed.shape
        grid = make_coordinate_grid((d, h, w), kp_driving.dtype, kp_driving.device).view(1, 1, d, h, w, 3)
        shifts = (kp_source - kp_driving).view(n, k, 1, 1, 1, 3)
        sparse_motion = torch.cat([grid.expand(n, 1, d, h, w, 3), grid + shifts], dim=1)  # (N, K+1, D, H, W, 3)
        deformed = F.grid_sample(
            compressed.unsqueeze(1).expand(n, k + 1, c, d, h, w).reshape(n * (k + 1), c, d, h, w),
            sparse_motion.reshape(n * (k + 1), d, h, w, 3), align_corners=False,
        ).view(n, k + 1, c, d, h, w)  # fmt: skip
        heatmap = kp2gaussian(kp_driving, (d, h, w), KP_VARIANCE) - kp2gaussian(kp_source, (d, h, w), KP_VARIANCE)
        heatmap = torch.cat([heatmap.new_zeros(n, 1, d, h, w), heatmap], dim=1).unsqueeze(2)  # (N, K+1, 1, D, H, W)
        prediction = self.hourglass(torch.cat([heatmap, deformed], dim=2).view(n, -1, d, h, w))
        mask = F.softmax(self.mask(prediction), dim=1)  # (N, K+1, D, H, W)
        deformation = (sparse_motion.permute(0, 1, 5, 2, 3, 4) * mask.unsqueeze(2)).sum(dim=1)  # (N, 3, D, H, W)
        out = {"mask": mask, "deformation": deformation.permute(0, 2, 3, 4, 1)}
        if self.occlusion is not None:
            out["occlusion_map"] = torch.sigmoid(self.occlusion(prediction.reshape(n, -1, h, w)))
        return out

    def forward(self, feature: Tensor, kp_driving: Tensor, kp_source: Tensor) -> dict[str, Tensor]:
        """The public call: :meth:`forward_compressed` of :meth:`compress_feature`."""
        return self.forward_compressed(self.compress_feature(feature), kp_driving, kp_source)


class WarpingNetwork(nn.Module):
    """LivePortrait's warping module (W).

    Args:
        num_kp: keypoints K.
        block_expansion: with ``num_down_blocks``, the output width ``block_expansion * 2**num_down_blocks``.
        max_features: channels of the folded volume (``C * D``).
        num_down_blocks: as the appearance extractor's.
        reshape_channel: channels C of the appearance volume.
        estimate_occlusion_map: mask the features by a predicted occlusion map.
        dense_motion_params: the dense motion network's ``block_expansion``, ``max_features``,
            ``num_blocks``, ``reshape_depth``, ``compress`` (``None``: :data:`PUBLIC_DENSE_MOTION`).

    Shapes: volume ``(B, 32, 16, 64, 64)`` and keypoints ``(B, 21, 3)`` -> features
    ``(B, 256, 64, 64)`` at the public sizes.
    """

    def __init__(
        self,
        num_kp: int = NUM_KP,
        block_expansion: int = 64,
        max_features: int = 512,
        num_down_blocks: int = 2,
        reshape_channel: int = 32,
        estimate_occlusion_map: bool = True,
        dense_motion_params: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        motion = dict(PUBLIC_DENSE_MOTION if dense_motion_params is None else dense_motion_params)
        self.config: dict[str, Any] = {
            "num_kp": num_kp, "block_expansion": block_expansion, "max_features": max_features,
            "num_down_blocks": num_down_blocks, "reshape_channel": reshape_channel,
            "estimate_occlusion_map": estimate_occlusion_map, "dense_motion_params": motion,
        }  # fmt: skip
        self.dense_motion_network = LivePortraitDenseMotion(
            num_kp=num_kp, feature_channel=reshape_channel, estimate_occlusion_map=estimate_occlusion_map, **motion
        )
        self.out_features = block_expansion * 2**num_down_blocks
        self.third = SameBlock2d(max_features, self.out_features, kernel_size=(3, 3), padding=(1, 1), lrelu=True)
        self.fourth = nn.Conv2d(self.out_features, self.out_features, kernel_size=1, stride=1)

    def encode_source(self, feature_3d: Tensor) -> dict[str, Tensor]:
        """What a source contributes to every frame: ``"feature_3d"`` (the appearance volume) and
        ``"compressed"`` (the dense motion network's copy of it)."""
        return {"feature_3d": feature_3d, "compressed": self.dense_motion_network.compress_feature(feature_3d)}

    def warp(self, source: Mapping[str, Tensor], kp_source: Tensor, kp_driving: Tensor) -> dict[str, Tensor]:
        """Warped decoder features for N driving keypoint sets.

        Args:
            source: :meth:`encode_source` output (batch 1, broadcast, or N).
            kp_source: ``(1 or N, K, 3)``.
            kp_driving: ``(N, K, 3)``.

        Returns:
            ``"out"`` ``(N, out_features, H, W)``, ``"deformation"``, ``"occlusion_map"``, ``"mask"``.
        """
        motion = self.dense_motion_network.forward_compressed(source["compressed"], kp_driving, kp_source)
        feature_3d = _broadcast(source["feature_3d"], kp_driving.shape[0])
        out = F.grid_sample(feature_3d, motion["deformation"], align_corners=False)
        n, c, d, h, w = out.shape
        out = self.fourth(self.third(out.view(n, c * d, h, w)))
        if "occlusion_map" in motion:
            out = out * motion["occlusion_map"]
        return {**motion, "out": out}

    def forward(self, feature_3d: Tensor, kp_driving: Tensor, kp_source: Tensor) -> dict[str, Tensor]:
        """The public call (``feature_3d (B, C, D, H, W)``, keypoints ``(B, K, 3)``)."""
        return self.warp(self.encode_source(feature_3d), kp_source, kp_driving)
