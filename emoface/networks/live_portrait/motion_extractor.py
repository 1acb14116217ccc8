"""LivePortrait's motion extractor (M): a ConvNeXt-V2 regressor of canonical keypoints, head pose
(66-bin pitch, yaw, roll), translation, expression deltas and scale from one image.

The state dict matches the public ``motion_extractor.pth``: everything under ``detector.`` (the
public ``MotionExtractor`` wraps the backbone in that attribute), a ConvNeXt-V2-tiny backbone
(depths 3, 3, 9, 3; widths 96, 192, 384, 768) and the heads ``fc_kp``, ``fc_scale``,
``fc_pitch``, ``fc_yaw``, ``fc_roll``, ``fc_t``, ``fc_exp`` (28.1M parameters).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from emoface.networks.live_portrait.keypoints import NUM_BINS, NUM_KP

CONVNEXTV2_TINY = {"depths": (3, 3, 9, 3), "dims": (96, 192, 384, 768)}
"""The public backbone's sizes (``convnextv2_tiny``)."""


class ChannelsFirstLayerNorm(nn.Module):
    """Layer norm over the channels of ``(B, C, H, W)`` (ConvNeXt's ``channels_first`` form).

    Parameters ``weight`` and ``bias`` of shape ``(C,)``; biased variance, ``eps`` inside the root.
    """

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class GRN(nn.Module):
    """Global response normalisation of ConvNeXt-V2 on ``(B, H, W, C)``.

    ``gamma * (x * N(x)) + beta + x`` with ``N(x) = |x|_HW / mean_C(|x|_HW)``; parameters
    ``gamma``, ``beta`` of shape ``(1, 1, 1, C)``.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, 1, 1, dim))
        self.beta = nn.Parameter(torch.zeros(1, 1, 1, dim))

    def forward(self, x: Tensor) -> Tensor:
        gx = torch.norm(x, p=2, dim=(1, 2), keepdim=True)
        nx = gx / (gx.mean(dim=-1, keepdim=True) + 1e-6)
        return self.gamma * (x * nx) + self.beta + x


class ConvNeXtV2Block(nn.Module):
    """7x7 depthwise conv, layer norm, 4x MLP with GELU and GRN, residual (inference: no drop path).

    Shapes: ``(B, C, H, W) -> (B, C, H, W)``.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)  # channels last; weight / bias as ConvNeXt saves them
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.grn = GRN(4 * dim)
        self.pwconv2 = nn.Linear(4 * dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        out = self.dwconv(x).permute(0, 2, 3, 1)  # (B, H, W, C)
        out = self.pwconv2(self.grn(self.act(self.pwconv1(self.norm(out)))))
        return x + out.permute(0, 3, 1, 2)


class ConvNeXtV2Regressor(nn.Module):
    """ConvNeXt-V2 backbone with LivePortrait's motion heads (the public ``ConvNeXtV2`` as built by
    its ``MotionExtractor``).

    Args:
        in_chans: image channels.
        depths: blocks per stage.
        dims: widths per stage.
        num_kp: keypoints K (``fc_kp`` and ``fc_exp`` have ``3K`` outputs).
        num_bins: bins per angle.
    """

    def __init__(
        self,
        in_chans: int = 3,
        depths: Sequence[int] = CONVNEXTV2_TINY["depths"],
        dims: Sequence[int] = CONVNEXTV2_TINY["dims"],
        num_kp: int = NUM_KP,
        num_bins: int = NUM_BINS,
    ) -> None:
        super().__init__()
        if len(depths) != 4 or len(dims) != 4:
            raise ValueError(f"ConvNeXt-V2 has 4 stages: got depths {list(depths)}, dims {list(dims)}")
        stem = nn.Sequential(nn.Conv2d(in_chans, dims[0], kernel_size=4, stride=4), ChannelsFirstLayerNorm(dims[0]))
        self.downsample_layers = nn.ModuleList([stem])
        for i in range(3):
            self.downsample_layers.append(
                nn.Sequential(ChannelsFirstLayerNorm(dims[i]), nn.Conv2d(dims[i], dims[i + 1], kernel_size=2, stride=2))
            )
        self.stages = nn.ModuleList(nn.Sequential(*(ConvNeXtV2Block(dims[i]) for _ in range(depths[i]))) for i in range(4))
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.fc_kp = nn.Linear(dims[-1], 3 * num_kp)
        self.fc_scale = nn.Linear(dims[-1], 1)
        self.fc_pitch = nn.Linear(dims[-1], num_bins)
        self.fc_yaw = nn.Linear(dims[-1], num_bins)
        self.fc_roll = nn.Linear(dims[-1], num_bins)
        self.fc_t = nn.Linear(dims[-1], 3)
        self.fc_exp = nn.Linear(dims[-1], 3 * num_kp)

    def features(self, x: Tensor) -> Tensor:
        """Pooled, normalised features ``(B, dims[-1])`` of images ``(B, C, H, W)``."""
        for down, stage in zip(self.downsample_layers, self.stages):
            x = stage(down(x))
        return self.norm(x.mean((-2, -1)))

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        out = self.features(x)
        return {
            "pitch": self.fc_pitch(out), "yaw": self.fc_yaw(out), "roll": self.fc_roll(out),
            "t": self.fc_t(out), "exp": self.fc_exp(out), "scale": self.fc_scale(out), "kp": self.fc_kp(out),
        }  # fmt: skip


class MotionExtractor(nn.Module):
    """LivePortrait's motion extractor (M).

    Args:
        num_kp: keypoints K (21 public).
        num_bins: bins per angle (66).
        depths, dims: backbone sizes (ConvNeXt-V2-tiny's by default; smaller ones for tests).
        image_channel: image channels.

    Forward: ``(B, 3, H, W)`` in [0, 1] (256 px public) -> raw outputs ``pitch``, ``yaw``,
    ``roll`` ``(B, num_bins)`` bin logits, ``t`` ``(B, 3)``, ``exp`` ``(B, 3K)``, ``scale``
    ``(B, 1)``, ``kp`` ``(B, 3K)`` canonical keypoints (:meth:`motion` for degrees and ``(B, K, 3)``).
    """

    def __init__(
        self,
        num_kp: int = NUM_KP,
        num_bins: int = NUM_BINS,
        depths: Sequence[int] = CONVNEXTV2_TINY["depths"],
        dims: Sequence[int] = CONVNEXTV2_TINY["dims"],
        image_channel: int = 3,
    ) -> None:
        super().__init__()
        self.config: dict[str, Any] = {
            "num_kp": num_kp, "num_bins": num_bins, "depths": list(depths), "dims": list(dims),
            "image_channel": image_channel,
        }  # fmt: skip
        self.num_kp = num_kp
        self.detector = ConvNeXtV2Regressor(image_channel, depths, dims, num_kp, num_bins)

    def forward(self, image: Tensor) -> dict[str, Tensor]:
        return self.detector(image)

    def motion(self, image: Tensor) -> dict[str, Tensor]:
        """Motion parameters in the form the keypoint transform takes.

        Returns:
            ``pitch``, ``yaw``, ``roll`` ``(B,)`` degrees; ``t`` ``(B, 3)``; ``exp`` ``(B, 3K)``;
            ``scale`` ``(B, 1)``; ``kp`` ``(B, K, 3)`` canonical keypoints.
        """
        from emoface.networks.live_portrait.keypoints import headpose_degrees

        out = self(image)
        b = image.shape[0]
        return {
            "pitch": headpose_degrees(out["pitch"]), "yaw": headpose_degrees(out["yaw"]),
            "roll": headpose_degrees(out["roll"]), "t": out["t"], "exp": out["exp"], "scale": out["scale"],
            "kp": out["kp"].view(b, self.num_kp, 3),
        }  # fmt: skip
