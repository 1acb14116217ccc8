"""LivePortrait's appearance feature extractor (F): source image -> 3D appearance volume."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from emoface.networks.face_vid2vid.blocks import DownBlock2d, ResBlock3d, SameBlock2d


class AppearanceFeatureExtractor(nn.Module):
    """2D encoder (3x3 conv, down-blocks, 1x1 conv) viewed as a 3D volume, then 3D residual blocks.

    The state dict matches the public ``appearance_feature_extractor.pth`` (0.84M parameters at
    the defaults, the public ``models.yaml`` sizes).

    Args:
        image_channel: image channels.
        block_expansion: width of the first conv (doubling per down-block).
        num_down_blocks: 2D down-blocks; the volume is ``2**num_down_blocks`` times smaller than the image.
        max_features: width of the 2D bottleneck (= ``reshape_channel * reshape_depth``).
        reshape_channel: channels C of the volume.
        reshape_depth: depth D of the volume.
        num_resblocks: 3D residual blocks.

    Shapes: ``(B, 3, 256, 256)`` in [0, 1] -> ``(B, 32, 16, 64, 64)`` at the defaults.
    """

    def __init__(
        self,
        image_channel: int = 3,
        block_expansion: int = 64,
        num_down_blocks: int = 2,
        max_features: int = 512,
        reshape_channel: int = 32,
        reshape_depth: int = 16,
        num_resblocks: int = 6,
    ) -> None:
        super().__init__()
        if reshape_channel * reshape_depth != max_features:
            raise ValueError(
                f"reshape_channel * reshape_depth ({reshape_channel} * {reshape_depth}) must equal max_features "
                f"({max_features}): the 2D encoder output is viewed as the 3D volume"
            )
        self.config: dict[str, Any] = {
            "image_channel": image_channel, "block_expansion": block_expansion, "num_down_blocks": num_down_blocks,
            "max_features": max_features, "reshape_channel": reshape_channel, "reshape_depth": reshape_depth,
            "num_resblocks": num_resblocks,
        }  # fmt: skip
        self.reshape_channel = reshape_channel
        self.reshape_depth = reshape_depth
        self.first = SameBlock2d(image_channel, block_expansion, kernel_size=(3, 3), padding=(1, 1))
        widths = [min(max_features, block_expansion * 2**i) for i in range(num_down_blocks + 1)]
        self.down_blocks = nn.ModuleList(
            DownBlock2d(widths[i], widths[i + 1], kernel_size=(3, 3), padding=(1, 1)) for i in range(num_down_blocks)
        )
        self.second = nn.Conv2d(widths[-1], max_features, kernel_size=1, stride=1)
        self.resblocks_3d = nn.Sequential()
        for i in range(num_resblocks):
            self.resblocks_3d.add_module(f"3dr{i}", ResBlock3d(reshape_channel, kernel_size=3, padding=1))

    def forward(self, source_image: Tensor) -> Tensor:
        """Appearance volume.

        Args:
            source_image: ``(B, C, H, W)`` in [0, 1].

        Returns:
            ``(B, reshape_channel, reshape_depth, H / 2**n, W / 2**n)``.
        """
        out = self.first(source_image)
        for block in self.down_blocks:
            out = block(out)
        out = self.second(out)
        b, _, h, w = out.shape
        return self.resblocks_3d(out.view(b, self.reshape_channel, self.reshape_depth, h, w))
