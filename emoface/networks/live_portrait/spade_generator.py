"""LivePortrait's SPADE decoder (G): warped features -> the image, upsampled 2x by a pixel shuffle
(256 px in, 512 px out).

The state dict matches the public ``spade_generator.pth`` (55.4M parameters): ``fc``,
``G_middle_0..5``, ``up_0``, ``up_1`` (SPADE residual blocks whose convolutions carry the
hook-style spectral norm: ``weight_orig``, ``weight_u``, ``weight_v``) and ``conv_img.0`` (a conv
to ``3 * upscale**2`` channels, then the pixel shuffle).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from emoface.networks.face_vid2vid.blocks import SPADEResnetBlock


class SPADEDecoder(nn.Module):
    """SPADE decoder conditioned on its own input.

    Args:
        upscale: output size / (4 x input size): 2 public (a pixel shuffle); 1: a plain 3x3 conv
            (keys ``conv_img.weight``).
        block_expansion, max_features, num_down_blocks: the input width is
            ``min(max_features, block_expansion * 2**num_down_blocks)`` (256 public).
        out_channels: width of the last SPADE block (64).
        nhidden: hidden width of the SPADE layers (128).

    Shapes: ``(B, 256, 64, 64) -> (B, 3, 512, 512)`` in [0, 1] at the public sizes.
    """

    NUM_MIDDLE_BLOCKS = 6

    def __init__(
        self,
        upscale: int = 2,
        max_features: int = 512,
        block_expansion: int = 64,
        out_channels: int = 64,
        num_down_blocks: int = 2,
        nhidden: int = 128,
    ) -> None:
        super().__init__()
        self.config: dict[str, Any] = {
            "upscale": upscale, "max_features": max_features, "block_expansion": block_expansion,
            "out_channels": out_channels, "num_down_blocks": num_down_blocks, "nhidden": nhidden,
        }  # fmt: skip
        ic = min(max_features, block_expansion * 2**num_down_blocks)
        self.in_channels = ic
        self.fc = nn.Conv2d(ic, 2 * ic, 3, padding=1)
        for i in range(self.NUM_MIDDLE_BLOCKS):
            self.add_module(f"G_middle_{i}", SPADEResnetBlock(2 * ic, 2 * ic, ic, spectral=True, nhidden=nhidden))
        self.up_0 = SPADEResnetBlock(2 * ic, ic, ic, spectral=True, nhidden=nhidden)
        self.up_1 = SPADEResnetBlock(ic, out_channels, ic, spectral=True, nhidden=nhidden)
        self.up = nn.Upsample(scale_factor=2)
        self.conv_img: nn.Module
        if upscale <= 1:
            self.conv_img = nn.Conv2d(out_channels, 3, 3, padding=1)
        else:
            self.conv_img = nn.Sequential(
                nn.Conv2d(out_channels, 3 * upscale * upscale, kernel_size=3, padding=1), nn.PixelShuffle(upscale)
            )

    def forward(self, feature: Tensor) -> Tensor:
        """Image ``(B, 3, 4 * upscale * h, 4 * upscale * w)`` in [0, 1] from ``(B, in_channels, h, w)``."""
        seg = feature
        x = self.fc(feature)
        for i in range(self.NUM_MIDDLE_BLOCKS):
            x = getattr(self, f"G_middle_{i}")(x, seg)
        x = self.up_0(self.up(x), seg)  # (B, ic, 2h, 2w)
        x = self.up_1(self.up(x), seg)  # (B, out_channels, 4h, 4w)
        return torch.sigmoid(self.conv_img(F.leaky_relu(x, 2e-1)))
