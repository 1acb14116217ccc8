"""The landmarks-to-keypoints mapping network (stage 2): relocated landmarks -> face-vid2vid keypoint
parameters, frame by frame over a window.

A plain temporal convolution network in the spirit of SadTalker's MappingNet (3DMM coefficients ->
yaw/pitch/roll bins, translation, expression with 1D convolutions), with the relocated landmarks of
stage 1 as its input instead of 3DMM coefficients.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

NUM_RELOCATED_POINTS = 70
"""Points per frame of the relocated representation: 68 posed landmarks + 2 pupils."""


class _TemporalBlock(nn.Module):
    """Residual 1D convolution over time: ``x + conv(act(norm(x)))``, length preserved."""

    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.GroupNorm(1, channels),
            nn.LeakyReLU(0.2),
            nn.Conv1d(channels, channels, kernel_size, padding=kernel_size // 2, padding_mode="replicate"),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class KeypointMapper(nn.Module):
    """Driving frames' keypoint parameters from their relocated landmarks and the source's.

    Every frame sees its own relocated points, their offset from the source's, the source's
    canonical keypoints and the source's own keypoint parameters (what the renderer's estimator
    says about the source). Translation and expression are predicted as changes from the
    source's; the angles as the estimator's 66-bin logits; with ``scale`` (LivePortrait's motion),
    the scale as a change from the source's too.

    Args:
        num_kp: keypoints K of the renderer.
        num_bins: head-pose bins of the renderer's estimator.
        num_points: points per frame of the input (70: 68 landmarks + 2 pupils).
        hidden: channels of the temporal network.
        num_blocks: residual temporal blocks.
        kernel_size: temporal kernel (odd).
        scale: also predict the renderer's scale term (LivePortrait; face-vid2vid has none).
    """

    def __init__(
        self,
        num_kp: int = 15,
        num_bins: int = 66,
        num_points: int = NUM_RELOCATED_POINTS,
        hidden: int = 256,
        num_blocks: int = 4,
        kernel_size: int = 5,
        scale: bool = False,
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd (the window length is kept), got {kernel_size}")
        self.num_kp, self.num_bins, self.num_points, self.scale = num_kp, num_bins, num_points, scale
        # driving points + their offset from the source + canonical keypoints + source parameters
        in_features = 2 * num_points * 3 + num_kp * 3 + (3 + 3 + num_kp * 3) + int(scale)
        self.inp = nn.Conv1d(in_features, hidden, kernel_size=1)
        self.blocks = nn.Sequential(*[_TemporalBlock(hidden, kernel_size) for _ in range(num_blocks)])
        self.out_norm = nn.Sequential(nn.GroupNorm(1, hidden), nn.LeakyReLU(0.2))
        self.angles = nn.Conv1d(hidden, 3 * num_bins, kernel_size=1)
        self.delta_t = nn.Conv1d(hidden, 3, kernel_size=1)
        self.delta_exp = nn.Conv1d(hidden, num_kp * 3, kernel_size=1)
        self.delta_scale = nn.Conv1d(hidden, 1, kernel_size=1) if scale else None
        # Start from "the source held still": zero changes (the angle logits start flat).
        for layer in (self.delta_t, self.delta_exp, self.delta_scale):
            if layer is None:
                continue
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(
        self, points: Tensor, source_points: Tensor, kp_canonical: Tensor, source_params: dict[str, Tensor]
    ) -> dict[str, Tensor]:
        """Map a window.

        Args:
            points: ``(B, T, P, 3)`` driving frames' relocated points, normalised to about [-1, 1]
                (crop pixels / (size / 2) - 1).
            source_points: ``(B, P, 3)`` the source frame's, normalised the same way.
            kp_canonical: ``(B, K, 3)`` the source's canonical keypoints.
            source_params: the source's ``"angles"`` ``(B, 3)`` degrees (yaw, pitch, roll),
                ``"t"`` ``(B, 3)``, ``"exp"`` ``(B, 3K)`` (and ``"scale"`` ``(B, 1)`` with ``scale``).

        Returns:
            per frame: ``"yaw"``, ``"pitch"``, ``"roll"`` ``(B, T, num_bins)`` bin logits, ``"t"``
            ``(B, T, 3)``, ``"exp"`` ``(B, T, 3K)`` (and ``"scale"`` ``(B, T, 1)`` with ``scale``).
        """
        b, t = points.shape[:2]
        if points.shape[2] != self.num_points or source_points.shape[-2] != self.num_points:
            raise ValueError(
                f"expected {self.num_points} points per frame, got {tuple(points.shape)} and {tuple(source_points.shape)}"
            )
        clip_parts = [kp_canonical.flatten(1), source_params["angles"] / 90.0, source_params["t"], source_params["exp"]]
        if self.scale:
            clip_parts.append(source_params["scale"].reshape(b, 1))
        per_clip = torch.cat(clip_parts, -1)  # (B, F_clip): angles brought to about the scale of the other inputs
        features = torch.cat(
            [
                points.flatten(2),
                (points - source_points.unsqueeze(1)).flatten(2),
                per_clip.unsqueeze(1).expand(b, t, -1),
            ],
            -1,
        )  # (B, T, F)
        hidden = self.out_norm(self.blocks(self.inp(features.transpose(1, 2))))  # (B, H, T)
        angles = self.angles(hidden).transpose(1, 2).reshape(b, t, 3, self.num_bins)
        out = {
            "yaw": angles[:, :, 0], "pitch": angles[:, :, 1], "roll": angles[:, :, 2],
            "t": source_params["t"].unsqueeze(1) + self.delta_t(hidden).transpose(1, 2),
            "exp": source_params["exp"].unsqueeze(1) + self.delta_exp(hidden).transpose(1, 2),
        }  # fmt: skip
        if self.delta_scale is not None:
            out["scale"] = source_params["scale"].reshape(b, 1, 1) + self.delta_scale(hidden).transpose(1, 2)
        return out
