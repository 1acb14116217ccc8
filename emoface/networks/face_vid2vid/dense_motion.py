"""3D dense motion network of face-vid2vid (public ``DenseMotionNetwork``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from emoface.networks.face_vid2vid.blocks import KP_VARIANCE, Hourglass, kp2gaussian, make_coordinate_grid

KeypointDict = Mapping[str, Tensor | None]
"""``{"value": (B, K, 3)}``, optionally ``"jacobian": (B, K, 3, 3)`` (or ``None``), as in the public code."""


def _batch_size(*sizes: int) -> int:
    """The common batch of tensors whose batch is 1 or N (broadcast like ``torch.broadcast_shapes``)."""
    n = max(sizes)
    if any(s not in (1, n) for s in sizes):
        raise ValueError(f"batch sizes {sizes} do not broadcast (each must be 1 or {n})")
    return n


class DenseMotionNetwork(nn.Module):
    """Dense 3D warp field and occlusion map from the source feature volume and two keypoint sets.

    For every keypoint k, a sparse motion maps driving-volume coordinates to source coordinates
    (``z - kp_driving_k + kp_source_k``, plus the identity for the background); the compressed
    source volume warped by each candidate and the keypoints' Gaussian heatmap differences feed a
    3D hourglass, whose softmax mask blends the K + 1 candidates into one dense warp.

    Everything about the source volume that does not depend on the keypoints (the 1x1 compression)
    is :meth:`compress_feature`; :meth:`forward_compressed` takes its result, so a video computes it
    once (see ``OcclusionAwareGenerator.encode_source``).

    Args:
        block_expansion: hourglass width.
        num_blocks: hourglass levels (H and W of the volume must be divisible by ``2**num_blocks``).
        max_features: hourglass width cap.
        num_kp: keypoints K.
        feature_channel: channels of the generator's feature volume.
        reshape_depth: depth D of the volume (the occlusion conv sees depth folded into channels).
        compress: channels of the compressed volume.
        estimate_occlusion_map: also predict a 2D occlusion map.
        mask_depth_kernel: depth of the mask conv's kernel (odd; public: 7, a 7x7x7 kernel). On a
            CPU the weight gradient of a 7-deep kernel on a shallow volume is pathologically slow
            (PyTorch 2.14's oneDNN, volume 8x56x4x16x16: 0.65 s against 0.05 s for a 3x7x7
            kernel, forward 0.03 s both, one thread), and on a volume 4 deep a depth of 3
            already spans it; ``configs/renderer_small.yaml`` sets 3.
    """

    def __init__(
        self,
        block_expansion: int = 32,
        num_blocks: int = 5,
        max_features: int = 1024,
        num_kp: int = 15,
        feature_channel: int = 32,
        reshape_depth: int = 16,
        compress: int = 4,
        estimate_occlusion_map: bool = True,
        mask_depth_kernel: int = 7,
    ) -> None:
        super().__init__()
        if mask_depth_kernel < 1 or mask_depth_kernel % 2 == 0:
            raise ValueError(f"mask_depth_kernel must be a positive odd number, got {mask_depth_kernel}")
        self.config: dict[str, Any] = {
            "block_expansion": block_expansion, "num_blocks": num_blocks, "max_features": max_features,
            "num_kp": num_kp, "feature_channel": feature_channel, "reshape_depth": reshape_depth,
            "compress": compress, "estimate_occlusion_map": estimate_occlusion_map,
            "mask_depth_kernel": mask_depth_kernel,
        }  # fmt: skip
        # Input per candidate: its heatmap difference (1 channel) and its warped volume (compress).
        self.hourglass = Hourglass(
            block_expansion=block_expansion,
            in_features=(num_kp + 1) * (compress + 1),
            max_features=max_features,
            num_blocks=num_blocks,
        )
        self.mask = nn.Conv3d(self.hourglass.out_filters, num_kp + 1, kernel_size=(mask_depth_kernel, 7, 7),
                              padding=(mask_depth_kernel // 2, 3, 3))
        self.compress = nn.Conv3d(feature_channel, compress, kernel_size=1)
        self.norm = nn.BatchNorm3d(compress, affine=True)
        self.occlusion: nn.Conv2d | None = None
        if estimate_occlusion_map:
            self.occlusion = nn.Conv2d(self.hourglass.out_filters * reshape_depth, 1, kernel_size=7, padding=3)
        self.num_kp = num_kp

    def compress_feature(self, feature: Tensor) -> Tensor:
        """The keypoint-independent part: 1x1 conv, BN, ReLU.

        Args:
            feature: ``(B, feature_channel, D, H, W)`` the generator's source volume.

        Returns:
            ``(B, compress, D, H, W)``.
        """
        return F.relu(self.norm(self.compress(feature)))

    def create_sparse_motions(
        self, spatial_size: tuple[int, int, int], batch: int, kp_driving: KeypointDict, kp_source: KeypointDict
    ) -> Tensor:
        """Candidate warps driving -> source: the identity (background) and one per keypoint.

        Returns:
            ``(N, K + 1, D, H, W, 3)`` source coordinates of each driving-volume point.
        """
        value_d, value_s = kp_driving["value"], kp_source["value"]
        d, h, w = spatial_size
        identity = make_coordinate_grid(spatial_size, value_s.dtype, value_s.device).view(1, 1, d, h, w, 3)
        coordinates = identity - value_d.view(value_d.shape[0], self.num_kp, 1, 1, 1, 3)  # (Bd, K, D, H, W, 3)
        jacobian_d = kp_driving.get("jacobian")
        if jacobian_d is not None:
            # Local affine motion around each keypoint: J_source @ J_driving^-1 (broadcast over the volume).
            jacobian = torch.matmul(kp_source["jacobian"], torch.inverse(jacobian_d))  # (N, K, 3, 3)
            jacobian = jacobian[:, :, None, None, None]  # (N, K, 1, 1, 1, 3, 3)
            coordinates = torch.matmul(jacobian, coordinates.unsqueeze(-1)).squeeze(-1)
        driving_to_source = coordinates + value_s.view(value_s.shape[0], self.num_kp, 1, 1, 1, 3)
        driving_to_source = driving_to_source.expand(batch, -1, -1, -1, -1, -1)
        return torch.cat([identity.expand(batch, 1, d, h, w, 3), driving_to_source], dim=1)

    def create_deformed_feature(self, feature: Tensor, sparse_motions: Tensor) -> Tensor:
        """The compressed volume warped by every candidate.

        Args:
            feature: ``(B, C, D, H, W)`` with B 1 or N.
            sparse_motions: ``(N, K + 1, D, H, W, 3)``.

        Returns:
            ``(N, K + 1, C, D, H, W)``.
        """
        n, k1, d, h, w, _ = sparse_motions.shape
        c = feature.shape[1]
        # One grid_sample over N * (K + 1) volumes; a batch-1 source is broadcast, not looped over.
        repeated = feature.unsqueeze(1).expand(n, k1, c, d, h, w).reshape(n * k1, c, d, h, w)
        deformed = F.grid_sample(repeated, sparse_motions.reshape(n * k1, d, h, w, 3), align_corners=False)
        return deformed.view(n, k1, c, d, h, w)

    @staticmethod
    def create_heatmap_representations(
        spatial_size: tuple[int, int, int], batch: int, kp_driving: KeypointDict, kp_source: KeypointDict
    ) -> Tensor:
        """Gaussian heatmap differences (driving - source), zeros for the background.

        Returns:
            ``(N, K + 1, 1, D, H, W)``.
        """
        heatmap = kp2gaussian(kp_driving["value"], spatial_size, KP_VARIANCE) - kp2gaussian(
            kp_source["value"], spatial_size, KP_VARIANCE
        )
        heatmap = heatmap.expand(batch, -1, -1, -1, -1)
        zeros = heatmap.new_zeros((batch, 1, *spatial_size))
        return torch.cat([zeros, heatmap], dim=1).unsqueeze(2)

    def forward(self, feature: Tensor, kp_driving: KeypointDict, kp_source: KeypointDict) -> dict[str, Tensor]:
        """Dense motion from the uncompressed source volume (the public signature).

        See :meth:`forward_compressed` for shapes.
        """
        return self.forward_compressed(self.compress_feature(feature), kp_driving, kp_source)

    def forward_compressed(
        self, compressed: Tensor, kp_driving: KeypointDict, kp_source: KeypointDict
    ) -> dict[str, Tensor]:
        """Dense motion from a precomputed :meth:`compress_feature` result.

        Batches broadcast: the volume, the driving and the source keypoints each have batch 1 or N
        (one source image driving N frames: volume and source keypoints of batch 1).

        Args:
            compressed: ``(B, compress, D, H, W)``.
            kp_driving: ``{"value": (N, K, 3)}`` (optionally ``"jacobian"``).
            kp_source: ``{"value": (B', K, 3)}`` (optionally ``"jacobian"``).

        Returns:
            ``"mask"``: ``(N, K + 1, D, H, W)`` softmax over the candidates;
            ``"deformation"``: ``(N, D, H, W, 3)`` source coordinates (``grid_sample`` grid);
            ``"occlusion_map"``: ``(N, 1, H, W)`` in (0, 1), when estimated.
        """
        _, _, d, h, w = compressed.shape
        spatial = (d, h, w)
        n = _batch_size(compressed.shape[0], kp_driving["value"].shape[0], kp_source["value"].shape[0])

        sparse_motion = self.create_sparse_motions(spatial, n, kp_driving, kp_source)  # (N, K+1, D, H, W, 3)
        deformed_feature = self.create_deformed_feature(compressed, sparse_motion)  # (N, K+1, C, D, H, W)
        heatmap = self.create_heatmap_representations(spatial, n, kp_driving, kp_source)  # (N, K+1, 1, D, H, W)
        hourglass_in = torch.cat([heatmap, deformed_feature], dim=2).view(n, -1, d, h, w)
        prediction = self.hourglass(hourglass_in)  # (N, F, D, H, W)

        mask = F.softmax(self.mask(prediction), dim=1)  # (N, K+1, D, H, W)
        out = {"mask": mask}
        motion = sparse_motion.permute(0, 1, 5, 2, 3, 4)  # (N, K+1, 3, D, H, W)
        deformation = (motion * mask.unsqueeze(2)).sum(dim=1)  # (N, 3, D, H, W)
        out["deformation"] = deformation.permute(0, 2, 3, 4, 1)  # (N, D, H, W, 3)
        if self.occlusion is not None:
            # Depth folded into channels: the occlusion map is 2D.
            out["occlusion_map"] = torch.sigmoid(self.occlusion(prediction.reshape(n, -1, h, w)))
        return out
