"""Multi-scale patch discriminator of face-vid2vid (public ``MultiScaleDiscriminator``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn


class DiscriminatorBlock(nn.Module):
    """4x4 conv (valid padding, optional hook-style spectral norm), optional instance norm,
    LeakyReLU 0.2, optional 2x2 average pool (public ``discriminator.DownBlock2d``)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        norm: bool = False,
        kernel_size: int = 4,
        pool: bool = False,
        sn: bool = False,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size=kernel_size)
        if sn:
            self.conv = nn.utils.spectral_norm(self.conv)
        self.norm = nn.InstanceNorm2d(out_features, affine=True) if norm else None
        self.pool = pool

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv(x)
        if self.norm is not None:
            out = self.norm(out)
        out = F.leaky_relu(out, 0.2)
        if self.pool:
            out = F.avg_pool2d(out, (2, 2))
        return out


class Discriminator(nn.Module):
    """Pix2Pix-like patch discriminator.

    Args:
        num_channels: image channels.
        block_expansion: width of the first block (doubling per block).
        num_blocks: blocks (all but the last pool 2x2).
        max_features: width cap.
        sn: spectral norm on every conv.
        kwargs: ignored (the public constructor takes the whole ``discriminator_params``).

    Shapes: ``(B, C, H, W)`` -> feature maps of every block and a ``(B, 1, h, w)`` prediction map.
    """

    def __init__(
        self,
        num_channels: int = 3,
        block_expansion: int = 32,
        num_blocks: int = 4,
        max_features: int = 512,
        sn: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        self.config: dict[str, Any] = {
            "num_channels": num_channels, "block_expansion": block_expansion, "num_blocks": num_blocks,
            "max_features": max_features, "sn": sn,
        }  # fmt: skip
        self.down_blocks = nn.ModuleList(
            DiscriminatorBlock(
                num_channels if i == 0 else min(max_features, block_expansion * (2**i)),
                min(max_features, block_expansion * (2 ** (i + 1))),
                norm=i != 0,
                kernel_size=4,
                pool=i != num_blocks - 1,
                sn=sn,
            )
            for i in range(num_blocks)
        )
        self.conv = nn.Conv2d(min(max_features, block_expansion * (2**num_blocks)), 1, kernel_size=1)
        if sn:
            self.conv = nn.utils.spectral_norm(self.conv)

    def forward(self, x: Tensor) -> tuple[list[Tensor], Tensor]:
        """Returns ``(feature_maps, prediction_map)``: every block's output and ``(B, 1, h, w)`` scores."""
        feature_maps = []
        out = x
        for block in self.down_blocks:
            out = block(out)
            feature_maps.append(out)
        return feature_maps, self.conv(out)


def scale_key(scale: float) -> str:
    """The name of a scale in inputs and outputs: ``1`` -> ``"1"``, ``0.5`` -> ``"0.5"``.

    The public code uses ``str(scale)``; ``:g`` gives the same for its int and fractional scales
    and also maps ``1.0`` to ``"1"``.
    """
    return f"{float(scale):g}"


class MultiScaleDiscriminator(nn.Module):
    """One :class:`Discriminator` per image scale.

    Args:
        scales: image scales judged (vox-256: ``[1]``); the sub-network of scale ``s`` is
            ``discs["<s with . replaced by ->"]`` as in the public state dicts.
        num_channels, block_expansion, num_blocks, max_features, sn: :class:`Discriminator`
            arguments (vox-256 defaults).
        kwargs: ignored (the public constructor also receives the shared ``common_params``).
    """

    def __init__(
        self,
        scales: Sequence[float] = (1,),
        num_channels: int = 3,
        block_expansion: int = 32,
        num_blocks: int = 4,
        max_features: int = 512,
        sn: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        self.scales = list(scales)
        sizes = {
            "num_channels": num_channels, "block_expansion": block_expansion, "num_blocks": num_blocks,
            "max_features": max_features, "sn": sn,
        }  # fmt: skip
        self.config: dict[str, Any] = {"scales": self.scales, **sizes}
        self.discs = nn.ModuleDict({scale_key(s).replace(".", "-"): Discriminator(**sizes) for s in self.scales})

    def forward(self, x: Mapping[str, Tensor]) -> dict[str, Any]:
        """Judge an image pyramid.

        Args:
            x: ``{"prediction_<scale>": (B, C, H_s, W_s)}`` for every scale (public input format).

        Returns:
            ``{"feature_maps_<scale>": [block outputs], "prediction_map_<scale>": (B, 1, h, w)}``.
        """
        out: dict[str, Any] = {}
        for name, disc in self.discs.items():
            scale = name.replace("-", ".")
            feature_maps, prediction_map = disc(x[f"prediction_{scale}"])
            out[f"feature_maps_{scale}"] = feature_maps
            out[f"prediction_map_{scale}"] = prediction_map
        return out
