"""Occlusion-aware generators of face-vid2vid: plain decoder and SPADE decoder.

Both encode the source image into a 3D appearance volume, warp it with the dense motion network's
field, fold depth into channels, mask by the occlusion map and decode an image. Their state dicts
match the public checkpoints' ``generator`` entry: :class:`OcclusionAwareGenerator` (public
``--gen original``, 304 keys, 53.1M parameters at vox-256 sizes) and
:class:`OcclusionAwareSPADEGenerator` (``--gen spade``, 386 keys, 101.0M parameters). The SPADE
one is not the plain one plus a decoder: its first conv is 3x3 (7x7 in the plain one) and it has
no 2D residual blocks, up-blocks or final conv of its own.

Inference for a video splits in two (:meth:`encode_source` once per source image,
:meth:`animate` per batch of driving keypoints); ``forward`` chains them with the public
signature and outputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from emoface.networks.face_vid2vid.blocks import (
    DownBlock2d,
    ResBlock2d,
    ResBlock3d,
    SameBlock2d,
    SPADEResnetBlock,
    UpBlock2d,
    convolve_channels_last_on_cpu,
    make_coordinate_grid_2d,
)
from emoface.networks.face_vid2vid.dense_motion import DenseMotionNetwork, KeypointDict

VOX256_DENSE_MOTION: Mapping[str, Any] = {
    "block_expansion": 32,
    "max_features": 1024,
    "num_blocks": 5,
    "reshape_depth": 16,
    "compress": 4,
}
"""``generator_params.dense_motion_params`` of the public ``config/vox-256.yaml``."""

SourceEncoding = dict[str, Tensor]
"""What :meth:`_OcclusionAwareBase.encode_source` returns: ``"feature_3d"`` and ``"compressed"``."""


class _OcclusionAwareBase(nn.Module):
    """Shared encoder, dense motion and warping of both generators (public attribute names)."""

    def __init__(
        self,
        image_channel: int,
        feature_channel: int,
        num_kp: int,
        block_expansion: int,
        max_features: int,
        num_down_blocks: int,
        reshape_channel: int,
        reshape_depth: int,
        num_resblocks: int,
        estimate_occlusion_map: bool,
        dense_motion_params: Mapping[str, Any] | None,
        estimate_jacobian: bool,
        first_kernel: int,
    ) -> None:
        super().__init__()
        motion = dict(VOX256_DENSE_MOTION if dense_motion_params is None else dense_motion_params)
        self.config: dict[str, Any] = {
            "image_channel": image_channel, "feature_channel": feature_channel, "num_kp": num_kp,
            "block_expansion": block_expansion, "max_features": max_features, "num_down_blocks": num_down_blocks,
            "reshape_channel": reshape_channel, "reshape_depth": reshape_depth, "num_resblocks": num_resblocks,
            "estimate_occlusion_map": estimate_occlusion_map, "dense_motion_params": motion,
        }  # fmt: skip
        if reshape_channel * reshape_depth != max_features:
            raise ValueError(
                f"reshape_channel * reshape_depth ({reshape_channel} * {reshape_depth}) must equal max_features "
                f"({max_features}): the 2D encoder output is viewed as the 3D volume"
            )
        if feature_channel != reshape_channel:
            raise ValueError(
                f"feature_channel ({feature_channel}) must equal reshape_channel ({reshape_channel}): the dense "
                "motion network compresses the generator's volume"
            )
        # The motion network always exists here (the public code allows none, which no checkpoint uses).
        self.dense_motion_network = DenseMotionNetwork(
            num_kp=num_kp, feature_channel=feature_channel, estimate_occlusion_map=estimate_occlusion_map, **motion
        )
        pad = first_kernel // 2
        self.first = SameBlock2d(image_channel, block_expansion, kernel_size=(first_kernel,) * 2, padding=(pad, pad))
        down_blocks = []
        for i in range(num_down_blocks):
            in_features = min(max_features, block_expansion * (2**i))
            out_features = min(max_features, block_expansion * (2 ** (i + 1)))
            down_blocks.append(DownBlock2d(in_features, out_features, kernel_size=(3, 3), padding=(1, 1)))
        self.down_blocks = nn.ModuleList(down_blocks)
        self.second = nn.Conv2d(out_features, max_features, kernel_size=1, stride=1)
        self.reshape_channel = reshape_channel
        self.reshape_depth = reshape_depth
        self.resblocks_3d = nn.Sequential()
        for i in range(num_resblocks):
            self.resblocks_3d.add_module(f"3dr{i}", ResBlock3d(reshape_channel, kernel_size=3, padding=1))
        # Width of the 2D features after warping (256 at vox-256: block_expansion * 2**num_down_blocks).
        self.decoder_features = block_expansion * (2**num_down_blocks)
        self.third = SameBlock2d(max_features, self.decoder_features, kernel_size=(3, 3), padding=(1, 1), lrelu=True)
        self.fourth = nn.Conv2d(self.decoder_features, self.decoder_features, kernel_size=1, stride=1)
        self.estimate_occlusion_map = estimate_occlusion_map
        self.image_channel = image_channel

    # ------------------------------------------------------------------------------------------
    def encode_source(self, source_image: Tensor) -> SourceEncoding:
        """Everything that depends on the source image only (compute once per video).

        Args:
            source_image: ``(B, C, H, W)`` in [0, 1].

        Returns:
            ``"feature_3d"``: ``(B, reshape_channel, reshape_depth, H / 2**n, W / 2**n)`` the
            appearance volume after the 3D residual blocks; ``"compressed"``:
            ``(B, compress, reshape_depth, H / 2**n, W / 2**n)`` the dense motion network's
            compressed copy of it (``n = num_down_blocks``).
        """
        out = self.first(source_image)
        for block in self.down_blocks:
            out = block(out)
        out = self.second(out)
        b, _, h, w = out.shape
        feature_3d = self.resblocks_3d(out.view(b, self.reshape_channel, self.reshape_depth, h, w))
        return {"feature_3d": feature_3d, "compressed": self.dense_motion_network.compress_feature(feature_3d)}

    @staticmethod
    def deform_input(inp: Tensor, deformation: Tensor) -> Tensor:
        """Warp a volume by a ``grid_sample`` field (resized trilinearly when sizes differ).

        Args:
            inp: ``(B, C, D, H, W)`` with B 1 or N (a batch-1 volume is broadcast).
            deformation: ``(N, D', H', W', 3)``.

        Returns:
            ``(N, C, D, H, W)``.
        """
        n, d_old, h_old, w_old, _ = deformation.shape
        _, c, d, h, w = inp.shape
        if (d_old, h_old, w_old) != (d, h, w):
            deformation = deformation.permute(0, 4, 1, 2, 3)
            deformation = F.interpolate(deformation, size=(d, h, w), mode="trilinear")
            deformation = deformation.permute(0, 2, 3, 4, 1)
        return F.grid_sample(inp.expand(n, c, d, h, w), deformation, align_corners=False)

    def warp(
        self, source: Mapping[str, Tensor], kp_source: KeypointDict, kp_driving: KeypointDict
    ) -> dict[str, Tensor]:
        """Dense motion, warping and occlusion: the decoder's input for N driving keypoint sets.

        Returns:
            ``"features"``: ``(N, decoder_features, h, w)``; ``"mask"``, ``"deformation"`` and
            ``"occlusion_map"`` (when estimated) of the dense motion network.
        """
        motion = self.dense_motion_network.forward_compressed(source["compressed"], kp_driving, kp_source)
        out = self.deform_input(source["feature_3d"], motion["deformation"])
        n, c, d, h, w = out.shape
        out = self.fourth(self.third(out.view(n, c * d, h, w)))
        occlusion_map = motion.get("occlusion_map")
        if occlusion_map is not None:
            if out.shape[2:] != occlusion_map.shape[2:]:
                occlusion_map = F.interpolate(occlusion_map, size=out.shape[2:], mode="bilinear")
            out = out * occlusion_map
        return {**motion, "features": out}

    def decode(self, features: Tensor) -> Tensor:
        """Decode warped features ``(N, decoder_features, h, w)`` into images ``(N, C, H, W)``."""
        raise NotImplementedError

    def animate(
        self, source: Mapping[str, Tensor], kp_source: KeypointDict, kp_driving: KeypointDict
    ) -> dict[str, Tensor]:
        """Images of the encoded source posed by N driving keypoint sets, in one batch.

        Args:
            source: :meth:`encode_source` output with batch 1 (broadcast to all frames) or N.
            kp_source: ``{"value": (1 or N, K, 3)}`` the source image's keypoints.
            kp_driving: ``{"value": (N, K, 3)}``.

        Returns:
            The public generator's outputs: ``"mask"``: ``(N, K + 1, D, h, w)``;
            ``"occlusion_map"``: ``(N, 1, h, w)`` (when estimated); ``"prediction"``:
            ``(N, C, H, W)`` in [0, 1]. (The dense warp field is :meth:`warp`'s ``"deformation"``.)
        """
        warped = self.warp(source, kp_source, kp_driving)
        out = {key: warped[key] for key in ("mask", "occlusion_map") if key in warped}
        out["prediction"] = self.decode(warped["features"])
        return out

    def forward(self, source_image: Tensor, kp_driving: KeypointDict, kp_source: KeypointDict) -> dict[str, Tensor]:
        """The public generator call: ``animate(encode_source(source_image), kp_source, kp_driving)``.

        Args:
            source_image: ``(B, C, H, W)`` in [0, 1].
            kp_driving: ``{"value": (B, K, 3)}``.
            kp_source: ``{"value": (B, K, 3)}``.
        """
        return self.animate(self.encode_source(source_image), kp_source, kp_driving)


class OcclusionAwareGenerator(_OcclusionAwareBase):
    """face-vid2vid generator with the plain decoder (2D residual blocks and up-blocks).

    Args:
        image_channel: image channels.
        feature_channel: channels of the 3D volume seen by the dense motion network (= reshape_channel).
        num_kp: keypoints K.
        block_expansion: width of the first conv (doubling per down-block).
        max_features: width of the 2D bottleneck (= reshape_channel * reshape_depth).
        num_down_blocks: 2D down-blocks (and up-blocks); images shrink by ``2**num_down_blocks``.
        reshape_channel: channels C of the 3D volume.
        reshape_depth: depth D of the 3D volume.
        num_resblocks: 3D residual blocks (and 2D ones in the decoder).
        estimate_occlusion_map: mask the warped features by a predicted occlusion map.
        dense_motion_params: the dense motion network's ``block_expansion``, ``max_features``,
            ``num_blocks``, ``reshape_depth``, ``compress`` (``None``: vox-256's, :data:`VOX256_DENSE_MOTION`).
        estimate_jacobian: unused (public signature).
        image_skip: not in the public networks (off by default; the public checkpoints load only
            without it). The source image itself is warped at full resolution by the dense motion's
            field (its x, y averaged over depth) and the decoder, with one more output channel,
            blends it with what it draws: ``prediction = a * warped_source + (1 - a) * drawn``.
            A decoder that upsamples a 16x16 volume redraws even its own source blurred (at 64 px,
            a narrow one scores below the source frame repeated), so no warp can beat the still
            source through it; the skip hands the decoder the source's detail, moved where the
            keypoints say, and gives the warp field a direct image-space gradient.
    """

    def __init__(
        self,
        image_channel: int = 3,
        feature_channel: int = 32,
        num_kp: int = 15,
        block_expansion: int = 64,
        max_features: int = 512,
        num_down_blocks: int = 2,
        reshape_channel: int = 32,
        reshape_depth: int = 16,
        num_resblocks: int = 6,
        estimate_occlusion_map: bool = True,
        dense_motion_params: Mapping[str, Any] | None = None,
        estimate_jacobian: bool = False,
        image_skip: bool = False,
    ) -> None:
        super().__init__(
            image_channel, feature_channel, num_kp, block_expansion, max_features, num_down_blocks,
            reshape_channel, reshape_depth, num_resblocks, estimate_occlusion_map, dense_motion_params,
            estimate_jacobian, first_kernel=7,
        )  # fmt: skip
        self.image_skip = image_skip
        if image_skip:
            self.config["image_skip"] = True
        self.resblocks_2d = nn.Sequential()
        for i in range(num_resblocks):
            self.resblocks_2d.add_module(f"2dr{i}", ResBlock2d(self.decoder_features, kernel_size=3, padding=1))
        up_blocks = []
        for i in range(num_down_blocks):
            in_features = max(block_expansion, block_expansion * (2 ** (num_down_blocks - i)))
            out_features = max(block_expansion, block_expansion * (2 ** (num_down_blocks - i - 1)))
            up_blocks.append(UpBlock2d(in_features, out_features, kernel_size=(3, 3), padding=(1, 1)))
        self.up_blocks = nn.ModuleList(up_blocks)
        # With the image skip, one more channel: the logit of the warped source's blending weight.
        self.final = nn.Conv2d(block_expansion, image_channel + int(image_skip), kernel_size=(7, 7), padding=(3, 3))
        convolve_channels_last_on_cpu(self)

    def encode_source(self, source_image: Tensor) -> SourceEncoding:
        """As the base class; with ``image_skip`` also ``"image"``: the source image itself."""
        encoding = super().encode_source(source_image)
        if self.image_skip:
            encoding["image"] = source_image
        return encoding

    def _decode_logits(self, features: Tensor) -> Tensor:
        out = self.resblocks_2d(features)
        for block in self.up_blocks:
            out = block(out)
        return self.final(out)

    def decode(self, features: Tensor) -> Tensor:
        if self.image_skip:
            raise RuntimeError("with image_skip the decoder needs the warped source image: call animate")
        return torch.sigmoid(self._decode_logits(features))

    def animate(
        self, source: Mapping[str, Tensor], kp_source: KeypointDict, kp_driving: KeypointDict
    ) -> dict[str, Tensor]:
        """As the base class; with ``image_skip`` the drawn image is blended with the warped source
        image, and the outputs gain ``"blend"``: ``(N, 1, H, W)`` the warped source's weight, and
        ``"warped_source"``: ``(N, C, H, W)`` the source image warped."""
        if not self.image_skip:
            return super().animate(source, kp_source, kp_driving)
        if "image" not in source:
            raise ValueError("this generator has image_skip: encode the source with its own encode_source")
        warped = self.warp(source, kp_source, kp_driving)
        out = {key: warped[key] for key in ("mask", "occlusion_map") if key in warped}
        logits = self._decode_logits(warped["features"])
        drawn = torch.sigmoid(logits[:, : self.image_channel])
        blend = torch.sigmoid(logits[:, self.image_channel :])
        warped_source = warp_image(source["image"], warped["deformation"])
        out["prediction"] = blend * warped_source + (1 - blend) * drawn
        out["blend"] = blend
        out["warped_source"] = warped_source
        return out


def warp_image(image: Tensor, deformation: Tensor) -> Tensor:
    """Warp images by the 2D part of a 3D dense-motion field, resized to the images.

    The field's x and y are averaged over depth (a head's depth slices move nearly alike). Its
    identity is :func:`~emoface.networks.face_vid2vid.blocks.make_coordinate_grid` (the pixel
    centres from -1 to 1), so the images are sampled with ``align_corners=True`` and the identity
    field returns them unchanged; borders repeat the edge pixels.

    Args:
        image: ``(B, C, H, W)`` with B 1 (broadcast) or N.
        deformation: ``(N, D, h, w, 3)`` sampling coordinates (x, y, z) in [-1, 1].

    Returns:
        ``(N, C, H, W)``.
    """
    n = deformation.shape[0]
    _, c, h, w = image.shape
    grid = deformation[..., :2].mean(dim=1)  # (N, h', w', 2)
    if grid.shape[1:3] != (h, w):
        # Resize the displacement, not the coordinates: bilinear resizing clamps at the borders,
        # which would bend the identity field there.
        identity = make_coordinate_grid_2d(grid.shape[1:3], grid.dtype, grid.device)
        displacement = (grid - identity).permute(0, 3, 1, 2)
        displacement = F.interpolate(displacement, size=(h, w), mode="bilinear", align_corners=False)
        grid = make_coordinate_grid_2d((h, w), grid.dtype, grid.device) + displacement.permute(0, 2, 3, 1)
    return F.grid_sample(image.expand(n, c, h, w), grid, padding_mode="border", align_corners=True)


class SPADEDecoder(nn.Module):
    """SPADE decoder of the SPADE generator, conditioned on its own input.

    ``fc`` (3x3, doubling the width), six :class:`SPADEResnetBlock` at ``2 * in_channels``, then
    twice nearest x2 upsampling and a SPADE block (to ``in_channels``, then ``out_channels``), and
    a 3x3 conv with sigmoid. The conditioning map of every SPADE layer is the decoder input. The
    public code hardcodes ``in_channels`` 256, ``out_channels`` 64, ``nhidden`` 128 and 3 output
    channels (the vox-256 values here).

    Args:
        in_channels: input channels (the generator's warped features; also the SPADE label channels).
        out_channels: channels of the last SPADE block.
        image_channel: output image channels.
        nhidden: hidden width of the SPADE layers.
        spectral: spectral norm on the SPADE blocks' convolutions (hook style, as public).

    Shapes: ``(B, in_channels, h, w) -> (B, image_channel, 4h, 4w)`` in [0, 1].
    """

    NUM_MIDDLE_BLOCKS = 6

    def __init__(
        self,
        in_channels: int = 256,
        out_channels: int = 64,
        image_channel: int = 3,
        nhidden: int = 128,
        spectral: bool = True,
    ) -> None:
        super().__init__()
        ic, oc = in_channels, out_channels
        self.fc = nn.Conv2d(ic, 2 * ic, 3, padding=1)
        for i in range(self.NUM_MIDDLE_BLOCKS):
            self.add_module(f"G_middle_{i}", SPADEResnetBlock(2 * ic, 2 * ic, ic, spectral, nhidden))
        self.up_0 = SPADEResnetBlock(2 * ic, ic, ic, spectral, nhidden)
        self.up_1 = SPADEResnetBlock(ic, oc, ic, spectral, nhidden)
        self.conv_img = nn.Conv2d(oc, image_channel, 3, padding=1)
        self.up = nn.Upsample(scale_factor=2)

    def forward(self, feature: Tensor) -> Tensor:
        seg = feature
        x = self.fc(feature)
        for i in range(self.NUM_MIDDLE_BLOCKS):
            x = getattr(self, f"G_middle_{i}")(x, seg)
        x = self.up_0(self.up(x), seg)  # (B, ic, 2h, 2w)
        x = self.up_1(self.up(x), seg)  # (B, oc, 4h, 4w)
        return torch.sigmoid(self.conv_img(F.leaky_relu(x, 2e-1)))


class OcclusionAwareSPADEGenerator(_OcclusionAwareBase):
    """face-vid2vid generator with the SPADE decoder (the public ``--gen spade``, its default).

    Arguments as :class:`OcclusionAwareGenerator`, plus ``spade_hidden`` (hidden width of the SPADE
    layers, 128 public). The decoder's widths derive from the sizes: input
    ``block_expansion * 2**num_down_blocks`` (256 at vox-256), last block ``block_expansion``
    (64). The decoder upsamples 4x, so ``num_down_blocks`` must be 2.
    """

    def __init__(
        self,
        image_channel: int = 3,
        feature_channel: int = 32,
        num_kp: int = 15,
        block_expansion: int = 64,
        max_features: int = 512,
        num_down_blocks: int = 2,
        reshape_channel: int = 32,
        reshape_depth: int = 16,
        num_resblocks: int = 6,
        estimate_occlusion_map: bool = True,
        dense_motion_params: Mapping[str, Any] | None = None,
        estimate_jacobian: bool = False,
        spade_hidden: int = 128,
    ) -> None:
        if num_down_blocks != 2:
            raise ValueError(f"the SPADE decoder upsamples 4x: num_down_blocks must be 2, got {num_down_blocks}")
        super().__init__(
            image_channel, feature_channel, num_kp, block_expansion, max_features, num_down_blocks,
            reshape_channel, reshape_depth, num_resblocks, estimate_occlusion_map, dense_motion_params,
            estimate_jacobian, first_kernel=3,
        )  # fmt: skip
        self.config["spade_hidden"] = spade_hidden
        self.decoder = SPADEDecoder(self.decoder_features, block_expansion, image_channel, spade_hidden)
        convolve_channels_last_on_cpu(self)

    def decode(self, features: Tensor) -> Tensor:
        return self.decoder(features)
