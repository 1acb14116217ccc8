"""Audio encoder: a small CNN over the MFCC/filterbank window around each video frame."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

AUDIO_ROWS_PER_FRAME = 4
"""Audio feature rows (100 Hz) per video frame (25 fps), see docs/data_format.md."""


def frame_windows(audio: Tensor, context: int, rows_per_frame: int = AUDIO_ROWS_PER_FRAME) -> Tensor:
    """Cut the audio feature rows around every video frame.

    Frame ``t`` owns rows ``[4t, 4t + 4)``; its window adds ``context`` rows on each side, so it
    spans ``[4t - context, 4t + 4 + context)``. Rows outside the clip are replicated edge rows.

    Args:
        audio: ``(B, 4T, F)`` audio features.
        context: rows of context on each side.
        rows_per_frame: audio rows per video frame.

    Returns:
        ``(B, T, W, F)`` windows with ``W = rows_per_frame + 2 * context``.
    """
    batch, rows, features = audio.shape
    frames = rows // rows_per_frame
    padded = F.pad(audio.transpose(1, 2), (context, context), mode="replicate")  # (B, F, 4T + 2c)
    width = rows_per_frame + 2 * context
    windows = padded.unfold(-1, width, rows_per_frame)[:, :, :frames]  # (B, F, T, W)
    return windows.permute(0, 2, 3, 1)


class AudioEncoder(nn.Module):
    """CNN mapping the feature window around each frame to a per-frame audio code ``a_n``.

    The input features are first standardized by a per-feature affine normalisation whose
    statistics are running averages (``BatchNorm1d`` without learned scale), so raw MFCC energy
    (tens) and log filterbanks (negative) become comparable without a preprocessing step.

    Args:
        in_features: feature columns per audio row (13 MFCC + 26 log-fbank = 39).
        context: context rows on each side of a frame's own 4 rows (8 -> a 20-row, 200 ms window).
        channels: CNN width.
        out_dim: size of ``a_n``.
        dropout: dropout on the output code.
    """

    def __init__(
        self, in_features: int = 39, context: int = 8, channels: int = 64, out_dim: int = 128, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.context = context
        self.out_dim = out_dim
        self.norm = nn.BatchNorm1d(in_features, affine=False)
        self.conv = nn.Sequential(
            nn.Conv1d(in_features, channels, 3, padding=1),
            nn.GELU(),
            nn.Conv1d(channels, channels, 3, padding=1, stride=2),
            nn.GELU(),
            nn.Conv1d(channels, channels, 3, padding=1, stride=2),
            nn.GELU(),
        )
        width = AUDIO_ROWS_PER_FRAME + 2 * context
        reduced = width
        for _ in range(2):
            reduced = (reduced + 2 - 3) // 2 + 1
        self.proj = nn.Sequential(nn.Flatten(), nn.Linear(channels * reduced, out_dim), nn.Dropout(dropout))

    def forward(self, audio: Tensor) -> Tensor:
        """Encode audio features.

        Args:
            audio: ``(B, 4T, F)`` features at 100 Hz.

        Returns:
            ``(B, T, out_dim)`` per-frame audio codes.
        """
        batch = audio.shape[0]
        normed = self.norm(audio.transpose(1, 2)).transpose(1, 2)  # (B, 4T, F)
        windows = frame_windows(normed, self.context)  # (B, T, W, F)
        frames = windows.shape[1]
        x = windows.reshape(batch * frames, windows.shape[2], windows.shape[3]).transpose(1, 2)  # (BT, F, W)
        return self.proj(self.conv(x)).reshape(batch, frames, self.out_dim)
