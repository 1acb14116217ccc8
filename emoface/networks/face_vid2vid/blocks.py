"""Building blocks of the face-vid2vid renderer networks.

Everything here reproduces the public implementation (zhanglonghao1992/One-Shot_Free-View_Neural_
Talking_Head_Synthesis, the "new generator" version the vox-256 checkpoints were trained with):
same layers, same attribute names (they form the state-dict keys of the public checkpoints), same
numerics. Where that version differs from the first-order-model blocks it descends from, the
public one wins:

* :class:`UpBlock3d` upsamples with **nearest** interpolation (an earlier version used
  trilinear);
* :class:`DownBlock3d` is a stride-1 convolution followed by a (1, 2, 2) average pool (an
  earlier version used a strided convolution; the parameters have the same shapes, so a
  checkpoint loads into either, but only this one reproduces the checkpoints' outputs).

The public code uses ``SynchronizedBatchNorm``; plain ``nn.BatchNorm2d/3d`` save the same
state-dict entries (``weight``, ``bias``, ``running_mean``, ``running_var``,
``num_batches_tracked``). Use ``nn.SyncBatchNorm.convert_sync_batchnorm`` for DDP when wanted.

Coordinates follow ``grid_sample``: a grid's last axis is ``(x, y, z)`` with x along the width,
y along the height and z along the depth, each in ``[-1, 1]`` (corner pixel centres).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

KP_VARIANCE = 0.01
"""Variance of the Gaussian heatmaps the dense motion network draws around keypoints."""


# ----------------------------------------------------------------------------------------------
# Memory format
def _channels_last_on_cpu(module: nn.Module, args: tuple[Tensor, ...]) -> tuple[Tensor, ...] | None:
    """Forward pre-hook: a batched CPU input of a 2D / 3D convolution, made channels-last."""
    x = args[0]
    if x.device.type != "cpu" or x.dim() not in (4, 5):
        return None
    layout = torch.channels_last if x.dim() == 4 else torch.channels_last_3d
    return (x.contiguous(memory_format=layout), *args[1:])


def convolve_channels_last_on_cpu(network: nn.Module) -> nn.Module:
    """Make every ``Conv2d`` / ``Conv3d`` of ``network`` take its input channels-last on a CPU.

    oneDNN's channels-last convolutions are much faster on a CPU than its default ones for these
    networks' shapes, the 3D ones' weight gradients above all (PyTorch 2.14, one thread, the
    dense motion's mask conv on an 8x56x4x16x16 volume: forward and backward 0.19 s -> 0.09 s;
    configs/renderer_small.yaml's generator forward and backward 0.54 -> 0.40 s; its whole
    training step, with the fused Adam, 0.80 -> 0.64 s in benchmarks/renderer_step.py). A
    ``DenseMotionNetwork`` built on its own is left as it is: the generators hook theirs. Only the
    layout changes: the outputs equal the default
    layout's to float rounding (about 1e-5 here), parameters and state dicts are untouched, and
    inputs on other devices pass as they are. Idempotent; returns ``network``.
    """
    for module in network.modules():
        if isinstance(module, (nn.Conv2d, nn.Conv3d)) and not getattr(module, "_channels_last_on_cpu", False):
            module.register_forward_pre_hook(_channels_last_on_cpu)
            module._channels_last_on_cpu = True
    return network


# ----------------------------------------------------------------------------------------------
# Coordinate grids and keypoint heatmaps
def _axis(size: int, dtype: torch.dtype, device: torch.device | None) -> Tensor:
    # Same arithmetic as the public code (x / (n - 1) first), so the grids are bit-identical.
    x = torch.arange(size, device=device).to(dtype)
    return 2 * (x / (size - 1)) - 1


def make_coordinate_grid(
    spatial_size: Sequence[int], dtype: torch.dtype = torch.float32, device: torch.device | None = None
) -> Tensor:
    """A 3D identity grid in ``[-1, 1]^3``.

    Args:
        spatial_size: ``(D, H, W)``.

    Returns:
        ``(D, H, W, 3)``; ``grid[k, i, j] = (x_j, y_i, z_k)``.
    """
    d, h, w = (int(s) for s in spatial_size)
    x = _axis(w, dtype, device).view(1, 1, w).expand(d, h, w)
    y = _axis(h, dtype, device).view(1, h, 1).expand(d, h, w)
    z = _axis(d, dtype, device).view(d, 1, 1).expand(d, h, w)
    return torch.stack([x, y, z], dim=-1)


def make_coordinate_grid_2d(
    spatial_size: Sequence[int], dtype: torch.dtype = torch.float32, device: torch.device | None = None
) -> Tensor:
    """A 2D identity grid in ``[-1, 1]^2``.

    Args:
        spatial_size: ``(H, W)``.

    Returns:
        ``(H, W, 2)``; ``grid[i, j] = (x_j, y_i)``.
    """
    h, w = (int(s) for s in spatial_size)
    x = _axis(w, dtype, device).view(1, w).expand(h, w)
    y = _axis(h, dtype, device).view(h, 1).expand(h, w)
    return torch.stack([x, y], dim=-1)


def kp2gaussian(kp: Tensor, spatial_size: Sequence[int], kp_variance: float = KP_VARIANCE) -> Tensor:
    """Unnormalised Gaussian blobs around 3D keypoints.

    Args:
        kp: ``(..., K, 3)`` keypoints in grid coordinates.
        spatial_size: ``(D, H, W)`` of the volume.
        kp_variance: variance of each blob.

    Returns:
        ``(..., K, D, H, W)``: ``exp(-|grid - kp|^2 / (2 variance))``.
    """
    grid = make_coordinate_grid(spatial_size, kp.dtype, kp.device)  # (D, H, W, 3)
    diff = grid - kp[..., None, None, None, :]  # (..., K, D, H, W, 3)
    return torch.exp(-0.5 * (diff**2).sum(-1) / kp_variance)


# ----------------------------------------------------------------------------------------------
# Residual, up, down and same-resolution blocks
class ResBottleneck(nn.Module):
    """ResNet bottleneck (1x1 -> 3x3 -> 1x1, post-activation) of the head estimator.

    Args:
        in_features: channels in and out (the middle has ``in_features // 4``).
        stride: stride of the 3x3 conv; ``!= 1`` adds a strided 1x1 projection on the skip path.

    Shapes: ``(B, C, H, W) -> (B, C, H / stride, W / stride)``.
    """

    def __init__(self, in_features: int, stride: int) -> None:
        super().__init__()
        mid = in_features // 4
        self.conv1 = nn.Conv2d(in_features, mid, kernel_size=1)
        self.conv2 = nn.Conv2d(mid, mid, kernel_size=3, padding=1, stride=stride)
        self.conv3 = nn.Conv2d(mid, in_features, kernel_size=1)
        self.norm1 = nn.BatchNorm2d(mid, affine=True)
        self.norm2 = nn.BatchNorm2d(mid, affine=True)
        self.norm3 = nn.BatchNorm2d(in_features, affine=True)
        self.stride = stride
        if stride != 1:
            self.skip = nn.Conv2d(in_features, in_features, kernel_size=1, stride=stride)
            self.norm4 = nn.BatchNorm2d(in_features, affine=True)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.norm1(self.conv1(x)))
        out = F.relu(self.norm2(self.conv2(out)))
        out = self.norm3(self.conv3(out))
        if self.stride != 1:
            x = self.norm4(self.skip(x))
        return F.relu(out + x)


class ResBlock2d(nn.Module):
    """Pre-activation residual block (BN-ReLU-conv twice), resolution preserving.

    Shapes: ``(B, C, H, W) -> (B, C, H, W)``.
    """

    def __init__(self, in_features: int, kernel_size: int | tuple[int, int], padding: int | tuple[int, int]) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_features, in_features, kernel_size=kernel_size, padding=padding)
        self.conv2 = nn.Conv2d(in_features, in_features, kernel_size=kernel_size, padding=padding)
        self.norm1 = nn.BatchNorm2d(in_features, affine=True)
        self.norm2 = nn.BatchNorm2d(in_features, affine=True)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(F.relu(self.norm1(x)))
        out = self.conv2(F.relu(self.norm2(out)))
        return out + x


class ResBlock3d(nn.Module):
    """Pre-activation 3D residual block, resolution preserving.

    Shapes: ``(B, C, D, H, W) -> (B, C, D, H, W)``.
    """

    def __init__(self, in_features: int, kernel_size: int, padding: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(in_features, in_features, kernel_size=kernel_size, padding=padding)
        self.conv2 = nn.Conv3d(in_features, in_features, kernel_size=kernel_size, padding=padding)
        self.norm1 = nn.BatchNorm3d(in_features, affine=True)
        self.norm2 = nn.BatchNorm3d(in_features, affine=True)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(F.relu(self.norm1(x)))
        out = self.conv2(F.relu(self.norm2(out)))
        return out + x


class UpBlock2d(nn.Module):
    """Nearest x2 upsampling, conv, BN, ReLU.

    Shapes: ``(B, C_in, H, W) -> (B, C_out, 2H, 2W)``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel_size: int | tuple[int, int] = 3,
        padding: int | tuple[int, int] = 1,
        groups: int = 1,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size=kernel_size, padding=padding, groups=groups)
        self.norm = nn.BatchNorm2d(out_features, affine=True)

    def forward(self, x: Tensor) -> Tensor:
        out = F.interpolate(x, scale_factor=2)
        return F.relu(self.norm(self.conv(out)))


class UpBlock3d(nn.Module):
    """Nearest (1, 2, 2) upsampling (depth kept), conv, BN, ReLU.

    Shapes: ``(B, C_in, D, H, W) -> (B, C_out, D, 2H, 2W)``.
    """

    def __init__(
        self, in_features: int, out_features: int, kernel_size: int = 3, padding: int = 1, groups: int = 1
    ) -> None:
        super().__init__()
        self.conv = nn.Conv3d(in_features, out_features, kernel_size=kernel_size, padding=padding, groups=groups)
        self.norm = nn.BatchNorm3d(out_features, affine=True)

    def forward(self, x: Tensor) -> Tensor:
        # Nearest, as in the checkpoints' version of the public code (an older one used trilinear).
        out = F.interpolate(x, scale_factor=(1, 2, 2))
        return F.relu(self.norm(self.conv(out)))


class DownBlock2d(nn.Module):
    """Conv, BN, ReLU, 2x2 average pool.

    Shapes: ``(B, C_in, H, W) -> (B, C_out, H / 2, W / 2)``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel_size: int | tuple[int, int] = 3,
        padding: int | tuple[int, int] = 1,
        groups: int = 1,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size=kernel_size, padding=padding, groups=groups)
        self.norm = nn.BatchNorm2d(out_features, affine=True)
        self.pool = nn.AvgPool2d(kernel_size=(2, 2))

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(F.relu(self.norm(self.conv(x))))


class DownBlock3d(nn.Module):
    """Conv, BN, ReLU, (1, 2, 2) average pool (depth kept).

    Shapes: ``(B, C_in, D, H, W) -> (B, C_out, D, H / 2, W / 2)``.
    """

    def __init__(
        self, in_features: int, out_features: int, kernel_size: int = 3, padding: int = 1, groups: int = 1
    ) -> None:
        super().__init__()
        self.conv = nn.Conv3d(in_features, out_features, kernel_size=kernel_size, padding=padding, groups=groups)
        self.norm = nn.BatchNorm3d(out_features, affine=True)
        self.pool = nn.AvgPool3d(kernel_size=(1, 2, 2))

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(F.relu(self.norm(self.conv(x))))


class SameBlock2d(nn.Module):
    """Conv, BN, ReLU (or LeakyReLU 0.01), resolution preserving.

    Shapes: ``(B, C_in, H, W) -> (B, C_out, H, W)``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        groups: int = 1,
        kernel_size: int | tuple[int, int] = 3,
        padding: int | tuple[int, int] = 1,
        lrelu: bool = False,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size=kernel_size, padding=padding, groups=groups)
        self.norm = nn.BatchNorm2d(out_features, affine=True)
        self.ac: nn.Module = nn.LeakyReLU() if lrelu else nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.ac(self.norm(self.conv(x)))


# ----------------------------------------------------------------------------------------------
# Hourglasses
def _width(block_expansion: int, level: int, max_features: int) -> int:
    """Channels at hourglass level ``level``: ``min(max_features, block_expansion * 2**level)``."""
    return min(max_features, block_expansion * (2**level))


class HourglassEncoder(nn.Module):
    """3D hourglass encoder: ``num_blocks`` :class:`DownBlock3d` (public ``Encoder``).

    Returns the input and every block's output (the decoder's skips), finest first.
    """

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int = 3, max_features: int = 256) -> None:
        super().__init__()
        self.down_blocks = nn.ModuleList(
            DownBlock3d(
                in_features if i == 0 else _width(block_expansion, i, max_features),
                _width(block_expansion, i + 1, max_features),
                kernel_size=3,
                padding=1,
            )
            for i in range(num_blocks)
        )

    def forward(self, x: Tensor) -> list[Tensor]:
        outs = [x]
        for block in self.down_blocks:
            outs.append(block(outs[-1]))
        return outs


class HourglassDecoder(nn.Module):
    """3D hourglass decoder with skip concatenation and a final conv-BN-ReLU (public ``Decoder``).

    Output channels: ``out_filters = block_expansion + in_features``.
    """

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int = 3, max_features: int = 256) -> None:
        super().__init__()
        up_blocks = []
        for i in reversed(range(num_blocks)):
            # The deepest block takes the bottleneck alone, the others the concatenation with a skip.
            in_filters = (1 if i == num_blocks - 1 else 2) * _width(block_expansion, i + 1, max_features)
            up_blocks.append(UpBlock3d(in_filters, _width(block_expansion, i, max_features), kernel_size=3, padding=1))
        self.up_blocks = nn.ModuleList(up_blocks)
        self.out_filters = block_expansion + in_features
        self.conv = nn.Conv3d(self.out_filters, self.out_filters, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm3d(self.out_filters, affine=True)

    def forward(self, skips: list[Tensor]) -> Tensor:
        skips = list(skips)  # do not consume the caller's list
        out = skips.pop()
        for block in self.up_blocks:
            out = torch.cat([block(out), skips.pop()], dim=1)
        return F.relu(self.norm(self.conv(out)))


class Hourglass(nn.Module):
    """3D U-Net style hourglass (depth kept, height and width halved per level).

    Shapes: ``(B, in_features, D, H, W) -> (B, block_expansion + in_features, D, H, W)``;
    ``H`` and ``W`` must be divisible by ``2**num_blocks``.
    """

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int = 3, max_features: int = 256) -> None:
        super().__init__()
        self.encoder = HourglassEncoder(block_expansion, in_features, num_blocks, max_features)
        self.decoder = HourglassDecoder(block_expansion, in_features, num_blocks, max_features)
        self.out_filters = self.decoder.out_filters

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.encoder(x))


class KPHourglass(nn.Module):
    """2D encoder, 1x1 conv, reshape to a 3D volume, 3D decoder (the keypoint detector's body).

    The 2D bottleneck ``(B, reshape_features, h, w)`` is viewed as
    ``(B, reshape_features / reshape_depth, reshape_depth, h, w)``; ``reshape_features /
    reshape_depth`` must equal the first 3D block's input width
    ``min(max_features, block_expansion * 2**num_blocks)``.

    Shapes: ``(B, in_features, H, W) -> (B, out_filters, reshape_depth, H, W)`` with
    ``out_filters = min(max_features, block_expansion)``.
    """

    def __init__(
        self,
        block_expansion: int,
        in_features: int,
        reshape_features: int,
        reshape_depth: int,
        num_blocks: int = 3,
        max_features: int = 256,
    ) -> None:
        super().__init__()
        self.down_blocks = nn.Sequential()
        for i in range(num_blocks):
            self.down_blocks.add_module(
                f"down{i}",
                DownBlock2d(
                    in_features if i == 0 else _width(block_expansion, i, max_features),
                    _width(block_expansion, i + 1, max_features),
                    kernel_size=3,
                    padding=1,
                ),
            )
        self.conv = nn.Conv2d(_width(block_expansion, num_blocks, max_features), reshape_features, kernel_size=1)
        self.up_blocks = nn.Sequential()
        for i in range(num_blocks):
            self.up_blocks.add_module(
                f"up{i}",
                UpBlock3d(
                    _width(block_expansion, num_blocks - i, max_features),
                    _width(block_expansion, num_blocks - i - 1, max_features),
                    kernel_size=3,
                    padding=1,
                ),
            )
        self.reshape_depth = reshape_depth
        self.out_filters = _width(block_expansion, 0, max_features)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv(self.down_blocks(x))
        b, c, h, w = out.shape
        out = out.view(b, c // self.reshape_depth, self.reshape_depth, h, w)
        return self.up_blocks(out)


# ----------------------------------------------------------------------------------------------
# Anti-aliased downscaling
class AntiAliasInterpolation2d(nn.Module):
    """Gaussian blur then subsampling by ``1 / scale`` (band-limited downscaling).

    The blur kernel is a registered (persistent) buffer named ``weight``, ``(C, 1, k, k)`` with
    ``sigma = (1 / scale - 1) / 2`` and ``k = 2 * round(4 sigma) + 1`` (13 at scale 0.25): it is
    part of the state dict, and the public kp_detector checkpoints contain it as ``down.weight``.

    Args:
        channels: image channels.
        scale: output / input size (``1 / scale`` should be an integer).

    Shapes: ``(B, C, H, W) -> (B, C, ceil(H * scale), ceil(W * scale))``.
    """

    def __init__(self, channels: int, scale: float) -> None:
        super().__init__()
        sigma = (1 / scale - 1) / 2
        kernel_size = 2 * round(sigma * 4) + 1
        self.ka = kernel_size // 2
        self.kb = self.ka - 1 if kernel_size % 2 == 0 else self.ka
        # Same construction as the public code (product of two 1D Gaussians, float32).
        coords = torch.arange(kernel_size, dtype=torch.float32)
        mean = (kernel_size - 1) / 2
        gauss = torch.exp(-((coords - mean) ** 2) / (2 * sigma**2)) if sigma > 0 else torch.ones(1)
        kernel = gauss.view(-1, 1) * gauss.view(1, -1)
        kernel = kernel / kernel.sum()
        self.register_buffer("weight", kernel.view(1, 1, *kernel.shape).repeat(channels, 1, 1, 1))
        self.groups = channels
        self.scale = scale
        self.int_inv_scale = int(1 / scale)

    def forward(self, x: Tensor) -> Tensor:
        if self.scale == 1.0:
            return x
        out = F.pad(x, (self.ka, self.kb, self.ka, self.kb))
        out = F.conv2d(out, weight=self.weight, groups=self.groups)
        return out[:, :, :: self.int_inv_scale, :: self.int_inv_scale]


# ----------------------------------------------------------------------------------------------
# SPADE
class SPADE(nn.Module):
    """Spatially-adaptive normalisation: instance norm modulated by maps predicted from ``segmap``.

    Args:
        norm_nc: channels of the normalised input.
        label_nc: channels of the conditioning map.
        nhidden: width of the shared conv (128 in the public code).

    Shapes: ``x (B, norm_nc, H, W)``, ``segmap (B, label_nc, h, w)`` (resized to ``H x W``,
    nearest) -> ``(B, norm_nc, H, W)``.
    """

    def __init__(self, norm_nc: int, label_nc: int, nhidden: int = 128) -> None:
        super().__init__()
        self.param_free_norm = nn.InstanceNorm2d(norm_nc, affine=False)
        self.mlp_shared = nn.Sequential(nn.Conv2d(label_nc, nhidden, kernel_size=3, padding=1), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(nhidden, norm_nc, kernel_size=3, padding=1)
        self.mlp_beta = nn.Conv2d(nhidden, norm_nc, kernel_size=3, padding=1)

    def forward(self, x: Tensor, segmap: Tensor) -> Tensor:
        normalized = self.param_free_norm(x)
        segmap = F.interpolate(segmap, size=x.shape[2:], mode="nearest")
        actv = self.mlp_shared(segmap)
        return normalized * (1 + self.mlp_gamma(actv)) + self.mlp_beta(actv)


class SPADEResnetBlock(nn.Module):
    """SPADE residual block (SPADE-LeakyReLU-conv twice, learned 1x1 shortcut when widths differ).

    The convolutions carry the **hook-style** spectral norm (``torch.nn.utils.spectral_norm``), as
    in the public code: their state-dict entries are ``weight_orig``, ``weight_u``, ``weight_v``
    (no ``weight``). The newer ``torch.nn.utils.parametrizations.spectral_norm`` names them
    differently and would not load the public checkpoints.

    Args:
        fin: input channels.
        fout: output channels (the middle has ``min(fin, fout)``).
        label_nc: channels of the conditioning map.
        spectral: apply spectral norm to the convolutions (the public ``norm_G`` contains
            "spectral").
        nhidden: hidden width of the SPADE layers.
        dilation: dilation of the 3x3 convolutions.

    Shapes: ``x (B, fin, H, W)``, ``seg (B, label_nc, h, w)`` -> ``(B, fout, H, W)``.
    """

    def __init__(
        self, fin: int, fout: int, label_nc: int, spectral: bool = True, nhidden: int = 128, dilation: int = 1
    ) -> None:
        super().__init__()
        self.learned_shortcut = fin != fout
        fmiddle = min(fin, fout)
        self.conv_0 = nn.Conv2d(fin, fmiddle, kernel_size=3, padding=dilation, dilation=dilation)
        self.conv_1 = nn.Conv2d(fmiddle, fout, kernel_size=3, padding=dilation, dilation=dilation)
        if self.learned_shortcut:
            self.conv_s = nn.Conv2d(fin, fout, kernel_size=1, bias=False)
        if spectral:
            self.conv_0 = nn.utils.spectral_norm(self.conv_0)
            self.conv_1 = nn.utils.spectral_norm(self.conv_1)
            if self.learned_shortcut:
                self.conv_s = nn.utils.spectral_norm(self.conv_s)
        self.norm_0 = SPADE(fin, label_nc, nhidden)
        self.norm_1 = SPADE(fmiddle, label_nc, nhidden)
        if self.learned_shortcut:
            self.norm_s = SPADE(fin, label_nc, nhidden)

    def forward(self, x: Tensor, seg: Tensor) -> Tensor:
        x_s = self.conv_s(self.norm_s(x, seg)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, seg), 2e-1))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, seg), 2e-1))
        return x_s + dx
