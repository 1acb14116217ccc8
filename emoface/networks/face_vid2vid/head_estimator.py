"""Head pose and expression estimator of face-vid2vid (public ``HEEstimator``)."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from emoface.networks.face_vid2vid.blocks import ResBottleneck, convolve_channels_last_on_cpu

STAGE_BLOCKS = (3, 3, 5, 2)
"""Stride-1 bottlenecks after the stem and after each of the three stride-2 transitions."""


class HeadExpressionEstimator(nn.Module):
    """Head pose (yaw, pitch, roll as 66 bins of 3 degrees), translation and expression deltas.

    A ResNet-50-like trunk (7x7/2 stem, max-pool, bottleneck stages of widths
    ``max_features / 8, / 4, / 2, / 1``), global average pooling and five linear heads. The public
    code hardcodes the stage widths 256, 512, 1024, 2048, which are these with its
    ``max_features`` 2048; deriving them lets a tiny estimator run in tests.

    The state dict matches the public checkpoints' ``he_estimator`` entry (402 keys, 30.3M
    parameters at the vox-256 defaults).

    Args:
        block_expansion: stem width.
        feature_channel: unused (the public constructor takes it from the shared config).
        num_kp: keypoints K (the expression head has ``3K`` outputs).
        image_channel: image channels.
        max_features: width of the last stage (divisible by 32).
        num_bins: bins per angle.
        estimate_jacobian: unused (public signature).
    """

    def __init__(
        self,
        block_expansion: int = 64,
        feature_channel: int = 32,
        num_kp: int = 15,
        image_channel: int = 3,
        max_features: int = 2048,
        num_bins: int = 66,
        estimate_jacobian: bool = True,
    ) -> None:
        super().__init__()
        self.config: dict[str, Any] = {
            "block_expansion": block_expansion, "feature_channel": feature_channel, "num_kp": num_kp,
            "image_channel": image_channel, "max_features": max_features, "num_bins": num_bins,
        }  # fmt: skip
        if max_features % 32:
            raise ValueError(f"max_features must be divisible by 32 (stage widths / 8 / 4), got {max_features}")
        w1, w2, w3, w4 = (max_features // 8, max_features // 4, max_features // 2, max_features)
        n1, n3, n5, n7 = STAGE_BLOCKS

        self.conv1 = nn.Conv2d(image_channel, block_expansion, kernel_size=7, padding=3, stride=2)
        self.norm1 = nn.BatchNorm2d(block_expansion, affine=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

        self.conv2 = nn.Conv2d(block_expansion, w1, kernel_size=1)
        self.norm2 = nn.BatchNorm2d(w1, affine=True)
        self.block1 = nn.Sequential()
        for i in range(n1):
            self.block1.add_module(f"b1_{i}", ResBottleneck(w1, stride=1))

        self.conv3 = nn.Conv2d(w1, w2, kernel_size=1)
        self.norm3 = nn.BatchNorm2d(w2, affine=True)
        self.block2 = ResBottleneck(w2, stride=2)
        self.block3 = nn.Sequential()
        for i in range(n3):
            self.block3.add_module(f"b3_{i}", ResBottleneck(w2, stride=1))

        self.conv4 = nn.Conv2d(w2, w3, kernel_size=1)
        self.norm4 = nn.BatchNorm2d(w3, affine=True)
        self.block4 = ResBottleneck(w3, stride=2)
        self.block5 = nn.Sequential()
        for i in range(n5):
            self.block5.add_module(f"b5_{i}", ResBottleneck(w3, stride=1))

        self.conv5 = nn.Conv2d(w3, w4, kernel_size=1)
        self.norm5 = nn.BatchNorm2d(w4, affine=True)
        self.block6 = ResBottleneck(w4, stride=2)
        self.block7 = nn.Sequential()
        for i in range(n7):
            self.block7.add_module(f"b7_{i}", ResBottleneck(w4, stride=1))

        self.fc_roll = nn.Linear(w4, num_bins)
        self.fc_pitch = nn.Linear(w4, num_bins)
        self.fc_yaw = nn.Linear(w4, num_bins)
        self.fc_t = nn.Linear(w4, 3)
        self.fc_exp = nn.Linear(w4, 3 * num_kp)
        convolve_channels_last_on_cpu(self)

    def features(self, image: Tensor) -> Tensor:
        """Pooled trunk features.

        Args:
            image: ``(B, C, H, W)`` in [0, 1].

        Returns:
            ``(B, max_features)``.
        """
        out = self.maxpool(F.relu(self.norm1(self.conv1(image))))
        out = self.block1(F.relu(self.norm2(self.conv2(out))))
        out = self.block3(self.block2(F.relu(self.norm3(self.conv3(out)))))
        out = self.block5(self.block4(F.relu(self.norm4(self.conv4(out)))))
        out = self.block7(self.block6(F.relu(self.norm5(self.conv5(out)))))
        return F.adaptive_avg_pool2d(out, 1).flatten(1)

    def forward(self, image: Tensor) -> dict[str, Tensor]:
        """Raw head estimates.

        Args:
            image: ``(B, C, H, W)`` in [0, 1].

        Returns:
            ``{"yaw", "pitch", "roll": (B, num_bins)`` raw bin logits (degrees with
            :func:`emoface.geometry.keypoints.bins_to_degrees`), ``"t": (B, 3)``,
            ``"exp": (B, 3K)}``.
        """
        out = self.features(image)
        # Quirk of the public code, kept because the checkpoints were trained with it: the value
        # returned as "yaw" comes from the layer named fc_roll and "roll" from fc_yaw. The layer
        # names must stay as they are for the state dict to load.
        return {
            "yaw": self.fc_roll(out),
            "pitch": self.fc_pitch(out),
            "roll": self.fc_yaw(out),
            "t": self.fc_t(out),
            "exp": self.fc_exp(out),
        }
